"""A private warm server (``helix-tf server``) for the length of a benchmark.

``with warm_server() as env:`` starts ``python -m helix_tf.server`` on a socket in a
temporary folder and yields the environment under which ``helix-tf run`` hands its
runs to it; the server is stopped on exit. ``with auto_server() as env:`` is the
server as a user gets it: none is running, the first run starts one (and runs
itself), later runs are handed to it once it is ready (``HELIX_TF_SERVER=on``: the
benchmark has no terminal). Benchmarks run without either set
``HELIX_TF_SERVER=off``, so a server the user happens to run is never used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["auto_server", "warm_server"]


@contextlib.contextmanager
def warm_server(
    timeout_s: float = 180,
    *,
    extra_env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[dict[str, str]]:
    """Start a server (with ``extra_env``, e.g. a PYTHONPATH snapshot; in ``cwd``).

    Yields the environment for clients: pass it unchanged, since the server refuses
    runs whose start-up variables (``PYTHONPATH`` among them) differ from its own.
    """
    folder = Path(tempfile.mkdtemp(prefix="helix-bench-server-"))
    env = {k: v for k, v in os.environ.items() if k != "HELIX_TF_SERVER"}
    env.update(extra_env or {})
    env["HELIX_TF_SERVER_DIR"] = str(folder / "sock")
    log = open(folder / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "helix_tf.server", "--idle-timeout", "3600"],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not list((folder / "sock").glob("*.sock")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the benchmark's helix-tf server did not start:\n"
                    + (folder / "server.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def auto_server(
    *, extra_env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Iterator[dict[str, str]]:
    """The environment under which the first ``helix-tf run`` starts a private server.

    On exit the server that was started (the holder of the server lock) is stopped.
    """
    folder = Path(tempfile.mkdtemp(prefix="helix-bench-auto-"))
    env = {k: v for k, v in os.environ.items() if k not in ("HELIX_TF_SERVER", "CI")}
    env.update(extra_env or {})
    env["HELIX_TF_SERVER"] = "on"
    env["HELIX_TF_SERVER_DIR"] = str(folder / "sock")
    try:
        yield env
    finally:
        for lock in (folder / "sock").glob("*.lock"):
            try:
                pid = int(lock.read_text().split()[0])  # pid, phase, since when
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)
