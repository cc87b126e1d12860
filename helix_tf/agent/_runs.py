"""The agent's runs: its state and status, waiting for think time, one run at a time in
its long-lived trial worker, yielding to every user run.

A run goes through :func:`helix_tf.run` on the user's store, tagged ``agent``, in the
worker (:mod:`._worker`), which is killed the moment a user run starts; the killed run is
recorded so when the agent resumes. :class:`AgentRuns` is the base of the agent
(:class:`~._search.Agent`): what its verification and search run with.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from helix_tf import history
from helix_tf.agent._options import TAG, AgentOptions, agent_share_bytes
from helix_tf.agent._registry import process_start
from helix_tf.agent._rungs import RungCosts
from helix_tf.agent._study import AgentPaths
from helix_tf.agent._trial_run import keep_trainers, run_request
from helix_tf.agent._worker import Finished, Stopped, Worker, Yielded
from helix_tf.api import Approx
from helix_tf.errors import HelixError
from helix_tf.validation import Validation

__all__ = ["AgentRuns"]

log = logging.getLogger(__name__)


class AgentRuns:
    """The agent's state, its status file, and its runs in the trial worker."""

    def __init__(self, opts: AgentOptions, paths: AgentPaths) -> None:
        self.opts = opts
        self.paths = paths
        self.stop_requested = False
        self.yields: list[float] = []
        self.status: dict[str, Any] = {
            "pid": os.getpid(),
            # With the pid, which process it is (a pid is reused after a SIGKILL).
            "pid_start": process_start(os.getpid()),
            "config": str(opts.config),
            # The data folder its studies compiled the config with (agent status compares
            # the study with the config as it is now the same way).
            "data_dir": opts.data_dir,
            "storage": paths.storage_label,
            "cores": opts.cores,
            "started": time.time(),
            "state": "starting",
        }
        self.last_user_run = 0.0
        #: The digest of the validation workflow the current study is of (set by the
        #: search); ``moved``: a run finished after the config or its data changed from it.
        self.base_digest: str | None = None
        self.moved = False
        #: The agent's lock (set by the daemon), and why it stopped when not asked to.
        self.lock_fd: int | None = None
        self.stop_reason: str | None = None
        self.space: Any = None
        #: What validation runs deliver (:func:`scored_outputs`; None: every output).
        self.scored: list[str] | None = None
        #: The config's train nodes, and the trainer shapes of the trials run, oldest first.
        self.learners: frozenset[str] = frozenset()
        self.trained: list[Any] = []
        #: The approximate plan of each trainer shape in the current batch.
        self.approx_plans: dict[str, Any] = {}
        #: CPU seconds of the last search runs per rung: once both are measured
        #: MEASURED_RUNS times, their medians price the rungs instead of the planner.
        self.rungs = RungCosts()
        #: Why the last trial's process was killed, until its run is recorded so.
        self.killed_pending: str | None = None
        #: The cap on the agent's store entries (bytes), None: none.
        self.share_bytes = agent_share_bytes(opts, paths.home) if paths.home.exists() else None
        #: Seconds the worker spent per purpose ("search", "verify"), and the current one.
        self.spent: dict[str, float] = {"search": 0.0, "verify": 0.0}
        self.purpose = "search"
        #: The one long-lived process the agent's runs run in (forked on first use).
        self.worker = Worker(
            lambda request: run_request(self.opts, self.share_bytes, request),
            home=paths.home,
            max_rss=opts.worker_max_rss,
            on_start=keep_trainers,
        )

    # -- status ---------------------------------------------------------------------

    def update(self, **fields: Any) -> None:
        self.status.update(fields)
        self.status["yields"] = {
            "count": len(self.yields),
            "latencies_ms": [round(x * 1000, 1) for x in self.yields[-50:]],
        }
        self.paths.write_status(self.status)

    # -- waiting for think time -------------------------------------------------------

    def wait_idle(self) -> bool:
        """Block while a user run is in progress or ended less than resume_after ago."""
        from helix_tf.activity import user_run_active

        while not self.stop_requested and not self.moved and not self.home_gone():
            if user_run_active(self.paths.home):
                self.last_user_run = time.monotonic()
                if self.status.get("state") != "paused":
                    self.update(state="paused", reason="a user run is in progress")
            elif time.monotonic() - self.last_user_run < self.opts.resume_after:
                if self.status.get("state") != "resuming":
                    self.update(
                        state="resuming",
                        reason=f"resumes {self.opts.resume_after:g}s after the user's run ended",
                    )
            else:
                if self.killed_pending is not None:
                    self.record_killed(self.killed_pending)
                    self.killed_pending = None
                return True
            time.sleep(0.1)
        return False

    # -- one run in the trial worker ----------------------------------------------------

    def run(
        self,
        overrides: dict[str, Any],
        *,
        validation: Validation | None,
        approx: Approx | None = None,
        materialize: str = "helix",
    ) -> Finished | Yielded | Stopped:
        request = {
            "params": overrides,
            "validation": validation,
            "approx": approx,
            "materialize": materialize,
            # Search runs are scored on their metrics only; a verification delivers all.
            "outputs": self.scored if validation is not None else None,
        }
        outcome = self.worker.call(request, stop=lambda: self.stop_requested, poll=self.opts.poll)
        if isinstance(outcome, Finished) and (self.home_gone() or self.version_moved()):
            # Run on another version than the study's (the user saved an edit or new data
            # while it ran, or before it started): its result is not the study's to keep.
            log.info("the config or its data changed during a run: its result is set aside")
            outcome = Stopped(seconds=outcome.seconds)
        self.spent[self.purpose] = self.spent.get(self.purpose, 0.0) + outcome.seconds
        self.status["worker"] = {
            **self.worker.stats(),
            "seconds": {k: round(v, 1) for k, v in self.spent.items()},
        }
        if isinstance(outcome, Yielded):
            self.last_user_run = time.monotonic()
            if outcome.latency is not None:
                self.yields.append(outcome.latency)
            log.info("yielded to a user run after %.0f ms", (outcome.latency or 0) * 1000)
            # Recorded when the agent resumes: nothing of the agent's runs beside the user's.
            self.killed_pending = "stopped by the agent: it yielded to a user's run (re-run later)"
        elif isinstance(outcome, Stopped) and not self.moved:
            self.record_killed("stopped by the agent: `agent stop`")
        return outcome

    def home_gone(self) -> bool:
        """Whether the store folder was deleted or replaced under the agent (its lock file
        is not the one it holds): its study and lock went with it, so it stops."""
        if self.lock_fd is None or self.stop_reason is not None:
            return self.stop_reason is not None
        held = os.fstat(self.lock_fd)
        try:
            now = os.stat(self.paths.lock)
            gone = (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)
        except OSError:
            gone = True
        if gone:
            self.stop_reason = f"the store folder {self.paths.home} was deleted or replaced"
            self.stop_requested = True
            log.warning("%s: the agent stops", self.stop_reason)
        return gone

    def version_moved(self) -> bool:
        """Whether the config or its data is no longer the study's version (or does not
        compile); once true, :attr:`moved` stays set until the search looks again."""
        if self.base_digest is None or self.moved:
            return self.moved
        try:
            now = history.describe(
                self.opts.config, data_dir=self.opts.data_dir, validation=self.opts.validation
            ).digest
        except HelixError:
            now = None
        self.moved = now != self.base_digest
        return self.moved

    def record_killed(self, reason: str) -> list[int]:
        """Record the agent's runs whose process is gone as killed (never left "running")."""
        try:
            ids = history.record_killed_runs(
                self.opts.config,
                tag=TAG,
                reason=reason,
                data_dir=self.opts.data_dir,
                store=self.opts.store,
            )
        except HelixError as exc:  # housekeeping: it never stops the search
            log.warning("could not record the agent's stopped runs: %s", exc)
            return []
        if ids:
            log.info("runs %s recorded as killed: %s", ids, reason)
        return ids

    def run_until_done(self, overrides: dict[str, Any], **kwargs: Any) -> Finished | None:
        """Run again after every yield until it finishes; None when the agent stops."""
        while self.wait_idle():
            outcome = self.run(overrides, **kwargs)
            if isinstance(outcome, Finished):
                return outcome
            if isinstance(outcome, Stopped):
                return None
        return None
