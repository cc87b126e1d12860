"""Execute a reuse plan: one fused Beam pipeline for preprocessing, Keras for
training and inference, numpy for evaluation; materialize as nodes finish.

The engine never decides *what* to run: it receives a state per node
(compute / load / prune) from the planner and a materialization policy, and
reports what it measured so the cost model learns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import numpy as np

from helix_tf.compiler.graph import CompiledNode, CompiledWorkflow
from helix_tf.engine import tables
from helix_tf.engine._learning import _LearningSteps
from helix_tf.engine._support import (
    VALUE_NAMES,
    _Artifact,
    _folder_bytes,
    _unwrap_runner_error,
)
from helix_tf.engine.batch_compute import PreNode
from helix_tf.errors import DataError, ExecutionError, HelixError, StoreError
from helix_tf.reuse.store import ArtifactStore, Manifest, is_write_failure
from helix_tf.types import BAG, CATEGORICAL, LABEL

__all__ = ["EngineOptions", "NodeMeasure", "StoreEntriesLost", "execute_plan"]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """How to run: Beam runner and options, batch size, progress sink."""

    runner: str = "direct"
    pipeline_args: tuple[str, ...] = ()
    batch_rows: int = 50_000
    prune_zero_weight: bool = True
    progress: Progress | None = None
    #: This run's scratch folder (created if missing, removed at the end): Beam's
    #: side files, and every output once the store cannot take more data. Default: a
    #: fresh folder in the system's temporary folder.
    scratch: str | None = None


@dataclasses.dataclass(slots=True, kw_only=True)
class NodeMeasure:
    """What the engine measured for one node."""

    name: str
    state: str
    compute_seconds: float = 0.0
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    other_seconds: float = 0.0  # e.g. deserialising a loaded model
    #: Of ``compute_seconds``, the part spent reading the node's inputs from files
    #: (examples, source columns, stored feature batches): reported, never planned on.
    read_seconds: float = 0.0
    rows: int | None = None
    bytes: int | None = None
    materialized: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


class StoreEntriesLost(ExecutionError):
    """Stored entries the plan loads failed verification or vanished: plan again.

    ``nodes`` names them; the store no longer offers them (a corrupt entry is removed
    when it fails verification), so a new plan recomputes them and what depends on them.
    """

    def __init__(self, nodes: list[str], problem: str) -> None:
        self.nodes = sorted(nodes)
        super().__init__(
            f"stored results of {', '.join(self.nodes)} {problem}; they are recomputed "
            "when this run plans again"
        )


class _PipelineFailed(Exception):
    """The preprocessing pipeline raised ``raw``; ``error`` is what to report."""

    def __init__(self, raw: BaseException, error: BaseException) -> None:
        super().__init__(str(error))
        self.raw, self.error = raw, error

    def reraise(self) -> NoReturn:
        if self.error is self.raw:
            raise self.raw
        raise self.error from self.raw


class Materializer:
    """Decides, right after a node finishes, whether to keep its staged output."""

    def release(self, fingerprint: str) -> None:
        """The run no longer reads this stored entry (it may be evicted)."""

    def decide(
        self, node: CompiledNode, measure: NodeMeasure, measures: Mapping[str, NodeMeasure]
    ) -> bool:
        raise NotImplementedError


class _Run(_LearningSteps):
    """One run of a plan: artifacts, preprocessing, and the learning steps of
    :class:`~helix_tf.engine._learning._LearningSteps` (train, predict, evaluate)."""

    def __init__(
        self,
        compiled: CompiledWorkflow,
        states: Mapping[str, str],
        store: ArtifactStore,
        manifests: Mapping[str, Manifest],
        materializer: Materializer,
        options: EngineOptions,
        metric_ops: Mapping[str, list[Any]],
    ) -> None:
        self.c = compiled
        self.metric_ops = dict(metric_ops)
        self.states = dict(states)
        self.store = store
        self.manifests = dict(manifests)
        self.materializer = materializer
        self.opt = options
        self.nodes = compiled.by_name
        self.art: dict[str, _Artifact] = {}
        self.measures: dict[str, NodeMeasure] = {
            n.name: NodeMeasure(name=n.name, state=states[n.name]) for n in compiled.nodes
        }
        self.values: dict[str, Any] = {}  # in-memory results (models, predictions, metrics)
        # Consumers still to compute, per node: when none is left, its entry is evictable.
        self.pending: dict[str, int] = {n.name: 0 for n in compiled.nodes}
        for n in compiled.nodes:
            if states[n.name] == "compute":
                for i in n.inputs:
                    self.pending[i] += 1
        if options.scratch:
            os.makedirs(options.scratch, exist_ok=True)
            self.scratch = options.scratch
        else:
            self.scratch = tempfile.mkdtemp(prefix="helix-run-")
        # Beam's side files: beside the run on a local store; in the store (reachable by
        # remote workers) otherwise, named by the run's lease so a dead run's are reclaimed.
        owner = store.lease.id if store.lease is not None else os.urandom(8).hex()
        self.store_scratch = (
            os.path.join(self.scratch, "beam")
            if store.is_local
            else f"{store.url.rstrip('/')}/staging/run-{owner}"
        )
        #: Why this run stopped writing to the store (None: it still does).
        self.store_failure: str | None = None

    def node_done(self, name: str) -> None:
        """``name`` finished computing: inputs nothing else will read may be evicted."""
        for i in self.nodes[name].inputs:
            self.pending[i] -= 1
            if self.pending[i] == 0 and not self.nodes[i].output:
                self.materializer.release(self.nodes[i].fingerprint)

    def emit(self, **event: Any) -> None:
        if self.opt.progress is not None:
            self.opt.progress(event)

    def emit_computed(self, name: str, rows: int | None) -> None:
        """Report a computed node with the time the run's node table shows for it.

        That is compute, load, write and other time (a TensorFlow import paid by
        the first training node); the part outside the computation is said apart.
        """
        m = self.measures[name]
        self.emit(
            event="node",
            node=name,
            state="compute",
            seconds=m.compute_seconds + m.load_seconds + m.write_seconds + m.other_seconds,
            other_seconds=m.other_seconds,
            rows=rows,
        )

    # ------------------------------------------------------------------ artifacts

    def load(self, name: str) -> _Artifact:
        """Resolve a loaded node's artifact (verified) and time it."""
        if name in self.art:
            return self.art[name]
        m = self.manifests[name]
        t0 = time.perf_counter()
        local = self.store.open_local(m)
        if local is None:
            raise StoreEntriesLost([name], "failed verification or vanished while loading")
        remote_root = self.store.data_url(m)
        art = _Artifact(root=remote_root, local=local, meta=dict(m.meta), manifest=m)
        meas = self.measures[name]
        meas.load_seconds += time.perf_counter() - t0
        meas.rows, meas.bytes = m.rows, m.bytes
        self.art[name] = art
        return art

    def verify_loads(self) -> None:
        """Open (and verify) every entry the plan loads before any work is done."""
        lost = []
        for node in self.c.nodes:
            if self.states[node.name] == "load":
                try:
                    self.load(node.name)
                except StoreEntriesLost:
                    lost.append(node.name)
        if lost:
            raise StoreEntriesLost(lost, "failed verification or vanished")

    def lost_entries(self) -> list[str]:
        """Loaded (or to-be-loaded) entries that are no longer in the store as planned."""
        lost = []
        for name, m in self.manifests.items():
            if self.states.get(name) == "compute":
                continue
            try:
                now = self.store.lookup(m.fingerprint)
            except StoreError:
                continue
            if now is None or now.token != m.token:
                lost.append(name)
        return lost

    def stage(self, name: str) -> _Artifact:
        """Where a computed node writes its output: store staging, or scratch if it cannot."""
        node = self.nodes[name]
        if self.store_failure is None:
            try:
                staging = self.store.begin(node.fingerprint)
            except (StoreError, OSError) as exc:
                self.stop_store_writes(exc)
            else:
                art = _Artifact(
                    root=staging.url, local=staging.local_path, meta={}, staging=staging
                )
                self.art[name] = art
                return art
        folder = os.path.join(self.scratch, "out", f"{name}.{node.fingerprint}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        art = _Artifact(root=folder, local=folder, meta={})
        self.art[name] = art
        return art

    def write_output(self, name: str, write: Callable[[_Artifact], None]) -> _Artifact:
        """Stage ``name`` and ``write`` its files; if the store cannot take them, use scratch."""
        art = self.stage(name)
        try:
            write(art)
        except Exception as exc:
            if art.staging is None or not is_write_failure(exc):
                raise
            self.stop_store_writes(exc)
            self.unstage(name)
            art = self.stage(name)
            write(art)
        return art

    def unstage(self, name: str) -> None:
        art = self.art.pop(name, None)
        if art is not None and art.staging is not None:
            try:
                self.store.abort(art.staging)
            except Exception as exc:
                log.debug("abort failed: %s", exc)

    def stop_store_writes(self, exc: BaseException) -> None:
        """The store cannot take more data: this run goes on without materializing."""
        if self.store_failure is not None:
            log.debug("store write failed again: %s", exc)
            return
        self.store_failure = f"{type(exc).__name__}: {exc}"
        log.warning(
            "the artifact store %s cannot take more data (%s); this run goes on without "
            "materializing, its outputs in %s",
            self.store.url,
            self.store_failure,
            self.scratch,
        )

    def finish(self, name: str, *, kind: str, rows: int | None, meta: dict[str, Any]) -> None:
        """A computed node is done: decide whether to keep its output in the store."""
        node = self.nodes[name]
        meas = self.measures[name]
        art = self.art[name]
        art.meta = meta
        meas.rows = rows
        meas.meta = {**meas.meta, **meta}
        if art.local is not None and os.path.isdir(art.local):
            meas.bytes = _folder_bytes(art.local)
        if art.staging is None or self.store_failure is not None:
            return  # not materialized: its files are read where they are
        keep = False
        try:
            keep = self.materializer.decide(node, meas, self.measures)
        except Exception:
            log.exception("materialization policy failed for %s; not materializing", name)
        if not keep:
            return  # aborted at the end of the run (the files are still needed until then)
        recompute = getattr(self.materializer, "recompute_cost", None)
        if recompute is not None:
            meta = {**meta, "recompute_seconds": round(float(recompute(name, self.measures)), 6)}
        meta = {**meta, **getattr(self.materializer, "entry_meta", dict)()}  # a tagged run's
        t0 = time.perf_counter()
        try:
            manifest = self.store.commit(
                art.staging,
                kind=kind,
                rows=rows,
                meta=meta,
                compute_seconds=meas.compute_seconds,
            )
            meas.materialized = True
            meas.write_seconds += time.perf_counter() - t0
            if manifest is not None:
                art.manifest = manifest
                art.root = self.store.data_url(manifest)
                art.local = self.store.open_local(manifest, verify=False)
                art.staging = None
            else:
                # Someone else committed the same fingerprint meanwhile: use theirs.
                existing = self.store.lookup(node.fingerprint)
                if existing is not None:
                    art.manifest = existing
                    art.root = self.store.data_url(existing)
                    art.local = self.store.open_local(existing, verify=False)
                    art.staging = None
        except (StoreError, OSError) as exc:
            meas.materialized = False
            self.stop_store_writes(exc)

    def cleanup(self) -> None:
        for art in self.art.values():
            if art.staging is not None:
                try:
                    self.store.abort(art.staging)
                except Exception as exc:
                    log.debug("abort failed: %s", exc)
        shutil.rmtree(self.scratch, ignore_errors=True)
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.store_scratch)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        except Exception as exc:
            log.debug("scratch cleanup failed: %s", exc)

    # ------------------------------------------------------------------ preprocessing

    def source_of(self, name: str) -> str | None:
        node = self.nodes[name]
        if node.role == "source":
            return name
        if node.role == "feature":
            src = node.extra.get("source")
            if src:
                return src
            for i in node.inputs:
                s = self.source_of(i)
                if s:
                    return s
        if node.role == "examples":
            return node.inputs[0]
        return None

    def preprocess(self) -> None:
        pre_roles = ("source", "feature", "examples")
        computed = [
            n.name for n in self.c.nodes if n.role in pre_roles and self.states[n.name] == "compute"
        ]
        if not computed:
            return
        # Everything a computed preprocessing node reads must be at hand: computed or loaded.
        involved: set[str] = set(computed)
        for name in computed:
            for i in self.nodes[name].inputs:
                involved.add(i)
        for name in list(involved):
            src = self.source_of(name)
            if src:
                involved.add(src)
        pre, known_batches = self._pre_nodes(involved)
        order = [n.name for n in self.c.nodes if n.name in pre]
        here = self.c.approx is not None and self.opt.runner == "direct"
        self.emit(
            event="stage",
            stage="preprocess",
            nodes=computed,
            runner="in-process" if here else self.opt.runner,
        )
        t0 = time.perf_counter()
        try:
            result = self._pipeline(pre, order, known_batches, here=here)
        except _PipelineFailed as failed:
            staged = any(self.art[n].staging is not None for n in computed)
            if not (staged and is_write_failure(failed.raw)):
                failed.reraise()
            # The store filled up (or turned read-only) under the pipeline: once more,
            # with every output in the scratch folder.
            self.stop_store_writes(failed.raw)
            for name in computed:
                self.unstage(name)
            pre, known_batches = self._pre_nodes(involved)
            try:
                result = self._pipeline(pre, order, known_batches, here=here)
            except _PipelineFailed as again:
                again.reraise()
        wall = time.perf_counter() - t0
        measured_total = sum(result.seconds.get(n, 0.0) for n in computed) or 1e-9
        overhead = max(wall - measured_total - sum(result.write_seconds.values()), 0.0)
        # Reading the batches of inputs that are not computed here (loaded features or
        # source) is part of the overhead shared out below; so is its read time.
        loaded_reads = sum(s for n, s in result.read_seconds.items() if n not in computed)
        for name in computed:  # the pipeline is done: everything it read is consumed
            self.node_done(name)
        for name in computed:
            node = self.nodes[name]
            meas = self.measures[name]
            # Pipeline launch and runner overhead are shared out by measured work.
            share = result.seconds.get(name, 0.0) / measured_total
            meas.compute_seconds = result.seconds.get(name, 0.0) + overhead * share
            meas.read_seconds = min(
                result.read_seconds.get(name, 0.0) + min(loaded_reads, overhead) * share,
                meas.compute_seconds,
            )
            meas.write_seconds = result.write_seconds.get(name, 0.0)
            meta: dict[str, Any] = {}
            kind = "table"
            if node.role == "source":
                meta = {"columns": node.op.schema(), "splits": list(node.op.splits())}  # type: ignore[union-attr]
                if result.skipped.get(name):
                    meas.meta["skipped_rows"] = result.skipped[name]
            elif node.role == "feature":
                state = result.states.get(name)
                meta = {
                    "value_kind": node.value_kind,
                    "cardinality": node.op.cardinality(state),  # type: ignore[union-attr]
                }
                kind = "feature"
                if state is not None and pre[name].write and self.art[name].local:
                    self._write_beside(name, "state.json", state, sort_keys=False)
                self.values[f"state:{name}"] = state
                self.values[f"cardinality:{name}"] = meta["cardinality"]
            elif node.role == "examples":
                meta = {"features": self._feature_specs(name)}
                label = node.op.describe(result.states.get(name))  # type: ignore[union-attr]
                if label["task"] != "binary":  # binary examples are described as before
                    # What only training reads (a transform) is not a fact of the examples.
                    meta["label"] = {
                        k: v
                        for k, v in label.items()
                        if k not in node.op.TRAINING_PARAMS  # type: ignore[union-attr]
                    }
                kind = "examples"
                if pre[name].write and self.art[name].local:
                    self._write_value_names(name)
            if pre[name].write:
                self.finish(name, kind=kind, rows=result.rows.get(name), meta=meta)
            else:
                meas.rows = result.rows.get(name)
            self.emit_computed(name, result.rows.get(name))
        for name in computed:  # before any training: labels that cannot be right
            if self.nodes[name].role == "examples":
                self._check_positive_label(name)

    def _check_positive_label(self, name: str) -> None:
        """Fail when the label's ``positive=`` value occurs in no training row.

        Every label would be 0: training "succeeds" with accuracy 1.0 and AUC nan.
        The message lists the values the label column does hold.
        """
        label = self.nodes[name].op
        positive = getattr(label, "positive", None)
        art = self.art.get(name)
        if positive is None or art is None or art.local is None:
            return
        table = tables.read_split(art.local, "train", [LABEL])
        if table is None or table.num_rows == 0:
            return
        if np.asarray(table.column(LABEL)).any():
            return
        column = label.column  # type: ignore[union-attr]
        found = ""
        source = self.art.get(self.nodes[name].inputs[0])
        raw = (
            tables.read_split(source.local, "train", [column]) if source and source.local else None
        )
        if raw is not None:
            counts = raw.column(column).value_counts().to_pylist()
            counts.sort(key=lambda c: -c["counts"])
            shown = ", ".join(f"{c['values']!r} ({c['counts']:,} rows)" for c in counts[:10])
            more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
            found = f"; the values found are {shown}{more}"
        raise DataError(
            f"no row of the training split has label column {column!r} equal to "
            f"positive={positive!r}{found}. Pass one of those values as "
            f"F.Label({column!r}, positive=...)",
            node=name,
        )

    def _write_beside(self, name: str, filename: str, data: Any, *, sort_keys: bool) -> None:
        """Write JSON beside a computed node's files (a feature's state, value names)."""
        art = self.art[name]
        try:
            with open(os.path.join(art.local or "", filename), "w") as f:
                json.dump(data, f, sort_keys=sort_keys)
        except OSError as exc:
            if art.staging is None or not is_write_failure(exc):
                raise
            self.stop_store_writes(exc)  # the staged columns stay readable; not committed

    def _pre_nodes(
        self, involved: set[str]
    ) -> tuple[dict[str, PreNode], dict[str, list[tuple[str, int, int]]]]:
        """The pipeline's view of each involved node: loaded, or staged for writing."""
        pre: dict[str, PreNode] = {}
        known_batches: dict[str, list[tuple[str, int, int]]] = {}
        for node in self.c.nodes:
            if node.name not in involved:
                continue
            state = self.states[node.name]
            if state == "prune":
                # A source that is pruned but whose batches are needed: load it if stored.
                if node.name in self.manifests:
                    state = "load"
                else:
                    raise ExecutionError(
                        "needed by a computed node but neither computed nor loadable",
                        node=node.name,
                    )
            art = self.load(node.name) if state == "load" else self.stage(node.name)
            src = self.source_of(node.name)
            columns = (
                self.nodes[src].op.schema() if src and self.nodes[src].op is not None else {}  # type: ignore[union-attr]
            )
            pre[node.name] = PreNode(
                name=node.name,
                role=node.role,
                op=node.op,
                value_kind=node.value_kind,
                source=src if node.role != "source" else None,
                columns=columns,
                features=tuple(node.extra.get("features", ())),
                state=state,
                root=art.root,
                write=state == "compute"
                and (node.role in ("source", "examples") or self._keeps(node.name)),
                sample=node.extra.get("sample") if node.role == "source" else None,
            )
            if node.role == "source" and state == "load":
                known_batches[node.name] = tables.batch_rows(art.local or "")
        return pre, known_batches

    def _pipeline(
        self,
        pre: dict[str, PreNode],
        order: list[str],
        known_batches: dict[str, list[tuple[str, int, int]]],
        *,
        here: bool,
    ) -> Any:
        """Preprocess ``pre``: in this process (``here``) or in the fused Beam pipeline.

        Raises :class:`_PipelineFailed` with the error as raised and the one to report
        (a runner's wrapping removed).
        """
        if here:
            # An approximate run's preprocessing is a sample (or a few changed features):
            # launching a pipeline, and importing Beam, would cost more than the work. The
            # same steps run here in the same order; exact runs always use the pipeline.
            from helix_tf.engine.preprocess_steps import run_preprocessing_here

            try:
                return run_preprocessing_here(
                    nodes=pre,
                    order=order,
                    known_batches=known_batches,
                    batch_rows=self.opt.batch_rows,
                )
            except Exception as exc:
                raise _PipelineFailed(exc, exc) from exc
        from helix_tf.engine.beam_pipeline import run_preprocessing
        from helix_tf.engine.runners import pipeline_factory

        try:
            return run_preprocessing(
                nodes=pre,
                order=order,
                known_batches=known_batches,
                batch_rows=self.opt.batch_rows,
                scratch=self.store_scratch,
                make_pipeline=pipeline_factory(self.opt.runner, self.opt.pipeline_args),
                distribute=self.opt.runner != "direct",
            )
        except Exception as exc:
            raise _PipelineFailed(exc, _unwrap_runner_error(exc)) from exc

    def _keeps(self, name: str) -> bool:
        """Whether a computed intermediate feature is worth writing at all under the policy."""
        return getattr(self.materializer, "writes_intermediates", True)

    def _write_value_names(self, examples: str) -> None:
        """Beside the examples: what each index of their categorical/bag features stands for."""
        names: dict[str, list[str]] = {}
        for f in self.nodes[examples].extra["features"]:
            op = self.nodes[f].op
            if f"state:{f}" in self.values:
                state = self.values[f"state:{f}"]
            else:
                path = os.path.join(self.load(f).local or "", "state.json")
                if not os.path.exists(path):
                    continue
                with open(path) as fh:
                    state = json.load(fh)
            found = op.value_names(state) if op is not None and state is not None else None  # type: ignore[union-attr]
            if found is not None:
                names[f] = found
        self._write_beside(examples, VALUE_NAMES, names, sort_keys=True)

    def _feature_specs(self, examples: str) -> list[dict[str, Any]]:
        specs = []
        for f in self.nodes[examples].extra["features"]:
            fnode = self.nodes[f]
            if f"cardinality:{f}" in self.values:
                card = self.values[f"cardinality:{f}"]
            else:
                card = self.load(f).meta.get("cardinality")
            spec: dict[str, Any] = {"name": f, "kind": fnode.value_kind}
            if fnode.value_kind in (CATEGORICAL, BAG):
                spec["size"] = int(card)
            specs.append(spec)
        return specs


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineResult:
    """Measurements per node and the outputs' metrics."""

    measures: dict[str, NodeMeasure]
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    #: Results the run holds in memory, by node: models (Keras), predictions (Arrow
    #: tables), metrics and explanations; handed to Python callers of ``run``.
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


