"""Starting the warm server exactly once, and stopping it.

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
import subprocess
import sys
import time
from pathlib import Path

from helix_tf.server._protocol import lock_path, socket_path

__all__ = [
    "check_folder",
    "expected_import_seconds",
    "holder",
    "holder_pid",
    "holder_since",
    "import_seconds_path",
    "log_path",
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


def write_owner(fd: int, pid: int, phase: str = "starting") -> None:
    """Record ``pid`` as the lock holder, and its phase (for clients and ``status``).

    Phases: ``starting``; ``waiting`` (for the run that started it to end);
    ``importing`` (a client does better to wait than to import the same libraries
    beside it); ``ready``.
    """
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid} {phase} {time.time():.3f}\n".encode(), 0)


def holder() -> tuple[int, str] | None:
    """(pid, phase) of the server holding the lock (starting or running); ``None`` if none."""
    found = holder_since()
    return (found[0], found[1]) if found else None


def holder_since() -> tuple[int, str, float] | None:
    """(pid, phase, since when) of the server holding the lock; ``None`` if none does."""
    fd = take_lock()
    if fd is not None:
        os.close(fd)
        return None
    try:
        fields = lock_path().read_text().split()
        phase = fields[1] if len(fields) > 1 else "starting"
        return int(fields[0]), phase, float(fields[2]) if len(fields) > 2 else time.time()
    except (OSError, ValueError, IndexError):
        return None


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
