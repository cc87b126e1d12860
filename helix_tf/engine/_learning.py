"""The learning steps of a run: train, predict and evaluate nodes, and their inputs.

:class:`_LearningSteps` is a mixin of the engine's run (``execute._Run``): its
methods read examples, train and load Keras models, score a split and compute
metrics. They rely on what the run provides: the compiled workflow ``c``, the
options ``opt``, the per-node ``art``, ``measures`` and ``values``, the scratch
folder, ``metric_ops``, and the ``load``, ``write_output``, ``finish`` and ``emit``
methods. Keras, pyarrow and pandas are imported inside the methods that use them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from helix_tf.compiler.graph import CompiledNode
from helix_tf.components.features._label import inverse_transform
from helix_tf.engine import tables
from helix_tf.errors import DataError, ExecutionError
from helix_tf.types import LABEL, ROW_ID, SCORE

if TYPE_CHECKING:
    from helix_tf.compiler.graph import CompiledWorkflow
    from helix_tf.engine._support import _Artifact
    from helix_tf.engine.execute import EngineOptions, NodeMeasure


class _LearningSteps:
    """Train, predict and evaluate nodes of a run (a mixin of the run class)."""

    c: CompiledWorkflow
    opt: EngineOptions
    art: dict[str, _Artifact]
    measures: dict[str, NodeMeasure]
    values: dict[str, Any]
    scratch: str

    if TYPE_CHECKING:

        def load(self, name: str) -> _Artifact: ...

        def stage(self, name: str) -> _Artifact: ...

        def write_output(self, name: str, write: Callable[[_Artifact], None]) -> _Artifact: ...

        def finish(
            self, name: str, *, kind: str, rows: int | None, meta: dict[str, Any]
        ) -> None: ...

        def emit(self, **event: Any) -> None: ...

        def node_done(self, name: str) -> None: ...

        def emit_computed(self, name: str, rows: int | None) -> None: ...

    def _computed(self, name: str, *, kind: str, rows: int, meta: dict[str, Any]) -> None:
        """A node has computed: release its inputs, decide on keeping it, report it."""
        self.node_done(name)
        self.finish(name, kind=kind, rows=rows, meta=meta)
        self.emit_computed(name, rows)

    def read_input(self, reader: str, read: Any) -> Any:
        """``read()``, its seconds counted as ``reader``'s input reads (part of its compute)."""
        t0 = time.perf_counter()
        try:
            return read()
        finally:
            self.measures[reader].read_seconds += time.perf_counter() - t0

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

        # Importing TensorFlow is paid once per process, not by this node's computation.
        t_import = time.perf_counter()
        keras_models._k()
        self.measures[node.name].other_seconds += time.perf_counter() - t_import

        ex = node.inputs[0]
        approx = node.extra.get("approx") or {}
        t_load = time.perf_counter()
        stream = None
        if not approx and getattr(node.op, "strategy", None) is not None:
            # Under a tf.distribute strategy, examples too large for memory stream from disk.
            art = self.art.get(ex) or self.load(ex)
            stream = keras_models.streamed_examples(
                node.op,  # type: ignore[arg-type]
                art.local or "",
                art.meta["features"],
                self._head(ex, self.label_facts(ex, art.meta)),
            )
        if stream is not None:
            meta = art.meta
            features = meta["features"]
            label = self.label_facts(ex, meta)
            x, y = {}, np.empty(0, np.float32)
        else:
            table, meta = self.read_input(node.name, lambda: self.examples_split(ex, "train"))
            if approx.get("sample") is not None:
                from helix_tf.approx.sampling import keep_mask

                rows = table.column(ROW_ID).to_numpy()
                table = table.filter(keep_mask(rows, approx["sample"], approx["seed"]))
            features = meta["features"]
            label = self.label_facts(ex, meta)
            x = keras_models.arrays_from_table(table, features)
            y = keras_models.labels_from_table(table)
            if label["task"] == "regression":  # the model learns the transformed target
                op = self.c.node(ex).op
                try:
                    y = op.target(  # type: ignore[union-attr]
                        table.column(LABEL).to_numpy(), table.column(ROW_ID).to_numpy()
                    )
                except DataError as exc:
                    raise DataError(str(exc), node=node.name) from exc
        n_rows = stream.rows if stream is not None else len(y)
        load_s = time.perf_counter() - t_load
        self.emit(event="stage", stage="train", node=node.name, rows=n_rows)
        t0 = time.perf_counter()
        epochs = max(1, round(node.op.epochs * approx.get("epochs_scale", 1.0)))  # type: ignore[union-attr]
        model, stats = keras_models.train_model(
            node.op,  # type: ignore[arg-type]
            features,
            x,
            y,
            precision=approx.get("precision", "fp32"),
            epochs=epochs,
            head=self._head(ex, label),
            batches=stream,
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
        t1 = time.perf_counter()

        def write(art: _Artifact) -> None:
            if art.local is not None:
                keras_models.save_model(model, os.path.join(art.local, "model.keras"))
                return
            path = os.path.join(self.scratch, f"{node.name}.keras")
            keras_models.save_model(model, path)
            if art.staging is not None:
                with open(path, "rb") as src, art.staging.open("model.keras", "wb") as dst:
                    shutil.copyfileobj(src, dst)

        self.write_output(node.name, write)
        meas.write_seconds += time.perf_counter() - t1
        self.values[node.name] = model
        self._computed(node.name, kind="model", rows=n_rows, meta={"features": features, **stats})

    def label_facts(self, examples: str, meta: dict[str, Any]) -> dict[str, Any]:
        """The label's facts for training and inference: the stored examples' (classes),
        with what only training reads (a regression's transform) from this run's label."""
        op = self.c.node(examples).op
        if getattr(op, "TRAINING_PARAMS", ()):
            return op.describe()  # type: ignore[union-attr]
        return label_of(meta)

    def _head(self, examples: str, label: dict[str, Any]) -> Any:
        """The model head the examples' label asks for (task, outputs, loss)."""
        from helix_tf.components.keras_models import Head

        op = self.c.node(examples).op
        task = label["task"]
        if task == "multiclass":
            return Head(task=task, classes=len(label["classes"]))
        if task == "regression":
            return Head(
                task=task,
                loss=getattr(op, "loss", "squared"),
                huber_delta=float(getattr(op, "huber_delta", 1.0)),
            )
        return Head()

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

        def read() -> Any:
            art_ex = self.art.get(ex) or self.load(ex)
            keep = [ROW_ID, LABEL] + [
                c
                for f in art_ex.meta["features"]
                if f["name"] not in zero
                for c in keras_models.feature_columns(f)
            ]
            return self.examples_split(ex, split, keep)

        table, meta = self.read_input(node.name, read)
        x = keras_models.arrays_from_table(table, meta["features"], zeros=zero)
        self.measures[node.name].meta["pruned_features"] = {z: facts["zero"][z] for z in zero}
        label = self.label_facts(ex, meta)
        scores = keras_models.predict_scores(model, x, label["task"])
        if label["task"] == "multiclass":  # one probability per class
            score_col: Any = pa.FixedSizeListArray.from_arrays(
                pa.array(scores.reshape(-1), pa.float64()), scores.shape[1]
            )
        else:
            if label["task"] == "regression":  # back to the original scale
                scores = inverse_transform(label.get("transform"), scores)
            score_col = pa.array(scores, pa.float64())
        out = pa.table({ROW_ID: table.column(ROW_ID), LABEL: table.column(LABEL), SCORE: score_col})
        meas = self.measures[node.name]
        meas.compute_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        self.write_output(node.name, lambda art: tables.write_batch(art.root, split, 0, out))
        meas.write_seconds += time.perf_counter() - t1
        self.values[node.name] = out
        pred_meta: dict[str, Any] = {"split": split}
        if label["task"] != "binary":  # evaluation needs the classes / the transform
            pred_meta["label"] = label
        self._computed(node.name, kind="predictions", rows=out.num_rows, meta=pred_meta)

    def explain(self, node: CompiledNode) -> None:
        """Permutation importance on one split, and the linear weights by value name."""
        from helix_tf.components import explain, keras_models
        from helix_tf.engine._support import VALUE_NAMES

        op: explain.Explain = node.op  # type: ignore[assignment]
        model_name, ex = node.inputs
        split = node.extra.get("split", "test")
        model = self.model(model_name)
        t0 = time.perf_counter()
        table, meta = self.read_input(node.name, lambda: self.examples_split(ex, split))
        if table.num_rows > op.max_rows:  # a seeded sample, in row order
            keep = np.random.default_rng(op.seed).choice(table.num_rows, op.max_rows, replace=False)
            table = table.take(np.sort(keep))
        features = meta["features"]
        x = keras_models.arrays_from_table(table, features)
        y = keras_models.labels_from_table(table)
        zero = sorted(self.model_facts(model_name).get("zero", {}))
        label = self.label_facts(ex, meta)
        task, transform = label["task"], label.get("transform")

        def score(inputs: Any) -> np.ndarray:
            # As the predict node scores: class probabilities, values on the label's scale.
            scores = keras_models.predict_scores(model, inputs, task)
            return inverse_transform(transform, scores) if task == "regression" else scores

        payload = explain.permutation_importance(
            score,
            x,
            y,
            features,
            repeats=op.repeats,
            seed=op.seed,
            scoring=op.scoring,
            zero=zero,
        )
        payload["split"] = split
        payload["task"] = task
        weights = keras_models.feature_weights(model, features)
        if weights:
            names_path = os.path.join(self.art[ex].local or "", VALUE_NAMES)
            names = {}
            if os.path.exists(names_path):
                with open(names_path) as f:
                    names = json.load(f)
            classes = label.get("classes") if task == "multiclass" else None
            linear = explain.linear_weights(weights, features, names, top=op.top, classes=classes)
            linear["task"] = task
            if transform:  # a regression's weights act on the transformed target
                linear["transform"] = transform
            payload["linear"] = linear
        meas = self.measures[node.name]
        meas.compute_seconds = time.perf_counter() - t0
        # Features stay in order of importance: not sorted.
        self._save_json(node.name, "explanation.json", json.dumps(payload))
        self.values[node.name] = payload
        self._computed(node.name, kind="explanation", rows=len(y), meta={"split": split})

    def _save_json(self, name: str, filename: str, text: str) -> None:
        """Write a node's one JSON file where its output goes (the store, else scratch)."""

        def write(art: _Artifact) -> None:
            if art.staging is not None:
                with art.staging.open(filename, "w") as f:
                    f.write(text)
            elif art.local is not None:
                with open(os.path.join(art.local, filename), "w") as f:
                    f.write(text)

        self.write_output(name, write)

    def model_facts(self, name: str) -> dict[str, Any]:
        """What training learned about the model (zero-weight features), trained or loaded."""
        if f"facts:{name}" in self.values:
            return self.values[f"facts:{name}"]
        art = self.art.get(name) or self.load(name)
        return {"zero": art.meta.get("zero", {})}

    def predictions_label(self, name: str) -> dict[str, Any]:
        """The label facts (task, classes, transform) of a predict node's output."""
        return label_of((self.art.get(name) or self.load(name)).meta)

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
        metrics_ops: list[Metric] = self.metric_ops[node.name]
        label = self.predictions_label(node.inputs[0])
        frame = None
        columns = sorted({c for m in metrics_ops for c in m.columns()})
        if columns:
            frame = self.raw_columns(node, preds, columns)
        if label["task"] == "binary":  # as it always was
            y_true = preds.column(LABEL).to_numpy().astype(np.int64)
            y_score = preds.column(SCORE).to_numpy().astype(np.float64)
            values = compute_metrics(metrics_ops, y_true, y_score, frame)
            intervals = {}
            if self.c.approx:
                from helix_tf.components.metrics import bootstrap_metrics

                intervals = bootstrap_metrics(metrics_ops, y_true, y_score, frame)
        else:
            from helix_tf.components.metrics import evaluate_task

            y_true = preds.column(LABEL).to_numpy()
            values, intervals = evaluate_task(
                metrics_ops,
                label,
                y_true,
                _scores(preds.column(SCORE)),
                frame,
                intervals=bool(self.c.approx),
            )
        meas = self.measures[node.name]
        meas.compute_seconds = time.perf_counter() - t0
        payload = {"metrics": values, "intervals": {k: list(v) for k, v in intervals.items()}}
        self._save_json(node.name, "metrics.json", json.dumps(payload, sort_keys=True))
        self.values[node.name] = payload
        self._computed(node.name, kind="metrics", rows=len(y_true), meta={})

    def raw_columns(self, node: CompiledNode, preds: Any, columns: list[str]) -> Any:
        src = node.extra.get("source")
        if not src:
            raise ExecutionError(
                f"metrics read columns {columns} but no source is known", node=node.name
            )
        split = (
            self.art[node.inputs[0]].meta.get("split", "test")
            if node.inputs[0] in self.art
            else "test"
        )

        def read() -> Any:
            art = self.art.get(src) or self.load(src)
            if art.local is None:
                raise ExecutionError("the source table is not on local disk", node=node.name)
            return tables.read_split(art.local, split, [ROW_ID, *columns])

        table = self.read_input(node.name, read)
        import pandas as pd

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


def label_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The label facts an artifact's meta carries (examples and predictions before the
    multiclass/regression labels carry none: they are binary)."""
    return meta.get("label") or {"task": "binary"}


def _scores(column: Any) -> np.ndarray:
    """A score column as numpy: (n,) values, or (n, classes) probabilities."""
    import pyarrow as pa

    col = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        width = col.type.list_size if pa.types.is_fixed_size_list(col.type) else None
        flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
        return flat.reshape(len(col), width or (len(flat) // max(len(col), 1)))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
