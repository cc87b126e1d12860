"""One run of a loaded config: start it, plan and execute it, record it.

:func:`run_once` is three steps: start the run (a version and a run in the
history, :func:`start_run`), plan and execute it (:func:`execute_replanning`,
planning again when stored entries it loads are lost) and record it
(:func:`record`, through :mod:`helix_tf._recording`). :func:`retrain_without_zero`
runs a second time without the features whose weights are all zero.
:func:`helix_tf.api.run` is the public entry point.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from helix_tf._planning import ancestors, plan_session
from helix_tf._recording import collect_results, compare_with_previous, record_run
from helix_tf._session import Session, is_write_failure, metadata_in_memory, open_loaded
from helix_tf.approx.settings import Approx
from helix_tf.config import LoadedConfig
from helix_tf.errors import ConfigError, HelixError, SampledDataError, StoreError
from helix_tf.events import Planned, ProgressCallback, RetrainingStarted, SampleMoved
from helix_tf.history import TAG_KEY
from helix_tf.results import NodeDecision, RunResult
from helix_tf.reuse.costs import CostModel
from helix_tf.reuse.materialize import parse_budget
from helix_tf.roles import NodeState, Role

if TYPE_CHECKING:
    from helix_tf.engine.execute import EngineResult

__all__ = ["RunOptions", "retrain_without_zero", "run_once"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How :func:`helix_tf.api.run` was asked to run (everything but the config)."""

    store: str | None
    metadata: str | None
    runner: str
    pipeline_args: tuple[str, ...]
    materialize: str
    budget: str | int | None
    approx: Approx | None
    batch_rows: int
    prune_zero_weight: bool
    progress: ProgressCallback | None
    tag: str | None = None
    tag_budget: str | int | None = None
    scratch: str | None = None
    rehash: bool = False
    #: Where an approximate run draws its sample (None: where it saves most).
    sample_at: str | None = None

    def __post_init__(self) -> None:
        # Checked before any work (they were read once the plan was made and printed).
        parse_budget(self.budget)
        parse_budget(self.tag_budget)
        if self.runner == "direct":
            from helix_tf.engine._runner_args import direct_problem  # Beam is not imported

            problem = direct_problem(self.pipeline_args)
            if problem is not None:
                raise ConfigError(problem)
        else:  # a remote runner's options, checked before any work
            from helix_tf.engine.runners import check_runner

            check_runner(self.runner, self.pipeline_args, self.store or "")

    def open(self, loaded: LoadedConfig) -> Session:
        """A session of ``loaded`` on the run's store and metadata."""
        return open_loaded(
            loaded,
            store=self.store,
            metadata=self.metadata,
            approx=self.approx,
            rehash=self.rehash,
            workers=True,
            writing=True,
            sample_at=self.sample_at,
        )


def _with_models_needed(session: Session, opts: RunOptions) -> Session:
    """``session``, or one whose outputs include every learner the plan would prune unseen.

    A pruned learner whose model is not stored has unknown facts; making it an
    output gets it trained (a new version in the history, only in this case).
    """
    compiled = session.compiled
    unseen = [
        n.name
        for n in compiled.nodes
        if n.role == Role.TRAIN and session.store.lookup(n.fingerprint) is None
    ]
    if not unseen:
        return session
    decisions, _, _ = plan_session(session)
    pruned = [d.name for d in decisions if d.name in unseen and d.state == NodeState.PRUNE]
    if not pruned:
        return session
    session.close()
    workflow = copy.copy(session.config.workflow)
    workflow.outputs = [*workflow.outputs, *pruned]
    loaded = dataclasses.replace(session.config, workflow=workflow)
    return opts.open(loaded)


