"""The thin ``helix-tf`` entry point: handing a run to the server imports almost nothing."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("click", "rich", "numpy", "pyarrow", "helix_tf.cli", "helix_tf.api", "tensorflow")


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


def test_python_dash_m_helix_tf_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "helix_tf", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "helix-tf" in done.stdout and "run" in done.stdout
