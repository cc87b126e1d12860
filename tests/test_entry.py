"""The thin ``helix-tf`` entry point: handing a run to the server imports almost nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "click",
    "rich",
    "numpy",
    "pyarrow",
    "helix_tf.cli",
    "helix_tf.api",
    "tensorflow",
    "importlib.metadata",
    # helix_tf's alias finder without importlib.abc's classes: no importlib.resources.
    "importlib.abc",
    "importlib.resources",
)

#: What the first run may not import before it forks the server (it reads its store with
#: the run command's parser, importing ``helix_tf.cli``): the server imports TensorFlow,
#: the first run's critical path, only from the fork on.
BEFORE_FORK = ("numpy", "pandas", "pyarrow", "sqlalchemy", "helix_tf.api", "helix_tf.rendering")


def test_the_served_path_imports_no_cli_and_no_numpy() -> None:
    """What a served ``run`` imports before it hands over: the entry and the server client."""
    code = (
        "import json, sys\n"
        "import helix_tf.entry\n"
        "from helix_tf.server import served\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_reading_the_first_runs_store_imports_no_numpy(tmp_path: Path) -> None:
    """The first run into an empty store forks the server after reading which store it
    runs into with the ``run`` command's own parser: that parser comes without numpy,
    Arrow, SQLAlchemy or the API, so the server starts importing TensorFlow sooner."""
    code = (
        "import json, os, sys\n"
        "from helix_tf.server._client import _computes_from_scratch\n"
        f"argv = ['run', 'config.py', '--store', {str(tmp_path / 'store')!r}, '-p', 'scale=10']\n"
        "scratch = _computes_from_scratch(argv)\n"
        f"heavy = sorted(m for m in {BEFORE_FORK!r} if m in sys.modules)\n"
        "print(json.dumps([scratch, heavy, 'helix_tf.cli' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [True, [], True]


def test_python_dash_m_helix_tf_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "helix_tf", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "helix-tf" in done.stdout and "run" in done.stdout
