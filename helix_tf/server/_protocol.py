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

from helix_tf._installed import distributions

__all__ = [
    "STAMP_MEANING",
    "code_stamp",
    "lock_path",
    "receive",
    "send",
    "socket_path",
    "stale_reasons",
    "stamp_of",
    "stamp_parts",
]

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
    key = hashlib.sha256(f"{_environment()}\0{_package_dir()}".encode()).hexdigest()[:16]
    return folder / f"{key}.sock"


def _environment() -> str:
    """The Python environment (venv) this process runs in, whatever path reached it.

    ``python``, ``python3`` and ``python3.11`` of one venv, or the venv through a
    symlinked folder, are one environment: :data:`sys.prefix` with links resolved.
    """
    return os.path.realpath(sys.prefix)


def _interpreter() -> str:
    """The interpreter itself: its binary with links resolved, and its exact version.

    Not :data:`sys.executable` as typed: ``.venv/bin/python`` and ``.venv/bin/python3``
    are one interpreter, and a server started through one serves clients of the other.
    """
    binary = os.path.realpath(sys.executable) if sys.executable else ""
    return f"{binary}\0{sys.version}\0{_environment()}"


def _package_dir() -> str:
    return str(Path(__file__).resolve().parents[1])


#: Environment variables read when TensorFlow, Keras or Python start (a forked child
#: cannot take them over from the client): they are part of the stamp. The locale
#: (``LANG``, ``LC_*``) sets the encoding ``open()`` decodes text with.
_STARTUP_ENV = (
    "TF_",
    "OMP_",
    "KMP_",
    "MKL_",
    "CUDA_",
    "XLA_",
    "KERAS_",
    "ONEDNN_",
    "PYTHON",
    "LANG",
    "LC_",
)


def stamp_parts(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a run's code depends on, in three parts a server compares separately.

    ``helix_tf``: helix_tf's own files (path, size, modification time);
    ``packages``: the interpreter (:func:`_interpreter`, whatever path reached it)
    and the site-packages folders, links resolved (installing or removing a package
    changes their listing); ``environment``: the variables read at start-up
    (``TF_*``, ``OMP_*``, ``PYTHON*`` ...). A server whose ``helix_tf`` or ``packages``
    part differs from a client's is stale (it restarts itself); one whose
    ``environment`` part differs serves other clients but not this one.
    """
    environ = os.environ if environ is None else environ
    env = hashlib.sha256()
    for key in sorted(k for k in environ if k.startswith(_STARTUP_ENV)):
        env.update(f"{key}={environ[key]}\n".encode())
    code = hashlib.sha256()
    for root, dirs, files in os.walk(_package_dir()):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                code.update(f"{root}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    packages = hashlib.sha256(_interpreter().encode())
    for entry in [*site.getsitepackages(), site.getusersitepackages()]:
        try:
            mtime = os.stat(entry).st_mtime_ns
            packages.update(f"{os.path.realpath(entry)}\0{mtime}\n".encode())
        except OSError:
            continue
    # A package installed into a $PYTHONPATH folder (pip install --target) shadows
    # site-packages without touching it: its distributions are read too.
    for entry in [*site.getsitepackages(), *_python_path(environ)]:
        packages.update(f"{os.path.realpath(entry)}\0{distributions(entry)}\n".encode())
    return {
        "helix_tf": code.hexdigest()[:16],
        "packages": packages.hexdigest()[:16],
        "environment": env.hexdigest()[:16],
    }


def _python_path(environ: Mapping[str, str]) -> list[str]:
    """The folders ``$PYTHONPATH`` puts before site-packages (``pip install --target``)."""
    return [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def code_stamp(environ: Mapping[str, str] | None = None) -> str:
    """Changes whenever the code a run would execute may have changed (all of :func:`stamp_parts`).

    A server whose stamp differs from the client's does not run the request.
    """
    return stamp_of(stamp_parts(environ))


def stamp_of(parts: Mapping[str, str]) -> str:
    """The one stamp that :func:`stamp_parts` ``parts`` make up."""
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()


#: What each stamp part covers, for messages.
STAMP_MEANING = {
    "helix_tf": "helix_tf's code changed",
    "packages": "the interpreter or the installed packages changed",
    "environment": "the TF_*/OMP_*/PYTHON* variables differ",
}


def stale_reasons(server: Mapping[str, str], client: Mapping[str, str]) -> list[str]:
    """The parts (``helix_tf``, ``packages``, ``environment``) where two stamps differ."""
    return [part for part in STAMP_MEANING if server.get(part) != client.get(part)]


def lock_path() -> Path:
    """The lock a server holds from the moment it starts until it stops listening.

    Whoever takes it starts the server (and hands it over), so two runs starting at
    the same moment start one server between them.
    """
    return socket_path().with_suffix(".lock")


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
