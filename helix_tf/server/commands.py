"""``helix-tf server start|stop|restart|status``: manage the warm server."""

from __future__ import annotations

import datetime
import os
import sys
import time

import click

from helix_tf.server._client import autostart_refusal, request, server_mode
from helix_tf.server._protocol import STAMP_MEANING, socket_path, stale_reasons, stamp_parts
from helix_tf.server._starting import (
    holder,
    holder_pid,
    log_path,
    start_in_background,
    stop_and_wait,
)

__all__ = ["server"]


class _ServerCommands(click.Group):
    """The server's commands: a server folder others may write to (or one of another
    user) is said in one line with its fix, not a traceback (QA pass 26)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PermissionError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_ServerCommands)
def server() -> None:
    """A warm server that makes `helix-tf run` skip importing TensorFlow and Keras.

    The first `helix-tf run` or `plan` at a terminal starts it in the background;
    later runs of this Python environment are handed to it and start seconds sooner
    (same results: each run is a fresh fork of a process that has only imported the
    libraries). `--no-server` or HELIX_TF_SERVER=off runs in the calling process
    and never starts one; it is never started when CI is set or without a terminal
    (HELIX_TF_SERVER=on starts one there too).
    """


@server.command()
@click.option(
    "--idle-timeout",
    type=float,
    default=3 * 3600,
    show_default=True,
    help="Seconds without a run after which the server exits.",
)
@click.option("--foreground", is_flag=True, help="Serve in this process (logs to stderr).")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=120,
    show_default=True,
    help="Seconds to wait for it to be ready.",
)
def start(idle_timeout: float, foreground: bool, wait_s: float) -> None:
    """Start the server (in the background unless --foreground)."""
    status = request("status")
    if status is not None:
        click.echo(f"helix-tf server already running (pid {status['pid']})")
        return
    if foreground:
        cmd = [sys.executable, "-m", "helix_tf.server", "--idle-timeout", str(idle_timeout)]
        os.execv(sys.executable, cmd)
    pid = start_in_background(idle_timeout=idle_timeout) or holder_pid()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        status = request("status")
        if status is not None:
            click.echo(
                f"helix-tf server started (pid {status['pid']}, libraries imported in "
                f"{status['preload_seconds']:.1f}s); log: {log_path()}"
            )
            return
        if holder_pid() is None:
            raise click.ClickException(
                f"the server (pid {pid}) exited while starting; see {log_path()}"
            )
        time.sleep(0.2)
    raise click.ClickException(f"the server did not answer within {wait_s:.0f}s; see {log_path()}")


@server.command()
def stop() -> None:
    """Stop the server (runs in progress finish first)."""
    reply = request("stop")
    click.echo("helix-tf server stopping" if reply else "no helix-tf server is running")


@server.command()
@click.pass_context
def restart(ctx: click.Context) -> None:
    """Stop the server and start a new one (after upgrading or editing helix_tf)."""
    if request("status") is not None and not stop_and_wait(60):
        raise click.ClickException("the running server did not stop within 60s")
    ctx.invoke(start)


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


@server.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Whether a server runs: pid, uptime, runs served and in progress, memory, staleness."""
    reply = request("status")
    reasons = stale_reasons(reply.get("parts") or {}, stamp_parts()) if reply else []
    found = holder() if reply is None else None
    starting, phase = found if found else (None, None)
    refusal = autostart_refusal()
    if as_json:
        from helix_tf.json_output import json_text

        click.echo(
            json_text(
                {
                    "running": reply is not None,
                    "starting": starting,
                    "phase": phase if reply is None else "ready",
                    "stale": bool(reasons),
                    "stale_reasons": reasons,
                    "mode": server_mode(),
                    "autostart_refusal": refusal,
                    "socket": str(socket_path()),
                    "log": str(log_path()),
                    **(reply or {}),
                }
            )
        )
        return
    if reply is None:
        if starting is not None:
            click.echo(
                f"a helix-tf server is starting (pid {starting}, {phase}); log: {log_path()}"
            )
        else:
            why = f"it is not started here: {refusal}" if refusal else "the next run starts one"
            click.echo(f"no helix-tf server is running ({why}; socket {socket_path()})")
        return
    started = datetime.datetime.fromtimestamp(reply["started"]).strftime("%Y-%m-%d %H:%M:%S")
    uptime = datetime.timedelta(seconds=round(reply["uptime_seconds"]))
    click.echo(
        f"helix-tf server pid {reply['pid']}, up {uptime} (since {started}), "
        f"{reply['runs']} run(s) served, {reply['active']} in progress, "
        f"memory (RSS) {_megabytes(reply['rss_bytes'])}; log: {log_path()}"
    )
    trainer = reply.get("trainer")
    if trainer:
        counts = trainer.get("trainers")
        reuse = (
            f"{counts['builds']} model(s) built, {counts['reuses']} reused, {counts['kept']} kept"
            if counts
            else "training now"
        )
        click.echo(
            f"  trainer: pid {trainer['pid']}, memory (RSS) "
            f"{_megabytes(trainer['rss_bytes'])}, {reuse}"
        )
    if not trainer and reply.get("trainer_exit"):
        click.echo(
            f"  trainer: none: it {reply['trainer_exit']}; runs train in their own "
            "processes (helix-tf server restart starts a new one)"
        )
    for run in reply["in_progress"]:
        mark = ", holds its store's user-run mark" if run.get("user_run") else ""
        click.echo(
            f"  running: pid {run['pid']}, {run['seconds']}s{mark}: "
            f"helix-tf {' '.join(run['argv'])}"
        )
    if reasons:
        why = ", ".join(STAMP_MEANING[r] for r in reasons)
        fix = (
            "runs from this shell are not handed to it"
            if reasons == ["environment"]
            else "the next run at a terminal replaces it, or run: helix-tf server restart"
        )
        click.echo(f"it would refuse runs from here: {why}; {fix}")
