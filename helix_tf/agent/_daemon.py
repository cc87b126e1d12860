"""The agent process: think-time search for one config, yielding to every user run.

Loop: wait until no user run is in progress (and ``resume_after`` seconds have
passed since the last one ended) → ask the study for a trial → run it on the
validation split, first approximately when the planner says that is cheaper
(rung 0, pruned by successive halving), then exactly (rung 1) → verify the best
trials that beat the user's version on the test split. Every run goes through
:func:`helix_tf.run` on the user's store, tagged ``agent``, in a forked child
that is killed the moment a user run starts; the killed trial is failed and its
parameters queued again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from helix_tf import api, history
from helix_tf.agent._options import (
    TAG,
    AgentBusyError,
    AgentOptions,
    agent_share_bytes,
    metric_direction,
    preferred_metric,
)
from helix_tf.agent._order import compute_costs, kept_after, reuse_order, trainer_shape
from helix_tf.agent._registry import claim_cpus, process_start, register, unregister
from helix_tf.agent._rungs import RungCosts
from helix_tf.agent._study import (
    AgentPaths,
    fail_orphans,
    open_study,
    rebase,
    requeue,
    study_name,
    suggest,
)
from helix_tf.agent._trial_run import KEPT_TRAINERS, keep_trainers, run_request, scored_outputs
from helix_tf.agent._verdicts import is_winner, keep_what_matters, moved_meaningfully, study_counts
from helix_tf.agent._worker import Finished, Stopped, Worker, Yielded, preload
from helix_tf.api import Approx
from helix_tf.errors import HelixError
from helix_tf.roles import Role
from helix_tf.search import search_space
from helix_tf.validation import Validation

__all__ = ["AgentOptions", "AgentBusyError", "serve", "preferred_metric", "TAG"]

log = logging.getLogger(__name__)

#: Search runs of each rung measured before their CPU medians price the rungs.


def _lower_priority(pid: int, cores: int, home: Path) -> list[int]:
    """Lowest CPU and I/O priority; pinned to ``cores`` cores no other agent holds.

    Registers the agent (:func:`claim_cpus`: two agents with ``--cores 1`` take two
    different cores, not both the last one). Returns the cores, [] where unpinned.
    """
    with contextlib.suppress(OSError):
        os.nice(19)
    with contextlib.suppress(OSError):  # the lowest I/O priority too (idle class)
        os.system(f"ionice -c 3 -p {pid} >/dev/null 2>&1")
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        register(pid, home)
        return []
    chosen = claim_cpus(pid, home, allowed, cores)
    try:
        os.sched_setaffinity(0, chosen)
    except OSError:
        register(pid, home)
        return []
    return chosen


class _Agent:
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
            "storage": paths.storage_label,
            "cores": opts.cores,
            "started": time.time(),
            "state": "starting",
        }
        self.last_user_run = 0.0
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

        while not self.stop_requested:
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
        elif isinstance(outcome, Stopped):
            self.record_killed("stopped by the agent: `agent stop`")
        return outcome

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

    # -- the search -------------------------------------------------------------------

    def plan(self, overrides: dict[str, Any], approx: Approx | None = None) -> Any:
        """The plan of a validation run of ``overrides`` (``helix_tf.plan``, nothing runs)."""
        return api.plan(
            self.opts.config,
            params=overrides,
            data_dir=self.opts.data_dir,
            store=self.opts.store,
            validation=self.opts.validation,
            approx=approx,
            outputs=self.scored,
        )

    def approx_is_cheaper(
        self,
        overrides: dict[str, Any],
        approx: Approx,
        *,
        exact: Any = None,
        shape: str | None = None,
    ) -> bool:
        """Whether the approximate rung is estimated cheaper (``approx_max_share``).

        By the agent's own CPU measurements of both rungs once it has them
        (:meth:`RungCosts.ratio`), else by the planner's estimates.

        ``exact``: the trial's exact plan if the batch made it already (planned
        here otherwise). ``shape``: the trial's trainer shape; the approximate
        plan's estimate is the same for every trial of one shape in a batch (the
        same graph on the same stored preprocessing; only the learners' run-time
        values differ, and the planner's estimate is by node, not by value), so it
        is planned once per shape and batch (:attr:`approx_plans`).
        """
        measured = self.rungs.ratio()
        if measured is not None and measured > self.opts.approx_max_share:
            return False
        try:
            if exact is None and measured is None:
                exact = self.plan(overrides)
            cheap = self.approx_plans.get(shape) if shape is not None else None
            if cheap is None:
                cheap = self.plan(overrides, approx)
                if shape is not None:
                    self.approx_plans[shape] = cheap
        except HelixError:
            return False
        if not cheap.approx:  # the planner runs it exact instead (stored, or too small)
            return False
        if measured is not None:
            return True
        return cheap.estimated_seconds <= self.opts.approx_max_share * exact.estimated_seconds

    def baseline(self, study: Any) -> dict[str, Any] | None:
        """The user's version (the config as written) on the validation split."""
        known = study.user_attrs.get("baseline_validation")
        if known is not None:
            return known
        self.update(state="running", reason="the user's version on the validation split")
        done = self.run_until_done({}, validation=self.opts.validation)
        if done is None or done.result is None:
            if done is not None:
                log.error("the user's version failed on the validation split: %s", done.error)
            return None
        metric = preferred_metric(done.result["metrics"])
        study.set_user_attr("metric", metric)
        study.set_user_attr("baseline_validation", done.result)
        return done.result

    def exact_plan(self, overrides: dict[str, Any]) -> Any:
        """The exact validation run's plan of ``overrides`` (None: cannot plan)."""
        try:
            return self.plan(overrides)
        except HelixError as exc:
            log.info("could not plan %s: %s", overrides, exc)
            return None

    def batch(self, study: Any, space: Any, metric: str, size: int) -> None:
        """Ask for ``size`` trials and run them in reuse-aware order (:mod:`._order`).

        Trials the agent could not run (it was stopped) are failed and queued again.
        """
        from optuna.trial import TrialState

        asked = [study.ask() for _ in range(size)]
        overrides = [suggest(t, space) for t in asked]
        shapes = [trainer_shape(o, self.learners) for o in overrides]
        # Each trial is planned once: the plan orders the batch and decides its rungs.
        self.approx_plans = {}
        self.update(state="running", reason=f"planning a batch of {size} trial(s)", rung=None)
        plans = [self.exact_plan(o) for o in overrides]
        order = list(range(size))
        if size > 1:
            order = reuse_order(
                [None if p is None else compute_costs(p) for p in plans],
                shapes,
                kept=KEPT_TRAINERS,
                recent=self.trained,
            )
        ran = 0
        for i in order:
            if self.stop_requested or not self.wait_idle():
                break
            self.trial(
                study,
                space,
                metric,
                asked=(asked[i], overrides[i]),
                exact_plan=plans[i],
                shape=shapes[i],
            )
            self.trained = kept_after(self.trained, shapes[i], KEPT_TRAINERS)
            self.update(**study_counts(study))
            ran += 1
        for i in order[ran:]:
            asked[i].set_user_attr("not_run", "the agent stopped before this trial's turn")
            study.tell(asked[i], state=TrialState.FAIL)
            requeue(study, asked[i])
        if size > 1:
            log.info("batch of %d trials run in reuse-aware order %s", size, order[:ran])

    def trial(
        self,
        study: Any,
        space: Any,
        metric: str,
        asked: tuple[Any, dict[str, Any]] | None = None,
        *,
        exact_plan: Any = None,
        shape: str | None = None,
    ) -> None:
        """Run one trial through its rungs.

        ``asked``: a trial already asked and its overrides; ``exact_plan``, ``shape``: its
        exact plan and trainer shape, when its batch has them (:meth:`approx_is_cheaper`).
        """
        from optuna.trial import TrialState

        if asked is None:
            trial = study.ask()
            overrides = suggest(trial, space)
        else:
            trial, overrides = asked
        self.update(state="running", reason="", trial=trial.number, rung=None)
        approx = Approx(sample=self.opts.approx_sample)
        cheaper = self.approx_is_cheaper(overrides, approx, exact=exact_plan, shape=shape)
        rungs: list[Approx | None] = [approx] if cheaper else []
        rungs.append(None)
        for step, rung in enumerate(rungs):
            self.update(rung="approximate" if rung is not None else "exact")
            outcome = self.run(overrides, validation=self.opts.validation, approx=rung)
            if not isinstance(outcome, Finished):
                study.tell(trial, state=TrialState.FAIL)
                requeue(study, trial)
                return
            if outcome.result is None or metric not in outcome.result["metrics"]:
                trial.set_user_attr("error", outcome.error or f"no metric {metric!r}")
                study.tell(trial, state=TrialState.FAIL)
                return
            self.rungs.add(outcome)
            value = float(outcome.result["metrics"][metric])
            exact = not outcome.result["approx"]
            trial.set_user_attr(
                "rung_exact" if exact else "rung_approx",
                {**outcome.result, "seconds": outcome.seconds, "cpu_seconds": outcome.cpu_seconds},
            )
            if exact:
                study.tell(trial, value)
                return
            trial.report(value, step + 1)  # the pruner's rung 0 is at resource 1
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                return

    def verify(
        self, study: Any, metric: str, baseline_value: float, *, final: bool = False
    ) -> None:
        """Exact test runs of the best trials that beat the user's version on validation.

        During the search only a new leader is verified, and only when it moved
        meaningfully: its validation gain over the user's version exceeds the best
        verified trial's by more than ``verify_min_gain`` of that gain (a leader a
        hair above a verified one would repeat its test runs and its ablation for
        the same answer). Each verification starts only within ``verify_share`` of
        the worker's time (the first always may). ``final`` (the search is over):
        the ``verify_top`` best, whatever their gain and the time taken.
        """
        self.purpose = "verify"
        try:
            from optuna.trial import TrialState

            sign = 1 if study.direction.name == "MAXIMIZE" else -1
            done = [
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if sign * (t.value - baseline_value) > 0
            ]
            done.sort(key=lambda t: -sign * t.value)
            for t in done[: self.opts.verify_top]:
                if f"verified:{t.number}" in study.user_attrs or self.stop_requested:
                    continue
                if not final and not moved_meaningfully(
                    study, t, done, baseline_value, sign, self.opts.verify_min_gain
                ):
                    continue
                spent = self.spent
                if not final and spent["verify"] > self.opts.verify_share * sum(spent.values()):
                    break
                self.update(state="verifying", reason=f"trial {t.number} on the test split")
                if "baseline_test" not in study.user_attrs:
                    base = self.run_until_done({}, validation=None, materialize="all")
                    if base is None or base.result is None:
                        return
                    study.set_user_attr("baseline_test", base.result)
                mine = self.run_until_done(dict(t.params), validation=None, materialize="all")
                if mine is None:
                    return
                record: dict[str, Any] = {"test": mine.result, "error": mine.error}
                if mine.result is not None:
                    try:
                        old = history.stored_predictions(
                            self.opts.config, data_dir=self.opts.data_dir, store=self.opts.store
                        )
                        new = history.stored_predictions(
                            self.opts.config,
                            params=dict(t.params),
                            data_dir=self.opts.data_dir,
                            store=self.opts.store,
                        )
                        record["difference"] = history.compare_predictions(
                            old, new, seed=self.opts.seed
                        ).to_dict()
                    except HelixError as exc:
                        record["error"] = str(exc)
                # Recorded before the ablation (one run per change): the report shows the
                # verified proposal while its changes are being weighed.
                study.set_user_attr(f"verified:{t.number}", record)
                if is_winner(study, t.number, sign):
                    record["ablation"] = self.ablate(dict(t.params), float(t.value), metric, sign)
                    study.set_user_attr(f"verified:{t.number}", record)
                    keep_what_matters(study, t, record["ablation"])
        finally:
            self.purpose = "search"

    def ablate(
        self, params: dict[str, Any], value: float, metric: str, sign: int
    ) -> dict[str, Any]:
        """Revert each change of a winner in turn (validation runs): which ones matter.

        A change *matters* when reverting it alone makes the validation metric worse.
        """
        current = self.space.current if self.space is not None else {}
        changed = [k for k, v in params.items() if k in current and current[k] != v]
        out: dict[str, Any] = {}
        if len(changed) < 2:
            return out
        for key in changed:
            self.update(state="verifying", reason=f"ablation: reverting {key}")
            done = self.run_until_done(
                {**params, key: current[key]}, validation=self.opts.validation
            )
            if done is None:
                break
            if done.result is None or metric not in done.result["metrics"]:
                out[key] = {"error": done.error}
                continue
            without = float(done.result["metrics"][metric])
            effect = sign * (value - without)
            out[key] = {"without": without, "effect": effect, "matters": effect > 0}
        return out

    def search(self) -> bool:
        """Search until stopped or done; True when the config changed (search again)."""
        opts = self.opts
        space = search_space(opts.config, data_dir=opts.data_dir)
        self.space = space
        # The study is named by what the search sees: the validation workflow.
        view = history.describe(opts.config, data_dir=opts.data_dir, validation=opts.validation)
        self.scored = scored_outputs(view.dag)
        self.learners = frozenset(
            n["name"] for n in view.dag.get("nodes", []) if n.get("role") == Role.TRAIN
        )
        name = study_name(view.name, view.digest)
        study = open_study(
            self.paths, name, direction=metric_direction(view.dag), seed=opts.seed, create=True
        )
        study.set_user_attr("config", str(opts.config))
        study.set_user_attr("base_digest", view.digest)
        study.set_user_attr("space", space.to_dict())
        rebased = rebase(study, self.paths, view.name, space)
        if rebased:
            log.info("the config changed: starting from the previous study's best %s", rebased)
        orphans = fail_orphans(study)
        self.record_killed("the agent process ended before its run finished (agent restarted)")
        if orphans:
            log.warning(
                "trials %s were left running by a stopped agent: failed, queued again", orphans
            )
        self.update(study=name, state="running", orphans_failed=orphans, rebased=rebased)
        if opts.preload and "preload_seconds" not in self.status:
            self.update(preload_seconds=round(preload(), 2))
        base = self.baseline(study)
        if base is None:
            self.update(
                state="stopped" if self.stop_requested else "failed",
                reason="the user's version could not be run on the validation split",
            )
            return False
        metric = study.user_attrs["metric"]
        baseline_value = float(base["metrics"][metric])
        self.update(metric=metric, baseline_validation=baseline_value)
        while not self.stop_requested:
            finished = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
            if opts.max_trials is not None and finished >= opts.max_trials:
                self.verify(study, metric, baseline_value, final=True)
                self.update(**study_counts(study))
                self.update(state="done", reason=f"{opts.max_trials} trials finished", rung=None)
                return False
            if not self.wait_idle():
                break
            try:
                now = history.describe(
                    opts.config, data_dir=opts.data_dir, validation=opts.validation
                )
            except HelixError as exc:  # e.g. saved halfway through an edit
                self.update(state="waiting", reason=f"the config does not compile: {exc}")
                time.sleep(2)
                continue
            if now.digest != view.digest:
                log.info("the config changed: a new study starts from this one's best trials")
                self.update(state="restarting", reason="the config changed")
                return True
            left = None if opts.max_trials is None else opts.max_trials - finished
            self.batch(study, space, metric, min(opts.batch, left or opts.batch))
            self.verify(study, metric, baseline_value)
        self.update(state="stopped", reason="agent stop", rung=None)
        return False


