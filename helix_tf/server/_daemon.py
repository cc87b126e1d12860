"""The warm server: TensorFlow, Keras and the engine imported once, one fresh fork per run.

A ``helix-tf run`` pays ~3-4 s before any work starts (importing TensorFlow,
Keras, pandas and Arrow). The server pays it once, then forks a child per request: the
child starts from the state right after those imports — no user module, no
model, no Keras policy or graph from an earlier run — exactly as a fresh
process would, only without the imports. It runs the CLI with the client's
arguments, working directory, environment, import path and standard streams,
and reports the exit code.

Correctness first: a request whose code stamp (helix_tf's files, the import
path, the environment variables TensorFlow reads at import) differs from the
server's is refused as stale and the client runs it itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from helix_tf.activity import home_of, local_store_folder, user_run_active
from helix_tf.server._memory import release_library_pages
from helix_tf.server._protocol import receive, send, socket_path, stamp_of, stamp_parts
from helix_tf.server._spare import Spare
from helix_tf.server._starting import check_folder, holder_pid, log_path, take_lock, write_owner
from helix_tf.warm import PRELOAD, preload

__all__ = [
    "PRELOAD",
    "SERVER_NAME",
    "become_server",
    "ServerRunning",
    "log_to_stderr",
    "resident_bytes",
    "run_store",
    "serve",
]

log = logging.getLogger(__name__)

#: The process name of a server forked from a run (its command line stays the run's).
SERVER_NAME = "helix-tf-server"


class _State:
    """What the server knows about itself and the runs it is serving."""

    def __init__(self, parts: dict[str, str], preload_seconds: float, lock_fd: int) -> None:
        self.parts = parts
        self.stamp = stamp_of(parts)
        self.preload_seconds = preload_seconds
        self.lock_fd = lock_fd
        self.started = time.time()
        self.runs = 0
        #: pid -> (argv, start time, the store folder whose user-run mark it takes).
        self.children: dict[int, tuple[list[str], float, Path | None]] = {}
        self.stop = False
        #: The trainer process (:mod:`helix_tf.server._trainer`) and its socket.
        self.trainer_pid: int | None = None
        self.trainer_socket: Path | None = None
        #: How the trainer ended, when it did while the server runs (for ``status``).
        self.trainer_exit: str | None = None
        #: The next run's process, forked ahead (:mod:`helix_tf.server._spare`).
        self.spare: Spare | None = None

    @property
    def user_run_in_progress(self) -> bool:
        """Whether a served run holds the user-run mark of its store right now.

        The mark (:mod:`helix_tf.activity`, a ``flock`` the ``run`` command takes) is
        the one source of truth, for served and local runs alike: this reports it for
        the stores of the runs being served, it does not count them.
        """
        return any(run["user_run"] for run in self.in_progress())

    def in_progress(self) -> list[dict[str, Any]]:
        """The runs being served: pid, command line, seconds, and whether it holds the mark."""
        now = time.monotonic()
        return [
            {
                "pid": pid,
                "argv": argv,
                "seconds": round(now - t0, 1),
                "user_run": home is not None and user_run_active(home),
            }
            for pid, (argv, t0, home) in sorted(self.children.items())
        ]

    def status(self) -> dict[str, Any]:
        """The answer to a ``status`` request."""
        in_progress = self.in_progress()
        return {
            "pid": os.getpid(),
            "started": self.started,
            "uptime_seconds": round(time.time() - self.started, 1),
            "preload_seconds": round(self.preload_seconds, 3),
            "runs": self.runs,
            "active": len(self.children),
            "user_run_in_progress": any(run["user_run"] for run in in_progress),
            "in_progress": in_progress,
            "rss_bytes": resident_bytes(),
            "spare_pid": None if self.spare is None else self.spare.pid,
            "trainer": self.trainer_status(),
            "trainer_exit": self.trainer_exit,
            "stamp": self.stamp,
            "parts": self.parts,
        }

    def start_trainer(self, path: Path) -> None:
        """Fork the trainer; its socket lies beside ``path``. Before the server listens:
        the trainer holds none of its descriptors but the lock (closed there)."""
        from helix_tf.server._trainer import start_trainer, trainer_path

        self.trainer_pid = start_trainer(path, close_fds=(self.lock_fd,))
        self.trainer_socket = trainer_path(path)
        log.info("trainer started (pid %d)", self.trainer_pid)

    def fork_spare(self, listener: socket.socket) -> None:
        """Fork the next run's process ahead of its request, unless one is waiting.

        Called only between requests (a spare forked while the server holds a client's
        connection or streams would keep them open) and when no run is in progress
        (forking ~0.9 GB takes tens of milliseconds of CPU a run would miss).
        """
        if self.spare is None and not self.stop and _enabled("HELIX_TF_SPARE"):
            self.spare = Spare.fork(_child, close_fds=(self.lock_fd, listener.fileno()))

    @property
    def trainer_for_runs(self) -> Path | None:
        """The trainer's socket for a run to hand its training to (None: no trainer)."""
        return self.trainer_socket if self.trainer_pid is not None else None

    def trainer_status(self) -> dict[str, Any] | None:
        """The trainer's pid, memory and trainers built and reused (None: no trainer)."""
        if self.trainer_pid is None or self.trainer_socket is None:
            return None
        from helix_tf.server._trainer import RemoteTrainer

        return {
            "pid": self.trainer_pid,
            "rss_bytes": resident_bytes(self.trainer_pid),
            "trainers": RemoteTrainer(self.trainer_socket).stats(),  # None: busy training
        }


