"""The learning steps of a run: train, predict, explain and evaluate nodes.

:class:`LearningSteps` runs one node of each of these roles: it reads the node's
inputs through :class:`~helix_tf.engine._inputs.LearningInputs`, trains or scores
with Keras, computes metrics with numpy, and writes the output through
:class:`~helix_tf.engine._outputs.RunOutputs`. Keras, pyarrow and pandas are
imported inside the steps that use them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from helix_tf.approx.settings import training_epochs
from helix_tf.compiler.graph import CompiledNode
from helix_tf.components.features._label import inverse_transform
from helix_tf.engine import tables
from helix_tf.engine._artifacts import VALUE_NAMES, Artifact
from helix_tf.engine._context import RunContext
from helix_tf.engine._inputs import LearningInputs
from helix_tf.engine._outputs import RunOutputs
from helix_tf.errors import DataError
from helix_tf.events import EpochFinished, TrainingStarted
from helix_tf.roles import NodeState, Role
from helix_tf.types import LABEL, ROW_ID, SCORE

__all__ = ["LearningSteps"]


class LearningSteps:
    """Train, predict, explain and evaluate nodes of a run."""

    def __init__(self, ctx: RunContext, outputs: RunOutputs, inputs: LearningInputs) -> None:
        self.ctx = ctx
        self.outputs = outputs
        self.inputs = inputs
        #: Nodes finished later, by name: the step that finishes each (an approximate
        #: run's evaluation, computed in a thread; its learner's file, :meth:`train`).
        self._deferred: dict[str, Callable[[CompiledNode], None]] = {}
        #: Of them, those whose value is held already (only their files come later).
        self._held: set[str] = set()

    def steps(self) -> dict[str, Callable[[CompiledNode], None]]:
        """The step that computes a node, by the name the role table gives it
        (:attr:`helix_tf.roles.RoleSpec.step`)."""
        return {
            Role.TRAIN: self.train,
            Role.PREDICT: self.predict,
            Role.EXPLAIN: self.explain,
            Role.EVALUATE: self.evaluate,
        }

    def _computed(self, name: str, *, kind: str, rows: int, meta: dict[str, Any]) -> None:
        """A node has computed: release its inputs, decide on keeping it, report it."""
        self.ctx.node_done(name)
        self.outputs.finish(name, kind=kind, rows=rows, meta=meta)
        self.ctx.emit_computed(name, rows)

    def _training_examples(
        self, node: CompiledNode, ex: str, approx: dict[str, Any]
    ) -> tuple[Any, dict[str, Any], Any, Any, Any]:
        """The train split as arrays (sampled when approximate), or a stream under a strategy."""
        from helix_tf.components import keras_models

        stream = None
        if not approx and getattr(node.op, "strategy", None) is not None:
            # Under a tf.distribute strategy, examples too large for memory stream from disk.
            art = self.outputs.get(ex)
            head = self.inputs.head(ex, self.inputs.label_facts(ex, art.meta))
            try:
                stream = keras_models.streamed_examples(
                    node.op,  # type: ignore[arg-type]
                    art.local or "",
                    art.meta["features"],
                    head,
                    target=self._target(ex),
                )
            except DataError as exc:  # a regression target outside its transform's domain
                raise DataError(str(exc), node=node.name) from exc
        if stream is not None:
            meta = art.meta
            features = meta["features"]
            label = self.inputs.label_facts(ex, meta)
            x, y = {}, np.empty(0, np.float32)
        else:
            table, meta, label = self._train_split(node, ex, approx)
            features = meta["features"]
            x = keras_models.arrays_from_table(table, features)
            y = keras_models.labels_from_table(table)
            target = self._target(ex)
            if label["task"] == "regression" and target is not None:  # the transformed target
                try:
                    y = target(table.column(LABEL).to_numpy(), table.column(ROW_ID).to_numpy())
                except DataError as exc:
                    raise DataError(str(exc), node=node.name) from exc
        return features, label, x, y, stream

    def _train_split(
        self, node: CompiledNode, ex: str, approx: dict[str, Any]
    ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """The train split of examples ``ex`` (its rows the sample keeps when approximate),
        their meta and label facts. A sample of stored examples is kept in the process
        for the next approximate run over them (:mod:`helix_tf.approx.sample_cache`)."""
        fraction = approx.get("sample")
        if fraction is None:
            table, meta = self.inputs.read_input(
                node.name, lambda: self.inputs.examples_split(ex, "train")
            )
            return table, meta, self.inputs.label_facts(ex, meta)
        from helix_tf.approx.sample_cache import sampled_rows
        from helix_tf.approx.sampling import keep_mask, sample_problem

        art = self.outputs.get(ex)
        meta = art.meta
        label = self.inputs.label_facts(ex, meta)
        seed = approx["seed"]

        def draw() -> Any:
            table, _ = self.inputs.read_input(
                node.name, lambda: self.inputs.examples_split(ex, "train")
            )
            kept = keep_mask(table.column(ROW_ID).to_numpy(), fraction, seed)
            problem = sample_problem(
                table.column(LABEL).to_numpy(),
                kept,
                task=label["task"],
                fraction=fraction,
                seed=seed,
            )
            if problem is not None:
                raise DataError(problem, node=node.name)
            return table.filter(kept)

        manifest = self.ctx.manifests.get(ex)
        if self.ctx.states.get(ex) != NodeState.LOAD or manifest is None or not art.local:
            return draw(), meta, label  # computed by this run: its files are not the store's yet
        content = tuple(
            (f.path, f.bytes, f.sha256) for f in manifest.files if f.path.startswith("train/")
        )
        folder = os.path.join(art.local, "train")
        return sampled_rows(folder, content, fraction, seed, draw), meta, label

    def _prepared_examples(
        self, node: CompiledNode, ex: str, approx: dict[str, Any]
    ) -> tuple[tuple[Any, dict[str, Any], Any, Any, Any], float]:
        """:meth:`_training_examples` and the seconds they took, with TensorFlow imported
        (or a trainer elsewhere ready) by then: :func:`keras_models.prepare_training`.

        Arrays need no TensorFlow: they are read first, while a starting server's trainer
        may still be importing it (the first run waits for it there); examples streamed
        under a strategy go through ``tf.data``, read after the import. Importing (or
        waiting) is paid once per process, not by the node's computation: its
        ``other_seconds``.
        """
        from helix_tf.components import keras_models

        streamed = not approx and getattr(node.op, "strategy", None) is not None
        t_load = time.perf_counter()
        examples = None if streamed else self._training_examples(node, ex, approx)
        load_s = time.perf_counter() - t_load
        t_import = time.perf_counter()
        keras_models.prepare_training(node.op)  # type: ignore[arg-type]
        self.ctx.tallies[node.name].other_seconds += time.perf_counter() - t_import
        if examples is None:
            t_load = time.perf_counter()
            examples = self._training_examples(node, ex, approx)
            load_s = time.perf_counter() - t_load
        return examples, load_s

    def _target(self, ex: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
        """The regression target of examples ``ex`` (values, row ids -> the transformed
        target), its errors naming a bad row's line and file; None for a classifier."""
        target = getattr(self.ctx.compiled.node(ex).op, "target", None)
        src = self.ctx.source_of(ex)
        source = self.ctx.compiled.node(src).op if src is not None else None
        if target is None or not hasattr(source, "describe_row"):
            return target
        return functools.partial(target, describe=functools.partial(source.describe_row, "train"))

    def train(self, node: CompiledNode) -> None:
        """Train the node's learner on the examples' train split; keep the model."""
        from helix_tf.components import keras_models

        ex = node.inputs[0]
        approx = node.extra.get("approx") or {}
        (features, label, x, y, stream), load_s = self._prepared_examples(node, ex, approx)
        n_rows = stream.rows if stream is not None else len(y)
        self.ctx.emit(TrainingStarted(node=node.name, rows=n_rows))
        t0 = time.perf_counter()
        epochs = training_epochs(
            node.op.epochs,  # type: ignore[union-attr]
            approx,
            rows=n_rows,
            batch_size=int(node.op.batch_size),  # type: ignore[union-attr]
        )
        model, stats = keras_models.train_model(
            node.op,  # type: ignore[arg-type]
            features,
            x,
            y,
            precision=approx.get("precision", "fp32"),
            epochs=epochs,
            head=self.inputs.head(ex, label),
            batches=stream,
            light=approx.get("loop") == "light",
            plateau=approx.get("plateau"),
            on_epoch=lambda e, total, loss, secs: self.ctx.emit(
                EpochFinished(
                    node=node.name, epoch=e, epochs=total, loss=loss, eta=secs / e * (total - e)
                )
            ),
        )
        facts = keras_models.zero_weight_features(model, node.op, features)  # type: ignore[arg-type]
        stats.update(facts)
        self.ctx.values[f"facts:{node.name}"] = facts
        tally = self.ctx.tallies[node.name]
        tally.compute_seconds = time.perf_counter() - t0 + load_s
        self.ctx.values[node.name] = model

        def write(art: Artifact) -> None:
            if art.local is not None:
                keras_models.save_model(model, os.path.join(art.local, "model.keras"))
                return
            path = os.path.join(self.ctx.scratch, f"{node.name}.keras")
            keras_models.save_model(model, path)
            if art.staging is not None:
                with open(path, "rb") as src, art.staging.open("model.keras", "wb") as dst:
                    shutil.copyfileobj(src, dst)

        def finish(_node: CompiledNode) -> None:
            t1 = time.perf_counter()
            self.outputs.write_output(node.name, write)
            tally.write_seconds += time.perf_counter() - t1
            meta = {"features": features, **stats}
            self._computed(node.name, kind="model", rows=n_rows, meta=meta)

        if not approx:
            finish(node)
            return
        # Approximate: the model (held) is scored now; its file is written at the end,
        # while the evaluation's thread computes its intervals (see evaluate).
        self._deferred[node.name] = finish
        self._held.add(node.name)

    def predict(self, node: CompiledNode) -> None:
        """Score one split of the examples with the model (zero-weight features unread)."""
        import pyarrow as pa

        from helix_tf.components import keras_models

        model_name, ex = node.inputs
        split = node.extra.get("split", "test")
        model = self.inputs.model(model_name)
        t0 = time.perf_counter()
        # Features whose learned weights are all zero contribute nothing: not read.
        facts = self.inputs.model_facts(model_name)
        zero = sorted(facts.get("zero", {})) if self.ctx.options.prune_zero_weight else []

        def read() -> Any:
            art_ex = self.outputs.get(ex)
            keep = [ROW_ID, LABEL] + [
                c
                for f in art_ex.meta["features"]
                if f["name"] not in zero
                for c in keras_models.feature_columns(f)
            ]
            return self.inputs.examples_split(ex, split, keep)

        table, meta = self.inputs.read_input(node.name, read)
        x = keras_models.arrays_from_table(table, meta["features"], zeros=zero)
        self.ctx.tallies[node.name].meta["pruned_features"] = {z: facts["zero"][z] for z in zero}
        label = self.inputs.label_facts(ex, meta)
        scores = keras_models.predict_scores(
            model, x, label["task"], traced=self._approximate(model_name)
        )
        if label["task"] == "multiclass":  # one probability per class
            score_col: Any = pa.FixedSizeListArray.from_arrays(
                pa.array(scores.reshape(-1), pa.float64()), scores.shape[1]
            )
        else:
            if label["task"] == "regression":  # back to the original scale
                scores = inverse_transform(label.get("transform"), scores)
            score_col = pa.array(scores, pa.float64())
        out = pa.table({ROW_ID: table.column(ROW_ID), LABEL: table.column(LABEL), SCORE: score_col})
        tally = self.ctx.tallies[node.name]
        tally.compute_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        self.outputs.write_output(
            node.name, lambda art: tables.write_batch(art.root, split, 0, out)
        )
        tally.write_seconds += time.perf_counter() - t1
        self.ctx.values[node.name] = out
        pred_meta: dict[str, Any] = {"split": split}
        if label["task"] != "binary":  # evaluation needs the classes / the transform
            pred_meta["label"] = label
        self._computed(node.name, kind="predictions", rows=out.num_rows, meta=pred_meta)

    def _approximate(self, model_name: str) -> bool:
        """Whether the model was trained by an approximate run: its predict and explain
        nodes score it with a traced function (``traced``: ``keras_models.predict_scores``;
        their fingerprints carry ``"scoring"``)."""
        return bool(self.ctx.compiled.node(model_name).extra.get("approx"))

    def explain(self, node: CompiledNode) -> None:
        """Permutation importance on one split, and the linear weights by value name."""
        from helix_tf.components import explain, keras_models

        op: explain.Explain = node.op  # type: ignore[assignment]
        model_name, ex = node.inputs
        split = node.extra.get("split", "test")
        model = self.inputs.model(model_name)
        t0 = time.perf_counter()
        table, meta = self.inputs.read_input(
            node.name, lambda: self.inputs.examples_split(ex, split)
        )
        if table.num_rows > op.max_rows:  # a seeded sample, in row order
            keep = np.random.default_rng(op.seed).choice(table.num_rows, op.max_rows, replace=False)
            table = table.take(np.sort(keep))
        features = meta["features"]
        x = keras_models.arrays_from_table(table, features)
        y = keras_models.labels_from_table(table)
        zero = sorted(self.inputs.model_facts(model_name).get("zero", {}))
        label = self.inputs.label_facts(ex, meta)
        task, transform = label["task"], label.get("transform")

        # Scored as the predict node scores: class probabilities, values on the label's scale.
        payload = keras_models.model_importance(
            model,
            x,
            y,
            features,
            task=task,
            transform=transform,
            repeats=op.repeats,
            seed=op.seed,
            scoring=op.scoring,
            zero=zero,
            traced=self._approximate(model_name),
        )
        payload["split"] = split
        payload["task"] = task
        weights = keras_models.feature_weights(model, features)
        if weights:
            names_path = os.path.join(self.outputs.files[ex].local or "", VALUE_NAMES)
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
        tally = self.ctx.tallies[node.name]
        tally.compute_seconds = time.perf_counter() - t0
        # Features stay in order of importance: not sorted.
        self.outputs.save_json(node.name, "explanation.json", json.dumps(payload))
        self.ctx.values[node.name] = payload
        self._computed(node.name, kind="explanation", rows=len(y), meta={"split": split})

    def evaluate(self, node: CompiledNode) -> None:
        """Compute the node's metrics (and, in an approximate run, their intervals).

        In an approximate run the metrics and their bootstrap intervals (numpy, ~0.1–0.5
        s over a test split of 16k rows) are computed in a thread while the run goes on
        with its next nodes (the explanation, scored by the server's trainer), and the
        node is finished in the run's thread by :meth:`finish_deferred`: the same values,
        its time the thread's.
        """
        from helix_tf.components.metrics import Metric

        preds = self.inputs.predictions(node.inputs[0])
        t0 = time.perf_counter()
        metrics_ops: list[Metric] = self.ctx.metric_ops[node.name]
        label = self.inputs.predictions_label(node.inputs[0])
        frame = None
        columns = sorted({c for m in metrics_ops for c in m.columns()})
        if columns:
            frame = self.inputs.raw_columns(node, preds, columns)
        approx = bool(self.ctx.compiled.approx)
        if label["task"] == "binary":  # as it always was
            y_true = preds.column(LABEL).to_numpy().astype(np.int64)
            y_score: Any = preds.column(SCORE).to_numpy().astype(np.float64)
        else:
            y_true, y_score = preds.column(LABEL).to_numpy(), _scores(preds.column(SCORE))
        describe = self.inputs.describe_rows(node, preds)
        reading = time.perf_counter() - t0

        def compute() -> tuple[dict[str, float], dict[str, Any], float]:
            started = time.perf_counter()
            values, intervals = _metric_values(
                metrics_ops, label, y_true, y_score, frame, approx, describe
            )
            return values, intervals, time.perf_counter() - started

        def finish(computed: tuple[dict[str, float], dict[str, Any], float]) -> None:
            values, intervals, seconds = computed
            self.ctx.tallies[node.name].compute_seconds = reading + seconds
            payload = {"metrics": values, "intervals": {k: list(v) for k, v in intervals.items()}}
            self.outputs.save_json(node.name, "metrics.json", json.dumps(payload, sort_keys=True))
            self.ctx.values[node.name] = payload
            self._computed(node.name, kind="metrics", rows=len(y_true), meta={})

        if not approx:
            finish(compute())
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="helix-intervals")
        future = pool.submit(compute)
        pool.shutdown(wait=False)  # the thread ends with its one task
        self._deferred[node.name] = lambda _node: finish(future.result())

    def finish_deferred(
        self, names: Iterable[str] | None = None
    ) -> list[tuple[CompiledNode, Callable[[CompiledNode], None]]]:
        """The steps that finish nodes finished later (an approximate run's evaluations,
        computed in a thread, and its learners, whose files are written at the end), of
        ``names`` (None: all), to be run in order by the caller before anything reads
        them (a held value, as a learner's model, is read without waiting for its files);
        each waits for its thread."""
        wanted = (
            list(self._deferred)
            if names is None
            else [n for n in names if n in self._deferred and n not in self._held]
        )
        return [(self.ctx.nodes[n], self._deferred.pop(n)) for n in wanted]


def _metric_values(
    metrics_ops: list[Any],
    label: dict[str, Any],
    y_true: np.ndarray,
    y_score: np.ndarray,
    frame: Any,
    approx: bool,
    describe: Callable[[int], str] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The metrics' values, and their bootstrap intervals when ``approx`` (``describe``:
    a row's position -> its line and file, for errors)."""
    from helix_tf.components.metrics import compute_metrics, evaluate_task

    if label["task"] == "binary":  # as it always was
        values = compute_metrics(metrics_ops, y_true, y_score, frame)
        intervals: dict[str, Any] = {}
        if approx:
            from helix_tf.components.metrics import bootstrap_metrics

            intervals = bootstrap_metrics(metrics_ops, y_true, y_score, frame)
        return values, intervals
    return evaluate_task(
        metrics_ops, label, y_true, y_score, frame, intervals=approx, describe=describe
    )


def _scores(column: Any) -> np.ndarray:
    """A score column as numpy: (n,) values, or (n, classes) probabilities."""
    import pyarrow as pa

    col = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        width = col.type.list_size if pa.types.is_fixed_size_list(col.type) else None
        flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
        return flat.reshape(len(col), width or (len(flat) // max(len(col), 1)))
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
