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
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from helix_tf.compiler.graph import CompiledNode, CompiledWorkflow
from helix_tf.engine import tables
from helix_tf.engine.batch_compute import PreNode
from helix_tf.errors import DataError, ExecutionError, HelixError, StoreError
from helix_tf.reuse.store import ArtifactStore, Manifest, Staging
from helix_tf.types import BAG, CATEGORICAL, LABEL, ROW_ID, SCORE

__all__ = ["EngineOptions", "NodeMeasure", "execute_plan"]

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


@dataclasses.dataclass(slots=True, kw_only=True)
class NodeMeasure:
    """What the engine measured for one node."""

    name: str
    state: str
    compute_seconds: float = 0.0
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    other_seconds: float = 0.0  # e.g. deserialising a loaded model
    rows: int | None = None
    bytes: int | None = None
    materialized: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


class Materializer:
    """Decides, right after a node finishes, whether to keep its staged output."""

    def decide(
        self, node: CompiledNode, measure: NodeMeasure, measures: Mapping[str, NodeMeasure]
    ) -> bool:
        raise NotImplementedError


@dataclasses.dataclass(slots=True)
class _Artifact:
    """A node's output during a run: where its files are, and its manifest meta."""

    root: str  # folder URL (staging or stored data dir) readable by Beam workers
    local: str | None  # local folder, when one exists
    meta: dict[str, Any]
    staging: Staging | None = None
    manifest: Manifest | None = None


