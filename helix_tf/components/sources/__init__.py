"""Data sources: the operators that read rows from files into batches.

A source *spec* is a frozen dataclass (pure data). It names its splits, declares
its schema, lists the files whose content defines its identity and checks them,
all without reading data or importing heavy libraries. :meth:`Source.read`
streams one split as pandas DataFrames of at most ``batch_rows`` rows; pyarrow,
pandas, TensorFlow and TensorFlow Datasets are imported inside the methods that
need them, so importing this module stays cheap (the compiler imports it).

Every frame has the declared columns plus ``__row`` (int64), a stable row id
that is unique within the split. Columns of type ``"int"`` and ``"float"`` are
float64 with NaN for missing values; ``"string"`` columns are pandas ``str``
with missing values as NaN.

Note on names: the constructor parameter ``columns`` is the user-facing
declaration (as in ``Csv(columns=CENSUS_COLUMNS)``), so the method returning the
declared schema is :meth:`Source.schema`; likewise ``Tfds`` takes the split
mapping as ``tfds_splits`` because :meth:`Source.splits` is a method.
"""

from typing import NoReturn

# FILE_STRIDE and COPY_STRIDE are importable from here too, outside __all__ as before.
from helix_tf.components.sources._base import (
    COLUMN_TYPES,
    COPY_STRIDE as COPY_STRIDE,
    FILE_STRIDE as FILE_STRIDE,
    ROW_ID,
    Source,
    read_all,
)
from helix_tf.components.sources._csv import Csv
from helix_tf.components.sources._holdout import Holdout, train_only
from helix_tf.components.sources._parquet import Parquet
from helix_tf.components.sources._tfds import Tfds
from helix_tf.components.sources._tfrecord import TFRecord
from helix_tf.errors import missing_name

__all__ = [
    "COLUMN_TYPES",
    "ROW_ID",
    "Csv",
    "Holdout",
    "Parquet",
    "Source",
    "TFRecord",
    "Tfds",
    "read_all",
    "train_only",
]


def __getattr__(name: str) -> NoReturn:
    raise missing_name(__name__, name, __all__)
