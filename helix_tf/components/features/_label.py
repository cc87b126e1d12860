"""The label operators: the target column of a workflow, and the task it makes.

Three kinds, one per task (``TASK``): :class:`Label` (binary, 0/1),
:class:`MulticlassLabel` (one of several classes, from a vocabulary learned on
the training split or declared) and :class:`NumericLabel` (regression, with an
optional transform such as log). The label decides the learner's head and loss
and which metrics are valid (checked at compile time).

Every label has the same small interface, which the engine calls: ``analyzer``
(statistics of the training split, or None), ``finalize_state``, ``encode``
(values of one batch → stored labels and a mask of invalid rows) and
``describe`` (the JSON facts that travel with examples and predictions).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import Operator, normalized
from helix_tf.components.features._base import Analyzer
from helix_tf.components.features._label_texts import (
    NAN_TEXTS,
    as_strings,
    is_text,
    is_unset_text,
    label_texts,
    missing_texts,
    number_of,
    spelled_like,
    spelling_variants,
    unset_class,
    value_text,
)
from helix_tf.errors import DataError

__all__ = [
    "LABELS",
    "Label",
    "MulticlassLabel",
    "NumericLabel",
    "TASKS",
    "LOSSES",
    "TRANSFORMS",
    "OTHER_CLASS",
    "NAN_TEXTS",
    "is_unset_text",
    "forward_transform",
    "inverse_transform",
]

#: The task types a label can make.
TASKS = ("binary", "multiclass", "regression")
#: Regression losses (``NumericLabel.loss``).
LOSSES = ("squared", "absolute", "huber")
#: Target transforms of a numeric label (None: the values as they are).
TRANSFORMS = ("log", "log1p", "sqrt")
#: The class that collects unseen values under ``MulticlassLabel(unseen="other")``.
OTHER_CLASS = "<other>"


@dataclasses.dataclass(frozen=True)
class Label(Operator):
    """The binary label: ``column == positive`` (or a 0/1 numeric column when ``positive`` is None).

    Parameters
    ----------
    column : str
        The label column.
    positive : optional
        The value of the positive class; every other value the training split holds
        is negative (one value against the rest). ``2``, ``2.0`` and ``"2"`` are the
        number 2 of a numeric column and the text ``2`` of a text column. None: the
        column holds 0 and 1.

    Under ``positive=`` a value the training split does not hold (``maybe`` only in the
    test split, ``>50K.`` where training has ``>50K``) fails the run naming the value,
    file and line: map it to a training value with the source's ``replace=``. So does a
    training value spelled like ``positive=`` but for case, spaces around it or a final
    full stop (``Yes`` beside ``yes``), which would be a negative row.
    A label of blank text or the text ``NaN`` (any case) is missing, as in a numeric
    column, whatever the source's ``na_values``: the run fails naming the row.
    """

    KIND: ClassVar[str] = "label"
    TASK: ClassVar[str] = "binary"
    #: 2: a label of blank text is missing (it was a negative row; QA pass 15).
    #: 3: under positive=, a value the training split does not hold is an error (it was
    #: a negative row; QA pass 16), so examples stored before may hold such rows.
    #: 4: the text ``NaN`` is a missing label (it was a negative row; QA pass 20).
    #: 5: a training value spelled like positive= (``Yes`` beside ``yes``, ``>50K.``
    #: beside ``>50K``) is an error (it was a negative row), and positive= is read as
    #: the column's values are (``positive="2"`` on a numeric column matched no row,
    #: ``positive=2`` on a text one neither, though both counted ``"2"``; QA pass 25).
    VERSION: ClassVar[int] = 5
    #: Parameters only training reads (hashed into the train node, not the examples).
    TRAINING_PARAMS: ClassVar[tuple[str, ...]] = ()
    column: str
    positive: Any = None

    def validate(self) -> list[str]:
        if not isinstance(self.column, str) or not self.column:
            return [f"column must be a column name, but got {self.column!r}"]
        if isinstance(self.positive, str) and is_unset_text(self.positive):
            return [unset_class("positive", self.positive, self.column)]
        return []

    def analyzer(self) -> Analyzer | None:
        """The training split's values, which make the label's domain under ``positive=``."""
        return _ClassCounts() if self.positive is not None else None

    def finalize_state(self, stats: Any) -> Any:
        """The transform's state from the analyzer's result."""
        return None if stats is None else {"counts": stats}

    def describe(self, state: Any = None) -> dict[str, Any]:
        """JSON facts for examples, models and predictions: the task and its specifics."""
        return {"task": self.TASK}

    def problem(self, bad_value: Any, state: Any = None) -> str:
        """Why a row's label is invalid, and how to fix it (for the error message);
        ``state``: what the training split holds, to name the value it is a spelling of."""
        if self.positive is None:
            return "expected 0 or 1, or pass positive=<value> to Label"
        if bad_value is None:
            return "labels must not be missing"
        like = spelled_like(str(bad_value), (state or {}).get("counts") or {})
        target = repr(like) if like is not None else "<a training value>"
        return (
            f"{bad_value!r} is not a value of the training split (positive={self.positive!r}, "
            "every other training value negative); make the splits' values agree: clean "
            f"the data, or map it with sources.Csv(..., replace={{{self.column!r}: "
            f"{{{bad_value!r}: {target}}}}})"
            + (" (a negative one to count it as negative)" if like is None else "")
        )

    def encode(self, values: Any, state: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The stored labels of one batch and a mask of rows whose label is invalid:
        missing, or (under ``positive=``) a value the training split (``state``) lacks."""
        labels, bad = self.transform(values)
        if self.analyzer() is not None:
            if state is None:
                raise ValueError(f"the values of label {self.column!r} have not been learned")
            if not state["counts"]:  # a training split without labels: its own checks say so
                return labels, bad
            want = value_text(self.positive)
            variants = want and spelling_variants(state["counts"], self.column, of=want)
            if variants:
                raise DataError(variants)
            import pyarrow as pa
            import pyarrow.compute as pc

            texts = label_texts(values)
            known = pa.array(list(state["counts"]), type=pa.string())
            unknown = ~np.asarray(pc.fill_null(pc.is_in(texts, value_set=known), True), bool)
            bad = bad | unknown
        return labels, bad

    def transform(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels as int8 and a mask of rows whose label is missing or invalid."""
        import pandas as pd

        raw = values
        if hasattr(values, "to_pandas"):
            values = values.to_pandas()
        series = pd.Series(values)
        missing = series.isna().to_numpy(dtype=bool)
        if self.positive is None:
            nums = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = missing | ~np.isin(nums, (0.0, 1.0))
            return np.where(bad, 0, nums).astype(np.int8), bad
        # A text column's values are compared as text, as the training split's values are
        # counted (positive=2 is the text "2"); a numeric column's as numbers (positive="2"
        # is the number 2).
        want = value_text(self.positive)
        if is_text(raw):  # numbers are never blank (and are not turned into text here)
            import pyarrow.compute as pc

            texts = as_strings(raw)
            missing = missing | missing_texts(texts)
            positive = np.asarray(pc.fill_null(pc.equal(texts, want), False), dtype=bool)
        else:
            nums = pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            target = None if want is None else number_of(want)
            positive = nums == target if target is not None else np.zeros(len(nums), bool)
        return np.where(missing, 0, positive).astype(np.int8), missing


# ---------------------------------------------------------------------------- multiclass


class _ClassCounts(Analyzer):
    """Counts of each label value over the training split."""

    def create(self) -> dict[str, int]:
        return {}

    def add(self, acc: dict[str, int], values: list[Any]) -> dict[str, int]:
        import pyarrow.compute as pc

        counts = pc.value_counts(label_texts(values[0]).drop_null())
        for value, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            acc[value] = acc.get(value, 0) + int(count)
        return acc

    def merge(self, accs: Sequence[dict[str, int]]) -> dict[str, int]:
        out: Counter[str] = Counter()
        for a in accs:
            out.update(a)
        return dict(out)

    def finalize(self, acc: dict[str, int]) -> dict[str, int]:
        return dict(sorted(acc.items()))


def _class_names(classes: Any) -> Any:
    """Declared classes as a tuple of text (``2`` is the class ``"2"``); None stays None."""
    if classes is None or isinstance(classes, str):
        return classes  # a string is refused by validate()
    return tuple(str(c) for c in classes)


@dataclasses.dataclass(frozen=True)
class MulticlassLabel(Operator):
    """A label with one of several classes (softmax head, cross-entropy loss).

    Parameters
    ----------
    column : str
        The label column; its values are compared as text (``2.0`` in a numeric
        column is the class ``"2"``).
    classes : tuple of str, optional
        The classes, in the order of the model's outputs. When omitted, they are
        learned from the training split (every value seen there, sorted as text).
    unseen : {"error", "other"}
        What a value that is not a class (e.g. only in the test split) does:
        ``"error"`` fails the run naming the value and row; ``"other"`` maps it to
        an extra class ``"<other>"`` (always the last output), reported like the others;
        a class of the data spelled ``<other>`` is refused then (a class of its own
        under ``"error"``).

    A label of blank text or the text ``NaN`` (any case) is missing, never a class: the
    run fails naming the row. Learned classes that are spellings of one value (``Ideal``
    and ``ideal``, ``Good.``) fail the run naming them and the ``replace=`` fix.
    """

    KIND: ClassVar[str] = "label"
    TASK: ClassVar[str] = "multiclass"
    #: 2: a label of blank text is missing (it was a class of its own; QA pass 15).
    #: 3: the text ``NaN`` is a missing label (it was a class of its own; QA pass 20).
    #: 4: a class spelled ``<other>`` learned under unseen="error" is a class (it was
    #: refused as unseen); under unseen="other" it is refused (it was two classes of
    #: one name, its rows in the collected one); learned classes that are spellings of
    #: one (``Ideal`` and ``ideal``) are an error (they were two classes; QA pass 25).
    VERSION: ClassVar[int] = 4
    TRAINING_PARAMS: ClassVar[tuple[str, ...]] = ()  # classes and unseen change the examples
    column: str
    _: dataclasses.KW_ONLY
    classes: Sequence[Any] | None = normalized(_class_names, default=None)
    unseen: str = "error"

    def validate(self) -> list[str]:
        problems = []
        if not isinstance(self.column, str) or not self.column:
            problems.append(f"column must be a column name, but got {self.column!r}")
        if self.classes is not None:
            if not isinstance(self.classes, tuple) or len(self.classes) < 2:
                problems.append(
                    f"classes must list at least 2 classes (or be None to learn them from the "
                    f"training split), but got {self.classes!r}"
                )
            elif len(set(self.classes)) != len(self.classes):
                dup = sorted({c for c in self.classes if self.classes.count(c) > 1})
                problems.append(f"classes must be distinct, but {dup} appear more than once")
            elif OTHER_CLASS in self.classes and self.unseen == "other":
                problems.append(
                    f"{OTHER_CLASS!r} is the class unseen='other' collects unseen values in; "
                    "name the declared class otherwise (and the data's value with "
                    f"sources.Csv(..., replace={{{self.column!r}: {{{OTHER_CLASS!r}: ...}}}})), "
                    "or pass unseen='error'"
                )
            unset = [c for c in self.classes if is_unset_text(c)]
            if unset and isinstance(self.column, str):
                problems.append(unset_class("classes", unset[0], self.column))
        if self.unseen not in ("error", "other"):
            problems.append(f"unseen must be 'error' or 'other', but got {self.unseen!r}")
        return problems

    def analyzer(self) -> Analyzer | None:
        return _ClassCounts() if self.classes is None else None

    def finalize_state(self, stats: Any) -> Any:
        return {"counts": stats}

    def class_names(self, state: Any = None) -> list[str]:
        """The classes in output order (declared, or learned: ``state`` from the analyzer)."""
        if self.classes is not None:
            names = list(self.classes)
        else:
            if state is None:
                raise ValueError(f"the classes of label {self.column!r} have not been learned")
            names = sorted(state["counts"])
            if len(names) < 2:  # as declared classes must be (validate)
                raise DataError(self._one_class(state["counts"]))
            variants = spelling_variants(state["counts"], self.column)
            if variants:
                raise DataError(variants)
            if OTHER_CLASS in names and self.unseen == "other":
                raise DataError(
                    f"the training split's label column {self.column!r} holds the value "
                    f"{OTHER_CLASS!r} ({state['counts'][OTHER_CLASS]:,} rows), the name of the "
                    "class unseen='other' collects unseen values in; rename the value with "
                    f"sources.Csv(..., replace={{{self.column!r}: {{{OTHER_CLASS!r}: "
                    "'other'}}), or pass unseen='error'"
                )
        if self.unseen == "other":
            names.append(OTHER_CLASS)
        return names

    def describe(self, state: Any = None) -> dict[str, Any]:
        return {"task": self.TASK, "classes": self.class_names(state)}

    def _one_class(self, counts: dict[str, int]) -> str:
        held = ", ".join(f"{c!r} ({n:,} rows)" for c, n in counts.items())
        return (
            f"the training split's label column {self.column!r} holds "
            f"{'one class: ' + held if held else 'no class'}; "
            "a multiclass label needs at least 2 to learn from. Give the source rows of "
            "the other classes, declare them (MulticlassLabel(..., classes=[...])), or "
            "predict one value against the rest with F.Label(column, positive=...)"
        )

    def problem(self, bad_value: Any, state: Any = None) -> str:
        if bad_value is None:
            return "labels must not be missing"
        origin = "declared" if self.classes is not None else "seen in the training split"
        known = self.classes if self.classes is not None else (state or {}).get("counts") or {}
        like = spelled_like(str(bad_value), {c: 0 for c in known} if self.classes else known)
        if like is not None:  # a spelling of a class: the one fix
            return (
                f"{bad_value!r} is not one of the classes {origin}, but a spelling of the "
                f"class {like!r}; map it with sources.Csv(..., replace={{{self.column!r}: "
                f"{{{bad_value!r}: {like!r}}}}})"
            )
        return (
            f"{bad_value!r} is not one of the classes {origin}; declare it in classes=..., "
            "or pass unseen='other' to MulticlassLabel to collect such values in one class"
        )

    def encode(self, values: Any, state: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Class indices (int32) and a mask of rows whose label is missing or not a class."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = self.class_names(state)
        known = names[:-1] if self.unseen == "other" else names
        texts = label_texts(values)
        found = pc.index_in(texts, value_set=pa.array(known, type=pa.string()))
        idx = np.asarray(pc.fill_null(found, -1), dtype=np.int64)
        missing = np.asarray(pc.is_null(texts), dtype=bool)
        unseen = (idx < 0) & ~missing
        if self.unseen == "other":
            idx[unseen] = len(names) - 1
            unseen[:] = False
        bad = missing | unseen
        return np.where(bad, 0, idx).astype(np.int32), bad


# ---------------------------------------------------------------------------- regression


def forward_transform(name: str | None, values: np.ndarray) -> np.ndarray:
    """The model's target scale from the original one (``name`` from TRANSFORMS or None)."""
    v = np.asarray(values, dtype=np.float64)
    if name is None:
        return v
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "log":
            return np.log(v)
        if name == "log1p":
            return np.log1p(v)
        if name == "sqrt":
            return np.sqrt(v)
    raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORMS}")


