"""Compute the preprocessing nodes of one batch (pandas/numpy; no Beam here).

The Beam pipeline (:mod:`helix_tf.engine.beam_pipeline`) calls this from its
DoFns; tests call it directly. A :class:`PreNode` says for one node whether it
is computed or loaded in this run, where its files are, and whether its output
is written. Values are memoised per batch, so a feature used by several others
is computed once, and a loaded input is read once.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa

from helix_tf.components.base import Operator
from helix_tf.components.features import Feature, SourceRows
from helix_tf.components.features._label import (
    LABELS,
    OTHER_CLASS,
    MulticlassLabel,
    is_unset_text,
)
from helix_tf.components.sources import Source
from helix_tf.engine import _user_calls, tables
from helix_tf.engine._held import HeldTables
from helix_tf.engine._writer import BackgroundWrites
from helix_tf.errors import DataError, ExecutionError, HelixError
from helix_tf.roles import NodeState, Role, Split
from helix_tf.types import LABEL, NUMERIC, ROW_ID

__all__ = ["PreNode", "BatchComputer", "label_problem"]

#: How each task's labels are stored in examples (binary stays int8, as before).
_LABEL_TYPES = {"binary": pa.int8(), "multiclass": pa.int32(), "regression": pa.float64()}

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _past_float32(
    op: Feature, columns: Mapping[str, str], read: Callable[[str], np.ndarray]
) -> tuple[str, np.ndarray] | None:
    """The numeric column ``op`` reads whose finite values pass float32's range, with its
    values, if any (a float32 infinity in the feature, none in the data)."""
    for col in op.inputs():
        if isinstance(col, str) and columns.get(col) in ("int", "float"):
            raw = np.asarray(read(col), dtype=np.float64)
            if (np.isfinite(raw) & (np.abs(raw) > _FLOAT32_MAX)).any():
                return col, raw
    return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreNode:
    """What the batch computer needs to know about one preprocessing node."""

    name: str
    role: Role  # source | feature | examples
    op: Operator | None
    value_kind: str | None  # for features
    source: str | None  # the source node whose rows it reads (features, examples)
    columns: dict[str, str]  # the source's declared columns (source and its readers)
    features: tuple[str, ...]  # examples: the feature columns, in order
    state: NodeState  # compute | load
    root: str  # folder URL: the loaded artifact, or where a computed output is written
    write: bool  # computed and written this run
    sample: dict[str, Any] | None = None  # sources: row sample of an approximate run
    #: Features whose code is the user's own (``Feature.runs_user_code``): given private
    #: copies of their inputs, and (unless ``volatile``: refused by the compiler, never
    #: reused) computed twice on their first batch in the process (engine._user_calls).
    user_code: bool = False
    volatile: bool = False


class BatchComputer:
    """Computes and writes the nodes of one batch.

    Parameters
    ----------
    nodes:
        The preprocessing nodes that take part in this run, by name.
    states:
        Finalised analyzer states of computed features (vocabularies, moments).
    writer:
        The background writer of an in-process run
        (:class:`~helix_tf.engine._writer.BackgroundWrites`); None: write in line.
    held:
        Source batches an earlier pass of this process read (:mod:`helix_tf.engine._held`):
        taken from there instead of read again, and what this one reads is kept there.
    """

    def __init__(
        self,
        nodes: Mapping[str, PreNode],
        states: Mapping[str, Any],
        *,
        writer: BackgroundWrites | None = None,
        held: HeldTables | None = None,
    ) -> None:
        self.nodes = dict(nodes)
        self.held = held
        self.states = dict(states)
        #: Who writes the batches in the background (and counts them); None: in line.
        self.writer = writer
        self.seconds: dict[str, float] = {}
        #: Seconds of the writes made in line (the writer counts its own).
        self.write_seconds: dict[str, float] = {}
        #: Seconds spent reading each node's stored batches (part of ``seconds``).
        self.read_seconds: dict[str, float] = {}
        self._needed: dict[str, list[str] | None] = {}

    def _time(self, name: str, t0: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def _read(self, name: str, split: str, k: int, columns: list[str] | None = None) -> pa.Table:
        """Read batch (split, k) of node ``name``'s files, timing the read."""
        t0 = time.perf_counter()
        table = tables.read_batch(self.nodes[name].root, split, k, columns=columns)
        self.read_seconds[name] = self.read_seconds.get(name, 0.0) + time.perf_counter() - t0
        return table

    # ------------------------------------------------------------------ values

    def source_table(self, name: str, split: str, k: int, cache: dict[str, Any]) -> Any:
        """The source's batch as an Arrow table: only the columns this run reads."""
        key = f"table:{name}"
        if key not in cache:
            t0 = time.perf_counter()
            table = self.held.get(name, split, k) if self.held is not None else None
            if table is None:
                table = self._read(name, split, k, self.needed_columns(name))
                if self.held is not None:
                    self.held.keep(name, split, k, table)
            cache[key] = table
            self._check_rows(name, split, k, tables.row_ids(table), cache)
            self._time(name, t0)
        return cache[key]

    def source_frame(self, name: str, split: str, k: int, cache: dict[str, Any]) -> Any:
        """The source's batch as a pandas frame (whole-row UDFs)."""
        key = f"frame:{name}"
        if key not in cache:
            t0 = time.perf_counter()
            cache[key] = self.source_table(name, split, k, cache).to_pandas()
            self._time(name, t0)
        return cache[key]

    def needed_columns(self, source: str) -> list[str] | None:
        """Columns of ``source`` that the computed nodes read (None: all of them)."""
        if source in self._needed:
            return self._needed[source]
        cols: set[str] = {ROW_ID}
        for node in self.nodes.values():
            if node.state != NodeState.COMPUTE or node.source != source:
                continue
            if isinstance(node.op, Feature):
                if node.op.reads_whole_row():
                    self._needed[source] = None
                    return None
                cols.update(r for r in node.op.inputs() if isinstance(r, str))
            elif isinstance(node.op, LABELS):
                cols.add(node.op.column)
        self._needed[source] = sorted(cols)
        return self._needed[source]

    def _check_rows(
        self, name: str, split: str, k: int, rows: np.ndarray, cache: dict[str, Any]
    ) -> None:
        """Every input of a batch must describe the same rows, in the same order."""
        ref = cache.get("rows")
        if ref is None:
            cache["rows"] = rows
            cache["rows_from"] = name
        elif len(ref) != len(rows) or not np.array_equal(ref, rows):
            raise ExecutionError(
                f"batch {split}/{k} of {name!r} has {len(rows)} rows that do not line up with the "
                f"{len(ref)} rows of {cache['rows_from']!r}; the stored artifacts disagree. "
                "Run again with --store pointing at an empty folder to recompute them",
                node=name,
            )

    def column(self, source: str, column: str, split: str, k: int, cache: dict[str, Any]) -> Any:
        """A raw column: float64 numpy for numbers, an Arrow string array for text."""
        col = self.source_table(source, split, k, cache).column(column).combine_chunks()
        kind = self.nodes[source].columns.get(column)
        if kind in ("int", "float"):
            return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        return col

    def inputs_of(self, node: PreNode, split: str, k: int, cache: dict[str, Any]) -> list[Any]:
        op = node.op
        if isinstance(op, LABELS):  # an examples node whose label learns from the training split
            assert node.source is not None
            return [self.column(node.source, op.column, split, k, cache)]
        assert isinstance(op, Feature)
        if op.reads_whole_row():
            assert node.source is not None
            frame = self.source_frame(node.source, split, k, cache)
            source = self.nodes[node.source].op
            if not isinstance(source, Source):
                return [frame]
            describe = functools.partial(source.describe_row, split)
            return [frame, SourceRows(columns=node.columns, describe=describe)]
        vals = []
        for r in op.inputs():
            if isinstance(r, str):
                assert node.source is not None
                vals.append(self.column(node.source, r, split, k, cache))
            else:
                vals.append(self.value(r.name, split, k, cache))
        return vals

    def value(self, name: str, split: str, k: int, cache: dict[str, Any]) -> Any:
        """The value of feature ``name`` on batch (split, k): loaded or computed."""
        if name in cache:
            return cache[name]
        node = self.nodes[name]
        if node.state == NodeState.LOAD:
            t0 = time.perf_counter()
            table = self._read(name, split, k)
            self._check_rows(name, split, k, tables.row_ids(table), cache)
            out = tables.feature_from_table(table, "value", node.value_kind or NUMERIC)
            self._time(name, t0)
        else:
            vals = self.inputs_of(node, split, k, cache)
            t0 = time.perf_counter()
            n = self.batch_rows(split, k, cache)
            op = node.op
            assert isinstance(op, Feature)
            state, batch = self.states.get(name), f"{split}/{k}"
            if not node.user_code:
                out = _transform(node, state, vals, n, batch)
            else:  # private inputs; the first batch twice (engine._user_calls)
                twice = not node.volatile and _user_calls.first_call(op)
                held = _user_calls.StateSnapshot.of(op) if twice else None
                out = _transform(node, state, [_user_calls.private(v) for v in vals], n, batch)
                # Again on the same rows; where the first call wrote state, once more as
                # another first batch: its state put back, the batch's first half.
                for restored in (False, True) if held is not None else ():
                    if restored and held is not None:
                        if not held.changed():
                            break
                        held.restore()
                    rows = _user_calls.repeat_inputs(op, vals, n, other_batch=restored)
                    repeated = _transform(node, state, rows[0], rows[1], batch)
                    try:
                        first = _user_calls.head(out, rows[1])
                        _user_calls.check_repeat(
                            op, first, repeated, cache.get("rows"), restored=restored
                        )
                    except HelixError as exc:
                        _raise_named(exc, name)
            if len(out) != n:
                raise ExecutionError(
                    f"{op.op_name} returned {len(out)} values for a batch of {n} rows", node=name
                )
            self._time(name, t0)
        cache[name] = out
        return out

    def batch_rows(self, split: str, k: int, cache: dict[str, Any]) -> int:
        if "rows" not in cache:
            # No frame read yet: read the row ids of any available artifact of this batch.
            for node in self.nodes.values():
                if node.state == NodeState.LOAD or node.role == Role.SOURCE:
                    table = tables.read_batch(node.root, split, k, columns=[ROW_ID])
                    self._check_rows(node.name, split, k, tables.row_ids(table), cache)
                    break
        return len(cache["rows"])

    # ------------------------------------------------------------------ analysis

    def partials(self, names: list[str], split: str, k: int) -> list[tuple[str, Any]]:
        """Analyzer partial accumulators of ``names`` over one (training) batch."""
        cache: dict[str, Any] = {}
        out = []
        for name in names:
            node = self.nodes[name]
            op = node.op
            assert isinstance(op, (Feature, *LABELS))
            analyzer = op.analyzer()
            assert analyzer is not None
            vals = self.inputs_of(node, split, k, cache)
            if node.user_code:  # the batch others read after it (engine._user_calls)
                vals = [_user_calls.private(v) for v in vals]
            t0 = time.perf_counter()
            try:
                acc = analyzer.add(analyzer.create(), vals)
            except Exception as exc:
                raise ExecutionError(
                    f"analysing {op.op_name} failed: {type(exc).__name__}: {exc}", node=name
                ) from exc
            self._time(name, t0)
            out.append((name, acc))
        return out

    # ------------------------------------------------------------------ compute + write

    def examples_table(self, node: PreNode, split: str, k: int, cache: dict[str, Any]) -> pa.Table:
        label_op = node.op
        assert isinstance(label_op, LABELS) and node.source is not None
        cols: dict[str, pa.Array] = {}
        for f in node.features:
            fnode = self.nodes[f]
            values = self.value(f, split, k, cache)
            if (fnode.value_kind or NUMERIC) == NUMERIC:
                self._check_finite(node, f, (split, k), values, cache)
            cols.update(tables.feature_columns(f, fnode.value_kind or NUMERIC, values))
        raw = self.column(node.source, label_op.column, split, k, cache)
        t0 = time.perf_counter()
        state = self.states.get(node.name)
        try:
            labels, bad = label_op.encode(raw, state)
            unsure = _classes_unsure(self.nodes, node, split, raw, state)
        except HelixError as exc:  # what the training split taught it cannot label
            _raise_named(exc, node.name)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = _describe_row(self.nodes, node.source, split, int(cache["rows"][i]))
            problem = label_problem(label_op, where, raw[i], int(bad.sum()), state)
            raise DataError(problem, node=node.name)
        if unsure.any():
            i = int(np.flatnonzero(unsure)[0])
            where = _describe_row(self.nodes, node.source, split, int(cache["rows"][i]))
            value = raw[i].as_py() if hasattr(raw[i], "as_py") else raw[i]
            raise DataError(
                f"{where} has label {value!r} in column {label_op.column!r}, not a class of "
                f"the sampled training rows; unseen='other' would collect it in "
                f"{OTHER_CLASS!r}, but the whole training split may hold it as a class of "
                f"its own ({int(unsure.sum())} such rows in this batch)",
                node=node.name,
            )
        cols[LABEL] = pa.array(labels, _LABEL_TYPES[label_op.TASK])
        cols[ROW_ID] = pa.array(cache["rows"], pa.int64())
        self._time(node.name, t0)
        return pa.table(cols)

    def _check_finite(
        self,
        node: PreNode,
        feature: str,
        batch: tuple[str, int],
        values: Any,
        cache: dict[str, Any],
    ) -> None:
        """A numeric feature the model reads must be finite: one NaN or infinity makes the
        loss NaN and every prediction NaN, with no word of where it came from. Named by
        the raw column's infinity where the feature reads one (a mean of the training
        split that is infinite makes every row non-finite), else by the feature."""
        x = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(x)
        if not bad.any():
            return
        split, k = batch
        what, shown = f"feature {feature!r}", x
        fop, src = self.nodes[feature].op, node.source
        columns = self.nodes[src].columns if src in self.nodes else {}
        for col in fop.inputs() if isinstance(fop, Feature) else ():
            if isinstance(col, str) and columns.get(col) in ("int", "float"):
                raw = self.column(src, col, split, k, cache)
                if np.isinf(raw).any():
                    what, shown, bad = f"column {col!r}", raw, np.isinf(raw)
                    break
        i = int(np.flatnonzero(bad)[0])
        where = _describe_row(self.nodes, src, split, int(cache["rows"][i]))
        if what.startswith("feature") and isinstance(fop, Feature):
            wide = _past_float32(fop, columns, lambda c: self.column(src, c, split, k, cache))
            if wide is not None:
                col, raw = wide
                i = int(np.flatnonzero(np.abs(raw) > _FLOAT32_MAX)[0])
                where = _describe_row(self.nodes, src, split, int(cache["rows"][i]))
                raise DataError(
                    f"column {col!r} is {float(raw[i])!r} on {where}, past float32's range "
                    f"(+-{_FLOAT32_MAX:.4g}) that models compute in, and feature {feature!r} "
                    "keeps it as it is: standardise it (F.Numeric(column), the default), or "
                    "scale it down in a UDF",
                    node=node.name,
                )
        raise DataError(
            f"{what} is {shown[i]} on {where} ({int(bad.sum())} such rows in this "
            "batch), and a model needs finite numbers. An infinity in the data: add 'inf' and "
            "'-inf' to the source's na_values to read it as missing (F.Numeric fills missing "
            "values with the training mean); from a UDF (np.log of 0): use np.log1p or "
            "clip; a missing value from a UDF: wrap it in F.Numeric(udf)",
            node=node.name,
        )

    def compute_batch(self, split: str, k: int, order: list[str]) -> dict[str, tuple[int, int]]:
        """Compute every computed node of a batch, write those marked ``write``.

        Returns {node: (rows, bytes written)}; bytes 0 where the writer writes them.
        """
        cache: dict[str, Any] = {}
        done: dict[str, tuple[int, int]] = {}
        for name in order:
            node = self.nodes[name]
            if node.state != NodeState.COMPUTE or node.role == Role.SOURCE:
                continue
            if node.role == Role.EXAMPLES:
                table = self.examples_table(node, split, k, cache)
            else:
                values = self.value(name, split, k, cache)
                if not node.write:
                    done[name] = (len(values), 0)
                    continue
                cols = tables.feature_columns("value", node.value_kind or NUMERIC, values)
                cols[ROW_ID] = pa.array(cache["rows"], pa.int64())
                table = pa.table(cols)
            size = 0
            if node.write and self.writer is not None:  # it counts the bytes and seconds
                write = functools.partial(tables.write_batch, node.root, split, k, table)
                self.writer.submit(name, write)
            elif node.write:
                t0 = time.perf_counter()
                size = tables.write_batch(node.root, split, k, table)
                self.write_seconds[name] = (
                    self.write_seconds.get(name, 0.0) + time.perf_counter() - t0
                )
            done[name] = (table.num_rows, size)
        return done


