"""User-defined metrics: :class:`Custom` calls a function of labels, scores and columns."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from helix_tf.components._first_calls import first_call
from helix_tf.components.base import list_as_tuple, normalized
from helix_tf.components.metrics._base import Metric, _as_vector, _same_length, _take
from helix_tf.errors import DataError, ExecutionError

if TYPE_CHECKING:
    import pandas as pd


def _same_nans(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Equal results where NaN equals NaN (a metric undefined on these rows)."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Custom(Metric):
    """A metric computed by a user function, for a label of any task.

    Parameters
    ----------
    name : str
        The result key, or the prefix of the keys when ``fn`` returns a dict.
    fn : callable
        ``fn(y_true, y_score, frame) -> float | dict[str, float]``. What the arrays
        hold follows the label's task: binary, ``y_true`` 0/1 and ``y_score`` the
        positive class' probability; multiclass, ``y_true`` class indices (the
        label's class order) and ``y_score`` one probability column per class,
        shape (rows, classes); regression, the target's values and the predictions,
        on the original scale (the label's transform undone). ``frame`` is a
        DataFrame holding exactly the ``frame_columns`` of the same rows (index
        0..n-1), or None when ``frame_columns`` is empty. A float is reported as
        ``name``; a dict ``{sub: value}`` as ``name/sub`` for each entry.
    frame_columns : tuple of str
        The raw columns ``fn`` reads. (Named so because ``columns()`` is the
        method every metric has.)
    slice_by : str or None
        As for every metric.

    Notes
    -----
    Exceptions raised by ``fn`` are wrapped into
    :class:`~helix_tf.errors.ExecutionError` naming the metric. ``bootstrap``
    calls ``fn`` once on all rows (to fix the keys) and then once per sample.

    Examples
    --------
    >>> brier = Custom(name="brier", fn=lambda y, s, f: float(((s - y) ** 2).mean()))
    >>> brier.compute([1, 0], [0.75, 0.25])
    {'brier': 0.0625}
    >>> pinball = Custom(name="pinball90",
    ...                  fn=lambda y, p, f: float(np.maximum(0.9 * (y - p), 0.1 * (p - y)).mean()))
    >>> pinball.compute([10.0, 20.0], [12.0, 15.0])  # a regression label's values
    {'pinball90': 2.35}
    >>> top = Custom(name="top", fn=lambda y, s, f: float((s.argmax(axis=1) == y).mean()))
    >>> top.compute([0, 2], [[0.7, 0.2, 0.1], [0.5, 0.1, 0.4]])  # one column per class
    {'top': 0.5}
    """

    TASKS: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")

    name: str
    fn: Callable[[np.ndarray, np.ndarray, pd.DataFrame | None], float | Mapping[str, float]]
    frame_columns: tuple[str, ...] = normalized(list_as_tuple, default=())

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = super().validate()
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(f"name must be a non-empty string, but got {self.name!r}")
        if not callable(self.fn):
            problems.append(
                f"fn must be callable, as fn(y_true, y_score, frame) -> float | dict, "
                f"but got {self.fn!r} ({type(self.fn).__name__})"
            )
        cols = self.frame_columns
        if isinstance(cols, str):
            problems.append(
                f"frame_columns must be a tuple of column names, but got the string {cols!r}; "
                f"write ({cols!r},)"
            )
        elif not isinstance(cols, tuple) or not all(isinstance(c, str) and c for c in cols):
            problems.append(
                f"frame_columns must be a tuple of non-empty column names, but got {cols!r}"
            )
        return problems

    def columns(self) -> tuple[str, ...]:
        """Return ``slice_by`` (if any) and then ``frame_columns``, without repeats."""
        return tuple(dict.fromkeys(super().columns() + tuple(self.frame_columns)))

    def _check_arrays(self, y_true: Any, y_score: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and scores of any task (see the class docs): numbers, finite, one label
        and one score (a row of scores: multiclass) a row; what they mean is ``fn``'s."""
        y = _as_vector(y_true, "y_true", who)
        s = np.asarray(y_score)
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        if s.ndim not in (1, 2):
            raise DataError(
                f"{who}: y_score must hold one score a row, or one row of scores a row "
                f"(multiclass), but got shape {s.shape}"
            )
        _same_length(y, s, who)
        if y.dtype == bool:
            y = y.astype(np.int64)
        for name, v in (("y_true", y), ("y_score", s)):
            if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
                raise DataError(f"{who}: {name} must be numbers, but got dtype {v.dtype}")
            bad = ~np.isfinite(v.astype(np.float64))
            rows = bad.any(axis=1) if bad.ndim == 2 else bad
            if rows.any():
                row = int(np.flatnonzero(rows)[0])
                raise DataError(
                    f"{who}: {name} must be finite numbers, but row {row} holds "
                    f"{v[row].tolist()!r} ({int(rows.sum())} such rows)"
                )
        return y, s

    def keys(self) -> tuple[str, ...]:
        """Return ``(name,)``: the key, or the prefix of the keys of a dict result."""
        return (self.name,)

    def _evaluate(
        self, y_true: np.ndarray, y_score: np.ndarray, frame: pd.DataFrame | None
    ) -> dict[str, float]:
        own = frame[list(self.frame_columns)] if self.frame_columns and frame is not None else None
        values = self._values(y_true, y_score, own)
        if first_call(self.fn):  # the first call in this process: once more
            again = self._values(y_true, y_score, own)
            if again != values and not _same_nans(values, again):
                raise ExecutionError(
                    f"custom metric {self.name!r} gives another value when called again on "
                    f"the same predictions: {values} then {again}. It keeps state between "
                    "calls (a counter, a list it appends to, an object it updates) or draws "
                    "random numbers helix_tf cannot see, so its value follows how many "
                    "evaluations, slices and resamples ran before it in the process (what a "
                    "run loads from the store) and a stored result could differ from a "
                    "fresh run. Compute it from its arguments alone; for random numbers, a "
                    "generator seeded inside the function (np.random.default_rng(SEED))"
                )
        return values

    def _values(
        self, y_true: np.ndarray, y_score: np.ndarray, own: pd.DataFrame | None
    ) -> dict[str, float]:
        """One call of ``fn`` on private copies of its arguments, as the result's keys."""
        copies = (y_true.copy(), y_score.copy(), None if own is None else own.copy())
        try:
            result = self.fn(*copies)
        except Exception as exc:
            raise ExecutionError(
                f"custom metric {self.name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(result, Mapping):
            checked = self._check_subkeys(result)
            return {f"{self.name}/{sub}": self._as_float(v, sub) for sub, v in checked.items()}
        return {self.name: self._as_float(result, None)}

    def _check_subkeys(self, result: Mapping[Any, Any]) -> Mapping[str, Any]:
        bad = [k for k in result if not isinstance(k, str) or not k]
        if bad:
            raise ExecutionError(
                f"custom metric {self.name!r} returned a dict with keys {bad!r}; "
                "its keys must be non-empty strings"
            )
        return result

    def _as_float(self, value: Any, sub: str | None) -> float:
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            where = f" under key {sub!r}" if sub is not None else ""
            raise ExecutionError(
                f"custom metric {self.name!r} returned {value!r} ({type(value).__name__})"
                f"{where}; return a float or a dict of floats"
            ) from exc

    def _resample(
        self,
        y_true: np.ndarray,
        y_score: np.ndarray,
        frame: pd.DataFrame | None,
        samples: int,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        keys = self._evaluate(y_true, y_score, frame)  # intervals for exactly these keys
        n = len(y_true)
        draws: list[dict[str, float]] = []
        for _ in range(samples):
            rows = rng.integers(0, n, size=n) if n else np.zeros(0, dtype=np.intp)
            draws.append(self._evaluate(*_take(y_true, y_score, frame, rows)))
        return {key: np.array([d.get(key, math.nan) for d in draws]) for key in keys}
