"""The public run API: ``run`` and ``plan`` (the CLI and the agent both call these).

run = load config → compile → look up what is stored → plan (max-flow) →
execute → record the version, the run and every node's measurements.
TensorFlow and Beam are imported only when a node that needs them computes.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from helix_tf.approx.settings import Approx
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.config import LoadedConfig, load_config
from helix_tf.errors import ConfigError, HelixError, StoreError
from helix_tf.history import TAG_KEY as _TAG_KEY
from helix_tf.results import NodeDecision, NodeResult, PlanResult, RunResult
from helix_tf.reuse.costs import CostModel
from helix_tf.reuse.materialize import parse_budget
from helix_tf.reuse.planning import plan_reuse
from helix_tf.validation import Validation, holdout_workflow, is_validation_dag
from helix_tf.workflow import Workflow

__all__ = [
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


@dataclasses.dataclass(slots=True, kw_only=True)
class Session:
    """A loaded, compiled config with its store and metadata opened."""

    config: LoadedConfig
    compiled: CompiledWorkflow
    store: Any
    metadata: Any
    store_url: str
    #: An approximate run was asked for, but every exact output is stored, or the
    #: sample would save too little: this session is the exact workflow instead.
    exact_instead: bool = False
    #: Why (said in the run's notes).
    exact_note: str = ""

    def close(self) -> None:
        self.metadata.close()


def _default_home(config_path: Path) -> Path:
    return config_path.parent / ".helix"


def open_session(
    config: str | os.PathLike[str],
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
    approx: Approx | None = None,
    rehash: bool = False,
    existing: bool = False,
) -> Session:
    """Load and compile ``config``; open its store and metadata database.

    ``rehash=True`` re-reads every data file instead of trusting the content-hash memo.
    ``existing=True`` is for commands that only read what runs recorded (history, diff,
    report): a local store folder that does not exist is an error, and none is created.
    """
    loaded = load_config(config, params, data_dir=data_dir)
    if existing and metadata is None:
        _require_local_store(loaded, store)
    return _open(loaded, store=store, metadata=metadata, approx=approx, rehash=rehash)


def _require_local_store(loaded: LoadedConfig, store: str | None) -> None:
    """Refuse to read a local store that no run has written (it would be created empty)."""
    url = store or str(_default_home(loaded.path))
    if "://" in url or Path(url).is_dir():
        return
    raise StoreError(
        f"no store at {url}: nothing has run into it yet, so there is nothing to show. "
        f"Run `helix-tf run {loaded.path}` first, or pass --store with the folder your "
        "runs used"
    )


def _open(
    loaded: LoadedConfig,
    *,
    store: str | None,
    metadata: str | None,
    approx: Approx | None,
    rehash: bool = False,
) -> Session:
    from helix_tf.reuse.store import ArtifactStore

    home = _default_home(loaded.path)
    store_url = store or str(home)
    local_home = home if "://" in store_url else Path(store_url)
    # The store first: an unreachable one fails before anything is written beside the config.
    artifact_store = ArtifactStore(store_url)
    hasher = ContentHasher(local_home / "content-hashes.json", rehash=rehash)
    compiled = compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=hasher)
    meta = _open_metadata(metadata or f"sqlite:///{local_home / 'metadata.db'}")
    note = ""
    if approx is not None:
        stored = {n.name for n in compiled.nodes if artifact_store.lookup(n.fingerprint)}
        # Sample where it saves most: on stored exact examples if there are any, else at
        # the source (so preprocessing shrinks too).
        placement = (
            "train"
            if any(n.role == "examples" and n.name in stored for n in compiled.nodes)
            else "source"
        )
        if all(o in stored for o in compiled.outputs):
            note = EXACT_INSTEAD
        else:
            note = _too_little_to_save(compiled, stored, meta, approx, placement)
        if not note:
            compiled = compile_workflow(
                loaded.workflow,
                config_path=str(loaded.path),
                hasher=hasher,
                approx=approx.for_compiler(placement=placement),
            )
    return Session(
        config=loaded,
        compiled=compiled,
        store=artifact_store,
        metadata=meta,
        store_url=store_url,
        exact_instead=bool(note),
        exact_note=note,
    )


def _too_little_to_save(
    compiled: CompiledWorkflow, stored: set[str], meta: Any, approx: Approx, placement: str
) -> str:
    """The note for running exact because a sample would save too little; ``""`` otherwise."""
    from helix_tf.approx.worth import approx_saving

    if approx.min_saving_seconds <= 0:
        return ""
    saving = approx_saving(
        [(n.name, n.role) for n in compiled.nodes if n.name not in stored],
        meta.compute_history(compiled.name, approx=False),
        fraction=approx.sample,
        epochs_scale=approx.epochs_scale,
        placement=placement,
    )
    if saving is None or saving >= approx.min_saving_seconds:
        return ""
    return (
        f"approximate run requested, but by the last exact run a {approx.sample:g} sample "
        f"would save only {saving:.2f}s of work (less than {approx.min_saving_seconds:g}s): "
        "ran exact instead (not approximate)"
    )


def _is_write_failure(exc: BaseException) -> bool:
    from helix_tf.reuse.store import is_write_failure

    return is_write_failure(exc)


def _metadata_in_memory(url: str, exc: BaseException) -> Any:
    """A metadata database in memory, for a run whose database cannot take data."""
    from helix_tf.reuse.metadata import MetadataStore

    log.warning(
        "metadata database %s cannot take more data (%s); this run is not recorded in "
        "its history (planned from an empty history, in memory)",
        url,
        exc,
    )
    return MetadataStore("sqlite://")


def _open_metadata(url: str) -> Any:
    """The metadata database at ``url``; in memory if its disk cannot take data."""
    from helix_tf.reuse.metadata import MetadataStore

    try:
        return MetadataStore(url)
    except StoreError as exc:
        if not _is_write_failure(exc):
            raise
        return _metadata_in_memory(url, exc)


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
        for v in session.metadata.versions(compiled.name)
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
        if node.role != "predict" or d.state != "compute":
            continue
        model = manifests.get(node.inputs[0])
        zero = model.meta.get("zero") if model is not None else None
        if zero:
            decisions[i] = dataclasses.replace(
                d, reason=f"{d.reason}; {_pruned_phrase(zero, d.name, compiled)}"
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
) -> PlanResult:
    """What a run would compute, load and prune, and why — without running anything.

    ``validation``: plan the validation run (see :func:`run`). ``rehash=True``
    re-reads every data file instead of trusting the content-hash memo.
    """
    loaded = _with_validation(load_config(config, params, data_dir=data_dir), validation)
    session = _open(loaded, store=store, metadata=metadata, approx=approx, rehash=rehash)
    notes: tuple[str, ...] = ()
    if session.exact_instead:
        approx, notes = None, (session.exact_note,)
    try:
        decisions, _, _ = _plan(session)
        est = sum(
            d.compute_cost
            if d.state == "compute"
            else (d.load_cost or 0.0)
            if d.state == "load"
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


#: Said when an approximate run or plan uses the stored exact results instead.
EXACT_INSTEAD = (
    "approximate run requested, but every output of this workflow is stored exactly: "
    "loaded the exact results instead (not approximate)"
)


def _pruned_phrase(pruned: Mapping[str, int], predict: str, compiled: CompiledWorkflow) -> str:
    model = compiled.node(compiled.node(predict).inputs[0])
    parts = [f"all {n:,} weights of {f} are 0" for f, n in sorted(pruned.items())]
    return f"pruned from inference: {', '.join(parts)} in model {model.fingerprint[:12]}"


def _sparsity_note(name: str, meta: Mapping[str, Any]) -> str:
    total, zero = int(meta["weights"]), int(meta.get("zero_weights", 0))
    text = (
        f"{name}: {zero:,} of {total:,} linear weights ({zero / max(total, 1):.0%}) are exactly 0"
    )
    if meta.get("zero"):
        text += "; features contributing nothing: " + ", ".join(sorted(meta["zero"]))
    return text


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
    progress: Callable[[dict[str, Any]], None] | None = None,
    validation: Validation | None = None,
    tag: str | None = None,
    tag_budget: str | int | None = None,
    scratch: str | None = None,
    rehash: bool = False,
) -> RunResult:
    """Run a config: reuse what is valid, compute the rest, record everything.

    ``rehash=True`` re-reads every data file instead of trusting the content-hash
    memo (path, inode, size, mtime, ctime): the escape hatch for a file changed in a
    way the memo cannot see.

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
    if runner != "direct":
        from helix_tf.engine.runners import check_runner

        check_runner(runner, pipeline_args, store or "")
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
    loaded = _with_validation(load_config(config, params, data_dir=data_dir), validation)
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
        if n.role == "train" and session.store.lookup(n.fingerprint) is None
    ]
    if not unseen:
        return session
    decisions, _, _ = _plan(session)
    pruned = [d.name for d in decisions if d.name in unseen and d.state == "prune"]
    if not pruned:
        return session
    session.close()
    workflow = copy.copy(session.config.workflow)
    workflow.outputs = [*workflow.outputs, *pruned]
    loaded = dataclasses.replace(session.config, workflow=workflow)
    return _open(
        loaded, store=opts.store, metadata=opts.metadata, approx=opts.approx, rehash=opts.rehash
    )


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
    progress: Callable[[dict[str, Any]], None] | None
    tag: str | None = None
    tag_budget: str | int | None = None
    scratch: str | None = None
    rehash: bool = False