def _enabled(variable: str) -> bool:
    """Whether an on-by-default part of the server (``HELIX_TF_TRAINER``, ``HELIX_TF_SPARE``)
    is on: any value but ``off``, ``0``, ``no`` or ``false``."""
    return os.environ.get(variable, "on").lower() not in ("off", "0", "no", "false")


def resident_bytes(pid: int | None = None) -> int:
    """A process' resident memory (RSS) in bytes: this one's by default (its peak RSS
    where /proc is missing; 0 for another process there)."""
    try:
        with open(f"/proc/{pid or 'self'}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        if pid is not None:
            return 0
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def log_to_stderr() -> None:
    """The server's logging: INFO lines to standard error (its log file), libraries quiet."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("absl", "tensorflow", "h5py", "apache_beam"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def become_server(lock_fd: int, parts: dict[str, str], idle_timeout: float) -> NoReturn:
    """In a child forked from a run before its imports: be the server, then exit.

    ``parts``: the stamp parts of the run's environment, read before the fork.

    The child leaves the run's session (a Ctrl-C at the terminal is not for it) and its
    standard streams (a caller reading the run's output to its end must not wait for
    the server): it reads nothing and writes to the server log.
    """
    code = 0
    try:
        os.setsid()
        with contextlib.suppress(OSError):  # `ps`, `top`: not the run's name (Linux)
            Path("/proc/self/comm").write_text(SERVER_NAME)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for fd, target in ((null, 0), (out, 1), (out, 2)):
            os.dup2(fd, target)
        os.close(null)
        os.close(out)
        log_to_stderr()
        log.info("forked from the run that started it: importing TensorFlow and Keras first")
        serve(socket_path(), idle_timeout=idle_timeout, lock_fd=lock_fd, forked=parts)
    except BaseException:
        with contextlib.suppress(Exception):
            log.exception("the server failed")
        code = 1
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
        os._exit(code)


def _claim(path: Path) -> None:
    """Remove a socket left by a server that died; refuse if one is answering."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise RuntimeError(f"a helix-tf server is already running on {path}")


def _wait_for(pid: int, limit: float) -> None:
    """Until process ``pid`` (the run that started this server, our parent) has ended."""
    parent = os.getppid()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and os.getppid() == parent:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(0.1)


class ServerRunning(RuntimeError):
    """Another server holds this socket's lock: this one does not start."""


def serve(
    path: Path,
    *,
    idle_timeout: float = 3 * 3600,
    on_ready: Any = None,
    lock_fd: int | None = None,
    after_pid: int | None = None,
    forked: dict[str, str] | None = None,
) -> None:
    """Preload, listen on ``path`` and serve until stopped or idle for ``idle_timeout`` s.

    ``lock_fd``: the server lock, taken by whoever started this process (else taken
    here; when it cannot be taken a server is running or starting, and this one
    refuses). ``after_pid``: wait for that process to end before importing anything.
    ``forked``: this process is a fork of the run that started it, taken before that
    run's imports (:func:`become_server`): the stamp parts of its environment.

    It imports what its trainer needs first (TensorFlow, Keras), forks the trainer
    (phase ``training``: the run that started it trains there from now on), then
    imports the rest of :data:`PRELOAD` and listens (phase ``ready``).
    """
    check_folder(path.parent)
    if lock_fd is None:
        lock_fd = take_lock(path.with_suffix(".lock"))
        if lock_fd is None:
            raise ServerRunning(
                f"a helix-tf server is already running or starting (pid {holder_pid()}) on "
                f"{path}: use it, or stop it first (helix-tf server stop)"
            )
    os.set_inheritable(lock_fd, False)
    write_owner(lock_fd, os.getpid())
    _claim(path)
    if forked is not None:
        # The stamp of the environment from before any import (TensorFlow sets KMP_*
        # variables of its own, which no client has).
        parts = forked
        write_owner(lock_fd, os.getpid(), "importing")
    else:
        if after_pid is not None:
            write_owner(lock_fd, os.getpid(), "waiting")
            _wait_for(after_pid, idle_timeout)
        write_owner(lock_fd, os.getpid(), "importing")
        # The stamp of the environment this server was started with: importing
        # TensorFlow sets KMP_* variables of its own, which no client has.
        parts = stamp_parts()
    state = _import_and_fork_trainer(path, parts, lock_fd)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    inode = path.stat().st_ino
    listener.listen(16)
    write_owner(lock_fd, os.getpid(), "ready")

    def request_stop(signum: int, frame: Any) -> None:
        state.stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if on_ready is not None:
        on_ready(state)
    try:
        _serve_requests(listener, state, idle_timeout)
    finally:
        if state.spare is not None:
            state.spare.discard()
            state.spare = None
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:  # not a newer server's socket
                path.unlink()
        os.close(lock_fd)  # a new server may start now; the runs in flight finish on their own
        for pid in list(state.children):
            _wait(state, pid, 0)
        _stop_trainer(state)
        log.info("stopped after %d run(s)", state.runs)


def _import_and_fork_trainer(path: Path, parts: dict[str, str], lock_fd: int) -> _State:
    """Import what the trainer needs, fork it, then import the rest of :data:`PRELOAD`.

    The run that started this server trains in that trainer from the moment it is
    forked (phase ``training``), before the server has imported what only its runs
    need (pandas, Arrow, the engine: ~0.5 s of CPU here; not Beam). Then the server gives
    back the library pages its imports touched
    (:func:`~helix_tf.server._memory.release_library_pages`:
    ~330 MB of TensorFlow's, which neither its forks nor its trainer ever shared).
    """
    importing_since = time.time()
    state = _State(parts, preload(others=False), lock_fd)
    if _enabled("HELIX_TF_TRAINER"):
        state.start_trainer(path)
        write_owner(lock_fd, os.getpid(), "training", since=importing_since)
    state.preload_seconds += preload(tensorflow=False)
    with contextlib.suppress(OSError):
        path.with_suffix(".imports").write_text(f"{state.preload_seconds:.3f}\n")
    log.info(
        "preloaded %d modules in %.2fs; released %.0f MB of library pages the imports touched",
        len(PRELOAD),
        state.preload_seconds,
        release_library_pages() / 1024,
    )
    return state


def _serve_requests(listener: socket.socket, state: _State, idle_timeout: float) -> None:
    """Accept requests until stopped, or idle (no request, no run) for ``idle_timeout`` s."""
    last_active = time.monotonic()
    while not state.stop:
        _reap(state)
        if state.children:
            last_active = time.monotonic()
        else:  # between runs: forking now takes no CPU from a run
            state.fork_spare(listener)
        # While runs are in progress, look for their end often: the next spare waits for it.
        ready, _, _ = select.select([listener], [], [], 0.05 if state.children else 0.5)
        if not ready:
            if time.monotonic() - last_active > idle_timeout:
                log.info("idle for %.0fs: stopping", idle_timeout)
                break
            continue
        conn, _ = listener.accept()
        last_active = time.monotonic()
        try:
            _accept(conn, listener, state)
        except Exception:
            log.exception("request failed")
        finally:
            conn.close()


def _marked_home(argv: list[str], cwd: str) -> Path | None:
    """The store folder whose user-run mark a served command takes (``run`` only).

    Read with the ``run`` command's own option parser, from the client's directory.
    """
    found = run_store(argv, cwd)
    return found[0] if found else None


def run_store(argv: list[str], cwd: str) -> tuple[Path, bool] | None:
    """A ``run`` command line's local store folder, and whether ``--store`` is remote.

    Read with the ``run`` command's own option parser, from ``cwd``; ``None`` for
    another command or one that does not parse. A remote store's folder is the
    ``.helix`` beside the config (where its user-run mark lives).
    """
    if not argv or argv[0] != "run":
        return None
    import click

    from helix_tf import cli

    try:
        ctx = cli.run.make_context("run", argv[1:], resilient_parsing=True)
    except click.ClickException:
        return None
    config, store = ctx.params.get("config"), ctx.params.get("store")
    if not config:
        return None
    folder = local_store_folder(store) if store else None
    remote = bool(store) and folder is None
    if folder is not None:
        store = os.path.join(cwd, folder)  # an absolute folder stays itself
    return home_of(os.path.join(cwd, config), store), remote


def _reap(state: _State) -> None:
    for pid in list(state.children):
        _wait(state, pid, os.WNOHANG)
    if state.trainer_pid is not None:
        try:
            done, status = os.waitpid(state.trainer_pid, os.WNOHANG)
        except ChildProcessError:
            done, status = state.trainer_pid, 0
        if done:
            code = os.waitstatus_to_exitcode(status) if status else 0
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            log.warning("the trainer (pid %d) %s", done, how)
            state.trainer_exit = f"{how} at {time.strftime('%H:%M:%S')}"
            state.trainer_pid = None


def _stop_trainer(state: _State) -> None:
    """End the trainer (a training in progress is abandoned: its run trains by itself)."""
    pid, state.trainer_pid = state.trainer_pid, None
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    if state.trainer_socket is not None:
        with contextlib.suppress(OSError):
            state.trainer_socket.unlink()


def _wait(state: _State, pid: int, flags: int) -> None:
    """Reap run ``pid`` if it has ended; log its status, time, CPU seconds and page faults
    (what a served run's fixed cost is measured by: its CPU is not inflated by load)."""
    try:
        done, status, usage = os.wait4(pid, flags)
    except ChildProcessError:
        state.children.pop(pid, None)
        return
    if done:
        argv, t0, _ = state.children.pop(pid)
        log.info(
            "run %d (%s) ended with status %d after %.2fs (CPU %.3fs, %d page faults)",
            pid,
            " ".join(argv),
            os.waitstatus_to_exitcode(status),
            time.monotonic() - t0,
            usage.ru_utime + usage.ru_stime,
            usage.ru_minflt,
        )


def _accept(conn: socket.socket, listener: socket.socket, state: _State) -> None:
    conn.settimeout(10.0)
    request, fds = receive(conn, max_fds=3)
    try:
        if request is None:
            return
        op = request.get("op")
        if op == "status":
            send(conn, state.status())
        elif op == "stop":
            state.stop = True
            send(conn, {"stopping": True})
        elif op == "run":
            if request.get("stamp") != state.stamp:
                send(
                    conn,
                    {
                        "stale": "helix_tf, the installed packages or the environment differ",
                        "parts": state.parts,
                    },
                )
                return
            if len(fds) != 3:
                send(conn, {"error": "a run request carries stdin, stdout and stderr"})
                return
            pid = _start_run(conn, request, fds, listener, state)
            state.runs += 1
            argv = list(request["argv"])
            state.children[pid] = (argv, time.monotonic(), _marked_home(argv, request["cwd"]))
        else:
            send(conn, {"error": f"unknown request {op!r}"})
    finally:
        for fd in fds:
            os.close(fd)


def _start_run(
    conn: socket.socket,
    request: dict[str, Any],
    fds: list[int],
    listener: socket.socket,
    state: _State,
) -> int:
    """The pid of the process that runs ``request``: the spare, else a fork made now."""
    spare, state.spare = state.spare, None
    if spare is not None and spare.hand_over(conn, request, fds, state.trainer_for_runs):
        return spare.pid
    pid = os.fork()
    if pid == 0:
        listener.close()
        os.close(state.lock_fd)
        os._exit(_child(conn, request, fds, state.trainer_for_runs))
    return pid


def _child(
    conn: socket.socket, request: dict[str, Any], fds: list[int], trainer: Path | None = None
) -> int:
    """In the forked child: become the client's process, run the CLI, report the code.

    Its trainings go to the server's trainer (``trainer``, its socket) when one runs.
    """
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.settimeout(None)
        send(conn, {"pid": os.getpid()})
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:  # held once, as 0, 1 and 2 (let go of in _let_go_of_streams)
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        if request.get("umask") is not None:  # the files it writes: as the client's would be
            os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()  # the user's TZ, as a process started with it converts local times
        tempfile.tempdir = None  # the user's TMPDIR (the server's import read its own)
        sys.path[:] = list(request["path"])
        sys.argv = ["helix-tf", *request["argv"]]
        encoding = request.get("encoding") or "utf-8"
        sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding=encoding, closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding=encoding, closefd=False, buffering=1)  # noqa: SIM115
        if trainer is not None:
            from helix_tf.components.trainers import use_remote
            from helix_tf.server._trainer import RemoteTrainer

            use_remote(RemoteTrainer(trainer))
        from helix_tf.cli import close_deferred, defer_closing, run_cli

        defer_closing()  # the client waits for the exit code, not for the databases' close
        code = run_cli(list(request["argv"]))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"error: the helix-tf server's run failed: {exc!r}\n")
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # The client may have gone away; the run's results are recorded anyway.
        with contextlib.suppress(OSError):
            send(conn, {"exit": code})
        _let_go_of_streams()
        with contextlib.suppress(Exception):  # imported above unless the run failed first
            close_deferred()
    return code


def _let_go_of_streams() -> None:
    """Once the exit code is sent: standard input, output and error on ``/dev/null``.

    The client's streams stay open as long as any process holds them: whoever reads
    the command's output through a pipe (``helix-tf run … | tee``, a script, a
    benchmark) sees its end only when this process lets go, not when the client exits.
    What comes after the exit code (closing the metadata databases, ~5–40 ms) prints
    nothing the caller could still see.
    """
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
