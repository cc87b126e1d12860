"""User-defined features: per-row or per-batch functions, and fit/apply pairs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import did_you_mean, normalized
from helix_tf.components.features._base import Analyzer, Feature, Input, SourceRows
from helix_tf.errors import ExecutionError
from helix_tf.types import CATEGORICAL, NUMERIC, ROW_ID, STRING

_UDF_OUTPUTS = (NUMERIC, STRING, CATEGORICAL)


def _output_problems(output: str, size: int | None) -> list[str]:
    """Problems with a user function's declared output kind and size."""
    if output not in _UDF_OUTPUTS:
        return [f"output must be one of {_UDF_OUTPUTS}, but got {output!r}"]
    if output == CATEGORICAL and (not isinstance(size, int) or size < 1):
        return ["a categorical UDF needs size=K (its values lie in [0, K))"]
    return []


def _files_problems(files: Any) -> list[str]:
    if not isinstance(files, tuple) or not all(isinstance(f, str) and f for f in files):
        return [f"files must be a path or a list of paths the function reads, but got {files!r}"]
    return []


def _as_files(files: Any) -> Any:
    if isinstance(files, str | os.PathLike):
        return (os.fspath(files),)
    if isinstance(files, list | tuple):
        return tuple(os.fspath(f) if isinstance(f, os.PathLike) else f for f in files)
    return files


