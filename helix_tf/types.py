"""The vocabulary shared by every layer: references between nodes, artifact and value kinds.

Pure data, no heavy imports: components, the compiler and the engine all read it.
Node roles and states, and what the words "role", "kind", "output_type" and
"value_kind" mean, are in :mod:`helix_tf.roles`.

The module constants (``TABLE``, ``NUMERIC``, ...) are the enums' members under
their old names; a member equals its string value and hashes as it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "NodeRef",
    "Vocabulary",
    "ArtifactKind",
    "ValueKind",
    "TABLE",
    "EXAMPLES",
    "MODEL",
    "PREDICTIONS",
    "METRICS",
    "EXPLANATION",
    "NUMERIC",
    "STRING",
    "CATEGORICAL",
    "TOKENS",
    "BAG",
    "VALUE_KINDS",
    "MODEL_INPUT_KINDS",
    "ROW_ID",
    "LABEL",
    "SCORE",
]


class Vocabulary(enum.StrEnum):
    """Base of helix_tf's string enums: a member stands for its plain string everywhere.

    It equals, formats, serialises (JSON) and ``repr``-s as its value, and
    fingerprints hash it as its value (``__canonical_value__``, read by
    ``compiler.hashing.canonical_json``), so values, messages and fingerprints are
    the same whether a string or a member is passed.

    >>> class Colour(Vocabulary):
    ...     RED = "red"
    >>> Colour.RED == "red", f"{Colour.RED}", repr(Colour.RED)
    (True, 'red', "'red'")
    """

    __canonical_value__ = True

    def __repr__(self) -> str:
        return repr(self.value)


class ArtifactKind(Vocabulary):
    """What flows along an edge of the DAG: the output of a node, by its role."""

    TABLE = "table"  # a source's rows, by split
    FEATURE = "feature"  # one column of a value kind (output_type "feature:<value kind>")
    EXAMPLES = "examples"  # model inputs + label, by split
    MODEL = "model"  # a trained Keras model
    PREDICTIONS = "predictions"  # row id, label, score
    METRICS = "metrics"  # name -> number
    EXPLANATION = "explanation"  # permutation importance and linear weights per feature


class ValueKind(Vocabulary):
    """The values of one feature column (a feature artifact is a column of one kind)."""

    NUMERIC = "numeric"  # float32, one per row
    STRING = "string"  # text, one per row (must be encoded before a model sees it)
    CATEGORICAL = "categorical"  # int32 index in [0, size)
    TOKENS = "tokens"  # a list of strings per row (must be encoded before a model sees it)
    BAG = "bag"  # weighted indices per row: (idx: list[int32] in [0, size), val: list[float32])


# The members under their old names (public since before the enums).
TABLE: Final = ArtifactKind.TABLE
EXAMPLES: Final = ArtifactKind.EXAMPLES
MODEL: Final = ArtifactKind.MODEL
PREDICTIONS: Final = ArtifactKind.PREDICTIONS
METRICS: Final = ArtifactKind.METRICS
EXPLANATION: Final = ArtifactKind.EXPLANATION

NUMERIC: Final = ValueKind.NUMERIC
STRING: Final = ValueKind.STRING
CATEGORICAL: Final = ValueKind.CATEGORICAL
TOKENS: Final = ValueKind.TOKENS
BAG: Final = ValueKind.BAG
VALUE_KINDS: Final = tuple(ValueKind)
#: The value kinds a model reads directly (the others must be encoded first).
MODEL_INPUT_KINDS: Final = (NUMERIC, CATEGORICAL, BAG)

# Reserved column names in stored tables.
ROW_ID: Final = "__row"
LABEL: Final = "__label"
SCORE: Final = "__score"


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A reference to a declared node, returned by every ``Workflow`` method.

    Pass it to later declarations to make it their input. It compares by name
    and workflow name only, so a config can be loaded twice and compare equal.
    """

    name: str
    workflow: str = ""

    def __repr__(self) -> str:
        return f"NodeRef({self.name!r})"