def user_code_line(exc: BaseException) -> str | None:
    """``file:line, in function`` of the innermost frame of the user's own code (a UDF,
    a helper it calls) in ``exc``'s traceback, or None when none is there."""
    import traceback

    from helix_tf.compiler.hashing import is_user_location

    ours = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep  # helix_tf/
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        real = os.path.realpath(frame.filename)
        if not real.startswith(ours) and is_user_location(None, frame.filename):
            return f"{frame.filename}:{frame.lineno}, in {frame.name}"
    return None


def label_problem(label_op: Any, where: str, value: Any, count: int, state: Any = None) -> str:
    """Why the label ``value`` at ``where`` (its line and file) cannot be used, and the fix.

    A missing value (empty, blank text, NaN) is said to be missing, never shown as
    ``np.float64(nan)``; the text ``NaN`` is shown with how to keep it as a value of its
    own; another is shown as the Python value it is (``'x'``, ``3.5``).
    """
    shown = value.as_py() if hasattr(value, "as_py") else value
    if isinstance(shown, np.generic):
        shown = shown.item()
    missing = (
        shown is None
        or (isinstance(shown, float) and shown != shown)
        or (isinstance(shown, str) and is_unset_text(shown))  # blank or NaN: a missing label
    )
    what = "has no label" if missing else f"has label {shown!r}"
    fix = "Fix or drop those rows."
    if missing and isinstance(shown, str) and shown.strip():  # the text NaN
        what = f"has label {shown!r} (read as missing)"
        fix = (
            f"Fix or drop those rows, or, if {shown!r} is a value of its own, name it with "
            f"sources.Csv(..., replace={{{label_op.column!r}: {{{shown!r}: <a name>}}}})."
        )
    return (
        f"{where} {what} in column {label_op.column!r}; "
        f"{label_op.problem(None if missing else shown, state)}"
        f" ({count} such rows in this batch). {fix}"
    )


