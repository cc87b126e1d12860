"""What the learning steps read: examples, models, predictions, label facts, metrics.

:class:`LearningInputs` gives each learning step its inputs: held in memory when
this run computed them, else read from the node's files (loaded from the store,
timed as the reading node's input reads or as the loaded node's load time).
pyarrow and pandas are imported inside the methods that use them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from helix_tf.compiler.graph import CompiledNode
from helix_tf.engine import tables
from helix_tf.engine._context import RunContext
from helix_tf.engine._outputs import RunOutputs, read_back
from helix_tf.errors import ExecutionError, SampledDataError
from helix_tf.roles import NodeState, Role, Split
from helix_tf.types import ROW_ID

__all__ = ["LearningInputs", "label_of"]

T = TypeVar("T")


def label_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The label facts an artifact's meta carries (examples and predictions before the
    multiclass/regression labels carry none: they are binary)."""
    return meta.get("label") or {"task": "binary"}


class LearningInputs:
    """Reads the inputs of train, predict, explain and evaluate nodes."""

    def __init__(self, ctx: RunContext, outputs: RunOutputs) -> None:
        self.ctx = ctx
        self.outputs = outputs

    def read_input(self, reader: str, read: Callable[[], T]) -> T:
        """``read()``, its seconds counted as ``reader``'s input reads (part of its compute)."""
        t0 = time.perf_counter()
        try:
            return read()
        finally:
            self.ctx.tallies[reader].read_seconds += time.perf_counter() - t0

    def examples_split(self, name: str, split: str, columns: list[str] | None = None) -> Any:
        """One split of an examples node (a pyarrow table) and the examples' meta."""
        art = self.outputs.get(name)
        local = art.local
        if local is None:
            raise ExecutionError("its examples are not on local disk", node=name)
        table = read_back(self.outputs, name, lambda: tables.read_split(local, split, columns))
        if table is None:
            raise self._no_rows(name, split)
        return table, art.meta

    def check_read_splits(self) -> None:
        """Before any training: a split that a train, predict or explain node of this run
        reads and its examples, computed in this run, lack (a header-only test file) fails
        now, the training split first. A test split failed once the model was trained."""
        states, reads = self.ctx.states, []
        for node in self.ctx.compiled.nodes:
            if states[node.name] != NodeState.COMPUTE:
                continue
            if node.role == Role.TRAIN:
                reads.append((0, node.inputs[0], str(Split.TRAIN)))
            elif node.role in (Role.PREDICT, Role.EXPLAIN):
                reads.append((1, node.inputs[1], str(node.extra.get("split", Split.TEST))))
        for _, ex, split in sorted(reads):
            if states.get(ex) != NodeState.COMPUTE:
                continue
            local = self.outputs.get(ex).local
            if local is not None and not tables.split_files(local, split):
                raise self._no_rows(ex, split)

    def _no_rows(self, name: str, split: str) -> ExecutionError:
        """Why an examples node has no rows of ``split``: the files of the sources above it,
        each with its size (an empty or header-only file is the usual cause). The training
        split of sources that read a sample may have rows where the sample kept none: a
        :class:`SampledDataError`, which the run retries with the sample drawn at training."""
        compiled = self.ctx.compiled
        sources, todo, seen = [], [name], set()
        while todo:
            node = compiled.node(todo.pop())
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.role == Role.SOURCE:
                sources.append(node)
            todo += node.inputs
        parts = []
        for node in sorted(sources, key=lambda n: n.name):
            files = getattr(node.op, "files", lambda: ())()
            shown = ", ".join(f"{f} ({_file_size(f)})" for f in files[:5])
            more = f" and {len(files) - 5} more" if len(files) > 5 else ""
            parts.append(f"source {node.name!r} read {shown or 'no file'}{more}")
        from helix_tf.engine._preprocess import sampled_sources_note

        note = sampled_sources_note(compiled.approx) if split == Split.TRAIN else None
        message = (
            f"the examples have no {split!r} split: no row reached it ({'; '.join(parts)}). "
            "Give the source data rows (an empty file, or one with only its header or "
            "skipped lines, has none), or check its split parameters"
        )
        if note is None:
            return ExecutionError(message, node=name)
        return SampledDataError(message, note=note, node=name)

    def label_facts(self, examples: str, meta: dict[str, Any]) -> dict[str, Any]:
        """The label's facts for training and inference: the stored examples' (classes),
        with what only training reads (a regression's transform) from this run's label."""
        op = self.ctx.compiled.node(examples).op
        if getattr(op, "TRAINING_PARAMS", ()):
            return op.describe()  # type: ignore[union-attr]
        return label_of(meta)

    def head(self, examples: str, label: dict[str, Any]) -> Any:
        """The model head the examples' label asks for (task, outputs, loss)."""
        from helix_tf.components.keras_models import Head

        op = self.ctx.compiled.node(examples).op
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
        """A train node's Keras model: trained by this run, else deserialised."""
        if name in self.ctx.values:
            return self.ctx.values[name]
        from helix_tf.components import keras_models

        art = self.outputs.load(name)
        t0 = time.perf_counter()
        path = os.path.join(art.local or "", "model.keras")
        model = read_back(self.outputs, name, lambda: keras_models.load_model(path))
        # Deserialising (and importing TensorFlow) is not store read time: kept apart so
        # the store's fitted throughput stays a property of the store.
        self.ctx.tallies[name].other_seconds += time.perf_counter() - t0
        self.ctx.values[name] = model
        return model

    def model_facts(self, name: str) -> dict[str, Any]:
        """What training learned about the model (zero-weight features), trained or loaded."""
        if f"facts:{name}" in self.ctx.values:
            return self.ctx.values[f"facts:{name}"]
        return {"zero": self.outputs.get(name).meta.get("zero", {})}

    def predictions_label(self, name: str) -> dict[str, Any]:
        """The label facts (task, classes, transform) of a predict node's output."""
        return label_of(self.outputs.get(name).meta)

    def predictions(self, name: str) -> Any:
        """A predict node's scores (a pyarrow table): computed, else loaded."""
        if name in self.ctx.values:
            return self.ctx.values[name]
        art = self.outputs.load(name)
        split = art.meta.get("split", Split.TEST)
        t0 = time.perf_counter()
        table = read_back(self.outputs, name, lambda: tables.read_split(art.local or "", split))
        self.ctx.tallies[name].load_seconds += time.perf_counter() - t0
        self.ctx.values[name] = table
        return table

    def raw_columns(self, node: CompiledNode, preds: Any, columns: list[str]) -> Any:
        """Source ``columns`` of the predicted rows, in the predictions' row order (pandas)."""
        src = node.extra.get("source")
        if not src:
            raise ExecutionError(
                f"metrics read columns {columns} but no source is known", node=node.name
            )
        split = self._predicted_split(node)

        def read() -> Any:
            art = self.outputs.get(src)
            if art.local is None:
                raise ExecutionError("the source table is not on local disk", node=node.name)
            return tables.read_split(art.local, split, [ROW_ID, *columns])

        table = self.read_input(node.name, read)
        import pandas as pd

        frame = table.to_pandas().set_index(ROW_ID)
        rows = preds.column(ROW_ID).to_numpy()
        return frame.reindex(pd.Index(rows)).reset_index(drop=True)

    def _predicted_split(self, node: CompiledNode) -> str:
        """The split whose rows an evaluate node's predictions are."""
        files = self.outputs.files
        pred = node.inputs[0]
        return str(files[pred].meta.get("split", Split.TEST)) if pred in files else Split.TEST

    def describe_rows(self, node: CompiledNode, preds: Any) -> Callable[[int], str] | None:
        """Position in an evaluate node's predictions -> where the row comes from
        ("line 30 of test.csv"); None when no source describes its rows."""
        src = node.extra.get("source") or next(
            (
                self.ctx.source_of(i)
                for i in self.ctx.nodes[node.inputs[0]].inputs
                if self.ctx.nodes[i].role == Role.EXAMPLES
            ),
            None,
        )
        source = self.ctx.compiled.node(src).op if src else None
        if not hasattr(source, "describe_row"):
            return None
        rows = preds.column(ROW_ID).to_numpy()
        split = self._predicted_split(node)
        return lambda i: source.describe_row(split, int(rows[i]))  # type: ignore[union-attr]

    def metrics_of(self, name: str) -> dict[str, Any]:
        """An evaluate node's metrics and intervals: computed, else loaded."""
        if name in self.ctx.values:
            return self.ctx.values[name]
        art = self.outputs.load(name)

        def read() -> Any:
            with open(os.path.join(art.local or "", "metrics.json")) as f:
                return json.load(f)

        payload = read_back(self.outputs, name, read)
        self.ctx.values[name] = payload
        return payload


def _file_size(path: str) -> str:
    """A data file's size for a message: "0 bytes: empty", "1 non-blank line" (text),
    "3,012 bytes" (a small binary file), "12 KB"."""
    if "://" in path and not path.startswith("file://"):
        return "remote"
    try:
        size = os.path.getsize(path.removeprefix("file://"))
    except OSError as exc:
        return exc.strerror or "unreadable"
    if size == 0:
        return "0 bytes: empty"
    if size <= 1 << 16:
        with open(path.removeprefix("file://"), "rb") as f:
            data = f.read()
        if b"\0" in data:  # a binary format (Parquet, TFRecord): its lines mean nothing
            return f"{size:,} bytes"
        lines = sum(1 for line in data.split(b"\n") if line.strip())
        return f"{lines} non-blank line{'s' if lines != 1 else ''}"
    return f"{size / 1024:.0f} KB"
