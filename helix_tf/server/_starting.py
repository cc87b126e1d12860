"""Starting the warm server exactly once, and stopping it.

A ``run`` into an empty store that finds no server forks one from itself
(:func:`start_by_fork`) before either imports anything heavy: the server imports
TensorFlow and Keras and forks its trainer while the run imports pandas, Arrow and
the engine and prepares its data, and the run hands its trainings to that trainer
(:mod:`helix_tf.server._pending`); the server then imports the rest and is ready
for the runs that follow. Any other command starts one as a
separate process (:func:`start_in_background`), importing once that command ends.

A server holds an exclusive lock (``flock`` on :func:`lock_path`) from the moment
it starts until it stops listening; the lock file names its pid. Whoever takes
the lock starts a server and hands the lock to it (the descriptor is inherited),
so two runs starting at the same moment start one server between them, and a run
that finds the lock held knows a server is starting (or running) already.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from helix_tf.activity import lock_held
from helix_tf.server._protocol import lock_path, socket_path

__all__ = [
    "check_folder",
    "expected_import_seconds",
    "holder",
    "holder_pid",
    "holder_since",
    "import_seconds_path",
    "log_path",
    "start_by_fork",
    "start_in_background",
    "stop_and_wait",
    "take_lock",
    "write_owner",
]

#: Below this many CPUs an auto-started server waits for the run that started it to end
#: before importing: importing beside it would slow that first run down.
SPARE_CPUS = 4


def check_folder(folder: Path) -> None:
    """Create the server folder, private to this user; refuse one others can write to."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(folder)


def _check_private(folder: Path) -> None:
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise PermissionError(
            f"{folder} must belong to you and not be writable by others (it holds the server "
            "socket); remove it or set HELIX_TF_SERVER_DIR to a private folder"
        )


def log_path() -> Path:
    """Where a server started in the background writes its log."""
    return socket_path().with_suffix(".log")