def inverse_transform(name: str | None, values: np.ndarray) -> np.ndarray:
    """The original scale from the model's target scale (the inverse of forward_transform)."""
    v = np.asarray(values, dtype=np.float64)
    if name is None:
        return v
    with np.errstate(over="ignore"):
        if name == "log":
            return np.exp(v)
        if name == "log1p":
            return np.expm1(v)
        if name == "sqrt":
            return np.square(np.maximum(v, 0.0))
    raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORMS}")


#: The values each transform takes, as a message says it.
TRANSFORM_DOMAIN = {"log": "> 0", "log1p": "> -1", "sqrt": ">= 0"}


@dataclasses.dataclass(frozen=True)
class NumericLabel(Operator):
    """A numeric label for regression (linear output, squared/absolute/Huber loss).

    Parameters
    ----------
    column : str
        The numeric label column.
    transform : {"log", "log1p", "sqrt"} or None
        The model learns the transformed target; predictions are transformed back,
        so predictions and metrics are on the original scale unless a metric asks
        for the transform's scale by its name (``metrics.R2(scale="log")``).
    loss : {"squared", "absolute", "huber"}
        The training loss. The target is standardised (mean 0, standard deviation
        1 over the training split, after the transform) while training, so
        ``huber_delta`` is in standard deviations of the (transformed) target.
    huber_delta : float
        Where the Huber loss turns from squared to absolute.
    """

    KIND: ClassVar[str] = "label"
    TASK: ClassVar[str] = "regression"
    #: Parameters only training reads: examples store the original values whatever
    #: they are (so they are part of the train node's fingerprint, not the examples').
    TRAINING_PARAMS: ClassVar[tuple[str, ...]] = ("transform", "loss", "huber_delta")
    #: 2: a target past 1.3e154 is standardised with a finite std (QA pass 23; it was
    #: infinite, every standardised target 0): models trained before are trained again.
    VERSION: ClassVar[int] = 2
    column: str
    _: dataclasses.KW_ONLY
    transform: str | None = None
    loss: str = "squared"
    huber_delta: float = 1.0

    def validate(self) -> list[str]:
        problems = []
        if not isinstance(self.column, str) or not self.column:
            problems.append(f"column must be a column name, but got {self.column!r}")
        if self.transform is not None and self.transform not in TRANSFORMS:
            problems.append(
                f"transform must be one of {TRANSFORMS} or None, but got {self.transform!r}"
            )
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {LOSSES}, but got {self.loss!r}")
        d = self.huber_delta
        if isinstance(d, bool) or not isinstance(d, int | float) or not d > 0:
            problems.append(f"huber_delta must be a number > 0, but got {d!r}")
        return problems

    def analyzer(self) -> Analyzer | None:
        return None

    def finalize_state(self, stats: Any) -> Any:
        return stats

    def describe(self, state: Any = None) -> dict[str, Any]:
        return {"task": self.TASK, "transform": self.transform}

    def problem(self, bad_value: Any, state: Any = None) -> str:
        if isinstance(bad_value, str) and number_of(bad_value.strip()) is None:
            return (
                "a regression label must be a finite number; where the column holds "
                f"classes, predict them with features.MulticlassLabel({self.column!r})"
            )
        return "a regression label must be a finite number"

    def target(
        self,
        values: np.ndarray,
        rows: np.ndarray,
        describe: Callable[[int], str] | None = None,
    ) -> np.ndarray:
        """The model's target (the transform applied) for original-scale ``values``.

        Raises DataError naming the first row (``rows``: the rows' ids; ``describe``: a
        row id -> its place in the training split's files, "line 12 of FILE") whose value
        is outside the transform's domain (e.g. a price of 0 under ``transform="log"``).
        """
        target = forward_transform(self.transform, values)
        bad = ~np.isfinite(target)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = int(rows[i])
            where = (
                describe(row)
                if describe is not None
                else f"row {row} (line number in its file) of the training split"
            )
            raise DataError(
                f"{where} has label "
                f"{float(values[i])!r} in column {self.column!r}, but transform="
                f"{self.transform!r} needs values {TRANSFORM_DOMAIN[str(self.transform)]} "
                f"({int(bad.sum())} such rows); use another transform or drop those rows"
            )
        return target

    def encode(self, values: Any, state: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The values as float64 (original scale) and a mask of missing or non-finite rows.

        The transform is not applied here (training applies it): the examples are the
        same whatever the transform, and so is their fingerprint.
        """
        import pandas as pd

        if hasattr(values, "to_pandas"):
            values = values.to_pandas()
        nums = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad = ~np.isfinite(nums)
        return np.where(bad, 0.0, nums), bad


#: Every label operator class (``isinstance(op, LABELS)``).
LABELS = (Label, MulticlassLabel, NumericLabel)
