"""Preprocessing's table writes off the critical path: a background writer thread.

In a run that preprocesses in this process
(:func:`helix_tf.engine.preprocess_steps.run_preprocessing_here`) each batch's tables
are written by one thread beside the computation of the next nodes and batches
(Arrow encodes, compresses and writes without holding the interpreter's lock), instead
of the computation stopping for every write. The run waits for all of them before the
preprocessing step ends: before any node is committed to the store or recorded as
stored, and before training reads the examples' files
(:meth:`helix_tf.engine._preprocess.PreprocessingStep.run`); a source's writes before
its batches are read back (:meth:`BackgroundWrites.wait`).

A write that fails fails the run as the same write made in line did, named by its
node (:class:`BackgroundWriteError`, its cause the original error: a full store still
sends the outputs to the scratch folder); what is queued behind it is not written,
and what is being written is finished before the error leaves, so nothing writes
into a staging folder the run then aborts.

Counted as the writes made in line are: ``write_micros/NODE`` the writer's seconds,
``bytes/NODE`` the bytes; and ``write_wait_micros/NODE``, the seconds the run waited
for them (the rest of the writer's time overlapped the computation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from helix_tf.errors import ExecutionError

__all__ = ["BackgroundWriteError", "BackgroundWrites", "Inc"]

#: ``inc(counter name, value)``: how a step counts rows, bytes and microseconds.
Inc = Callable[[str, int], None]


class BackgroundWriteError(ExecutionError):
    """A background write of node ``node``'s files failed; ``__cause__`` is the error."""


class BackgroundWrites:
    """Writes handed to one background thread; counted (``inc``) in the caller's thread.

    A context manager: leaving it waits for every write (raising the first failure);
    leaving it on an error drops what is queued and waits for the write in progress.
    (The Beam runners' steps write in line: a bundle's files are written when it returns.)
    """

    def __init__(self, inc: Inc) -> None:
        self.inc = inc
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="helix-writer")
        self._pending: list[tuple[str, Future[tuple[int, float]]]] = []
        #: Set by the writer's thread when a write fails: it writes nothing after that.
        self._failed = threading.Event()

    def submit(self, node: str, write: Callable[[], int]) -> None:
        """Queue ``write`` (it returns the bytes it wrote) of ``node``'s files."""
        self._pending.append((node, self._pool.submit(self._timed, write)))

    def _timed(self, write: Callable[[], int]) -> tuple[int, float]:
        """In the writer's thread: ``write()``, its bytes and seconds; after a failure,
        nothing (the run fails with the first)."""
        if self._failed.is_set():
            raise _Skipped
        t0 = time.perf_counter()
        try:
            size = write()
        except BaseException:
            self._failed.set()
            raise
        return size, time.perf_counter() - t0

    def wait(self, node: str | None = None) -> None:
        """Until the writes of ``node`` (None: every node) are done; count them.

        Raises :class:`BackgroundWriteError` for the first that failed, after dropping
        what is queued and waiting for the write in progress.
        """
        waiting = [(n, f) for n, f in self._pending if node is None or n == node]
        for name, future in waiting:
            t0 = time.perf_counter()
            try:
                size, seconds = future.result()
            except BaseException as exc:
                if isinstance(exc, _Skipped):  # the failure it was queued behind
                    name, exc = self._first_failure()
                self._drain()
                if not isinstance(exc, Exception):
                    raise exc from None
                raise BackgroundWriteError(
                    f"writing its output failed: {type(exc).__name__}: {exc}", node=name
                ) from exc
            self._pending.remove((name, future))
            self.inc(f"write_wait_micros/{name}", int((time.perf_counter() - t0) * 1e6))
            self.inc(f"write_micros/{name}", int(seconds * 1e6))
            self.inc(f"bytes/{name}", size)

    def _first_failure(self) -> tuple[str, BaseException]:
        """The node and error of the write that failed first (the writer's thread writes
        in order and skips everything after it: that one is done)."""
        for name, future in self._pending:
            if future.done() and not future.cancelled():
                error = future.exception()
                if error is not None and not isinstance(error, _Skipped):
                    return name, error
        raise AssertionError("a write was skipped but none failed")  # pragma: no cover

    def _drain(self) -> None:
        """Drop the queued writes; wait for the one in progress (its files are finished)."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BackgroundWrites:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self.wait()
        finally:
            self._drain()


class _Skipped(Exception):
    """A write queued behind one that failed: not made."""