def retrain_without_zero(
    loaded: LoadedConfig,
    opts: RunOptions,
    first: RunResult,
    facts: Mapping[str, Mapping[str, int]],
) -> RunResult:
    """Train again without the zero-weight features; compare the metrics with ``first``."""
    from helix_tf.compiler.feature_pruning import features_to_drop, without_features

    drop, notes = features_to_drop(loaded.workflow, {t: set(z) for t, z in facts.items()})
    if not drop:
        notes.append("no feature has only zero weights in any model: nothing to retrain")
        return dataclasses.replace(first, notes=(*first.notes, *notes))
    derived = dataclasses.replace(loaded, workflow=without_features(loaded.workflow, drop))
    if opts.progress:
        opts.progress(RetrainingStarted(drop={k: tuple(sorted(v)) for k, v in drop.items()}))
    if opts.approx is not None and not first.approx:
        # The first run was answered with stored exact results: compare like with like.
        opts = dataclasses.replace(opts, approx=None)
    second, _ = run_once(derived, opts)
    weights = {f: n for z in facts.values() for f, n in z.items()}
    dropped = {
        ex: {f: weights[f] for f in sorted(features)} for ex, features in sorted(drop.items())
    }
    retrained = {
        "dropped": dropped,
        "full_run_id": first.run_id,
        "full_metrics": dict(first.metrics),
        "full_wall_seconds": round(first.wall_seconds, 4),
        "difference": {
            k: second.metrics[k] - first.metrics[k]
            for k in sorted(second.metrics.keys() & first.metrics.keys())
        },
    }
    return dataclasses.replace(second, notes=(*second.notes, *notes), retrained=retrained)


