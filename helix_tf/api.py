"""The public run API: ``run`` and ``plan`` (the CLI and the agent both call these).

run = load config → compile → look up what is stored → plan (max-flow) →
execute → record the version, the run and every node's measurements.
TensorFlow and Beam are imported only when a node that needs them computes.

One run (:func:`_run_once`) is three steps: start it (a version and a run in the
history), plan and execute it (:func:`_execute_replanning`, planning again when
stored entries it loads are lost) and record it (:mod:`helix_tf._recording`).
What earlier runs recorded is read through :mod:`helix_tf.history`, whose typed
functions (history, versions, diff, comparison of two runs) are exported here too.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helix_tf._recording import collect_results, compare_with_previous, pruned_phrase, record_run
from helix_tf._session import (
    EXACT_INSTEAD,
    Session,
    is_write_failure,
    metadata_in_memory,
    open_loaded,
    open_session,
)
from helix_tf.approx.settings import Approx
from helix_tf.compiler.graph import CompiledWorkflow
from helix_tf.config import LoadedConfig, load_config
from helix_tf.errors import ConfigError, HelixError, StoreError
from helix_tf.events import Planned, ProgressCallback, RetrainingStarted
from helix_tf.history import TAG_KEY as _TAG_KEY
from helix_tf.results import NodeDecision, PlanResult, RunResult
from helix_tf.reuse.costs import CostModel
from helix_tf.reuse.materialize import parse_budget
from helix_tf.reuse.planner import plan_reuse
from helix_tf.roles import NodeState, Role
from helix_tf.validation import Validation, holdout_workflow, is_validation_dag
from helix_tf.workflow import Workflow

if TYPE_CHECKING:
    from helix_tf.engine.execute import EngineResult

__all__ = [
    "EXACT_INSTEAD",
    "Approx",
    "Validation",
    "Session",
    "open_session",
    "run",
    "plan",
    "TAG_KEY",
    "parse_budget",
]

TAG_KEY = _TAG_KEY  # a run's tag is kept with its parameters under this key

log = logging.getLogger(__name__)


def _plan(
    session: Session, *, exclude: frozenset[str] = frozenset()
) -> tuple[list[NodeDecision], dict[str, Any], CostModel]:
    """Plan ``session``'s workflow; fingerprints in ``exclude`` count as not stored."""
    compiled = session.compiled
    validation = is_validation_dag(compiled.to_dict())
    manifests = {}
    for n in compiled.nodes:
        m = None if n.fingerprint in exclude else session.store.lookup(n.fingerprint)
        if m is not None:
            manifests[n.name] = m
    history = session.metadata.compute_history(compiled.name)
    throughput, latency = session.metadata.load_throughput()
    costs = CostModel(history=history, throughput=throughput, latency=latency)
    # Reasons compare with the latest other version of the same kind (exact or approximate).
    same_kind = [
        v.dag
        for v in session.metadata.versions(compiled.name, user=session.baseline_user)
        if (v.dag.get("approx") is None) == (compiled.approx is None)
        and is_validation_dag(v.dag) == validation
        and v.dag.get("digest") != compiled.digest
    ]
    previous = same_kind[-1] if same_kind else None
    decisions = plan_reuse(
        compiled,
        stored={name: m.bytes for name, m in manifests.items()},
        costs=costs,
        previous=previous,
    )
    # Zero-weight features of stored models are pruned from inference: say so in the plan.
    for i, d in enumerate(decisions):
        node = compiled.node(d.name)
        if node.role != Role.PREDICT or d.state != NodeState.COMPUTE:
            continue
        model = manifests.get(node.inputs[0])
        zero = model.meta.get("zero") if model is not None else None
        if zero:
            decisions[i] = dataclasses.replace(
                d, reason=f"{d.reason}; {pruned_phrase(zero, d.name, compiled)}"
            )
    return decisions, manifests, costs


