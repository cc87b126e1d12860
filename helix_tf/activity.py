"""Whether a user's run is in progress: a cross-process signal the agent polls.

A ``helix-tf run`` holds a shared ``flock`` on ``user-run.lock`` in the store's
local folder for as long as it runs (:func:`user_run`); the agent asks
:func:`user_run_active` (a non-blocking exclusive lock attempt, ~10 µs) and gives
the machine back when it fails. The kernel drops the lock when the run's process
ends, however it ends (Ctrl-C, SIGKILL), so a crashed run never leaves the agent
paused. The start time is kept beside it (``user-run.started``) so the agent can
measure how fast it yielded. Kept small on purpose: the warm server can back the
same two functions later.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from helix_tf._atomic import atomic_write

__all__ = [
    "home_of",
    "local_store_folder",
    "lock_held",
    "user_run",
    "user_run_active",
    "user_run_probe",
    "user_run_started",
]

_LOCK = "user-run.lock"
_STARTED = "user-run.started"


def local_store_folder(store: str) -> Path | None:
    """The folder a local ``--store`` names: a path (``~`` expanded: a shell leaves
    ``--store=~/helix`` as typed) or a ``file://`` URL; None for a remote store.

    The one place that says it: the store's artifacts, its metadata database, its
    content-hash memo and the user-run mark all go there. Before, ``--store=~/helix``
    put the artifacts in the home folder and the database and mark in a folder named
    ``~`` under the working directory, and a ``file://`` store kept its history in the
    ``.helix/`` beside the config.

    >>> local_store_folder("file:///data/helix"), local_store_folder("gs://bucket/helix")
    (PosixPath('/data/helix'), None)
    """
    path = store.removeprefix("file://")
    return None if "://" in path or "::" in path else Path(path).expanduser()


def home_of(config: str | os.PathLike[str], store: str | None = None) -> Path:
    """The local folder of ``config``'s store: ``--store`` if local, else ``.helix`` beside it."""
    folder = local_store_folder(store) if store else None
    if folder is not None:
        return folder.resolve()
    return Path(config).resolve().parent / ".helix"


@contextlib.contextmanager
def user_run(home: str | os.PathLike[str]) -> Iterator[None]:
    """Mark a user's run in progress in ``home`` for the duration of the block."""
    folder = Path(home)
    try:
        # No store folder yet: no agent works on it (an agent creates it first), and a
        # run that fails before storing anything must not leave an empty one behind.
        fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o644) if folder.is_dir() else None
    except OSError:  # a read-only or odd store folder: the run goes ahead unmarked
        fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with contextlib.suppress(OSError):
            atomic_write(folder / _STARTED, repr(time.time()))
        yield
    finally:
        os.close(fd)  # releases the lock


def user_run_active(home: str | os.PathLike[str]) -> bool:
    """Whether some process holds :func:`user_run` in ``home`` right now."""
    return lock_held(os.path.join(os.fspath(home), _LOCK))


def user_run_probe(home: str | os.PathLike[str]) -> Callable[[], bool]:
    """:func:`user_run_active` for ``home`` as a function of nothing, for a poller.

    The agent asks 50 times a second while its trial runs; building the lock's path
    each time (``pathlib``) was most of that polling's CPU, so the path is built once.
    The file is still opened at each call (a lock file replaced meanwhile is seen).
    """
    return functools.partial(lock_held, os.path.join(os.fspath(home), _LOCK))


def lock_held(lock: str | os.PathLike[str]) -> bool:
    """Whether a process holds the ``flock`` on the file ``lock``; looking creates
    nothing (an absent or unreadable file is not held)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def user_run_started(home: str | os.PathLike[str]) -> float | None:
    """When the latest user run in ``home`` started (``time.time()``), if known."""
    try:
        return float((Path(home) / _STARTED).read_text())
    except (OSError, ValueError):
        return None