class _UserFunction(Feature):
    """What every user-function feature shares: it reads whole source rows and
    produces the declared ``output`` kind (with ``size`` indices when categorical).

    ``files`` are the files the function reads (a lookup table, a word list): their
    content joins the fingerprint, so editing one recomputes the feature.
    """

    #: 2 (QA pass 21): each call gets its own copy of the batch (a UDF writing into it
    #: changed the rows the next UDF saw), and a function whose values follow its earlier
    #: calls or a row's place in its batch fails; results stored before may hold either.
    VERSION: ClassVar[int] = 2
    output: str
    size: int | None
    files: tuple[str, ...]

    def content_files(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """The declared ``files``: their content, not their place, identifies them."""
        return {"files": tuple(("", f) for f in self.files)}

    def inputs(self) -> tuple[Input, ...]:
        return ()

    def reads_whole_row(self) -> bool:
        return True

    def runs_user_code(self) -> bool:
        return True

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return self.output

    def cardinality(self, state: Any) -> int | None:
        return self.size


def _column_hint(exc: BaseException, columns: Sequence[str]) -> str:
    """For a ``KeyError`` on a name that is not a column: the columns there are."""
    if not isinstance(exc, KeyError) or not exc.args:
        return ""
    key = exc.args[0]
    names = [str(c) for c in columns if c != ROW_ID]
    if not isinstance(key, str) or key in names:
        return ""
    return (
        f"; there is no column {key!r}{did_you_mean(key, names)}. "
        f"Available columns: {', '.join(names)}"
    )


def _call_user(fn: Callable[..., Any], what: str, frame: Any, *args: Any) -> Any:
    """``fn(frame, *args)``; a KeyError on an unknown column names the available ones."""
    try:
        return fn(frame, *args)
    except KeyError as exc:
        hint = _column_hint(exc, list(frame.columns))
        if not hint:
            raise
        where = _line_in(exc, fn)
        raise ExecutionError(f"{what} raised KeyError: {exc}{where}{hint}") from exc


#: Batch functions already checked for row-local values in this process (by id; the
#: function is kept so its id is never reused by another).
_ROW_LOCAL_CHECKED: dict[int, Any] = {}


def _call_batched(
    op: _UserFunction,
    fn: Callable[..., Any],
    what: str,
    n: int,
    frame: Any,
    *args: Any,
    rows: SourceRows | None = None,
) -> np.ndarray:
    """``fn(frame, *args)`` as the declared output, checked once per function and
    process to give each row a value computed from that row alone.

    A batch's rows follow ``--batch-rows`` and the data's layout, none of which is part
    of a result's identity: a function whose values depend on the other rows of its
    batch (a batch mean, a rank, a shift) would make a stored result differ from what a
    fresh run computes. The first batch of two or more rows is also computed in two
    halves, each indexed from 0 as a batch is (``batch.index`` is a row's place in its
    batch); a value that differs is an error naming the row and the fix.
    """
    check = n >= 2 and len(frame) == n and id(fn) not in _ROW_LOCAL_CHECKED
    if check:  # copies taken first: a function that edits its batch sees the same rows
        k = n // 2
        # Each half as the engine gives a batch: its own index from 0 (a function
        # reading batch.index reads a row's place in its batch).
        halves = tuple(f.copy().reset_index(drop=True) for f in (frame.iloc[:k], frame.iloc[k:]))
        halves += (frame.copy(),)
    whole = _coerce_output(
        op, _call_user(fn, what, frame, *args), n, op.output, op.size, frame, rows
    )
    if check:
        _ROW_LOCAL_CHECKED[id(fn)] = fn
        parts = [
            _coerce_output(op, _call_user(fn, what, h, *args), len(h), op.output, op.size)
            for h in halves[:2]
        ]
        apart = np.concatenate(parts)
        differs = first_difference(whole, apart)
        if differs is not None:  # unless it differs from itself: random draws or state,
            again = _call_user(fn, what, halves[2], *args)  # which the engine's repeat
            again = _coerce_output(op, again, n, op.output, op.size)  # check judges
            if first_difference(whole, again) is not None:  # (engine._user_calls)
                differs = None
        if differs is not None:
            row = int(frame[ROW_ID].iloc[differs]) if ROW_ID in frame else differs + 1
            raise ExecutionError(
                f"{what} gives a row a value that depends on the other rows of its batch "
                "(or on its place there, batch.index): "
                f"row {row} (the line number in its file) got {_plain(whole[differs])!r} in a "
                f"batch of {n} rows and {_plain(apart[differs])!r} in a batch of "
                f"{len(halves[int(differs >= k)])}. Batches "
                "follow --batch-rows and the data's layout, so its results would too (and a "
                "stored result could differ from a fresh run). Compute each row's value "
                "from that row alone; for statistics of the training split (a mean, "
                "quantiles) use F.DatasetUdf(fit=..., apply=...)"
            )
    return whole


def _equal(x: Any, y: Any) -> bool:
    try:
        return bool(x == y)
    except (TypeError, ValueError):  # values whose == is not a truth value
        return False


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for a message)."""
    return value.item() if isinstance(value, np.generic) else value


def first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    """The first position where two 1-D outputs of one length differ (numbers: beyond
    float rounding; missing values alike however spelled), or None."""
    if a.dtype.kind == "f":
        same = np.isclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
    else:
        import pandas as pd

        missing_a, missing_b = pd.isna(a), pd.isna(b)  # None, NaN and pd.NA alike
        same = np.array(
            [
                (ma and mb) or (not ma and not mb and _equal(x, y))
                for x, y, ma, mb in zip(a, b, missing_a, missing_b, strict=True)
            ],
            dtype=bool,
        )
    bad = np.flatnonzero(~same)
    return int(bad[0]) if len(bad) else None


def _line_in(exc: BaseException, fn: Callable[..., Any]) -> str:
    """`` at file:line`` of the innermost frame of ``exc`` in ``fn``'s file, or ''."""
    code = getattr(fn, "__code__", None)
    tb = exc.__traceback__
    found = ""
    while code is not None and tb is not None:
        if tb.tb_frame.f_code.co_filename == code.co_filename:
            found = f" at {code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", "udf")


def _defined_at(op: Feature) -> str:
    """`` (def f at file:line)``: where the user function of ``op`` is defined, or ''."""
    fn = getattr(op, "fn", None) or getattr(op, "apply", None)
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    return f" (def {_fn_name(fn)} at {code.co_filename}:{code.co_firstlineno})"


def _where(frame: Any, i: int, n: int, rows: SourceRows | None) -> str:
    """Where value ``i`` of a batch of ``n`` rows comes from: the file's line where the
    engine says (``rows``; QA pass 28: the file was not named), else the row id."""
    if frame is None or ROW_ID not in frame or len(frame) != n:
        return f" at position {i} of its batch"
    row = int(frame[ROW_ID].iloc[i])
    if rows is not None:
        return f" for {rows.describe(row)} (row id {row})"
    return f" for row {row} (the line number in its file)"


