"""How ``helix-tf agent start`` checks its numbers and waits for the agent it started.

Each number is refused before anything starts, naming its option (the agent's own
checks, :class:`helix_tf.agent._options.AgentOptions`, and no more cores than this
process may run on); a start that gives up waiting stops the agent it started, so no
agent runs that the command said did not start (QA 27).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

import click

__all__ = ["await_start", "check_start_options"]


def await_start(
    proc: subprocess.Popen[bytes], paths: Any, previous: dict[str, Any], cores: int, wait_s: float
) -> None:
    """Until the started agent ``proc`` writes its status: said; or its exit or the end of
    ``wait_s`` seconds: an error (the agent stopped, not left running)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        status = paths.read_status() or {}
        if status.get("pid") == proc.pid and status != previous:
            click.echo(
                f"agent started (pid {proc.pid}, {cores} core(s), lowest priority); "
                f"study {paths.storage_label}; log {paths.log}"
            )
            return
        if proc.poll() is not None:
            tail = paths.log.read_text(errors="replace").splitlines()[-5:]
            raise click.ClickException(
                f"the agent exited with status {proc.returncode}: " + " | ".join(tail)
            )
        time.sleep(0.1)
    # Not left running: `agent stop` could not find it until it registers, and this
    # command has said it did not start.
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    raise click.ClickException(
        f"the agent did not start within {wait_s:g}s (stopped it; a slow machine: give "
        f"--wait more seconds); see {paths.log}"
    )


def check_start_options(
    cores: int, trials: int | None, resume_after: float, verify_min_gain: float, wait_s: float
) -> None:
    """``agent start``'s numbers as the agent takes them (:class:`AgentOptions`), and no
    more cores than this process may run on, refused before anything starts."""
    from helix_tf.agent._options import AgentOptions

    try:
        AgentOptions(
            config="",
            cores=cores,
            max_trials=trials,
            resume_after=resume_after,
            verify_min_gain=verify_min_gain,
        )
    except ValueError as exc:
        field, _, rest = str(exc).removeprefix("AgentOptions: ").partition(" ")
        raise click.BadParameter(f"--{field.replace('_', '-')} {rest}") from None
    if not wait_s < float("inf"):
        raise click.BadParameter(f"--wait must be a number of seconds, but got {wait_s!r}")
    with contextlib.suppress(AttributeError, OSError):
        usable = len(os.sched_getaffinity(0))
        if cores > usable:
            raise click.BadParameter(
                f"--cores {cores}: this process may run on {usable} core(s); "
                f"give --cores {usable} or fewer"
            )