def _with_validation(loaded: LoadedConfig, validation: Validation | None) -> LoadedConfig:
    if validation is None:
        return loaded
    return dataclasses.replace(loaded, workflow=holdout_workflow(loaded.workflow, validation))


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
        opts.progress({"event": "retrain", "drop": {k: sorted(v) for k, v in drop.items()}})
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


def _execute_replanning(
    session: Session, opts: _RunOptions, lease_id: str
) -> tuple[list[NodeDecision], dict[str, Any], Any, list[str]]:
    """Plan and execute; when loaded entries fail verification or vanish, plan again.

    The engine verifies every entry the plan loads before any work; an entry that
    fails (or goes missing mid-run) counts as not stored from then on, so the next plan
    recomputes it and what depends on it, within this run. Returns the decisions and
    manifests of the plan that ran, the engine's result and notes on what was replanned.
    """
    from helix_tf.engine.execute import EngineOptions, StoreEntriesLost, execute_plan
    from helix_tf.reuse.materialize import MaterializationPolicy
    from helix_tf.reuse.tagged import TagQuota

    compiled, md = session.compiled, session.metadata
    metric_ops = {
        n.name: list(session.config.workflow.declaration(n.name).refs.get("metrics") or [])
        for n in compiled.nodes
        if n.role == "evaluate"
    }
    lost: set[str] = set()
    notes: list[str] = []
    for attempt in range(_REPLANS + 1):
        decisions, manifests, costs = _plan(session, exclude=frozenset(lost))
        states = {d.name: d.state for d in decisions}
        if opts.progress:
            opts.progress({"event": "plan", "decisions": [d.to_dict() for d in decisions]})
        policy = MaterializationPolicy(
            policy=opts.materialize,
            load_cost=costs.load_cost,
            ancestors=_ancestors(compiled),
            history_compute={k: v.compute_seconds for k, v in costs.history.items()},
            changes=md.change_counts(compiled.name),
            budget=parse_budget(opts.budget),
            store=session.store,
            protected={n.fingerprint for n in compiled.nodes if states[n.name] != "prune"},
            lease_id=lease_id,
            quota=TagQuota(tag=opts.tag, limit=parse_budget(opts.tag_budget))
            if opts.tag
            else None,
        )
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
        return decisions, manifests, engine_result, notes
    raise AssertionError("unreachable")  # pragma: no cover


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
            killed = [
                int(info.run["run_id"])
                for info in report.dead_runs
                if info.run.get("run_id") is not None
                and info.run.get("metadata") == session.metadata.url
            ]
            session.metadata.mark_killed(killed)
    except Exception as exc:  # reclaiming is housekeeping: it never fails a run
        log.debug("could not reclaim leftovers in %s: %s", store.url, exc)
    return lease


