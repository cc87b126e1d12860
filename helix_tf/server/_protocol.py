"""What the ``helix-tf`` client and the warm server agree on: where, what, and when stale.

Messages are length-prefixed JSON over a Unix socket; the client's standard
file descriptors travel with the request (``SCM_RIGHTS``), so a run in the server
writes to the user's terminal (or pipe) directly, colours and progress included.
"""

from __future__ import annotations

import hashlib
import json
import os
import site
import socket
import struct
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["socket_path", "code_stamp", "send", "receive"]

_HEADER = struct.Struct("!I")
_MAX_MESSAGE = 16 * 1024 * 1024


def socket_path() -> Path:
    """The server socket of this interpreter and installation.

    ``$HELIX_TF_SERVER_DIR`` (default: a private folder under the temporary
    directory) holds one socket per Python environment, so a client only ever
    reaches a server running the same interpreter and packages.
    """
    folder = Path(
        os.environ.get("HELIX_TF_SERVER_DIR")
        or Path(tempfile.gettempdir()) / f"helix-tf-{os.getuid()}"
    )
    key = hashlib.sha256(f"{sys.prefix}\0{_package_dir()}".encode()).hexdigest()[:16]
    return folder / f"{key}.sock"


def _package_dir() -> str:
    return str(Path(__file__).resolve().parents[1])


#: Environment variables read when TensorFlow, Keras or Python start (a forked child
#: cannot take them over from the client): they are part of the stamp.
_STARTUP_ENV = ("TF_", "OMP_", "KMP_", "MKL_", "CUDA_", "XLA_", "KERAS_", "ONEDNN_", "PYTHON")


def code_stamp(environ: Mapping[str, str] | None = None) -> str:
    """Changes whenever the code a run would execute may have changed.

    helix_tf's own files (path, size, modification time), the site-packages
    folders (installing or removing a package changes their listing) and the
    environment variables read at start-up (``TF_*``, ``OMP_*``, ``PYTHON*`` ...).
    A server whose stamp differs from the client's does not run the request.
    """
    environ = os.environ if environ is None else environ
    h = hashlib.sha256()
    h.update(sys.executable.encode())
    for key in sorted(k for k in environ if k.startswith(_STARTUP_ENV)):
        h.update(f"{key}={environ[key]}\n".encode())
    for root, dirs, files in os.walk(_package_dir()):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                h.update(f"{root}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    for entry in [*site.getsitepackages(), site.getusersitepackages()]:
        try:
            h.update(f"{entry}\0{os.stat(entry).st_mtime_ns}\n".encode())
        except OSError:
            continue
    return h.hexdigest()


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one message (and, with the first bytes, the file descriptors ``fds``)."""
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.sendall(payload)


def receive(sock: socket.socket, *, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message and the descriptors that came with it; ``(None, [])`` at end of stream."""
    fds: list[int] = []
    head = b""
    while len(head) < _HEADER.size:
        if max_fds and not fds:
            chunk, got, _flags, _addr = socket.recv_fds(sock, _HEADER.size - len(head), max_fds)
            fds.extend(got)
        else:
            chunk = sock.recv(_HEADER.size - len(head))
        if not chunk:
            return None, fds
        head += chunk
    (size,) = _HEADER.unpack(head)
    if size > _MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes is larger than the protocol allows")
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds
