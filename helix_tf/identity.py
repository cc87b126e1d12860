"""Who is running, and where: the one source every record of a person takes.

A run's row in the metadata database (``runs.user_name``, ``runs.host_name``), the
lease it holds on the store (``runs/<lease>.json``: ``user``, ``host``) and what
``store gc`` and ``history`` print all name the person through :func:`current_user`
and the machine through :func:`current_host`, so one person reads the same in all
of them. It sits in the lowest layer: the store (``helix_tf.reuse``) and the
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

__all__ = ["USER_ENV", "current_user", "current_host"]

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