def plan(
    config: str | os.PathLike[str],
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
    approx: Approx | None = None,
    validation: Validation | None = None,
    rehash: bool = False,
    team: bool = False,
    outputs: Sequence[str] | None = None,
) -> PlanResult:
    """What a run would compute, load and prune, and why — without running anything.

    ``validation``: plan the validation run (see :func:`run`). ``outputs`` names the
    nodes the run must deliver instead of the workflow's own outputs (``wf.output``,
    else its evaluate nodes); what only other outputs need is pruned, and the plan
    says so. The agent scores its search trials with ``outputs`` set to the
    workflow's evaluate outputs: a trial computes the metric it is scored on, not
    the explanations nobody reads. The nodes' fingerprints do not change, so what
    such a run stores is reused by every later run. ``rehash=True``
    re-reads every data file instead of trusting the content-hash memo. The reasons
    compare with this person's previous version; ``team=True``: with the team's.
    """
    loaded = _load(config, params, data_dir, validation, outputs)
    session = open_loaded(
        loaded, store=store, metadata=metadata, approx=approx, rehash=rehash, team=team
    )
    notes: tuple[str, ...] = ()
    if session.exact_instead:
        approx, notes = None, (session.exact_note,)
    try:
        decisions, _, _ = _plan(session)
        est = sum(
            d.compute_cost
            if d.state == NodeState.COMPUTE
            else (d.load_cost or 0.0)
            if d.state == NodeState.LOAD
            else 0.0
            for d in decisions
        )
        return PlanResult(
            workflow=session.compiled.name,
            approx=approx is not None,
            nodes=tuple(decisions),
            estimated_seconds=est,
            notes=notes,
        )
    finally:
        session.close()


def _ancestors(compiled: CompiledWorkflow) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for n in compiled.nodes:  # topological order
        acc: set[str] = set()
        for i in n.inputs:
            acc.add(i)
            acc |= out[i]
        out[n.name] = acc
    return out


def run(
    config: str | os.PathLike[str] | Workflow,
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
    runner: str = "direct",
    pipeline_args: Sequence[str] = (),
    materialize: str = "helix",
    budget: str | int | None = None,
    approx: Approx | None = None,
    batch_rows: int = 50_000,
    prune_zero_weight: bool = True,
    retrain_without_zero: bool = False,
    progress: ProgressCallback | None = None,
    validation: Validation | None = None,
    tag: str | None = None,
    tag_budget: str | int | None = None,
    scratch: str | None = None,
    rehash: bool = False,
    outputs: Sequence[str] | None = None,
) -> RunResult:
    """Run a config: reuse what is valid, compute the rest, record everything.

    ``rehash=True`` re-reads every data file instead of trusting the content-hash
    memo (path, inode, size, mtime, ctime): the escape hatch for a file changed in a
    way the memo cannot see. ``outputs``: the nodes to deliver (see :func:`plan`).

    With ``validation``, the model trains on the sources' training rows minus a
    seeded held-out fraction and is evaluated on that fraction; the test split is
    not read (see :mod:`helix_tf.validation`). ``tag`` marks the run in the
    history (the agent tags its runs ``"agent"``; ``history`` hides tagged runs
    unless asked) and every store entry it keeps: tagged entries are evicted before
    the user's, and ``tag_budget`` (e.g. ``"500MB"``) caps what all entries of runs
    with that tag hold together (see :mod:`helix_tf.reuse.tagged`).

    With ``retrain_without_zero=True``, learners whose models give some features
    only zero weights are trained again without those features, and the result
    is that second run, with ``retrained`` comparing its metrics to the first.

    ``progress`` is called with each step as it happens, a typed :mod:`helix_tf.events`
    event (plan made, preprocessing started, epoch or node done; JSON: ``to_dict()``).

    ``scratch`` is the folder for the run's scratch data (default ``$HELIX_TF_SCRATCH``,
    else the system's temporary folder); when the store cannot take more data, the
    run's outputs go there and the run goes on without materializing them.

    Examples
    --------
    >>> result = run("configs/census.py", params=["learner.l1=0.001"])  # doctest: +SKIP
    >>> result.metrics["accuracy"]  # doctest: +SKIP
    0.85
    >>> result.predictions(pandas=True).head()  # __row, __label, __score  # doctest: +SKIP
    >>> model = result.model()  # the trained Keras model                # doctest: +SKIP
    >>> helix_tf.views.figure(result, "roc")  # a matplotlib Figure      # doctest: +SKIP
    """
    if isinstance(config, Workflow):
        raise ConfigError("run() takes the path of a config module; save the workflow in one")
    opts = _RunOptions(
        store=store,
        metadata=metadata,
        runner=runner,
        pipeline_args=tuple(pipeline_args),
        materialize=materialize,
        budget=budget,
        approx=approx,
        batch_rows=batch_rows,
        prune_zero_weight=prune_zero_weight,
        progress=progress,
        tag=tag,
        tag_budget=tag_budget,
        scratch=scratch,
        rehash=rehash,
    )
    loaded = _load(config, params, data_dir, validation, outputs)
    first, facts = _run_once(loaded, opts, need_models=retrain_without_zero)
    if not retrain_without_zero:
        return first
    return _retrain_without_zero(loaded, opts, first, facts)