def _compare(
    md: Any, compiled: CompiledWorkflow, version: int, run_id: int, approx: bool, engine: Any
) -> Any:
    """This run against the history; a comparison that fails never fails the run."""
    from helix_tf.history import compare_with_history

    try:
        return compare_with_history(
            md,
            compiled.name,
            version=version,
            run_id=run_id,
            approx=approx,
            metrics=engine.metrics,
            dag=compiled.to_dict(),
        )
    except Exception:
        log.warning("could not compare run %s with the history", run_id, exc_info=True)
        return None


def _run_once(
    loaded: LoadedConfig, opts: _RunOptions, *, need_models: bool = False
) -> tuple[RunResult, dict[str, dict[str, int]]]:
    """One run of a loaded config; also returns each learner's zero-weight features.

    ``need_models``: every train node must end up computed or loaded (its model's
    facts are needed) even where the plan would prune it.
    """
    t_start = time.perf_counter()
    approx, materialize = opts.approx, opts.materialize
    session = _open(
        loaded, store=opts.store, metadata=opts.metadata, approx=approx, rehash=opts.rehash
    )
    if need_models:
        session = _with_models_needed(session, opts)
    # An approximation of stored exact results, or one that would save almost nothing,
    # would be slower (or no faster) and worse: the session is the exact workflow.
    exact_instead = session.exact_instead
    if exact_instead:
        approx = None
    compiled = session.compiled
    md = session.metadata
    run_id = None
    lease = _start_lease(session, opts.scratch)
    try:
        for attempt in range(2):
            try:
                version = md.record_version(
                    compiled.name, str(session.config.path), compiled.to_dict(), compiled.digest
                )
                run_id = md.start_run(
                    compiled.name,
                    version,
                    approx=approx is not None,
                    policy=materialize,
                    store_url=session.store_url,
                    params={
                        **session.config.overrides,
                        **({TAG_KEY: opts.tag} if opts.tag else {}),
                    },
                )
                break
            except StoreError as exc:
                if attempt or not _is_write_failure(exc):
                    raise
                md = session.metadata = _metadata_in_memory(md.url, exc)
        lease.update(run_id=run_id, metadata=md.url)
        decisions, manifests, engine_result, replanned = _execute_replanning(
            session, opts, lease.id
        )
        from helix_tf.reuse.metadata import NodeRecord
        from helix_tf.views._stored import RunReader

        results = []
        records = []
        notes = [*session.config.notes, *replanned]
        facts: dict[str, dict[str, int]] = {}
        for d in decisions:
            m = engine_result.measures[d.name]
            if d.kind == "train":
                stored = manifests.get(d.name)
                known = m.meta if m.meta and "zero" in m.meta else stored.meta if stored else {}
                facts[d.name] = dict(known.get("zero") or {})
            pruned = m.meta.get("pruned_features") if m.meta else None
            if pruned:
                d = dataclasses.replace(
                    d, reason=f"{d.reason}; {_pruned_phrase(pruned, d.name, compiled)}"
                )
            if m.meta and m.meta.get("weights") and d.state == "compute":
                notes.append(_sparsity_note(d.name, m.meta))
            if m.meta and m.meta.get("skipped_rows"):
                notes.append(
                    f"{d.name}: skipped {m.meta['skipped_rows']:,} malformed row(s) "
                    "(on_bad_row='skip'; the log names the first ones)"
                )
            seconds = m.compute_seconds + m.load_seconds + m.write_seconds + m.other_seconds
            results.append(
                NodeResult(
                    name=d.name,
                    kind=d.kind,
                    state=d.state,
                    seconds=seconds,
                    rows=m.rows,
                    bytes=m.bytes,
                    materialized=m.materialized or d.state == "load",
                    reason=d.reason,
                    fingerprint=d.fingerprint,
                    compute_seconds=m.compute_seconds,
                    load_seconds=m.load_seconds,
                    write_seconds=m.write_seconds,
                    read_seconds=m.read_seconds,
                )
            )
            records.append(
                NodeRecord(
                    name=d.name,
                    kind=d.kind,
                    fingerprint=d.fingerprint,
                    state=d.state,
                    compute_seconds=m.compute_seconds,
                    load_seconds=m.load_seconds,
                    write_seconds=m.write_seconds,
                    rows=m.rows,
                    bytes=m.bytes,
                    materialized=m.materialized,
                    reason=d.reason,
                )
            )
        wall = time.perf_counter() - t_start
        try:
            md.record_nodes(run_id, records)
            md.finish_run(
                run_id,
                status="ok",
                wall_seconds=wall,
                metrics=engine_result.metrics,
                intervals=engine_result.intervals or None,
            )
        except StoreError as exc:
            # The work is done: a disk too full for the history does not undo it.
            if not _is_write_failure(exc):
                raise
            log.warning("run %d is not recorded in full: %s", run_id, exc)
        result = RunResult(
            workflow=compiled.name,
            version=version,
            run_id=run_id,
            approx=approx is not None,
            metrics=engine_result.metrics,
            intervals=engine_result.intervals,
            nodes=tuple(results),
            wall_seconds=wall,
            notes=(*notes, session.exact_note) if exact_instead else tuple(notes),
            store_url=session.store_url,
            reader=RunReader(session.store_url, engine_result.values),
            comparison=_compare(md, compiled, version, run_id, approx is not None, engine_result),
        )
        return result, facts
    except HelixError as exc:
        if run_id is not None:
            md.finish_run(
                run_id,
                status="failed",
                wall_seconds=time.perf_counter() - t_start,
                metrics={},
                error=str(exc),
            )
        raise
    finally:
        lease.close()
        session.close()