def execute_plan(
    compiled: CompiledWorkflow,
    states: Mapping[str, str],
    *,
    store: ArtifactStore,
    manifests: Mapping[str, Manifest],
    materializer: Materializer,
    metric_ops: Mapping[str, list[Any]],
    options: EngineOptions | None = None,
) -> EngineResult:
    """Run ``compiled`` with one state per node; returns what was measured."""
    run = _Run(
        compiled, states, store, manifests, materializer, options or EngineOptions(), metric_ops
    )
    try:
        return _execute(run)
    except StoreEntriesLost:
        raise
    except Exception as exc:
        # A failure while entries it loads went missing (deleted or replaced under the
        # run): say which, so the caller plans again and recomputes them.
        lost = run.lost_entries()
        if lost:
            raise StoreEntriesLost(lost, f"vanished during the run ({exc})") from exc
        raise
    finally:
        run.cleanup()


def _execute(run: _Run) -> EngineResult:
    """Verify what the plan loads, preprocess, run the learning steps, read the metrics."""
    compiled = run.c
    run.verify_loads()
    run.preprocess()
    for node in compiled.nodes:
        state = run.states[node.name]
        if state != "compute" or node.role in ("source", "feature", "examples"):
            continue
        try:
            if node.role == "train":
                run.train(node)
            elif node.role == "predict":
                run.predict(node)
            elif node.role == "evaluate":
                run.evaluate(node)
            elif node.role == "explain":
                run.explain(node)
        except ExecutionError as exc:
            if exc.node is None:
                raise ExecutionError(str(exc), node=node.name) from exc
            raise
        except HelixError:
            raise
        except Exception as exc:
            raise ExecutionError(f"{type(exc).__name__}: {exc}", node=node.name) from exc
    metrics: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    # The first evaluate output's metrics keep their own names; those of any later
    # one carry its node name ("holdout/auc"), so adding an evaluation never
    # renames the keys of the one before it (and its history stays one series).
    evaluated = [o for o in compiled.outputs if run.nodes[o].role == "evaluate"]
    for out in compiled.outputs:
        node = run.nodes[out]
        if node.role != "evaluate":
            if run.states[out] == "load":
                run.load(out)
            continue
        payload = run.metrics_of(out)
        prefix = "" if out == evaluated[0] else f"{out}/"
        for k, v in payload["metrics"].items():
            metrics[prefix + k] = v
        for k, v in payload.get("intervals", {}).items():
            intervals[prefix + k] = (float(v[0]), float(v[1]))
    held = {n.name: run.values[n.name] for n in compiled.nodes if n.name in run.values}
    return EngineResult(measures=run.measures, metrics=metrics, intervals=intervals, values=held)
