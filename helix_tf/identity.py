"""Who is running, and where: the one source every record of a person takes.

A run's row in the metadata database (``runs.user_name``, ``runs.host_name``), the
lease it holds on the store (``runs/<lease>.json``: ``user``, ``host``) and what
``store gc`` and ``history`` print all name the person through :func:`current_user`
and the machine through :func:`current_host`, so one person reads the same in all
of them; which process is running (:func:`process_start`, :func:`process_alive`: a pid
with its start time, since a pid is reused) serves the store's leases and the agent's
registry alike. It sits in the lowest layer: the store (``helix_tf.reuse``) and the
settings (``helix_tf.settings``, which re-exports both) import it alike.

The person is ``HELIX_TF_USER`` when set (a shared service account, an agent, a
simulated team member), else the login name, else the numeric user id, else
``"unknown"``.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket

__all__ = [
    "USER_ENV",
    "current_host",
    "current_user",
    "process_alive",
    "process_start",
    "process_state",
    "process_stopped",
]

#: The environment variable naming the person running (else the login name).
USER_ENV = "HELIX_TF_USER"


def current_user() -> str:
    """Who is running: ``HELIX_TF_USER``, else the login name, else the uid, else ``"unknown"``."""
    name = os.environ.get(USER_ENV)
    if name:
        return name
    with contextlib.suppress(Exception):  # no USER/LOGNAME and no passwd entry (a container)
        return getpass.getuser()
    return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def current_host() -> str:
    """This machine's host name, recorded with each run and each lease."""
    return socket.gethostname()


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of stat; fields[0] is field 3 (the state)
    except (IndexError, ValueError):
        return None


def process_state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``R``, ``S``, ``T`` stopped, ``Z`` …) where
    ``/proc`` tells it; None elsewhere, or when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode(errors="replace").rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return None


def process_stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (Ctrl-Z, SIGSTOP, a debugger): it runs on only
    once continued (``fg``)."""
    return process_state(pid) in ("T", "t")


def process_alive(pid: int, start: int | None) -> bool:
    """Whether process ``pid`` runs and (where known) started at ``start``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if process_state(pid) in ("Z", "X"):
        return False
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False
    return True
