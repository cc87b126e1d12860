"""Calls of a feature's code of the user's own: private inputs, and a repeat check.

A feature whose transform runs user code (``Feature.runs_user_code``: a UDF, an operator
class written outside helix_tf) may do two things no fingerprint shows:

- **change its inputs** (``batch["age"] = batch["age"] * 100``). The engine holds one
  frame of a batch for every whole-row feature and one value per feature, so a change
  was seen by the features computed after it in the same batch, and which ones those
  were follows what a run loads from the store: a run that loaded the changing feature
  and recomputed another (after an edit of the other) gave other values than a fresh
  run. Each call now gets :func:`private` copies (a shallow copy of a frame where pandas
  copies on write, else a deep one; arrays and bags copied).
- **keep state between calls** (a counter, a list it appends to, an object it updates,
  ``CALLS.append(1); return v * len(CALLS)``). Its values then follow how many batches
  it was called on before, which ``--batch-rows``, the data's layout, the runner and
  what a run loads decide: a result stored under ``--batch-rows 100`` was reused by a
  run with the default and differed from a fresh run. The compiler sees a write to
  module state but cannot tell a counter from a memo cache (QA pass 14), so on its first
  batch in a process such a feature is computed again, on private copies, and values
  that differ are an error naming the row (:func:`check_repeat`). A whole-row feature
  (a UDF) is computed again on the first :data:`REPEAT_ROWS` rows only: its values are
  each their own row's (a row UDF is called per row; a batched one was checked by its
  halves just before), and a row UDF on census' 32,561 rows takes ~1 s. A feature the
  compiler already refused (random draws: recomputed every run, never reused) is not
  checked.
- **fix state at its first call** (``CACHE.setdefault("n", len(batch))``,
  ``self.n = self.n or len(batch)``): computed again, it gives the same values, but they
  follow the size of the first batch of the process. The state the user code holds (the
  mutable containers and the attributes of objects of the user's own classes that its
  globals, closure, defaults, callable object or bound method name, and those of the
  user functions and methods it calls: :mod:`helix_tf.engine._held_state`) is copied
  shallowly before the first batch (:class:`StateSnapshot`); where the first call
  changed it, it is put back as it was and the second call is on the batch's first half
  (at most :data:`REPEAT_ROWS` rows): another first batch. A memo cache gives the same
  values again; state fixed by the batch does not. State behind a library's API (a
  library object's insides) is not seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helix_tf.components._first_calls import first_call as first_call
from helix_tf.components.base import Operator
from helix_tf.components.features import Bag, Feature, first_difference
from helix_tf.engine._held_state import StateSnapshot as StateSnapshot
from helix_tf.errors import ExecutionError

__all__ = [
    "REPEAT_ROWS",
    "StateSnapshot",
    "check_repeat",
    "first_call",
    "head",
    "private",
    "repeat_inputs",
]

#: The rows of its first batch a whole-row feature is computed on again (a counter
#: differs at the first; a fiftieth of a default batch).
REPEAT_ROWS = 1_000


def _pandas_copies_on_write() -> bool:
    import pandas as pd

    return int(pd.__version__.split(".")[0]) >= 3


def private(value: Any) -> Any:
    """A copy of ``value`` that user code may change without changing ``value``: a frame
    (shallow under pandas' copy-on-write, which copies what is then changed), an array,
    a bag, a list (and the lists in it); Arrow arrays and other values are immutable
    or given as they are."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Bag):
        return Bag(value.offsets.copy(), value.idx.copy(), value.val.copy())
    if isinstance(value, list):
        return [list(v) if isinstance(v, list) else v for v in value]
    copy = getattr(value, "copy", None)
    if copy is not None and type(value).__module__.startswith("pandas"):
        return copy(deep=not _pandas_copies_on_write())
    return value


def repeat_inputs(
    op: Feature, vals: list[Any], n: int, *, other_batch: bool = False
) -> tuple[list[Any], int]:
    """Private inputs for computing ``op`` again on the batch ``vals`` of ``n`` rows, and
    the rows they hold: a whole-row feature's first :data:`REPEAT_ROWS` (its frame's head;
    the rest as they are), else the whole batch. ``other_batch``: a batch of another
    size, the first half (at most :data:`REPEAT_ROWS` rows) of every input."""
    m = min(REPEAT_ROWS, n // 2) if other_batch and n >= 2 else min(REPEAT_ROWS, n)
    if op.reads_whole_row():
        if m == n:
            return [private(v) for v in vals], n
        return [private(vals[0].iloc[:m]), *vals[1:]], m
    if m == n or not other_batch:
        return [private(v) for v in vals], n
    return [private(head(v, m)) for v in vals], m


def head(out: Any, m: int) -> Any:
    """The first ``m`` rows of a transform's output."""
    if isinstance(out, Bag):
        return out if len(out) == m else out.take(np.arange(m))
    return out[:m]


def _difference(a: Any, b: Any) -> tuple[int, Any, Any] | None:
    """Where two outputs of one transform differ: (row position, value, other value)."""
    if isinstance(a, Bag) and isinstance(b, Bag):
        for x, y in ((a.offsets, b.offsets), (a.idx, b.idx), (a.val, b.val)):
            if x.shape != y.shape or first_difference(x, y) is not None:
                return 0, "a bag", "another bag"
        return None
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.ndim != 1:
        same = x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
        return None if same else (0, "an output", "another output")
    i = first_difference(x, y)
    return None if i is None else (i, x[i], y[i])


def check_repeat(
    op: Operator, out: Any, again: Any, rows: np.ndarray | None, *, restored: bool = False
) -> None:
    """Raise when ``again`` (the same rows computed a second time) differs from ``out``
    (``restored``: computed as a first batch of another size, its state put back)."""
    found = _difference(out, again)
    if found is None:
        return
    i, first, second = found
    row = f"row {int(rows[i])} (the line number in its file)" if rows is not None else "a row"
    how = (
        ", as the first batch of another size (its state as before its first call)"
        if restored
        else ""
    )
    kind = (
        "state its first call set (CACHE.setdefault('n', len(batch)): the first batch's size)"
        if restored
        else "state between calls (a counter, a list it appends to, an object it updates)"
    )
    raise ExecutionError(
        f"{op.op_name} gives other values when called again on the same rows{how}: {row} "
        f"got {_plain(first)!r}, then {_plain(second)!r}. It keeps {kind} or draws random "
        "numbers "
        "helix_tf cannot see, so its values follow how many batches it was called on "
        "before (--batch-rows, the data's layout, what a run loads from the store) and a "
        "stored result could differ from a fresh run. Compute each row's value from that "
        "row and constants alone; for statistics of the training split use "
        "F.DatasetUdf(fit=..., apply=...); for random values, a generator seeded inside "
        "the function (np.random.default_rng(SEED))"
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
