"""A warm server for ``helix-tf run`` and ``plan``: imports paid once, one fresh fork per run.

The first ``helix-tf run`` or ``plan`` at a terminal starts it in the background
(``helix-tf server start`` does so by hand); while it runs, runs are handed to it
and start seconds sooner. ``HELIX_TF_SERVER=off`` or ``--no-server`` runs in the
calling process and never starts one; ``CI`` set or no terminal never starts one
(``HELIX_TF_SERVER=on`` does).
"""

from helix_tf.server._client import (
    SERVED,
    autostart_refusal,
    leave_served,
    request,
    run_in_server,
    served,
    server_mode,
)
from helix_tf.server._protocol import socket_path

__all__ = [
    "SERVED",
    "autostart_refusal",
    "leave_served",
    "request",
    "run_in_server",
    "served",
    "server_mode",
    "socket_path",
]
