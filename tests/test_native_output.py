"""TensorFlow's native log lines stay off standard error below ``-v``; everything else stays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helix_tf.native_output import is_chatter, verbosity
from tests.conftest import TINY_CENSUS, write_config

#: A program that writes like TensorFlow's C++ side (to descriptor 2) and like Python.
_WRITER = """
import os, sys
from helix_tf.native_output import quiet_native_stderr
with quiet_native_stderr(enabled={enabled}) as outcome:
    os.write(2, b"I0000 00:00:1796227573.569412   11148 port.cc:153] oneDNN custom operations\\n")
    os.write(2, b"E0000 00:00:1.5 7 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN\\n")
    os.write(2, b"native trouble that is not chatter\\n")
    sys.stderr.write("python progress line\\n")
    outcome[0] = {code}
print("done", sys.stderr.isatty() == sys.__stderr__.isatty())
"""


def _write(enabled: bool, code: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WRITER.format(enabled=enabled, code=code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_native_lines_are_dropped_and_python_output_kept() -> None:
    done = _write(True, 0)
    assert done.stdout.strip() == "done True"
    assert done.stderr == "python progress line\n"


def test_a_failing_command_shows_native_lines_that_are_not_chatter() -> None:
    done = _write(True, 1)
    assert done.stderr.splitlines() == [
        "python progress line",
        "native trouble that is not chatter",
    ]


def test_with_verbose_nothing_is_redirected() -> None:
    done = _write(False, 0)
    assert "failed call to cuInit" in done.stderr and "python progress line" in done.stderr


@pytest.mark.parametrize(
    ("argv", "count"),
    [
        (["run", "c.py"], 0),
        (["run", "c.py", "-v"], 1),
        (["-vv", "run"], 2),
        (["run", "--verbose"], 1),
        (["run", "--", "-v"], 0),
        (["run", "-p", "v=1"], 0),
    ],
)
def test_verbosity_counts_the_flags(argv: list[str], count: int) -> None:
    assert verbosity(argv) == count


@pytest.mark.slow
@pytest.mark.ci
def test_a_local_run_prints_no_tensorflow_lines_unless_verbose(
    census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    client = [sys.executable, "-c", "from helix_tf.cli import console_main; console_main()"]

    def start(store: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*client, "run", str(cfg), "--store", str(tmp_path / store), "--no-server", *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # The same run with -v shows them: they exist here. Each trains in a store of its own
    # (TensorFlow runs in both); the two run side by side.
    runs = [start("quiet"), start("loud", "-v")]
    try:
        (_, quiet), (_, loud) = [proc.communicate(timeout=300) for proc in runs]
    finally:
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert runs[0].returncode == 0, quiet
    assert "training learner" in quiet
    assert [line for line in quiet.splitlines() if is_chatter(line)] == []
    assert runs[1].returncode == 0, loud
    assert any(is_chatter(line) for line in loud.splitlines())
