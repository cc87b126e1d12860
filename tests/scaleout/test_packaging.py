"""The worker install is lean: the core imports without test or plotting packages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _install_requires() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("setup.py has no install_requires")


def test_core_requirements_hold_no_test_or_plotting_packages() -> None:
    names = {r.split(">")[0].split("=")[0].split("[")[0].lower() for r in _install_requires()}
    assert not names & {"pytest", "matplotlib", "hypothesis", "ruff", "scikit-learn"}, names


def test_the_code_workers_run_imports_without_them() -> None:
    """What a Dataflow worker unpickles (the pipeline's DoFns, sources, features) and the
    driver (api, cli) import with pytest, matplotlib and hypothesis unimportable."""
    code = (
        "import sys\n"
        "for m in ('pytest', 'matplotlib', 'hypothesis', '_pytest'):\n"
        "    sys.modules[m] = None\n"
        "import helix_tf.engine.beam_pipeline, helix_tf.engine.runners, helix_tf.api\n"
        "import helix_tf.cli, helix_tf.components.sources, helix_tf.components.features\n"
        "import helix_tf.components.keras_models, helix_tf.components.distributed\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
