"""``python -m helix_tf.server --socket PATH``: the server process itself (foreground)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helix_tf.server._daemon import ServerRunning, log_to_stderr, serve
from helix_tf.server._protocol import socket_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m helix_tf.server")
    ap.add_argument("--socket", type=Path, default=None, help="Socket path (default: per env).")
    ap.add_argument(
        "--idle-timeout", type=float, default=3 * 3600, help="Seconds idle before exiting."
    )
    ap.add_argument(
        "--lock-fd", type=int, default=None, help="The server lock, taken by the starter."
    )
    ap.add_argument(
        "--after-pid", type=int, default=None, help="Import only once this process has ended."
    )
    args = ap.parse_args(argv)
    log_to_stderr()
    try:
        serve(
            args.socket or socket_path(),
            idle_timeout=args.idle_timeout,
            lock_fd=args.lock_fd,
            after_pid=args.after_pid,
        )
    except ServerRunning as exc:  # a second server: one line, not a traceback
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