def _describe_row(nodes: Mapping[str, Any], src: str, split: str, row: int) -> str:
    """Where row id ``row`` of ``split`` of source ``src`` is: "line 12 of FILE"."""
    source = nodes[src].op if src in nodes else None
    if isinstance(source, Source):
        return source.describe_row(split, row)
    return f"row {row} (line number in its file) of split {split!r}"


def _classes_unsure(
    nodes: Mapping[str, PreNode], node: PreNode, split: str, raw: Any, state: Any
) -> np.ndarray:
    """Rows of a split the sample did not draw from whose label is no class a
    ``MulticlassLabel(unseen="other")`` learned from a source's sample of the training
    rows: ``<other>`` for them would be a guess (the whole training split may hold
    the class), so they fail the sampled run, which is retried with the sample drawn
    at training (``helix_tf.errors.SampledDataError``). No row where the classes are
    sure: declared, learned from every training row, or a split that is the sample's."""
    op = node.op
    source = nodes.get(node.source or "")
    if (
        not isinstance(op, MulticlassLabel)
        or op.unseen != "other"
        or op.analyzer() is None
        or source is None
        or source.sample is None
        or split == Split.TRAIN
    ):
        return np.zeros(0, dtype=bool)
    # Missing labels are bad under either setting: those rows fail as missing first.
    return dataclasses.replace(op, unseen="error").encode(raw, state)[1]


def _transform(node: PreNode, state: Any, vals: list[Any], n: int, batch: str) -> Any:
    """``node``'s transform of one batch; a failure names the node (and the line of user
    code)."""
    op = node.op
    assert isinstance(op, Feature)
    try:
        return op.transform(vals, state, n)
    except HelixError as exc:
        _raise_named(exc, node.name)
    except Exception as exc:
        where = user_code_line(exc)
        raise ExecutionError(
            f"{op.op_name} raised {type(exc).__name__}: {exc}"
            + (f" at {where}" if where else "")
            + f" (batch {batch}); fix the code there, or the data it reads",
            node=node.name,
        ) from exc


def _raise_named(exc: HelixError, node: str) -> NoReturn:
    """Raise an operator's own error, named by its node when it does not name one (of its
    type: a ``DataError`` stays one)."""
    if isinstance(exc, ExecutionError) and exc.node is None:
        raise type(exc)(str(exc), node=node) from exc
    raise exc