class _Run:
    def __init__(
        self,
        compiled: CompiledWorkflow,
        states: Mapping[str, str],
        store: ArtifactStore,
        manifests: Mapping[str, Manifest],
        materializer: Materializer,
        options: EngineOptions,
    ) -> None:
        self.c = compiled
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
        self.scratch = tempfile.mkdtemp(prefix="helix-run-")
        self.store_scratch = f"{store.url.rstrip('/')}/staging/run-{uuid.uuid4().hex[:12]}"

    def emit(self, **event: Any) -> None:
        if self.opt.progress is not None:
            self.opt.progress(event)

    # ------------------------------------------------------------------ artifacts

    def load(self, name: str) -> _Artifact:
        """Resolve a loaded node's artifact (verified) and time it."""
        if name in self.art:
            return self.art[name]
        m = self.manifests[name]
        t0 = time.perf_counter()
        local = self.store.open_local(m)
        if local is None:
            raise ExecutionError(
                "its stored artifact failed verification while loading; run again "
                "(the plan will recompute it)",
                node=name,
            )
        remote_root = _data_url(self.store, m)
        art = _Artifact(root=remote_root, local=local, meta=dict(m.meta), manifest=m)
        meas = self.measures[name]
        meas.load_seconds += time.perf_counter() - t0
        meas.rows, meas.bytes = m.rows, m.bytes
        self.art[name] = art
        return art

    def stage(self, name: str) -> _Artifact:
        node = self.nodes[name]
        staging = self.store.begin(node.fingerprint)
        art = _Artifact(root=staging.url, local=staging.local_path, meta={}, staging=staging)
        self.art[name] = art
        return art

    def finish(self, name: str, *, kind: str, rows: int | None, meta: dict[str, Any]) -> None:
        """A computed node is done: decide whether to keep its output in the store."""
        node = self.nodes[name]
        meas = self.measures[name]
        art = self.art[name]
        art.meta = meta
        meas.rows = rows
        meas.meta = {**meas.meta, **meta}
        if art.staging is None:
            return
        if art.local is not None and os.path.isdir(art.local):
            meas.bytes = _folder_bytes(art.local)
        keep = False
        try:
            keep = self.materializer.decide(node, meas, self.measures)
        except Exception:
            log.exception("materialization policy failed for %s; not materializing", name)
        if not keep:
            return  # aborted at the end of the run (the files are still needed until then)
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
                art.root = _data_url(self.store, manifest)
                art.local = self.store.open_local(manifest, verify=False)
                art.staging = None
            else:
                # Someone else committed the same fingerprint meanwhile: use theirs.
                existing = self.store.lookup(node.fingerprint)
                if existing is not None:
                    art.manifest = existing
                    art.root = _data_url(self.store, existing)
                    art.local = self.store.open_local(existing, verify=False)
                    art.staging = None
        except (StoreError, OSError) as exc:
            meas.materialized = False
            log.warning("could not materialize %s (%s); the run goes on", name, exc)

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
        order = [n.name for n in self.c.nodes if n.name in pre]
        self.emit(event="stage", stage="preprocess", nodes=computed, runner=self.opt.runner)
        from helix_tf.engine.beam_pipeline import run_preprocessing
        from helix_tf.engine.runners import pipeline_factory

        t0 = time.perf_counter()
        try:
            result = run_preprocessing(
                nodes=pre,
                order=order,
                known_batches=known_batches,
                batch_rows=self.opt.batch_rows,
                scratch=self.store_scratch,
                make_pipeline=pipeline_factory(self.opt.runner, self.opt.pipeline_args),
                distribute=self.opt.runner != "direct",
            )
        except Exception as exc:
            original = _unwrap_runner_error(exc)
            if original is exc:
                raise
            raise original from exc
        wall = time.perf_counter() - t0
        measured_total = sum(result.seconds.get(n, 0.0) for n in computed) or 1e-9
        overhead = max(wall - measured_total - sum(result.write_seconds.values()), 0.0)
        for name in computed:
            node = self.nodes[name]
            meas = self.measures[name]
            # Pipeline launch and runner overhead are shared out by measured work.
            share = result.seconds.get(name, 0.0) / measured_total
            meas.compute_seconds = result.seconds.get(name, 0.0) + overhead * share
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
                    with open(os.path.join(self.art[name].local, "state.json"), "w") as f:
                        json.dump(state, f)
                self.values[f"state:{name}"] = state
                self.values[f"cardinality:{name}"] = meta["cardinality"]
            elif node.role == "examples":
                meta = {"features": self._feature_specs(name)}
                kind = "examples"
            self.emit(
                event="node",
                node=name,
                state="compute",
                seconds=meas.compute_seconds,
                rows=result.rows.get(name),
            )
            if pre[name].write:
                self.finish(name, kind=kind, rows=result.rows.get(name), meta=meta)
            else:
                meas.rows = result.rows.get(name)
        # Row counts per batch of a computed source, so a later run that loads it knows them.
        for name in computed:
            if self.nodes[name].role == "source" and self.art[name].manifest is not None:
                pass

    def _keeps(self, name: str) -> bool:
        """Whether a computed intermediate feature is worth writing at all under the policy."""
        return getattr(self.materializer, "writes_intermediates", True)

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

    # ------------------------------------------------------------------ TF and reducers

    def examples_split(self, name: str, split: str, columns: list[str] | None = None) -> Any:
        art = self.art.get(name) or self.load(name)
        local = art.local
        if local is None:
            raise ExecutionError("its examples are not on local disk", node=name)
        table = tables.read_split(local, split, columns)
        if table is None:
            raise ExecutionError(f"the examples have no {split!r} split", node=name)
        return table, art.meta

    def train(self, node: CompiledNode) -> None:
        from helix_tf.components import keras_models

        ex = node.inputs[0]
        t_load = time.perf_counter()
        table, meta = self.examples_split(ex, "train")
        approx = node.extra.get("approx") or {}
        if approx.get("sample") is not None:
            from helix_tf.approx.sampling import keep_mask

            rows = table.column(ROW_ID).to_numpy()
            table = table.filter(keep_mask(rows, approx["sample"], approx["seed"]))
        features = meta["features"]
        x = keras_models.arrays_from_table(table, features)
        y = keras_models.labels_from_table(table)
        load_s = time.perf_counter() - t_load
        self.emit(event="stage", stage="train", node=node.name, rows=len(y))
        t0 = time.perf_counter()
        epochs = max(1, round(node.op.epochs * approx.get("epochs_scale", 1.0)))  # type: ignore[union-attr]
        model, stats = keras_models.train_model(
            node.op,  # type: ignore[arg-type]
            features,
            x,
            y,
            precision=approx.get("precision", "fp32"),
            epochs=epochs,
            on_epoch=lambda e, total, loss, secs: self.emit(
                event="epoch",
                node=node.name,
                epoch=e,
                epochs=total,
                loss=loss,
                eta=secs / e * (total - e),
            ),
        )
        facts = keras_models.zero_weight_features(model, node.op, features)  # type: ignore[arg-type]
        stats.update(facts)
        self.values[f"facts:{node.name}"] = facts
        meas = self.measures[node.name]
        meas.compute_seconds = time.perf_counter() - t0 + load_s
        art = self.stage(node.name)
        t1 = time.perf_counter()
        path = os.path.join(art.local or self.scratch, "model.keras")
        if art.local is None:
            path = os.path.join(self.scratch, f"{node.name}.keras")
        keras_models.save_model(model, path)
        if art.local is None and art.staging is not None:
            with open(path, "rb") as src, art.staging.open("model.keras", "wb") as dst:
                shutil.copyfileobj(src, dst)
        meas.write_seconds += time.perf_counter() - t1
        self.values[node.name] = model
        self.emit(
            event="node", node=node.name, state="compute", seconds=meas.compute_seconds, rows=len(y)
        )
        self.finish(node.name, kind="model", rows=len(y), meta={"features": features, **stats})

    def model(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        from helix_tf.components import keras_models

        art = self.load(name)
        t0 = time.perf_counter()
        model = keras_models.load_model(os.path.join(art.local or "", "model.keras"))
        # Deserialising (and importing TensorFlow) is not store read time: kept apart so
        # the store's fitted throughput stays a property of the store.
        self.measures[name].other_seconds += time.perf_counter() - t0
        self.values[name] = model
        return model

    def predict(self, node: CompiledNode) -> None:
        import pyarrow as pa

        from helix_tf.components import keras_models

        model_name, ex = node.inputs
        split = node.extra.get("split", "test")
        model = self.model(model_name)
        t0 = time.perf_counter()
        # Features whose learned weights are all zero contribute nothing: not read.
        facts = self.model_facts(model_name)
        zero = sorted(facts.get("zero", {})) if self.opt.prune_zero_weight else []
        art_ex = self.art.get(ex) or self.load(ex)
        keep = [ROW_ID, LABEL] + [
            c
            for f in art_ex.meta["features"]
            if f["name"] not in zero
            for c in keras_models.feature_columns(f)
        ]
        table, meta = self.examples_split(ex, split, keep)
        x = keras_models.arrays_from_table(table, meta["features"], zeros=zero)
        self.measures[node.name].meta["pruned_features"] = {z: facts["zero"][z] for z in zero}
        scores = keras_models.predict_scores(model, x)
        out = pa.table(
            {
                ROW_ID: table.column(ROW_ID),
                LABEL: table.column(LABEL),
                SCORE: pa.array(scores, pa.float64()),
            }
        )
        meas = self.measures[node.name]
        meas.compute_seconds = time.perf_counter() - t0
        art = self.stage(node.name)
        t1 = time.perf_counter()
        tables.write_batch(art.root, split, 0, out)
        meas.write_seconds += time.perf_counter() - t1
        self.values[node.name] = out
        self.emit(
            event="node",
            node=node.name,
            state="compute",
            seconds=meas.compute_seconds,
            rows=out.num_rows,
        )
        self.finish(node.name, kind="predictions", rows=out.num_rows, meta={"split": split})

    def model_facts(self, name: str) -> dict[str, Any]:
        """What training learned about the model (zero-weight features), trained or loaded."""
        if f"facts:{name}" in self.values:
            return self.values[f"facts:{name}"]
        art = self.art.get(name) or self.load(name)
        return {"zero": art.meta.get("zero", {})}

    def predictions(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        art = self.load(name)
        split = art.meta.get("split", "test")
        t0 = time.perf_counter()
        table = tables.read_split(art.local or "", split)
        self.measures[name].load_seconds += time.perf_counter() - t0
        self.values[name] = table
        return table

    def evaluate(self, node: CompiledNode) -> None:
        from helix_tf.components.metrics import Metric, compute_metrics

        preds = self.predictions(node.inputs[0])
        t0 = time.perf_counter()
        ops = [m for m in node.op_metrics] if hasattr(node, "op_metrics") else None
        metrics_ops: list[Metric] = ops or self.metric_ops[node.name]
        y_true = preds.column(LABEL).to_numpy().astype(np.int64)
        y_score = preds.column(SCORE).to_numpy().astype(np.float64)
        frame = None
        columns = sorted({c for m in metrics_ops for c in m.columns()})
        if columns:
            frame = self.raw_columns(node, preds, columns)
        values = compute_metrics(metrics_ops, y_true, y_score, frame)
        intervals = {}
        if self.c.approx:
            from helix_tf.components.metrics import bootstrap_metrics

            intervals = bootstrap_metrics(metrics_ops, y_true, y_score, frame)
        meas = self.measures[node.name]
        meas.compute_seconds = time.perf_counter() - t0
        art = self.stage(node.name)
        payload = {"metrics": values, "intervals": {k: list(v) for k, v in intervals.items()}}
        if art.staging is not None:
            with art.staging.open("metrics.json", "w") as f:
                f.write(json.dumps(payload, sort_keys=True))
        self.values[node.name] = payload
        self.emit(
            event="node",
            node=node.name,
            state="compute",
            seconds=meas.compute_seconds,
            rows=len(y_true),
        )
        self.finish(node.name, kind="metrics", rows=len(y_true), meta={})

    def raw_columns(self, node: CompiledNode, preds: Any, columns: list[str]) -> Any:
        src = node.extra.get("source")
        if not src:
            raise ExecutionError(
                f"metrics read columns {columns} but no source is known", node=node.name
            )
        art = self.art.get(src) or self.load(src)
        local = art.local
        if local is None:
            raise ExecutionError("the source table is not on local disk", node=node.name)
        import pandas as pd

        split = (
            self.art[node.inputs[0]].meta.get("split", "test")
            if node.inputs[0] in self.art
            else "test"
        )
        table = tables.read_split(local, split, [ROW_ID, *columns])
        frame = table.to_pandas().set_index(ROW_ID)
        rows = preds.column(ROW_ID).to_numpy()
        return frame.reindex(pd.Index(rows)).reset_index(drop=True)

    def metrics_of(self, name: str) -> dict[str, Any]:
        if name in self.values:
            return self.values[name]
        art = self.load(name)
        with open(os.path.join(art.local or "", "metrics.json")) as f:
            payload = json.load(f)
        self.values[name] = payload
        return payload


_OPERATOR_RE = re.compile(
    r"operator '(?P<node>[^']+)' failed: (?P<msg>.*?)(?: \[while running .*)?$", re.S
)


def _unwrap_runner_error(exc: BaseException) -> BaseException:
    """The helix_tf error an operator raised, out of the runner's wrapping.

    Beam re-raises an exception from a DoFn as ``type(exc)(message + context)``,
    which loses the failing node; recover the original from the exception chain,
    or parse the node back out of the message.
    """
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ExecutionError) and cur.node is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    text = str(exc)
    m = _OPERATOR_RE.search(text)
    if m:
        cls = DataError if isinstance(exc, DataError) else ExecutionError
        return cls(m["msg"].strip(), node=m["node"])
    if isinstance(exc, HelixError) or not isinstance(exc, Exception):
        return exc
    return ExecutionError(f"the Beam pipeline failed: {type(exc).__name__}: {text}")


def _data_url(store: ArtifactStore, manifest: Manifest) -> str:
    """The folder URL of a stored artifact's files (readable by Beam workers)."""
    return store._to_url(store._data_dir(manifest.fingerprint, manifest.token))


def _folder_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineResult:
    """Measurements per node and the outputs' metrics."""

    measures: dict[str, NodeMeasure]
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]


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
    run = _Run(compiled, states, store, manifests, materializer, options or EngineOptions())
    run.metric_ops = dict(metric_ops)  # type: ignore[attr-defined]
    try:
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
        for out in compiled.outputs:
            node = run.nodes[out]
            if node.role != "evaluate":
                if run.states[out] == "load":
                    run.load(out)
                continue
            payload = run.metrics_of(out)
            prefix = "" if len(compiled.outputs) == 1 else f"{out}/"
            for k, v in payload["metrics"].items():
                metrics[prefix + k] = v
            for k, v in payload.get("intervals", {}).items():
                intervals[prefix + k] = (float(v[0]), float(v[1]))
        return EngineResult(measures=run.measures, metrics=metrics, intervals=intervals)
    finally:
        run.cleanup()
