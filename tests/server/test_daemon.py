"""A served run's process: what it does with the client's streams once the run is over."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helix_tf.server._protocol import receive

#: A served run's process (``_daemon._child``) for ``helix-tf --version``, whose closing of
#: the metadata databases after the exit code (``cli.close_deferred``) waits for a byte
#: on the descriptor ``argv[1]``.
_CHILD = """
import os, socket, sys
import helix_tf.cli as cli
from helix_tf.server._daemon import _child

gate, conn, *streams = map(int, sys.argv[1:])
cli.close_deferred = lambda: os.read(gate, 1)
request = {"argv": ["--version"], "cwd": os.getcwd(), "env": dict(os.environ),
           "path": list(sys.path)}
os._exit(_child(socket.socket(fileno=conn), request, streams))
"""


def _read_to_end(fd: int, limit_s: float = 120.0) -> bytes:
    """Everything written to the pipe ``fd`` until its writers have all let go of it."""
    data = b""
    while select.select([fd], [], [], limit_s)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the pipe did not end within {limit_s:.0f} s; read so far: {data!r}")


def test_the_callers_streams_end_with_the_exit_code_before_the_databases_close() -> None:
    """A caller reading the run's output through a pipe (``| tee``, a script) sees its
    end when the exit code is sent, not after the run's process has closed its
    databases (which here waits until the test lets it)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    gate_r, gate_w = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    null = os.open(os.devnull, os.O_RDONLY)
    passed = (gate_r, theirs.fileno(), null, out_w, err_w)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *map(str, passed)],
        pass_fds=passed,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for fd in (out_w, err_w, gate_r, null):
            os.close(fd)
        theirs.close()
        with ours:
            assert "pid" in receive(ours)[0]
            output = _read_to_end(out_r)
            assert _read_to_end(err_r) == b""
            assert json.dumps(receive(ours)[0]) == json.dumps({"exit": 0})
        assert b"version" in output
        assert child.poll() is None  # still closing its databases
        os.write(gate_w, b"x")
        assert child.wait(timeout=120) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for fd in (out_r, err_r, gate_w):
            os.close(fd)


def test_a_second_server_refuses_in_one_line(tmp_path: Path) -> None:
    """``python -m helix_tf.server`` while another server holds the lock (QA pass 26): a
    line naming the holder and the fix, exit 1; it was a RuntimeError's traceback."""
    env = {**os.environ, "HELIX_TF_SERVER_DIR": str(tmp_path / "srv")}
    held = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert held.stdout is not None and held.stdout.readline().strip() == b"held"
        done = subprocess.run(
            [sys.executable, "-m", "helix_tf.server", "--idle-timeout", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        held.kill()
        held.communicate()  # closes its pipes
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"already running or starting (pid {held.pid})" in done.stderr
    assert "helix-tf server stop" in done.stderr


#: Takes the server lock (as a starting server does), says so, and holds it.
HOLD_LOCK = """\
import os, sys
from helix_tf.server._starting import take_lock, write_owner
fd = take_lock()
write_owner(fd, os.getpid())
print("held", flush=True)
sys.stdin.read()
"""


def test_status_says_the_trainer_is_gone_and_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """QA pass 26: a trainer killed under the server (OOM killer, kill -9) left `server
    status` without its trainer line and no word of it; runs trained in their own
    processes from then on."""
    import signal as signals

    from click.testing import CliRunner

    from helix_tf.server import _daemon, commands

    state = _daemon._State({}, 0.0, -1)
    trainer = subprocess.Popen(["sleep", "60"])
    state.trainer_pid = trainer.pid
    os.kill(trainer.pid, signals.SIGKILL)
    while state.trainer_pid is not None:  # reaped by the server's loop
        _daemon._reap(state)
    trainer.returncode = -signals.SIGKILL  # reaped above
    reply = state.status()
    assert reply["trainer"] is None
    assert reply["trainer_exit"].startswith("was killed by signal 9 at ")
    monkeypatch.setattr(commands, "request", lambda op: reply)
    said = CliRunner().invoke(commands.server, ["status"]).output
    assert "trainer: none: it was killed by signal 9 at " in said
    assert "runs train in their own processes (helix-tf server restart" in said


@pytest.mark.parametrize("command", ["status", "start"])
def test_a_server_folder_others_may_write_to_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """QA pass 26: `server status` (and `start`) in a server folder that is not private
    ended in a PermissionError traceback; the message was right, its form was not."""
    from click.testing import CliRunner

    from helix_tf.server import commands
    from helix_tf.server._protocol import lock_path

    folder = tmp_path / "public"
    folder.mkdir()
    folder.chmod(0o777)
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(folder))
    lock_path().touch()
    result = CliRunner().invoke(commands.server, [command])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert f"Error: {folder} must belong to you and not be writable by others" in result.output
