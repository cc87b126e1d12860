"""The agent's trial worker: one long-lived process that runs trial after trial.

The agent process imports what the warm server imports
(:data:`helix_tf.warm.PRELOAD`: TensorFlow, Keras, the engine),
then forks *one* worker that serves the agent's runs one after another
(requests and results are length-prefixed pickles on two pipes). Everything a
run leaves in the process — imported user modules, Keras and TensorFlow state,
traced functions a learner caches across runs — is there for the next trial, so
a trial pays only its own work.

The worker is stopped the moment a user's run starts: the agent polls
:func:`helix_tf.activity.user_run_active` (the mark every ``helix-tf run`` takes,
served by the warm server or not; the server reports the same mark) every
``poll`` seconds while it waits for a result, and on a mark kills the worker's
process group with ``SIGKILL`` (the store survives SIGKILL by design: its
manifests are written last). The next run, after the user's run ended, forks a
fresh worker from the agent (milliseconds: the imports are already in the
agent). Yields are rare next to trials, so a killed worker costs little; a
worker whose memory grows past ``max_rss`` is replaced between runs.

The worker inherits the agent's open connections (its study's database) but
never uses them, and it always leaves with ``os._exit`` or a ``SIGKILL``: no
cleanup in the worker can close a connection the agent still uses.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import pickle
import resource
import select
import signal
import struct
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helix_tf.activity import user_run_probe, user_run_started

__all__ = ["Finished", "Yielded", "Stopped", "Worker", "preload"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")


@dataclasses.dataclass(frozen=True, slots=True)
class Finished:
    """The worker ran the request to the end: its result, or the error it raised."""

    result: dict[str, Any] | None
    error: str | None
    seconds: float
    #: CPU seconds the worker spent on it (user + system, all its threads): what it
    #: costs whatever else runs on the machine.
    cpu_seconds: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Yielded:
    """A user's run started: the worker was killed. ``latency``: from its start to killed."""

    latency: float | None
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Stopped:
    """The agent was asked to stop: the worker was killed."""

    seconds: float


def preload() -> float:
    """Import what the warm server imports before its first fork (:mod:`helix_tf.warm`).

    Only imports (no thread, no connection): a fork of this process starts warm.
    """
    from helix_tf.warm import preload as _preload

    return _preload(strict=False)


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the agent dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _resident_bytes() -> int:
    """The worker's peak resident memory in bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_blocking(fd: int) -> Any:
    """One message, or None when the other end closed the pipe."""
    buf = b""
    while len(buf) < _HEADER.size:
        chunk = os.read(fd, _HEADER.size - len(buf))
        if not chunk:
            return None
        buf += chunk
    (size,) = _HEADER.unpack(buf)
    parts: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return pickle.loads(b"".join(parts))


def _serve(
    handler: Callable[[Any], dict[str, Any]],
    requests: int,
    results: int,
    on_start: Callable[[], None] | None = None,
) -> None:
    """The worker's loop: one request at a time until the agent closes the pipe."""
    os.setpgid(0, 0)
    _die_with_parent()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    if on_start is not None:
        on_start()
    while True:
        request = _read_blocking(requests)
        if request is None:
            return
        cpu = _cpu_seconds()
        try:
            payload: dict[str, Any] = {"result": handler(request)}
        except BaseException as exc:  # reported to the agent, which decides
            payload = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        payload["rss_bytes"] = _resident_bytes()
        payload["cpu_seconds"] = _cpu_seconds() - cpu
        _write(results, payload)


