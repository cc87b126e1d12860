"""One unit of agent work in a forked child, stopped the moment a user's run starts.

The agent process imports TensorFlow once; each trial runs in a fork of it (no
import cost, and a stopped trial is one ``SIGKILL`` of a process group: the
store survives SIGKILL by design, its manifests are written last). The parent
polls :func:`helix_tf.activity.user_run_active` every ``poll`` seconds while it
waits for the child's JSON result on a pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import select
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helix_tf.activity import user_run_active, user_run_started

__all__ = ["Finished", "Yielded", "Stopped", "run_in_child"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """The child ran to the end: its result, or the error it raised."""

    result: dict[str, Any] | None
    error: str | None
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Yielded:
    """A user's run started: the child was killed. ``latency``: from its start to killed."""

    latency: float | None
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Stopped:
    """The agent was asked to stop: the child was killed."""

    seconds: float


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when the agent dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child(work: Callable[[], dict[str, Any]], w: int) -> None:
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        payload: dict[str, Any] = {"result": work()}
    except BaseException as exc:  # reported to the parent, which decides
        payload = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    data = json.dumps(payload, default=str).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(w, view) :]
    os.close(w)


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            target()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def run_in_child(
    work: Callable[[], dict[str, Any]],
    *,
    home: str | os.PathLike[str],
    stop: Callable[[], bool],
    poll: float = 0.02,
) -> Finished | Yielded | Stopped:
    """Run ``work()`` in a fork; kill it when a user's run starts in ``home`` or ``stop()``."""
    t0 = time.monotonic()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        try:
            _child(work, w)
        finally:
            os._exit(0)
    os.close(w)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], poll)
            if ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                continue
            if user_run_active(Path(home)):
                _kill(pid)
                started = user_run_started(home)
                latency = time.time() - started if started is not None else None
                return Yielded(latency=latency, seconds=time.monotonic() - t0)
            if stop():
                _kill(pid)
                return Stopped(seconds=time.monotonic() - t0)
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - t0
    try:
        payload = json.loads(b"".join(chunks).decode())
    except ValueError:
        return Finished(
            result=None, error=f"the trial process ended with status {status}", seconds=seconds
        )
    if "error" in payload:
        log.warning("trial failed: %s", payload.get("trace") or payload["error"])
    return Finished(result=payload.get("result"), error=payload.get("error"), seconds=seconds)
