"""The warm server starts itself: once, only for a person at a terminal, and anew when stale.

Real processes throughout: clients are ``helix-tf`` processes on a pseudo-terminal (or on
pipes), every server is isolated by ``HELIX_TF_SERVER_DIR`` and stopped at the end.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helix_tf.native_output import is_chatter
from helix_tf.server._daemon import SERVER_NAME
from tests.conftest import ROOT

# Real processes: slow; CI runs those marked ci (README lists the rest).
pytestmark = [pytest.mark.slow]

CLIENT = [sys.executable, "-c", "from helix_tf.cli import console_main; console_main()"]
STARTED = "started a warm server"


def _env(server_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HELIX_TF_SERVER", "CI")}
    return {**env, "HELIX_TF_SERVER_DIR": str(server_dir), **extra}


class _Terminal:
    """A ``helix-tf`` process whose standard streams are a pseudo-terminal."""

    def __init__(self, args: list[object], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*CLIENT, *map(str, args)], stdin=slave, stdout=slave, stderr=slave, env=env
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._reader.start()

    def _read(self, master: int) -> None:
        try:
            while chunk := os.read(master, 65536):
                self._chunks.append(chunk)
        except OSError:  # EIO: the terminal's other side is closed
            pass
        finally:
            os.close(master)

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        return code, b"".join(self._chunks).decode(errors="replace")


def _pipes(server_dir: Path, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    # Run from the server folder's parent: ``python -c`` puts the working directory first
    # on the import path, and the checkout's helix_tf must not shadow PYTHONPATH's.
    server_dir.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [*CLIENT, *map(str, args)],
        cwd=server_dir.parent,
        env=_env(server_dir, **env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _status(server_dir: Path, **env: str) -> dict[str, object]:
    done = _pipes(server_dir, "server", "status", "--json", **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _ready(server_dir: Path, timeout: float = 180, **env: str) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not (status := _status(server_dir, **env))["running"]:
        assert time.monotonic() < deadline, f"no server answered: {status}"
        time.sleep(0.3)
    return status


def _servers(server_dir: Path) -> list[int]:
    """Server processes (ours) serving ``server_dir``: the argv and environment say so."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        # Started as a process of its own, or forked from a run (named so, the run's argv).
        server = b"helix_tf.server" in argv or name == SERVER_NAME
        if server and f"HELIX_TF_SERVER_DIR={server_dir}".encode() in environ:
            found.append(int(entry.name))
    # A server's own forks (its trainer, runs in flight) share its argv: not servers.
    return [pid for pid in found if _parent(pid) not in found]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    """An isolated server folder; whatever server serves it is stopped afterwards."""
    folder = tmp_path / "sock"
    yield folder
    for pid in _servers(folder):
        os.kill(pid, signal.SIGTERM)
    for pid in _servers(folder):
        if not _gone(pid, 30):
            os.kill(pid, signal.SIGKILL)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _lines(terminal_output: str) -> list[str]:
    """A terminal's output as lines: carriage returns end lines too, escapes removed."""
    return [_ANSI.sub("", line) for line in re.split(r"[\r\n]+", terminal_output)]


def _noise(line: str) -> bool:
    """A native library's log line or a Python logging line a user never asked for."""
    return is_chatter(line) or line.startswith(("WARNING:", "INFO:"))


@pytest.mark.parametrize("command", ["plan", pytest.param("run", marks=pytest.mark.ci)])
def test_two_runs_started_together_at_a_terminal_start_one_server(
    server_dir: Path, config: Path, tmp_path: Path, command: str
) -> None:
    # A plan starts a server process; a run forks it from itself after its imports.
    # TensorFlow's native lines enabled: the imports paid for the server must not show them.
    env = _env(server_dir, TF_CPP_MIN_LOG_LEVEL="0")
    clients = [_Terminal([command, config, "--store", tmp_path / f"s{i}"], env) for i in range(2)]
    results = [c.finish() for c in clients]
    assert [code for code, _ in results] == [0, 0], results
    assert [line for _, out in results for line in _lines(out) if _noise(line)] == [], results
    said = [out for _, out in results if STARTED in out]
    assert len(said) == 1, results
    assert "helix-tf server stop" in said[0] and "HELIX_TF_SERVER=off" in said[0]
    status = _ready(server_dir)
    assert _servers(server_dir) == [status["pid"]]
    # A later run at the terminal is served and says nothing about starting servers.
    code, out = _Terminal(["plan", config, "--store", tmp_path / "s0"], env).finish()
    assert code == 0 and STARTED not in out, out
    assert _status(server_dir)["runs"] == 1