class Worker:
    """One long-lived forked process serving ``handler(request)`` calls, killed on a yield.

    ``home``: the store folder whose user-run mark stops the worker. ``max_rss``:
    replace the worker between runs once its resident memory passes this (bytes).
    ``on_start``: called in each new worker before its first request.
    """

    def __init__(
        self,
        handler: Callable[[Any], dict[str, Any]],
        *,
        home: str | os.PathLike[str],
        max_rss: int | None = 4 << 30,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self.handler = handler
        self.on_start = on_start
        self.home = Path(home)
        self.max_rss = max_rss
        self.pid: int | None = None
        self._requests = self._results = -1
        #: Workers forked, and requests served in all (the status reports both).
        self.starts = 0
        self.served = 0
        self.served_by_this = 0
        self.rss_bytes: int | None = None
        self.start_seconds: list[float] = []

    @property
    def alive(self) -> bool:
        return self.pid is not None

    def stats(self) -> dict[str, Any]:
        """What the agent's status shows of its worker."""
        starts = self.start_seconds[-20:]
        return {
            "pid": self.pid,
            "starts": self.starts,
            "runs": self.served,
            "runs_by_this_worker": self.served_by_this,
            "rss_bytes": self.rss_bytes,
            "fork_ms_last": round(starts[-1] * 1000, 1) if starts else None,
        }

    def _start(self) -> None:
        t0 = time.perf_counter()
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the worker
            os.close(req_w)
            os.close(res_r)
            try:
                _serve(self.handler, req_r, res_w, self.on_start)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(res_w)
        self.pid, self._requests, self._results = pid, req_w, res_r
        self.starts += 1
        self.served_by_this = 0
        self.start_seconds.append(time.perf_counter() - t0)
        log.info("trial worker %d started (worker #%d)", pid, self.starts)

    def _forget(self) -> None:
        for fd in (self._requests, self._results):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pid, self._requests, self._results = None, -1, -1

    def kill(self) -> None:
        """SIGKILL the worker's process group and reap it (nothing when none runs)."""
        pid = self.pid
        if pid is None:
            return
        for target in (
            lambda: os.killpg(pid, signal.SIGKILL),
            lambda: os.kill(pid, signal.SIGKILL),
        ):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                target()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        self._forget()

    def close(self) -> None:
        """End the worker between runs: close its pipe, wait a moment, else kill it."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(OSError):
            os.close(self._requests)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if not done:
                    time.sleep(0.02)
                    continue
            self._forget()
            return
        self.kill()

    def call(
        self, request: Any, *, stop: Callable[[], bool], poll: float = 0.02
    ) -> Finished | Yielded | Stopped:
        """Run ``handler(request)`` in the worker; kill it when a user's run starts or ``stop()``."""
        t0 = time.monotonic()
        user_run_active = user_run_probe(self.home)
        if self.pid is None:
            self._start()
        _write(self._requests, request)
        buf = bytearray()
        size: int | None = None
        while size is None or len(buf) < _HEADER.size + size:
            ready, _, _ = select.select([self._results], [], [], poll)
            if ready:
                chunk = os.read(self._results, 1 << 20)
                if not chunk:
                    return self._died(t0)
                buf += chunk
                if size is None and len(buf) >= _HEADER.size:
                    (size,) = _HEADER.unpack_from(buf)
                continue
            if user_run_active():
                self.kill()
                started = user_run_started(self.home)
                latency = time.time() - started if started is not None else None
                return Yielded(latency=latency, seconds=time.monotonic() - t0)
            if stop():
                self.kill()
                return Stopped(seconds=time.monotonic() - t0)
        payload = pickle.loads(bytes(buf[_HEADER.size :]))
        self.served += 1
        self.served_by_this += 1
        self.rss_bytes = payload.get("rss_bytes")
        if "error" in payload:
            log.warning("trial failed: %s", payload.get("trace") or payload["error"])
        if self.max_rss is not None and (self.rss_bytes or 0) > self.max_rss:
            log.info("trial worker at %d bytes resident: replaced", self.rss_bytes)
            self.close()
        return Finished(
            result=payload.get("result"),
            error=payload.get("error"),
            seconds=time.monotonic() - t0,
            cpu_seconds=payload.get("cpu_seconds"),
        )

    def _died(self, t0: float) -> Finished:
        pid = self.pid
        status = 0
        with contextlib.suppress(ChildProcessError):
            if pid is not None:
                _, status = os.waitpid(pid, 0)
        self._forget()
        return Finished(
            result=None,
            error=f"the trial worker ended with status {os.waitstatus_to_exitcode(status)}",
            seconds=time.monotonic() - t0,
        )
