"""Feature operators: specs, batch transforms and analyzers.

A feature operator turns input columns (raw source columns named by string, or
other features passed as ``NodeRef``) into one output column of a *value kind*
(``helix_tf.types``). Operators that need statistics of the training split
(vocabularies, means, document frequencies) declare an :class:`Analyzer`: a
plain-Python combiner that the engine runs as a Beam ``CombineFn`` over batch
partials. Transforms are vectorised over a batch (numpy/pandas), never per row,
except the row-wise UDF, whose contract is per row.

Nothing here imports TensorFlow or Beam: the engine wraps these in Beam.

The package is split by concept: ``_base`` (the ``Feature`` spec, ``Analyzer``,
``Bag``), ``_numeric`` (``Numeric``, ``Bucketize``, ``Cross``), ``_text``
(``Vocabulary``, ``TfIdf``, ``Tokenize``), ``_udf`` (``Udf``, ``DatasetUdf``)
and ``_label`` (``Label``, ``MulticlassLabel``, ``NumericLabel``: one per task).
"""

from typing import NoReturn

# Input (the type of an operator's input reference), SourceRows (what the engine
# passes a whole-row feature besides its frame) and first_difference (where two outputs
# differ) are importable from here too, outside __all__.
from helix_tf.components.features._base import (
    MISSING_TOKEN,
    Analyzer,
    Bag,
    Feature,
    Input as Input,
    SourceRows as SourceRows,
)
from helix_tf.components.features._label import Label, MulticlassLabel, NumericLabel
from helix_tf.components.features._numeric import Bucketize, Cross, Numeric
from helix_tf.components.features._text import TfIdf, Tokenize, Vocabulary
from helix_tf.components.features._udf import DatasetUdf, Udf, first_difference as first_difference
from helix_tf.errors import missing_name

__all__ = [
    "Bag",
    "Analyzer",
    "Feature",
    "Numeric",
    "Bucketize",
    "Vocabulary",
    "Cross",
    "Tokenize",
    "TfIdf",
    "Udf",
    "DatasetUdf",
    "Label",
    "MulticlassLabel",
    "NumericLabel",
    "MISSING_TOKEN",
]


def __getattr__(name: str) -> NoReturn:
    raise missing_name(__name__, name, __all__)
