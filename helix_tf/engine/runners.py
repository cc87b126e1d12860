"""Beam runners: the in-process runner locally, Dataflow at scale, portable job servers.

Local runs name the in-process ``FnApiRunner`` explicitly: the default
``DirectRunner`` of Beam 2.77 first tries to download a "Prism" binary, which
fails (slowly) without a network. Local runs use ONE worker: with
``direct_num_workers`` > 1 the DirectRunner was seen to drop rows silently.

Every remote runner's options are checked here, offline and in well under a
second, before anything runs: Beam itself, given a temp location that is not a
valid ``gs://`` URL, tries to create a default bucket and hangs for minutes
without a network; Flink and Spark without a job-server jar try to download one
from Maven. A Dataflow ``--dry_run`` builds the job and stops with
:class:`JobBuilt` (nothing is submitted, nothing written).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from helix_tf.engine._runner_args import direct_problem, has_option as _has, option_value as _value
from helix_tf.errors import ConfigError, HelixError

__all__ = [
    "RUNNERS",
    "JobBuilt",
    "check_runner",
    "dataflow_problems",
    "pipeline_factory",
    "worker_image",
]

log = logging.getLogger(__name__)

RUNNERS = ("direct", "dataflow", "portable", "flink", "spark")

#: The worker container recipe shipped with helix_tf (the default way to ship code).
DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


class JobBuilt(HelixError):
    """A Dataflow ``--dry_run``: the job was built offline and not submitted.

    ``job`` is Beam's job description (``job.proto_pipeline`` the runner-API
    pipeline, ``job.options`` the options it would be submitted with).
    """

    def __init__(self, job: Any) -> None:
        steps = len(job.proto_pipeline.components.transforms)
        super().__init__(
            f"dry run: the Dataflow job was built ({steps} transforms) and not submitted; "
            "drop --dry_run to submit it"
        )
        self.job = job


def worker_image() -> str:
    """The Beam SDK image matching this interpreter and Beam version (the Dockerfile's base)."""
    return f"apache/beam_python{sys.version_info[0]}.{sys.version_info[1]}_sdk:{beam.__version__}"


def check_runner(runner: str, args: Sequence[str], store_url: str) -> None:
    """Fail before anything runs when a runner cannot work with these options.

    A distributed runner's workers cannot read this machine's folders: Dataflow
    needs a ``gs://`` store (the portable runner with LOOPBACK runs here).
    """
    if runner == "dataflow":
        problems = dataflow_problems(args, store_url)
        if problems:
            raise ConfigError(problems)
    pipeline_factory(runner, args)


# ---------------------------------------------------------------------------- Dataflow checks

# Google Cloud's naming rules (cloud.google.com/storage/docs/buckets#naming,
# cloud.google.com/resource-manager/docs/creating-managing-projects).
_BUCKET_PART = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$")
_PROJECT = re.compile(r"^([a-z][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
_BEAM_IMAGE = re.compile(r"beam_python(?P<py>\d+\.\d+)_sdk(:(?P<tag>[^@/]+))?(@.*)?$")


def bucket_problem(url: str, what: str) -> str | None:
    """Why ``url`` is not a ``gs://BUCKET/...`` URL with a valid bucket name, else None."""
    if not url.startswith("gs://"):
        return (
            f"{what} must be a gs://bucket/path URL (Dataflow workers write there), but got {url!r}"
        )
    bucket = url[len("gs://") :].split("/", 1)[0]
    rules = (
        "bucket names are 3-63 characters (222 with dots, 63 between dots) of lowercase "
        "letters, digits, '-', '_' and '.', start and end with a letter or digit, are no IP "
        "address and neither start with 'goog' nor contain 'google'"
    )
    parts = bucket.split(".")
    ok = (
        3 <= len(bucket) <= (222 if len(parts) > 1 else 63)
        and all(_BUCKET_PART.match(p) for p in parts)
        and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket)
        and not bucket.startswith("goog")
        and "google" not in bucket
    )
    if not ok:
        return f"{what} {url!r} names an invalid bucket {bucket!r}: {rules}"
    return None


def dataflow_problems(args: Sequence[str], store_url: str) -> list[str]:
    """Everything wrong with a Dataflow submission's options, found offline.

    Checks the store and every GCS location (bucket-name rules), that project and
    region are given and well formed, that workers get helix_tf (a container image
    or a setup file) and that a Beam SDK image matches this Beam and Python.
    """
    problems = []
    if not store_url:
        problems.append(
            "--runner dataflow needs a store its workers can reach: pass --store gs://bucket/prefix"
        )
    else:
        p = bucket_problem(store_url, "--store")
        if p:
            problems.append(p + "; pass --store gs://bucket/prefix")
    missing = [f for f in ("--project", "--region", "--temp_location") if not _has(args, f)]
    if missing:
        problems.append(
            f"--runner dataflow needs {', '.join(missing)}: pass them as "
            "--project P --region R and a gs:// --store (temp_location defaults to it)"
        )
    project, region = _value(args, "--project"), _value(args, "--region")
    if project is not None and not _PROJECT.match(project):
        problems.append(
            f"--project {project!r} is not a Google Cloud project id (6-30 lowercase letters, "
            "digits and '-', starting with a letter); pass the project's id, not its name"
        )
    if region is not None and not _REGION.match(region):
        problems.append(
            f"--region {region!r} is not a Google Cloud region (e.g. us-central1, europe-west4)"
        )
    for flag in ("--temp_location", "--staging_location"):
        url = _value(args, flag)
        if url is not None:
            p = bucket_problem(url, flag)
            if p:
                problems.append(p)
    image = _value(args, "--sdk_container_image") or _value(
        args, "--worker_harness_container_image"
    )
    setup_file = _value(args, "--setup_file")
    if image:
        m = _BEAM_IMAGE.search(image)
        want_py = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if m and m["py"] != want_py:
            problems.append(
                f"--sdk_container_image {image!r} runs Python {m['py']}, but this Python is "
                f"{want_py}: pickled code only loads on the same minor version; use "
                f"{worker_image()} (or an image built FROM it, deploy/Dockerfile)"
            )
        if m and m["tag"] and m["tag"] != beam.__version__:
            problems.append(
                f"--sdk_container_image {image!r} has Beam {m['tag']}, but this Beam is "
                f"{beam.__version__}: the SDK harness must match the SDK that built the job; "
                f"use {worker_image()} (or an image built FROM it, deploy/Dockerfile)"
            )
    if setup_file is not None and not os.path.isfile(setup_file):
        problems.append(
            f"--setup_file {setup_file!r} does not exist; pass the setup.py of helix_tf's "
            "source tree (or build the worker image, deploy/Dockerfile)"
        )
    return problems


def _setup_to_ship(args: list[str]) -> Path | None:
    """The setup.py of this source tree when no worker image (nor setup file) is named.

    Dataflow workers need helix_tf to unpickle its DoFns. The default is a worker
    image built from ``deploy/Dockerfile`` (``--sdk_container_image``); without
    one, the package is built from this source tree's setup.py (:func:`package_for_workers`)
    and installed on every worker at start-up (slower).
    """
    if _has(args, "--sdk_container_image") or _has(args, "--setup_file"):
        return None
    if _has(args, "--worker_harness_container_image"):
        return None
    setup = Path(__file__).resolve().parents[2] / "setup.py"
    if not setup.is_file():
        raise ConfigError(
            "Dataflow workers need helix_tf: pass --beam-option=--sdk_container_image=IMAGE "
            "(an image built from helix_tf's deploy/Dockerfile) or "
            "--beam-option=--setup_file=PATH/setup.py of helix_tf's source tree"
        )
    return setup


#: The files beside setup.py that building the package may read (setuptools' defaults).
_PACKAGING_FILES = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md")


def package_for_workers(setup: Path, folder: str) -> str:
    """Build helix_tf's source package from the tree of ``setup`` inside ``folder`` (a
    copy of the package and its packaging files) and return the ``.tar.gz``.

    Beam's ``--setup_file`` runs ``setup.py sdist`` in the source tree itself, which
    writes ``helix_tf.egg-info`` there: on the import path of a process run from the
    tree, that changed what is installed (``helix_tf._installed.path_state``), so the
    next run read helix_tf's identity anew and recomputed once. Built in a copy, the
    project is left as it was.
    """
    tree = Path(folder) / "tree"
    shutil.copytree(
        setup.parent / "helix_tf",
        tree / "helix_tf",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in _PACKAGING_FILES:
        if (setup.parent / name).is_file():
            shutil.copy2(setup.parent / name, tree / name)
    dist = Path(folder) / "dist"
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(dist)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    built = sorted(dist.glob("*.tar.gz")) if done.returncode == 0 else []
    if not built:
        raise ConfigError(
            f"could not build helix_tf's package for the Dataflow workers from {setup} "
            f"({(done.stderr or done.stdout).strip()[-500:]}); pass "
            "--beam-option=--sdk_container_image=IMAGE (deploy/Dockerfile) instead"
        )
    return str(built[0])


def _dataflow_factory(args: list[str]) -> Callable[[], beam.Pipeline]:
    """Dataflow pipelines; helix_tf's package built once, on the first (not when the
    options are checked), into a temporary folder removed when the process ends."""
    setup = _setup_to_ship(args)
    built: list[str] = []

    def make_dataflow() -> beam.Pipeline:
        extra = []
        if setup is not None:
            if not built:
                folder = tempfile.mkdtemp(prefix="helix-package-")
                atexit.register(shutil.rmtree, folder, True)
                log.info("no worker image given: shipping helix_tf built from %s", setup)
                built.append(package_for_workers(setup, folder))
            extra = [f"--extra_package={built[0]}"]
        return beam.Pipeline(runner="DataflowRunner", options=PipelineOptions([*args, *extra]))

    return make_dataflow


# ---------------------------------------------------------------------------- job servers

_JOB_SERVERS = {
    "flink": ("FlinkRunner", "--flink_job_server_jar", "beam-runners-flink-1.19-job-server"),
    "spark": ("SparkRunner", "--spark_job_server_jar", "beam-runners-spark-3-job-server"),
}


def _job_server_problems(runner: str, args: Sequence[str]) -> list[str]:
    """Why a Flink/Spark runner cannot start offline: no jar (Beam would download one)."""
    _, flag, artifact = _JOB_SERVERS[runner]
    if _has(args, "--job_endpoint"):
        return []
    jar = _value(args, flag)
    where = (
        f"https://repo1.maven.org/maven2/org/apache/beam/{artifact}/{beam.__version__}/"
        f"{artifact}-{beam.__version__}.jar"
    )
    if jar is None:
        return [
            f"--runner {runner} needs Beam's {runner.title()} job server: pass "
            f"--beam-option={flag}=PATH.jar (download {where}) or "
            f"--beam-option=--job_endpoint=HOST:PORT of a running job server"
        ]
    problems = []
    if "://" not in jar and not os.path.isfile(jar):
        problems.append(f"{flag} {jar!r} does not exist; download {where}")
    if shutil.which("java") is None:
        problems.append(f"{flag} needs Java to start the job server, but no java is on PATH")
    return problems


# ---------------------------------------------------------------------------- factory


def pipeline_factory(runner: str, args: Sequence[str] = ()) -> Callable[[], beam.Pipeline]:
    """A function that makes a fresh pipeline for ``runner`` with pass-through options.

    ``args`` are ordinary Beam pipeline options (``--project=P``, ``--region=R``,
    ``--temp_location=gs://…``, ``--job_endpoint=…``).
    """
    args = list(args)
    if runner == "direct":
        problem = direct_problem(args)
        if problem is not None:
            raise ConfigError(problem)

        def make() -> beam.Pipeline:
            from apache_beam.runners.portability.fn_api_runner import FnApiRunner

            opts = PipelineOptions([*args, "--direct_num_workers=1"])
            return beam.Pipeline(runner=FnApiRunner(), options=opts)

        return make
    if runner == "portable":
        extra = []
        if not _has(args, "--job_endpoint"):
            extra.append("--job_endpoint=embed")
        if not _has(args, "--environment_type"):
            extra.append("--environment_type=LOOPBACK")

        def make_portable() -> beam.Pipeline:
            return beam.Pipeline(runner="PortableRunner", options=PipelineOptions([*args, *extra]))

        return make_portable
    if runner in _JOB_SERVERS:
        problems = _job_server_problems(runner, args)
        if problems:
            raise ConfigError(problems)
        name = _JOB_SERVERS[runner][0]
        extra = [] if _has(args, "--environment_type") else ["--environment_type=LOOPBACK"]

        def make_job_server() -> beam.Pipeline:
            return beam.Pipeline(runner=name, options=PipelineOptions([*args, *extra]))

        return make_job_server
    if runner == "dataflow":
        missing = [f for f in ("--project", "--region", "--temp_location") if not _has(args, f)]
        if missing:
            raise ConfigError(
                f"--runner dataflow needs {', '.join(missing)}: pass them as "
                "--project P --region R and a gs:// --store (temp_location defaults to it)"
            )
        return _dataflow_factory(args)
    raise ConfigError(f"unknown runner {runner!r}; expected one of {', '.join(RUNNERS)}")
