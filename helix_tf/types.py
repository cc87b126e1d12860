"""The vocabulary shared by every layer: references between nodes and artifact kinds.

Pure data, no heavy imports: components, the compiler and the engine all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "NodeRef",
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

# Artifact kinds: what flows along an edge of the DAG.
TABLE: Final = "table"  # a source's rows, by split
EXAMPLES: Final = "examples"  # model inputs + label, by split
MODEL: Final = "model"  # a trained Keras model
PREDICTIONS: Final = "predictions"  # row id, label, score
METRICS: Final = "metrics"  # name -> number
EXPLANATION: Final = "explanation"  # permutation importance and linear weights per feature

# Value kinds of a feature column (a feature artifact is a column of one kind).
NUMERIC: Final = "numeric"  # float32, one per row
STRING: Final = "string"  # text, one per row (must be encoded before a model sees it)
CATEGORICAL: Final = "categorical"  # int32 index in [0, size)
TOKENS: Final = "tokens"  # a list of strings per row (must be encoded before a model sees it)
BAG: Final = "bag"  # weighted indices per row: (idx: list[int32] in [0, size), val: list[float32])
VALUE_KINDS: Final = (NUMERIC, STRING, CATEGORICAL, TOKENS, BAG)
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