def take_lock(path: Path | None = None) -> int | None:
    """The server lock's descriptor, held; ``None`` when a server holds it."""
    path = path or lock_path()
    check_folder(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def write_owner(fd: int, pid: int, phase: str = "starting", since: float | None = None) -> None:
    """Record ``pid`` as the lock holder, and its phase (for clients and ``status``).

    Phases: ``starting``; ``waiting`` (for the run that started it to end);
    ``importing`` (a client does better to wait than to import the same libraries
    beside it); ``training`` (still importing, but its trainer takes trainings);
    ``ready``. ``since``: when the phase began (default: now); ``training`` keeps the
    time its imports began, which clients weigh against the last imports' length.
    """
    record = f"{pid} {phase} {time.time() if since is None else since:.3f}\n".encode()
    # Written over the old record, then cut to length: a client polling the file reads
    # the old record or the new one (its first line), never an empty file.
    os.pwrite(fd, record, 0)
    os.ftruncate(fd, len(record))


def holder() -> tuple[int, str] | None:
    """(pid, phase) of the server holding the lock (starting or running); ``None`` if none."""
    found = holder_since()
    return (found[0], found[1]) if found else None


def holder_since() -> tuple[int, str, float] | None:
    """(pid, phase, since when) of the server holding the lock; ``None`` if none does.

    A look that creates nothing: without a lock file no server ever started here, and
    a run where none may start (``CI``, no terminal, ``HELIX_TF_SERVER=off``) leaves no
    server folder or lock behind (QA pass 26; it took the lock to look, making both).
    """
    if not _held(lock_path()):
        return None
    for _ in range(_READ_TRIES):
        try:
            fields = lock_path().read_text().partition("\n")[0].split()
            phase = fields[1] if len(fields) > 1 else "starting"
            return int(fields[0]), phase, float(fields[2]) if len(fields) > 2 else time.time()
        except (OSError, ValueError, IndexError):
            time.sleep(0.001)  # caught while the holder rewrites it: read again
    return None


def _held(path: Path) -> bool:
    """Whether a server holds the lock at ``path``; an absent lock file is not held."""
    if path.parent.exists():
        _check_private(path.parent)
    return lock_held(path)


#: Reads of the lock file before a holder whose record cannot be read counts as none.
_READ_TRIES = 5


def holder_pid() -> int | None:
    """The pid of the server holding the lock (starting or running); ``None`` if none does."""
    found = holder()
    return found[0] if found else None


def import_seconds_path() -> Path:
    """Where a server records how long its imports took (clients estimate the wait)."""
    return socket_path().with_suffix(".imports")


def expected_import_seconds(default: float = 4.0) -> float:
    """How long the last server's imports took here (``default`` before any did)."""
    try:
        return float(import_seconds_path().read_text().strip())
    except (OSError, ValueError):
        return default


def start_in_background(
    *, after_pid: int | None = None, idle_timeout: float = 3 * 3600
) -> int | None:
    """Start a server in its own session; its pid, or ``None`` when one is already there.

    ``after_pid``: the process starting it, which goes on with its own run; on a
    machine without :data:`SPARE_CPUS` the server waits for that process to end
    before importing anything, so the run it was started by is not slowed down.
    """
    import subprocess  # here: a served run's client imports this module, not subprocess

    fd = take_lock()
    if fd is None:
        return None
    try:
        cmd = [
            sys.executable,
            "-m",
            "helix_tf.server",
            "--lock-fd",
            str(fd),
            "--idle-timeout",
            str(idle_timeout),
        ]
        if after_pid is not None and (os.cpu_count() or 1) < SPARE_CPUS:
            cmd += ["--after-pid", str(after_pid)]
        with open(log_path(), "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                pass_fds=(fd,),
            )
        write_owner(fd, proc.pid)
    finally:
        os.close(fd)  # the server holds the lock now (or nobody, if it failed to start)
    # The server outlives this process by design; do not warn about it at exit.
    proc.returncode = 0
    return proc.pid


def start_by_fork(*, quiet: bool = True, idle_timeout: float = 3 * 3600) -> int | None:
    """Fork the server, then import what this run needs of :data:`helix_tf.warm.PRELOAD`.

    The server's pid, or ``None`` when one is already there (or starting). The fork
    is taken first, before this process imports or runs anything of its command or
    starts a thread of its own: the server imports TensorFlow and Keras at once, on
    another CPU, and forks its trainer as soon as they are in (then imports the rest
    and serves), while this process imports all of the list but TensorFlow and Keras
    and goes on with its command; its trainings go to that trainer
    (:mod:`helix_tf.server._pending`). ``quiet``: native start-up lines are dropped
    (:mod:`helix_tf.native_output`).
    """
    from helix_tf.native_output import quiet_native_stderr
    from helix_tf.warm import preload

    fd = take_lock()
    if fd is None:
        return None
    # A Ctrl-C is held back while this process forks and arrives once the server's pid is
    # known, where it ends that server: one raised in the fork's own callbacks (logging
    # releasing its lock) is only printed, "Exception ignored in ...", and the run went
    # on as if never interrupted (seen under load, where the parent waits there longest).
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = _fork_server(fd, held, idle_timeout)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a Ctrl-C held back arrives here
        with quiet_native_stderr(quiet), _quiet_logging():
            preload(strict=False, tensorflow=False)
    except KeyboardInterrupt:
        _end(pid)  # Ctrl-C before the run said it started a server: none is left behind
        raise
    _hint_trainings()
    return pid


def _fork_server(fd: int, held: set[int | signal.Signals], idle_timeout: float) -> int:
    """Fork the server, which takes the lock ``fd`` (closed here) and the signal mask
    ``held`` (this process keeps SIGINT blocked)."""
    from helix_tf.server._protocol import stamp_parts

    try:
        # The stamp of this environment before the imports (TensorFlow sets KMP_* of its own).
        parts = stamp_parts()
        write_owner(fd, os.getpid(), "importing")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            from helix_tf.server._daemon import become_server

            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            become_server(fd, parts, idle_timeout)  # never returns
        write_owner(fd, pid, "importing")  # the server, from now on (it says so too)
    finally:
        os.close(fd)  # the server holds the lock now (or nobody, if the fork failed)
    return pid


def _end(pid: int, timeout: float = 10.0) -> None:
    """Stop the server this process forked a moment ago, and wait until it has gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.02)


def _hint_trainings() -> None:
    """This run's own trainings leave what they trained for the server's trainer, which
    prepares that graph once idle (``server._trainer.HintFile``): the next run, a
    served edit of this one, finds it built and traced."""
    from helix_tf.components import trainers
    from helix_tf.server._trainer import HintFile, hint_path

    trainers.use_hint_sink(HintFile(hint_path(socket_path())))


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Libraries' log records while importing are dropped (e.g. Beam's "apitools not found").

    A handler on the root logger meanwhile: a library's ``logging.warning`` would
    otherwise configure logging itself, to standard error, for this run and the server.
    """
    import logging  # here: a served run's client imports this module, not logging

    root = logging.getLogger()
    handler, level = logging.NullHandler(), root.level
    root.addHandler(handler)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def stop_and_wait(timeout: float = 15.0) -> bool:
    """Ask the running server to stop; whether it let go of the lock within ``timeout`` s.

    A stopping server stops listening and releases the lock at once; runs it is
    serving finish in their own processes.
    """
    from helix_tf.server._client import request

    with contextlib.suppress(OSError):
        request("stop")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fd = take_lock()
        if fd is not None:
            os.close(fd)
            return True
        time.sleep(0.05)
    return False
