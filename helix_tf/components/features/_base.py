"""The shared base of feature operators: the ``Feature`` spec, analyzers and bags.

:class:`Feature` is the spec every feature operator extends; :class:`Analyzer`
is the plain-Python combiner for statistics of the training split; :class:`Bag`
is the CSR-style weighted-index output of bag features.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from helix_tf.components._value_names import MISSING_NAME
from helix_tf.components.base import Operator
from helix_tf.types import CATEGORICAL, NUMERIC, STRING, TOKENS, NodeRef

Input = str | NodeRef
MISSING_TOKEN = MISSING_NAME
"""How a missing value is named among a feature's value names (``Vocabulary``,
``Bucketize``); a value of the data spelled so is named ``'<missing>'``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Bag:
    """Weighted indices per row, stored CSR-style (``offsets`` has n + 1 entries)."""

    offsets: np.ndarray  # int64 [n + 1]
    idx: np.ndarray  # int32 [nnz]
    val: np.ndarray  # float32 [nnz]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, rows: np.ndarray) -> Bag:
        """The bag restricted to ``rows`` (sorted positions)."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pos = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)] or [[]])
        pos = pos.astype(np.int64)
        return Bag(offsets, self.idx[pos], self.val[pos])


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SourceRows:
    """What a whole-row feature knows of its rows besides the frame (the engine passes it
    after the frame): the source's declared column types, and where a row id comes from.

    Attributes
    ----------
    columns
        Column name -> ``"int"``, ``"float"`` or ``"string"`` as the source declares them.
    describe
        Row id -> its place in the data, e.g. ``"line 12 of data/adult.data"``.
    """

    columns: Mapping[str, str]
    describe: Callable[[int], str]


def _kind_fix(ref: Input, kind: str, accepts: Sequence[str]) -> str:
    """How to give an operator an input of a kind it accepts (a raw column's declared type,
    or the feature that turns its kind into one); empty where none is known."""
    column = isinstance(ref, str)
    if kind == NUMERIC and STRING in accepts:
        declare = f"declare {ref!r} as 'string' in the source's columns, or " if column else ""
        return f": {declare}read the number with F.Numeric or F.Bucketize"
    if kind == STRING and NUMERIC in accepts:
        declare = (
            f"declare {ref!r} as 'int' or 'float' in the source's columns where it holds numbers, or "
            if column
            else ""
        )
        return f": {declare}index the text with F.Vocabulary"
    if kind == STRING and TOKENS in accepts:
        return ": split the text into tokens with F.Tokenize first"
    if CATEGORICAL in accepts and kind in (NUMERIC, STRING):  # a Cross (QA pass 28)
        name = ref if column else ref.name
        make = "F.Bucketize" if kind == NUMERIC else "F.Vocabulary"
        return f": give it a feature of {name!r} made with {make} instead"
    return ""


class Analyzer(abc.ABC):
    """A combiner over the training split: ``create → add* → merge → finalize``.

    ``add`` receives the feature's input values for one batch (a list, one per
    input). ``finalize`` returns a JSON-able state that the transform reads.
    Accumulators must be picklable plain data (Beam ships them between workers).
    """

    @abc.abstractmethod
    def create(self) -> Any:
        """A new, empty accumulator."""

    @abc.abstractmethod
    def add(self, acc: Any, values: list[Any]) -> Any:
        """``acc`` with one batch's input values (one entry per input) added."""

    @abc.abstractmethod
    def merge(self, accs: Sequence[Any]) -> Any:
        """One accumulator holding everything ``accs`` hold."""

    @abc.abstractmethod
    def finalize(self, acc: Any) -> Any:
        """The JSON-able statistics the feature's ``finalize_state`` receives."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Feature(Operator, abc.ABC):
    """Base of feature operators.

    Subclasses list their inputs in :meth:`inputs`, check the input value kinds
    in :meth:`output_kind`, and implement :meth:`transform` over one batch (the
    three abstract methods); a feature that learns from the training split also
    returns an :class:`Analyzer` from :meth:`analyzer`. See ``docs/ARCHITECTURE.md``
    ("Writing an operator") and :mod:`helix_tf.testing` for a worked example.
    """

    KIND: ClassVar[str] = "feature"
    #: Value kinds each input accepts (None: any).
    ACCEPTS: ClassVar[tuple[str, ...] | None] = None

    @abc.abstractmethod
    def inputs(self) -> tuple[Input, ...]:
        """Raw column names and feature references this operator reads, in order."""

    def reads_whole_row(self) -> bool:
        """True when the transform receives the whole source batch (UDFs)."""
        return False

    def runs_user_code(self) -> bool:
        """True when the transform calls code of the user's own: a function it was given
        (UDFs) or the class itself, written outside helix_tf. The engine gives such code
        private copies of its inputs and checks, once per process, that it gives the same
        rows the same values when called again (:mod:`helix_tf.engine._user_calls`)."""
        return type(self).__module__.split(".")[0] != "helix_tf"

    @abc.abstractmethod
    def output_kind(self, input_kinds: Sequence[str]) -> str:
        """The value kind of the output, given the input kinds (raise ValueError if invalid)."""

    def check_input_kinds(self, input_kinds: Sequence[str]) -> list[str]:
        """Problems with the input kinds, as sentences."""
        if self.ACCEPTS is None:
            return []
        problems = []
        for ref, kind in zip(self.inputs(), input_kinds, strict=True):
            if kind not in self.ACCEPTS:
                what = f"column {ref!r}" if isinstance(ref, str) else f"feature {ref.name!r}"
                problems.append(
                    f"{self.op_name} accepts {' or '.join(self.ACCEPTS)} inputs, "
                    f"but {what} is {kind}" + _kind_fix(ref, kind, self.ACCEPTS)
                )
        return problems

    def analyzer(self) -> Analyzer | None:
        """The statistics this feature needs from the training split, if any."""
        return None

    def finalize_state(self, stats: Any) -> Any:
        """Turn the analyzer's finalised statistics into the transform's state."""
        return stats

    @abc.abstractmethod
    def transform(self, values: list[Any], state: Any, n: int) -> Any:
        """Compute the output for one batch of ``n`` rows."""

    def cardinality(self, state: Any) -> int | None:
        """The number of distinct indices for categorical/bag outputs."""
        return None

    def value_names(self, state: Any) -> list[str] | None:
        """What each index of a categorical/bag output stands for (None: unnamed).

        Read by the views of a linear model's weights ("education=Doctorate").
        """
        return None