def _converted(
    op: Feature, arr: np.ndarray, dtype: Any, frame: Any, rows: SourceRows | None = None
) -> np.ndarray:
    """``arr`` as ``dtype``; a value that is no number fails naming it, its row and the fix."""
    try:
        return arr.astype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        bad = 0
        for i, value in enumerate(arr.tolist()):
            try:
                np.asarray([value]).astype(dtype)
            except (TypeError, ValueError, OverflowError):
                bad = i
                break
        where = _where(frame, bad, len(arr), rows)
        kind = "numeric" if np.dtype(dtype).kind == "f" else "categorical"
        fix = (
            "return numbers, or declare output='string' for text (and encode it with "
            "F.Vocabulary(...))"
            if kind == "numeric"
            else "return integer indices in [0, size), or declare output='string' for text"
        )
        raise ExecutionError(
            f"{op.op_name}{_defined_at(op)} returned {_plain(arr[bad])!r}{where}, which is not "
            f"a number ({exc}): output={kind!r} needs numbers; {fix}"
        ) from exc


def _coerce_output(
    op: Feature,
    result: Any,
    n: int,
    output: str,
    size: int | None,
    frame: Any = None,
    rows: SourceRows | None = None,
) -> np.ndarray:
    """``result`` as the declared output; ``frame`` (the rows it was computed from) names
    the row of a value that cannot be one."""
    arr = np.asarray(result)
    if arr.shape != (n,):
        raise ExecutionError(
            f"{op.op_name}{_defined_at(op)} returned shape {arr.shape}, expected ({n},): one "
            f"value per row; return an array or Series as long as the batch it is given "
            f"(len(batch)), not a scalar, a 2-D array or a list of another length"
        )
    if output == NUMERIC:
        return _converted(op, arr, np.float32, frame, rows)
    if output == CATEGORICAL:
        ints = _converted(op, arr, np.int64, frame, rows)
        outside = (ints < 0) | (ints >= size) if size is not None else None
        if outside is not None and outside.any():
            i = int(np.flatnonzero(outside)[0])
            where = _where(frame, i, n, rows)
            fix = (
                "Map the values into that range (a negative index is no category)"
                if (ints < 0).any()
                else f"Give size={int(ints.max()) + 1} or more (size=K counts the indices "
                "0..K-1), or map the values into that range"
            )
            raise ExecutionError(
                f"{op.op_name}{_defined_at(op)} returned index {int(ints[i])}{where}, outside "
                f"[0, {size}) "
                f"({int(outside.sum())} such rows in this batch): a categorical function's "
                f"values are indices in [0, size). {fix}"
            )
        return ints.astype(np.int32)
    return arr.astype(object)


@dataclasses.dataclass(frozen=True)
class Udf(_UserFunction):
    """A user function computing one value per row.

    ``batched=False``: ``fn(row: dict) -> value`` is called per row (simple,
    slow). ``batched=True``: ``fn(batch: pandas.DataFrame) -> array-like`` is
    called once per batch (the fast form). ``output`` is ``numeric``,
    ``string`` or ``categorical`` (then ``size`` is required).
    """

    fn: Callable[..., Any]
    _: dataclasses.KW_ONLY
    batched: bool = False
    output: str = NUMERIC
    size: int | None = None
    files: Sequence[str | os.PathLike[str]] | str = normalized(_as_files, default=())

    def validate(self) -> list[str]:
        problems = []
        if not callable(self.fn):
            problems.append(f"fn must be callable, but got {type(self.fn).__name__}")
        return problems + _output_problems(self.output, self.size) + _files_problems(self.files)

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        frame = values[0]
        rows = values[1] if len(values) > 1 and isinstance(values[1], SourceRows) else None
        if self.batched:
            return _call_batched(self, self.fn, _fn_name(self.fn), n, frame, rows=rows)
        else:
            result = []
            for row in _records(frame, rows):
                try:
                    result.append(self.fn(row))
                except Exception as exc:
                    raise ExecutionError(_row_failure(self.fn, exc, row, rows)) from exc
        return _coerce_output(self, result, n, self.output, self.size, frame, rows)


