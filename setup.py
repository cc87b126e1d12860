"""Packaging for helix_tf (the charter asks for setup.py; tool settings live in pyproject.toml)."""

from pathlib import Path

from setuptools import find_packages, setup

_README = Path(__file__).with_name("README.md")

setup(
    name="helix_tf",
    version="0.1.0",
    description="Fast iteration loops for TensorFlow pipelines: reuse, approximation, think-time search.",
    long_description=_README.read_text(encoding="utf-8") if _README.exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["helix_tf", "helix_tf.*"]),
    install_requires=[
        "tensorflow>=2.16",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets 4.9.10 imports importlib_resources without declaring it.
        "importlib-resources>=6",
        "apache-beam>=2.60",
        "networkx>=3.0",
        "optuna>=4.0",
        "ortools>=9.10",
        "gcsfs>=2024.2",
        "fsspec>=2024.2",
        "pyarrow>=14",
        "pandas>=2.0",
        "numpy>=1.26",
        "click>=8.1",
        "rich>=13",
        "sqlalchemy>=2.0",
    ],
    # Workers (deploy/Dockerfile) install only the core above: plotting and testing are extras.
    extras_require={
        "report": ["matplotlib>=3.8"],  # helix-tf report and helix_tf.views draw with it
        # --runner dataflow: Beam's Dataflow client (google-cloud-dataflow-client and friends).
        "dataflow": ["apache-beam[gcp]>=2.60"],
        "test": [
            "matplotlib>=3.8",
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "import-linter>=2.0",
            "mypy>=1.10",  # the pure packages' types (.ci/run)
            "gcp-storage-emulator>=2024.0",
            "scikit-learn>=1.4",  # cross-checks of the multiclass and regression metrics
            "psycopg[binary]>=3.1",  # the metadata tests against a real PostgreSQL server
            # the offline Dataflow dry-run tests build a real job (Beam imports this client)
            "google-cloud-dataflow-client>=0.8",
        ],
        # Team mode: a shared PostgreSQL metadata database (--metadata postgresql://...).
        "team": ["psycopg[binary]>=3.1"],
    },
    entry_points={"console_scripts": ["helix-tf=helix_tf.entry:console_main"]},
)
