"""``helix-tf server start|stop|restart|status``: manage the warm server."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

import click

from helix_tf.server._client import request
from helix_tf.server._protocol import code_stamp, socket_path

__all__ = ["server"]


@click.group()
def server() -> None:
    """A warm server that makes `helix-tf run` skip importing TensorFlow and Beam.

    While it runs, every `helix-tf run` of this Python environment is handed to
    it and starts seconds sooner (same results: each run is a fresh fork of a
    process that has only imported the libraries). `--no-server` or
    HELIX_TF_SERVER=off runs in the calling process instead.
    """


def _log_path() -> str:
    return str(socket_path().with_suffix(".log"))


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
    cmd = [sys.executable, "-m", "helix_tf.server", "--idle-timeout", str(idle_timeout)]
    if foreground:
        os.execv(sys.executable, cmd)
    path = socket_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(_log_path(), "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        status = request("status")
        if status is not None:
            click.echo(
                f"helix-tf server started (pid {status['pid']}, libraries imported in "
                f"{status['preload_seconds']:.1f}s); log: {_log_path()}"
            )
            return
        if proc.poll() is not None:
            raise click.ClickException(
                f"the server exited with status {proc.returncode} while starting; see {_log_path()}"
            )
        time.sleep(0.2)
    raise click.ClickException(f"the server did not answer within {wait_s:.0f}s; see {_log_path()}")


@server.command()
def stop() -> None:
    """Stop the server (runs in progress finish first)."""
    reply = request("stop")
    click.echo("helix-tf server stopping" if reply else "no helix-tf server is running")


@server.command()
@click.pass_context
def restart(ctx: click.Context) -> None:
    """Stop the server and start a new one (after upgrading or editing helix_tf)."""
    if request("stop") is not None:
        deadline = time.monotonic() + 60
        while socket_path().exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    ctx.invoke(start)


@server.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Whether a server is running, since when, and how many runs it served."""
    reply = request("status")
    stale = reply is not None and reply.get("stamp") != code_stamp()
    if as_json:
        click.echo(json.dumps({"running": reply is not None, "stale": stale, **(reply or {})}))
        return
    if reply is None:
        click.echo(f"no helix-tf server is running (socket {socket_path()})")
        return
    started = datetime.datetime.fromtimestamp(reply["started"]).strftime("%Y-%m-%d %H:%M:%S")
    click.echo(
        f"helix-tf server pid {reply['pid']}, up since {started}, {reply['runs']} run(s) served, "
        f"{reply['active']} running now; log: {_log_path()}"
    )
    if stale:
        click.echo(
            "stale: helix_tf, the installed packages or the TF_*/PYTHON* variables changed "
            "since it started, so runs are not handed to it; run: helix-tf server restart"
        )