def test_a_run_forks_the_server_from_itself_ready_as_the_run_ends(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    # TensorFlow's native lines enabled: the imports paid for the server must not show them.
    env = {"HELIX_TF_SERVER": "on", "TF_CPP_MIN_LOG_LEVEL": "0"}
    first = _pipes(server_dir, "run", config, "--store", tmp_path / "s1", "--json", **env)
    assert first.returncode == 0 and STARTED in first.stderr, first.stderr
    noise = [line for line in first.stderr.splitlines() if _noise(line)]
    assert noise == [], first.stderr
    # One server (it may still be importing what it imports after forking its trainer).
    status = _ready(server_dir, **env)
    assert _servers(server_dir) == [status["pid"]]
    # Served from then on: the same results, bit for bit, as the run that started it.
    second = _pipes(server_dir, "run", config, "--store", tmp_path / "s2", "--json", **env)
    assert second.returncode == 0 and STARTED not in second.stderr, second.stderr
    assert _status(server_dir, **env)["runs"] == 1
    assert json.loads(second.stdout)["metrics"] == json.loads(first.stdout)["metrics"]


@pytest.mark.ci
def test_the_first_run_trains_in_the_trainer_of_the_server_it_starts(
    server_dir: Path, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.server._starting import import_seconds_path

    # The server imports TensorFlow beside the run; the run waits for its trainer (here
    # however long that takes) instead of importing TensorFlow too.
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(server_dir))
    server_dir.mkdir(mode=0o700, parents=True)
    import_seconds_path().write_text("300\n")
    # The same run with no server (it never reads nor writes the server's folder), in a
    # thread beside the one that starts a server.
    alone: list[subprocess.CompletedProcess[str]] = []
    beside = threading.Thread(
        target=lambda: alone.append(
            _pipes(
                server_dir, "run", config, "--store", tmp_path / "alone", "--json", "--no-server"
            )
        )
    )
    beside.start()
    env = {"HELIX_TF_SERVER": "on"}
    first = _pipes(server_dir, "run", config, "--store", tmp_path / "s1", "--json", **env)
    beside.join(300)
    assert alone and alone[0].returncode == 0, alone
    assert first.returncode == 0 and STARTED in first.stderr, first.stderr
    assert json.loads(first.stdout)["metrics"] == json.loads(alone[0].stdout)["metrics"]
    status = _ready(server_dir, **env)  # it may import the rest after the run's training
    assert status["runs"] == 0, status
    trainers = _trainers(server_dir, **env)
    assert trainers["models"] == 1, trainers  # the first run's model, kept there


def _trainers(server_dir: Path, **env: str) -> dict[str, int]:
    """The server's trainer's counts (``server status``), once it answers (not warming up)."""
    deadline = time.monotonic() + 120
    while (trainers := _status(server_dir, **env)["trainer"]["trainers"]) is None:  # type: ignore[index]
        assert time.monotonic() < deadline, "the trainer stayed busy"
        time.sleep(0.5)
    return trainers  # type: ignore[no-any-return]


#: ``helix-tf run`` whose own imports end only once the server it forked is ready (under
#: load the server's can end first: it imports TensorFlow beside them, and the rest).
_LATE_RUN = """
import os, sys, time
from helix_tf import warm
from helix_tf.server._starting import holder

real, run = warm.preload, os.getpid()


def preload(**kw):
    done = real(**kw)
    while os.getpid() == run and (found := holder()) is not None and found[1] != "ready":
        time.sleep(0.05)
    return done


warm.preload = preload
from helix_tf.cli import console_main

console_main()
"""


def test_a_first_run_whose_imports_end_after_its_servers_trains_in_that_trainer(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    """Before: such a run trained by itself and the trainer kept no model of it ("models:
    0": the test above failed so under load)."""
    env = _env(server_dir, HELIX_TF_SERVER="on")
    late = subprocess.run(
        [sys.executable, "-c", _LATE_RUN, "run", str(config), "--store", "s1", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert late.returncode == 0 and STARTED in late.stderr, late.stderr
    assert _trainers(server_dir, HELIX_TF_SERVER="on")["models"] == 1


def test_a_run_into_a_store_holding_results_starts_the_server_beside_it(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    # Such a run may import no TensorFlow at all: it must not import it for the server.
    store = tmp_path / "s"
    alone = _pipes(server_dir, "run", config, "--store", store, "--json", "--no-server")
    assert alone.returncode == 0, alone.stderr
    again = _pipes(server_dir, "run", config, "--store", store, "--json", HELIX_TF_SERVER="on")
    assert again.returncode == 0 and STARTED in again.stderr, again.stderr
    assert json.loads(again.stdout)["metrics"] == json.loads(alone.stdout)["metrics"]
    status = _ready(server_dir, HELIX_TF_SERVER="on")
    argv = Path(f"/proc/{status['pid']}/cmdline").read_bytes().split(b"\0")
    assert b"helix_tf.server" in argv, argv  # its own process, not a fork of the run


@pytest.mark.ci
def test_ctrl_c_while_the_first_run_imports_ends_it_and_leaves_no_unannounced_server(
    server_dir: Path, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.server._starting import holder

    # The lock file is read here, not through `server status` (a process of its own,
    # seconds under load: the run could end between that answer and the signal).
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(server_dir))
    client = _Terminal(["run", config, "--store", tmp_path / "s"], _env(server_dir))
    deadline = time.monotonic() + 120
    # The server the run forked first, importing (the run imports its own meanwhile).
    while (found := holder()) is None or _parent(found[0]) != client.proc.pid:
        assert client.proc.poll() is None and time.monotonic() < deadline, found
        time.sleep(0.01)
    client.proc.send_signal(signal.SIGINT)
    code, out = client.finish()
    assert code == 130 and "Aborted!" in out and "Traceback" not in out, out
    status = _status(server_dir)
    if STARTED in out:  # the signal came after the run's imports: the server it announced
        assert status["running"] or status["starting"], status
    else:  # during them: the run said nothing of a server, and none is left
        assert not status["running"] and status["starting"] is None, status
        assert _servers(server_dir) == []


#: A run's start of its server (``start_by_fork``) with a Ctrl-C that comes while the
#: process forks: in the fork's callbacks, where logging releases its lock (a callback
#: registered here stands for it, and waits there as a descheduled process would).
_CTRL_C_IN_FORK = """
import os, signal, sys, time
from helix_tf.server._starting import start_by_fork

os.register_at_fork(
    after_in_parent=lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.5))
)
try:
    pid = start_by_fork()
except KeyboardInterrupt:
    sys.exit(130)
print(f"the run went on, its server {pid} announced", flush=True)
"""


@pytest.mark.ci
def test_ctrl_c_while_the_run_forks_its_server_ends_the_run_and_that_server(
    server_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the KeyboardInterrupt raised in the fork's callbacks was only printed
    ("Exception ignored in: <function _releaseLock>"), and the run went on to the end:
    the Ctrl-C test above failed so under load."""
    from helix_tf.server._starting import holder

    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(server_dir))
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_IN_FORK],
        cwd=tmp_path,
        env=_env(server_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert holder() is None and _servers(server_dir) == []


#: A server (:func:`helix_tf.server._daemon.serve`) whose imports after its trainer's wait
#: for the file named by its argument.
_HELD_SERVER = """
import sys, time
from pathlib import Path
from helix_tf.server import _daemon
from helix_tf.server._protocol import socket_path

gate, real = Path(sys.argv[1]), _daemon.preload

def preload(*, strict=True, tensorflow=True, others=True):
    while not tensorflow and not gate.exists():  # the rest, after the trainer
        time.sleep(0.05)
    return real(strict=strict, tensorflow=tensorflow, others=others)

_daemon.preload = preload
_daemon.serve(socket_path(), idle_timeout=600)
"""


@pytest.mark.ci
def test_the_server_forks_its_trainer_before_importing_the_rest(
    server_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.server._protocol import socket_path
    from helix_tf.server._starting import holder
    from helix_tf.server._trainer import RemoteTrainer, trainer_path

    # The run that started a server trains in its trainer as soon as TensorFlow is in,
    # not once the server has imported pandas, Arrow and the engine for the runs to come.
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(server_dir))
    gate = tmp_path / "go-on"
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-c", _HELD_SERVER, str(gate)],
        cwd=tmp_path,
        env=_env(server_dir),
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 180
        while (found := holder()) is None or found[1] != "training":
            assert server.poll() is None and time.monotonic() < deadline, found
            time.sleep(0.05)
        assert found[0] == server.pid
        trainer = RemoteTrainer(trainer_path(socket_path()))
        while trainer.stats() is None:  # busy warming up (with CPUs to spare)
            assert time.monotonic() < deadline, "the trainer never answered"
            time.sleep(0.2)
        assert not socket_path().exists()  # the server itself serves no run yet
        gate.touch()
        assert _ready(server_dir)["pid"] == server.pid
        assert holder() == (server.pid, "ready")
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


@pytest.mark.ci
def test_a_run_while_the_server_is_warming_up_runs_here_and_starts_no_other(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    # A server that has taken the lock but not imported anything yet: it waits for a
    # process of ours to end first, exactly as an auto-started one waits for its run.
    blocker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "helix_tf.server", "--after-pid", str(blocker.pid)],
        env=_env(server_dir),
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while not (status := _status(server_dir))["starting"]:
            assert server.poll() is None and time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["starting"] == server.pid and not status["running"]
        done = _pipes(
            server_dir, "run", config, "--store", tmp_path / "s", "--json", HELIX_TF_SERVER="on"
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["metrics"]
        assert STARTED not in done.stderr
        assert _servers(server_dir) == [server.pid]
        blocker.kill()
        blocker.wait()
        assert _ready(server_dir)["pid"] == server.pid
        served = _pipes(server_dir, "plan", config, "--store", tmp_path / "s")
        assert served.returncode == 0, served.stderr
        assert _status(server_dir)["runs"] == 1
    finally:
        blocker.kill()
        blocker.wait()
        server.terminate()
        server.wait(timeout=60)
        log.close()


@pytest.mark.parametrize("expected", [1.0, 300.0], ids=["nearly-done", "far-from-done"])
def test_a_run_waits_for_a_server_only_when_its_imports_are_nearly_done(
    server_dir: Path,
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    expected: float,
) -> None:
    from helix_tf.server._starting import import_seconds_path

    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(server_dir))
    server_dir.mkdir(mode=0o700, parents=True)
    import_seconds_path().write_text(f"{expected}\n")  # how long the last imports took
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "helix_tf.server"], env=_env(server_dir), stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while (status := _status(server_dir))["phase"] != "importing":
            assert status["phase"] != "ready", "imported before the test could look"
            assert server.poll() is None and time.monotonic() < deadline, status
            time.sleep(0.05)
        done = _pipes(server_dir, "run", config, "--store", tmp_path / "s", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["metrics"]
        waited = "waiting for the warm server to finish starting" in done.stderr
        assert waited == (expected < 2)
        # Far from done: run here at once, never served. Nearly done: served if the
        # imports ended within the bounded wait (here they may take longer than 1 s).
        assert _ready(server_dir)["runs"] <= (1 if waited else 0)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


@pytest.mark.ci
@pytest.mark.parametrize(
    ("terminal", "env", "flag"),
    [
        (True, {"CI": "true"}, None),
        (True, {"HELIX_TF_SERVER": "off"}, None),
        (True, {}, "--no-server"),
        (False, {}, None),
    ],
    ids=["CI", "off", "--no-server", "no-terminal"],
)
def test_no_server_is_started_without_a_person_at_a_terminal(
    server_dir: Path,
    config: Path,
    tmp_path: Path,
    terminal: bool,
    env: dict[str, str],
    flag: str | None,
) -> None:
    args: list[object] = ["plan", config, "--store", tmp_path / "s", *([flag] if flag else [])]
    if terminal:
        code, out = _Terminal(args, _env(server_dir, **env)).finish()
    else:
        done = _pipes(server_dir, *args, **env)
        code, out = done.returncode, done.stdout + done.stderr
    assert code == 0, out
    assert STARTED not in out
    assert not server_dir.exists()  # no server folder or lock left behind (QA pass 26)
    # A starting server holds the lock from before the client's exit: none does.
    status = _status(server_dir)
    assert not status["running"] and status["starting"] is None
    assert _servers(server_dir) == []


@pytest.mark.ci
def test_commands_where_no_server_may_start_leave_no_server_files(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    """A run without a terminal looked for a starting server by taking its lock, which
    made the server folder and its ``.lock`` file; ``server status`` and ``stop`` too."""
    store = ["--store", tmp_path / "s"]
    for args in (
        ["run", config, *store],
        ["plan", config, *store],
        ["status", config, *store],
        ["report", config, *store, "--html", tmp_path / "r.html"],
        ["history", config, *store],
        ["server", "status", "--json"],
        ["server", "status"],
        ["server", "stop"],
    ):
        for env in ({"CI": "true"}, {}):
            done = _pipes(server_dir, *args, **env)
            assert done.returncode == 0, (args, done.stdout + done.stderr)
            assert not server_dir.exists(), (args, env, sorted(server_dir.iterdir()))


@pytest.mark.ci
def test_a_stale_server_is_replaced_after_helix_tf_changes(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    # A copy of helix_tf we may edit: its server is told apart by the package's path.
    site = tmp_path / "site"
    shutil.copytree(
        ROOT / "helix_tf", site / "helix_tf", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {"PYTHONPATH": str(site), "HELIX_TF_SERVER": "on"}
    first = _pipes(server_dir, "plan", config, "--store", tmp_path / "s", **env)
    assert first.returncode == 0 and STARTED in first.stderr, first.stderr
    old = _ready(server_dir, **env)
    with open(site / "helix_tf" / "errors.py", "a", encoding="utf-8") as f:
        f.write("\n# edited after the server started\n")
    assert _status(server_dir, **env)["stale_reasons"] == ["helix_tf"]
    second = _pipes(server_dir, "run", config, "--store", tmp_path / "s", "--json", **env)
    assert second.returncode == 0, second.stderr
    assert "in place of a stale one (helix_tf's code changed)" in second.stderr
    assert json.loads(second.stdout)["metrics"]
    assert _gone(int(old["pid"])), "the stale server did not stop"  # type: ignore[call-overload]
    new = _ready(server_dir, **env)
    assert new["pid"] != old["pid"] and not new["stale_reasons"]
    third = _pipes(server_dir, "plan", config, "--store", tmp_path / "s", **env)
    assert third.returncode == 0 and "stale" not in third.stderr, third.stderr
    assert _status(server_dir, **env)["runs"] == 1


@pytest.mark.ci
def test_a_server_that_cannot_start_never_fails_the_run(
    server_dir: Path, config: Path, tmp_path: Path
) -> None:
    server_dir.mkdir(parents=True)
    server_dir.chmod(0o777)  # not private: the server refuses to put its socket there
    done = _pipes(server_dir, "plan", config, "--store", tmp_path / "s", HELIX_TF_SERVER="on")
    assert done.returncode == 0, done.stderr
    assert (
        "could not start a helix-tf server" in done.stderr and "HELIX_TF_SERVER_DIR" in done.stderr
    )
    assert _servers(server_dir) == []