def _execute_replanning(session: Session, opts: RunOptions, lease_id: str | None) -> _Executed:
    """Plan and execute; when loaded entries fail verification or vanish, plan again.

    The engine verifies every entry the plan loads before any work; an entry that
    fails (or goes missing mid-run) counts as not stored from then on, so the next plan
    recomputes it and what depends on it, within this run. Returns the decisions and
    manifests of the plan that ran, the engine's result and notes on what was replanned.
    The workers of a multi-worker run agree on the first plan (:mod:`helix_tf._workers`).
    """
    from helix_tf._inflight import announce, await_colleagues
    from helix_tf._workers import WorkerPlans
    from helix_tf.engine.execute import EngineOptions, StoreEntriesLost, execute_plan

    compiled = session.compiled
    metric_ops = {
        n.name: list(session.config.workflow.declaration(n.name).refs.get("metrics") or [])
        for n in compiled.nodes
        if n.role == Role.EVALUATE
    }
    lost: set[str] = set()
    workers = WorkerPlans(
        session, lambda exclude: plan_session(session, exclude=exclude), lambda planned: planned[0]
    )
    notes: list[str] = [workers.note] if workers.note else []
    # Each new plan stops loading the entries that failed: deeper ones may fail in turn
    # (a whole store damaged), so plan again while each attempt finds a new one.
    for attempt in range(len(compiled.nodes) + 1):
        decisions, manifests, costs = workers.plan(lost)
        # A colleague's run already computing some of this plan: wait, then load (a
        # read-only worker computes only for itself: it never waits for the chief).
        if (
            attempt == 0
            and workers.note is None
            and await_colleagues(session, decisions, costs.history)
        ):
            decisions, manifests, costs = workers.plan(lost)
            announce(session, decisions)
        decisions, manifests, costs = workers.settle((decisions, manifests, costs), lost)
        states = {d.name: d.state for d in decisions}
        if opts.progress:
            opts.progress(Planned(decisions=tuple(decisions)))
        policy = _policy(session, opts, costs, states, lease_id)
        try:
            engine_result = execute_plan(
                compiled,
                states,
                store=session.store,
                manifests=dict(manifests),
                materializer=policy,
                metric_ops=metric_ops,
                options=EngineOptions(
                    runner=opts.runner,
                    pipeline_args=opts.pipeline_args,
                    batch_rows=opts.batch_rows,
                    prune_zero_weight=opts.prune_zero_weight,
                    progress=opts.progress,
                    scratch=session.store.lease.scratch if session.store.lease else None,
                    read_only=workers.note,
                ),
            )
        except StoreEntriesLost as exc:
            failed = {compiled.node(n).fingerprint for n in exc.nodes}
            if failed <= lost:  # planned without them, yet lost again: no progress
                raise
            log.warning("%s", exc)
            lost.update(failed)
            notes.append(
                f"stored results of {', '.join(exc.nodes)} {exc.problem}; recomputed in this run"
            )
            continue
        return _Executed(
            decisions=decisions, manifests=manifests, engine=engine_result, notes=tuple(notes)
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _policy(
    session: Session,
    opts: RunOptions,
    costs: CostModel,
    states: Mapping[str, str],
    lease_id: str | None,
) -> Any:
    """The run's materialization policy for a plan of ``states``."""
    from helix_tf.reuse.materialize import MaterializationPolicy
    from helix_tf.reuse.tagged import TagQuota

    compiled = session.compiled
    return MaterializationPolicy(
        policy=opts.materialize,
        load_cost=costs.load_cost,
        ancestors=ancestors(compiled),
        history_compute={k: v.compute_seconds for k, v in costs.history.items()},
        changes=session.metadata.change_counts(compiled.name),
        budget=parse_budget(opts.budget),
        store=session.store,
        protected={n.fingerprint for n in compiled.nodes if states[n.name] != NodeState.PRUNE},
        lease_id=lease_id,
        quota=TagQuota(tag=opts.tag, limit=parse_budget(opts.tag_budget)) if opts.tag else None,
        data_changed=session.data_changed,
    )


def _start_lease(session: Session, scratch: str | None) -> Any:
    """Register this run on its store, then reclaim what dead runs left there.

    The lease pins every fingerprint of the workflow (another run's budget eviction
    skips them) and names the run's scratch folder. Runs found dead are marked killed.
    """
    store = session.store
    root = scratch or os.environ.get("HELIX_TF_SCRATCH") or tempfile.gettempdir()
    lease = store.open_lease(
        {n.fingerprint for n in session.compiled.nodes},
        scratch_root=os.path.abspath(os.path.expanduser(root)),  # --scratch=~/x: as typed
    )
    try:
        if store.collection_due():
            report = store.collect()
            session.metadata.mark_killed(report.killed_runs(session.metadata.url))
    except Exception as exc:  # reclaiming is housekeeping: it never fails a run
        log.debug("could not reclaim leftovers in %s: %s", store.url, exc)
    return lease


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Started:
    """A run recorded as started: its version and run id."""

    version: int
    run_id: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Executed:
    """The plan that ran, the stored entries it loaded, the engine's result, replan notes."""

    decisions: list[NodeDecision]
    manifests: dict[str, Any]
    engine: EngineResult
    notes: tuple[str, ...]


def run_once(
    loaded: LoadedConfig, opts: RunOptions, *, need_models: bool = False
) -> tuple[RunResult, dict[str, dict[str, int]]]:
    """One run of a loaded config; also returns each learner's zero-weight features.

    ``need_models``: every train node must end up computed or loaded (its model's
    facts are needed) even where the plan would prune it.

    An approximate run whose sources read a sample and whose data failed a check on it
    (a test label the sample's training rows lack, a class the sample lost, no row kept:
    :class:`~helix_tf.errors.SampledDataError`) runs again with the sample drawn at
    training, from examples of every row: it then passes or fails as the exact run
    does. The failed attempt stays in the history as failed, with its error.
    """
    try:
        return _run_once(loaded, opts, need_models=need_models)
    except SampledDataError as exc:
        found = _unprefixed(exc)
        if opts.progress:
            opts.progress(SampleMoved(reason=found))
        again = dataclasses.replace(opts, sample_at=Role.TRAIN)
        result, facts = _run_once(loaded, again, need_models=need_models)
        # Where exact history says a sample at training saves too little, the second
        # run is exact (its own note says so).
        drawn = " and drew the sample at training instead" if result.approx else ""
        note = (
            "the sample drawn at the source failed a check the whole training split may "
            f"pass ({found}); preprocessed every row{drawn}"
        )
        return dataclasses.replace(result, notes=(*result.notes, note)), facts


def _remember_failed_sample(session: Session, exc: SampledDataError) -> None:
    """Keep that this sample at the source failed at ``exc.node``: the next approximate
    run with the same node draws its sample at training at once (:mod:`_sample_failures`)."""
    from helix_tf import _sample_failures

    compiled = session.compiled
    placed = (compiled.approx or {}).get("placement")
    names = {n.name for n in compiled.nodes}
    if placed != "source" or exc.node not in names or session.home is None or session.read_only:
        return
    fingerprint = compiled.node(exc.node).fingerprint
    _sample_failures.remember(session.home, compiled.name, fingerprint, _unprefixed(exc))


def _unprefixed(exc: SampledDataError) -> str:
    """What the error found, without its node prefix, its judgement (made on the sample,
    not the split) and the sample's note: ``line 9 of test.csv has label 'maybe' ...``."""
    return exc.found.split("; ")[0]


def _run_once(
    loaded: LoadedConfig, opts: RunOptions, *, need_models: bool
) -> tuple[RunResult, dict[str, dict[str, int]]]:
    """:func:`run_once` with the sample where ``opts`` places it."""
    t_start = time.perf_counter()
    session = opts.open(loaded)
    if need_models:
        session = _with_models_needed(session, opts)
    # An approximation of stored exact results, or one that would save almost nothing,
    # would be slower (or no faster) and worse: the session is the exact workflow.
    approx = opts.approx is not None and not session.exact_instead
    started = None
    # A worker that is not the chief writes nothing to the store: no lease, no reclaiming.
    lease = None if session.read_only else _start_lease(session, opts.scratch)
    try:
        started = _start_run(session, opts, approx=approx)
        if lease is not None:
            lease.update(run_id=started.run_id, metadata=session.metadata.url)
        executed = _execute_replanning(session, opts, lease.id if lease is not None else None)
        return _record(session, started, executed, approx=approx, t_start=t_start)
    except HelixError as exc:
        if isinstance(exc, SampledDataError):
            _remember_failed_sample(session, exc)
        if started is not None:
            session.metadata.finish_run(
                started.run_id,
                status="failed",
                wall_seconds=time.perf_counter() - t_start,
                metrics={},
                error=str(exc),
            )
        raise
    finally:
        if lease is not None:
            lease.close()
        session.close()


def _start_run(session: Session, opts: RunOptions, *, approx: bool) -> _Started:
    """Record the version and start the run; in memory if the database cannot take data."""
    from helix_tf.settings import current_host, current_user

    compiled, user = session.compiled, current_user()
    for attempt in range(2):
        md = session.metadata
        try:
            version = md.record_version(
                compiled.name,
                str(session.config.path),
                compiled.to_dict(),
                compiled.digest,
                user=user,
            )
            run_id = md.start_run(
                compiled.name,
                version,
                approx=approx,
                policy=opts.materialize,
                store_url=session.store_url,
                params={**session.config.overrides, **({TAG_KEY: opts.tag} if opts.tag else {})},
                user=user,
                host=current_host(),
            )
            return _Started(version=version, run_id=run_id)
        except StoreError as exc:
            if attempt or not is_write_failure(exc):
                raise
            session.metadata = metadata_in_memory(md.url, exc)
    raise AssertionError("unreachable")  # pragma: no cover


def _record(
    session: Session, started: _Started, executed: _Executed, *, approx: bool, t_start: float
) -> tuple[RunResult, dict[str, dict[str, int]]]:
    """Record the run's nodes and metrics; the result, compared with the history."""
    from helix_tf.views._stored import RunReader

    compiled, engine = session.compiled, executed.engine
    collected = collect_results(executed.decisions, engine, executed.manifests, compiled)
    notes = (*session.config.notes, *executed.notes, *collected.notes)
    if session.exact_instead:
        notes = (*notes, session.exact_note)
    if session.sample_note:
        notes = (*notes, session.sample_note)
    wall = time.perf_counter() - t_start
    record_run(session.metadata, started.run_id, collected.nodes, engine, wall_seconds=wall)
    result = RunResult(
        workflow=compiled.name,
        version=started.version,
        run_id=started.run_id,
        approx=approx,
        metrics=engine.metrics,
        intervals=engine.intervals,
        nodes=collected.nodes,
        wall_seconds=wall,
        notes=notes,
        store_url=session.store_url,
        reader=RunReader(session.store_url, engine.values),
        comparison=compare_with_previous(
            session.metadata,
            compiled,
            version=started.version,
            run_id=started.run_id,
            approx=approx,
            metrics=engine.metrics,
        ),
    )
    return result, collected.facts