def serve(opts: AgentOptions) -> None:
    """Run the agent for ``opts.config`` until stopped (SIGTERM) or ``max_trials`` finish."""
    paths = AgentPaths.of(opts.config, opts.store)
    paths.folder.mkdir(parents=True, exist_ok=True)
    lock = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise AgentBusyError(
            f"an agent is already running for the store {paths.home}; "
            "`helix-tf agent stop` it first"
        ) from None
    # A trial trains with the threads a user's run would (the CPUs it may use before the
    # agent pins itself to opts.cores), not opts.cores: a matrix product split over other
    # threads sums in another order, and the user's run must be able to reuse (and equal)
    # what the agent verified. The pinning still keeps the agent on its cores.
    from helix_tf._env import intra_op_threads  # read before the pinning

    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(intra_op_threads()))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    agent = _Agent(opts, paths)
    chosen = _lower_priority(os.getpid(), opts.cores, paths.home)

    def request_stop(signum: int, frame: Any) -> None:
        agent.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    agent.update(state="starting", cpus=chosen, nice=os.nice(0))
    try:
        while agent.search():
            # The config changed: the next study's runs start in a fresh worker.
            agent.worker.close()
    except Exception as exc:
        log.exception("the agent failed")
        agent.update(state="failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        agent.worker.close()
        unregister(os.getpid())
        os.close(lock)
