"""A warm server for ``helix-tf run``: imports paid once, one fresh fork per run.

``helix-tf server start`` starts it; while it runs, ``helix-tf run`` hands its
work to it and starts training seconds sooner; ``HELIX_TF_SERVER=off`` or
``--no-server`` runs in the calling process instead.
"""

from helix_tf.server._client import request, run_in_server
from helix_tf.server._protocol import socket_path

__all__ = ["request", "run_in_server", "socket_path"]
