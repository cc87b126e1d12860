"""The ``helix-tf`` entry point, thin: a served command imports almost nothing.

A ``run`` or ``plan`` that the warm server serves needs only the socket client
(:mod:`helix_tf.server`): not click, rich, numpy or the rest of the command line,
which took ~0.3–2 s to import per command here (the served run itself can take
less). Only when no server serves the command does this import
:mod:`helix_tf.cli` and run it in this process.
"""

from __future__ import annotations

import sys

__all__ = ["console_main"]


def console_main() -> None:
    """Run ``helix-tf`` with ``sys.argv``: in the warm server when it serves it, else here."""
    from helix_tf.server import leave_served, served

    argv = sys.argv[1:]
    code = served(argv)
    if code is not None:
        leave_served(code)
    from helix_tf.cli import run_here

    run_here(argv)


if __name__ == "__main__":  # pragma: no cover
    console_main()
