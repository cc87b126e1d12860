"""The client side: hand a ``helix-tf run`` to a warm server when one is running.

Used by the ``helix-tf`` entry point before anything heavy is imported. When no
server answers, or it refuses the request as stale, the caller runs the
command itself, so the server only ever makes runs start sooner.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

from helix_tf.server._protocol import code_stamp, receive, send, socket_path

__all__ = ["run_in_server", "request"]


def _connect() -> socket.socket | None:
    path = socket_path()
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def request(op: str) -> dict[str, Any] | None:
    """Ask the server for ``status`` or to ``stop``; ``None`` when none is running."""
    sock = _connect()
    if sock is None:
        return None
    with sock:
        sock.settimeout(10.0)
        send(sock, {"op": op})
        reply, _ = receive(sock)
        return reply


def run_in_server(argv: list[str]) -> int | None:
    """Run ``helix-tf ARGV`` in the warm server; its exit code, or ``None`` to run here."""
    if os.environ.get("HELIX_TF_SERVER", "").lower() in ("off", "0", "no", "false"):
        return None
    sock = _connect()
    if sock is None:
        return None
    with sock:
        message = {
            "op": "run",
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "path": list(sys.path),
            "encoding": getattr(sys.stdout, "encoding", None),
            "stamp": code_stamp(),
        }
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            send(sock, message, fds=[0, 1, 2])
            reply, _ = receive(sock)
        except (OSError, ValueError) as exc:  # e.g. a closed standard stream
            reply = {"error": f"could not hand the run over: {exc}"}
        if reply is None or "stale" in reply or "error" in reply:
            why = (reply or {}).get("stale") or (reply or {}).get("error") or "no answer"
            sys.stderr.write(
                f"note: not using the helix-tf server ({why}); running here. "
                "Restart it with: helix-tf server restart\n"
            )
            return None
        child = int(reply["pid"])

        def forward(signum: int, frame: FrameType | None) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                reply, _ = receive(sock)
                if reply is None:
                    sys.stderr.write(
                        "error: the helix-tf server's run process ended without an exit "
                        "status; the server log says why (helix-tf server status)\n"
                    )
                    return 1
                if "exit" in reply:
                    return int(reply["exit"])
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
