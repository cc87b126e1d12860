"""The agent's search: the user's version as the baseline, batches of trials asked from
the Optuna study and run in reuse-aware order, each through its rungs (approximate first
when the planner or the agent's own measurements say that is cheaper, then exact), and a
new study when the config changes."""

from __future__ import annotations

import logging
import time
from typing import Any

from helix_tf import api, history
from helix_tf.agent._options import metric_direction, preferred_metric
from helix_tf.agent._order import compute_costs, kept_after, reuse_order, trainer_shape
from helix_tf.agent._study import fail_orphans, open_study, rebase, requeue, study_name, suggest
from helix_tf.agent._trial_run import KEPT_TRAINERS, scored_outputs
from helix_tf.agent._verdicts import study_counts
from helix_tf.agent._verification import Verification
from helix_tf.agent._worker import Finished, preload
from helix_tf.api import Approx
from helix_tf.errors import HelixError
from helix_tf.roles import Role
from helix_tf.search import search_space

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class Agent(Verification):
    """The agent for one config: searches (:meth:`search`) until stopped or done."""

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

    def compiled_version(self) -> tuple[Any, Any] | None:
        """The config's search space and validation workflow, waiting while it does not
        compile (saved halfway through an edit, data being rewritten); None: stopped."""
        opts = self.opts
        while not self.stop_requested:
            try:
                space = search_space(opts.config, data_dir=opts.data_dir)
                # The study is named by what the search sees: the validation workflow.
                view = history.describe(
                    opts.config, data_dir=opts.data_dir, validation=opts.validation
                )
                return space, view
            except HelixError as exc:
                self.update(state="waiting", reason=f"the config does not compile: {exc}")
                time.sleep(2)
        return None

    def search(self) -> bool:
        """Search until stopped or done; True when the config changed (search again)."""
        opts = self.opts
        compiled = self.compiled_version()
        if compiled is None:
            self.update(state="stopped", reason="agent stop", rung=None)
            return False
        space, view = compiled
        self.space = space
        self.base_digest, self.moved = view.digest, False
        self.scored = scored_outputs(view.dag)
        self.learners = frozenset(
            n["name"] for n in view.dag.get("nodes", []) if n.get("role") == Role.TRAIN
        )
        name = study_name(view.name, view.digest, space)
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
        if base is None and self.moved:
            return True
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
            if self.moved:
                log.info("the config changed: a new study starts from this one's best trials")
                self.update(state="restarting", reason="the config changed")
                return True
            finished = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
            if opts.max_trials is not None and finished >= opts.max_trials:
                self.verify(study, metric, baseline_value, final=True)
                self.update(**study_counts(study))
                self.update(state="done", reason=f"{opts.max_trials} trials finished", rung=None)
                return False
            if not self.wait_idle():
                continue  # stopped, or the version moved: the loop's checks say which
            try:
                now = history.describe(
                    opts.config, data_dir=opts.data_dir, validation=opts.validation
                )
                searched = search_space(opts.config, data_dir=opts.data_dir)
            except HelixError as exc:  # e.g. saved halfway through an edit
                self.update(state="waiting", reason=f"the config does not compile: {exc}")
                time.sleep(2)
                continue
            self.moved = study_name(now.name, now.digest, searched) != name
            if self.moved:
                continue
            left = None if opts.max_trials is None else opts.max_trials - finished
            self.batch(study, space, metric, min(opts.batch, left or opts.batch))
            self.verify(study, metric, baseline_value)
        self.update(state="stopped", reason=self.stop_reason or "agent stop", rung=None)
        return False
