"""Reading Beam pipeline options (``--flag=V`` or ``--flag V``) without importing Beam.

:mod:`helix_tf.engine.runners` builds pipelines (and imports Beam); a run checks its
options here first, before planning: :func:`direct_problem` for the default runner.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["direct_problem", "has_option", "option_value"]


def has_option(args: Sequence[str], flag: str) -> bool:
    """Whether ``args`` give ``flag`` (``--flag`` or ``--flag=V``)."""
    return any(a == flag or a.startswith(flag + "=") for a in args)


def option_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag=V`` or ``--flag V`` (the last one given), else None."""
    found = None
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            found = a[len(flag) + 1 :]
        elif a == flag and i + 1 < len(args):
            found = args[i + 1]
    return found


def direct_problem(args: Sequence[str]) -> str | None:
    """Why the DirectRunner cannot run with ``args``, else None."""
    if has_option(args, "--direct_num_workers"):
        return (
            "--direct_num_workers is fixed to 1: the DirectRunner with several workers was "
            "seen to lose rows (Beam 2.77). Use --runner portable or dataflow for parallelism"
        )
    return None