def _records(frame: Any, rows: SourceRows | None) -> list[dict[str, Any]]:
    """The frame's rows as dicts; integer columns as ``int`` (``None`` when missing).

    Sources keep integer columns as float64 (NaN for missing) in their batches; a
    row-wise function gets the declared type.
    """
    records: list[dict[str, Any]] = frame.to_dict("records")
    ints = [c for c, t in (rows.columns.items() if rows else ()) if t == "int" and c in frame]
    if ints:
        for record in records:
            for c in ints:
                v = record[c]
                record[c] = (
                    None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                )
    return records


def _row_failure(fn: Any, exc: Exception, row: dict[str, Any], rows: SourceRows | None) -> str:
    shown = {k: v for k, v in row.items() if k != ROW_ID}
    text = repr(shown)
    text = text if len(text) <= 400 else text[:397] + "..."
    row_id = row.get(ROW_ID)
    if rows is not None and row_id is not None:
        where = f"{rows.describe(int(row_id))} (row id {row_id})"
    else:
        where = f"row {row_id} (the line number in its file)"
    hint = _column_hint(exc, list(row))
    return f"{_fn_name(fn)} raised {type(exc).__name__}: {exc} on {where}{hint}; the row: {text}"


class _FrameAnalyzer(Analyzer):
    """Collects the declared columns of the training split, then calls ``fit``."""

    def __init__(self, op: DatasetUdf) -> None:
        self.op = op

    def create(self) -> list[Any]:
        return []

    def add(self, acc: list[Any], values: list[Any]) -> list[Any]:
        frame = values[0]
        keep = [*self.op.columns, *([ROW_ID] if ROW_ID in frame else [])]
        acc.append(frame[keep])
        return acc

    def merge(self, accs: Sequence[list[Any]]) -> list[Any]:
        return [f for a in accs for f in a]

    def finalize(self, acc: list[Any]) -> Any:
        import pandas as pd

        frame = (
            pd.concat(acc, ignore_index=True)
            if acc
            else pd.DataFrame({c: [] for c in self.op.columns})
        )
        if ROW_ID in frame:  # file order, whatever order the batches were merged in
            frame = frame.sort_values(ROW_ID, kind="stable", ignore_index=True)
            frame = frame.drop(columns=[ROW_ID])
        what = f"DatasetUdf fit {_fn_name(self.op.fit)} (it sees only the columns= it declares)"
        state = _call_user(self.op.fit, what, frame)
        try:
            json.dumps(state)
        except TypeError as exc:
            raise ExecutionError(
                f"DatasetUdf fit returned a value that is not JSON-serialisable ({exc}); "
                "return numbers, strings, lists and dicts"
            ) from exc
        return state


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetUdf(_UserFunction):
    """A user function that sees the whole training split once, then every batch.

    ``fit(frame) -> state`` receives the training rows' ``columns`` as one
    DataFrame and returns JSON-able state (e.g. quantiles, target means);
    ``apply(batch, state) -> array-like`` computes one value per row of a batch.
    """

    fit: Callable[..., Any]
    apply: Callable[..., Any]
    columns: Sequence[str] = normalized(tuple)
    output: str = NUMERIC
    size: int | None = None
    files: Sequence[str | os.PathLike[str]] | str = normalized(_as_files, default=())

    def validate(self) -> list[str]:
        problems = []
        if not callable(self.fit) or not callable(self.apply):
            problems.append("fit and apply must both be callable")
        if not isinstance(self.columns, tuple) or not self.columns:
            problems.append(f"columns must name the columns fit() reads, but got {self.columns!r}")
        return problems + _output_problems(self.output, self.size) + _files_problems(self.files)

    def analyzer(self) -> Analyzer | None:
        return _FrameAnalyzer(self)

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        what = f"DatasetUdf apply {_fn_name(self.apply)}"
        rows = values[1] if len(values) > 1 and isinstance(values[1], SourceRows) else None
        return _call_batched(self, self.apply, what, n, values[0], state, rows=rows)