def _with_models_needed(session: Session, opts: _RunOptions) -> Session:
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
    decisions, _, _ = _plan(session)
    pruned = [d.name for d in decisions if d.name in unseen and d.state == NodeState.PRUNE]
    if not pruned:
        return session
    session.close()
    workflow = copy.copy(session.config.workflow)
    workflow.outputs = [*workflow.outputs, *pruned]
    loaded = dataclasses.replace(session.config, workflow=workflow)
    return opts.open(loaded)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _RunOptions:
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

    def __post_init__(self) -> None:
        if self.runner != "direct":  # a remote runner's options, checked before any work
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
        )


def _load(
    config: str | os.PathLike[str],
    params: Sequence[str] | Mapping[str, Any],
    data_dir: str | None,
    validation: Validation | None,
    outputs: Sequence[str] | None = None,
) -> LoadedConfig:
    """Load ``config``; with ``validation``, its hold-out workflow; with ``outputs``, those
    outputs instead of the workflow's (see :func:`run`; the compiler names unknown ones)."""
    loaded = load_config(config, params, data_dir=data_dir)
    workflow = loaded.workflow
    if validation is not None:
        workflow = holdout_workflow(workflow, validation)
    if outputs is not None:
        if isinstance(outputs, str) or not outputs:
            raise ConfigError(
                f"outputs must be a non-empty list of node names, but got {outputs!r}; "
                "e.g. outputs=['evaluation']"
            )
        workflow = copy.copy(workflow)
        workflow.outputs = list(dict.fromkeys(outputs))
    if workflow is loaded.workflow:
        return loaded
    return dataclasses.replace(loaded, workflow=workflow)


def _retrain_without_zero(
    loaded: LoadedConfig,
    opts: _RunOptions,
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
    second, _ = _run_once(derived, opts)
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


#: Plans a run makes again, at most, when stored entries it loads fail verification.
_REPLANS = 2


def _execute_replanning(session: Session, opts: _RunOptions, lease_id: str | None) -> _Executed:
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
        session, lambda exclude: _plan(session, exclude=exclude), lambda planned: planned[0]
    )
    notes: list[str] = [workers.note] if workers.note else []
    for attempt in range(_REPLANS + 1):
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
            if attempt == _REPLANS:
                raise
            log.warning("%s", exc)
            lost.update(compiled.node(n).fingerprint for n in exc.nodes)
            notes.append(
                f"stored results of {', '.join(exc.nodes)} failed verification or vanished; "
                "recomputed in this run"
            )
            continue
        return _Executed(
            decisions=decisions, manifests=manifests, engine=engine_result, notes=tuple(notes)
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _policy(
    session: Session,
    opts: _RunOptions,
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
        ancestors=_ancestors(compiled),
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
        {n.fingerprint for n in session.compiled.nodes}, scratch_root=os.path.abspath(root)
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


def _run_once(
    loaded: LoadedConfig, opts: _RunOptions, *, need_models: bool = False
) -> tuple[RunResult, dict[str, dict[str, int]]]:
    """One run of a loaded config; also returns each learner's zero-weight features.

    ``need_models``: every train node must end up computed or loaded (its model's
    facts are needed) even where the plan would prune it.
    """
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


def _start_run(session: Session, opts: _RunOptions, *, approx: bool) -> _Started:
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
