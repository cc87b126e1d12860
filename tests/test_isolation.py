"""The tests start from the same environment on every machine (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings, strategies as st

from tests.conftest import ROOT

#: Settings a developer's shell or a CI machine may carry.
INHERITED = {
    "HELIX_TF_METADATA": "postgresql://nobody@127.0.0.1:1/helix",
    "HELIX_TF_DATA": "/nonexistent/data",
    "HELIX_TF_USER": "somebody-else",
    "HELIX_TF_SERVER": "on",
    "HELIX_TF_SERVER_DIR": "/nonexistent/server",
    "HELIX_EAGER_MAX_STEPS": "0",
    "TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker"}}',
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:1",
}

_PROBE = (
    "import json, os, tests.conftest; "
    f"print(json.dumps({{k: os.environ.get(k) for k in {sorted(INHERITED)!r}}}))"
)


def test_settings_of_the_machine_do_not_reach_the_tests() -> None:
    """A developer's team database, data folder or TF_CONFIG in the shell that runs
    pytest would otherwise change what every test's runs do (and where they record):
    pytest imports tests/conftest.py first, and it removes them."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **INHERITED},
        check=True,
        timeout=120,
    )
    seen = json.loads(out.stdout)
    assert seen.pop("HELIX_TF_SERVER") == "off"
    # The warm server's folder is the session's own, as is the agents' registry.
    assert Path(seen.pop("HELIX_TF_SERVER_DIR")).parent.name.startswith("helix-tests-")
    assert seen == dict.fromkeys(seen), seen


def test_a_settings_file_above_the_tests_stops_them_naming_it(tmp_path: Path) -> None:
    """A stray ``helix_tf.toml`` above the temporary folder would be every test config's
    project settings (a team database for all of them): the session stops instead."""
    stray = tmp_path / "helix_tf.toml"
    stray.write_text('metadata = "sqlite:///elsewhere.db"\n')
    (tmp_path / "below").mkdir()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'below' / 'basetemp'}",
            f"{__file__}::test_settings_of_the_machine_do_not_reach_the_tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 4, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{stray} would be the project settings of every test's config" in out.stdout


@settings(max_examples=2)
@given(st.integers(0, 1))
def test_a_hypothesis_example_slower_than_its_default_deadline_passes(n: int) -> None:
    """Hypothesis' default deadline (200 ms an example) failed rules on a busy machine:
    the tests' profile (tests/conftest.py) has none."""
    time.sleep(0.25)
    assert n in (0, 1)
