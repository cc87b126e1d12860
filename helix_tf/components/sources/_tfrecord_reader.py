"""The TFRecord source's executor: parsing ``tf.train.Example`` records with TensorFlow.

The spec (``_tfrecord.py``) holds and checks the parameters without TensorFlow; this
module is the only one of the source that imports it (the import-linter contract
names it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from helix_tf.components.sources._base import (
    FILE_STRIDE,
    _emit,
    _frame,
    _in_test,
    _path_problem,
    _split_files,
)
from helix_tf.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from helix_tf.components.sources._tfrecord import TFRecord


def read_tfrecord(
    source: TFRecord, split: str, *, batch_rows: int, counters: dict[str, int] | None
) -> Iterator[pd.DataFrame]:
    """Stream a split of ``source``, parsing ``batch_rows`` records at a time."""
    import numpy as np
    import tensorflow as tf

    param, paths = _split_files(source, split)
    dtypes = {"int": tf.int64, "float": tf.float32, "string": tf.string}
    spec = {name: tf.io.VarLenFeature(dtypes[kind]) for name, kind in source.features}
    for index, path in enumerate(paths):
        problem = _path_problem(path, param, "TFRecord")
        if problem:
            raise DataError(problem)
        records = tf.data.TFRecordDataset(path, compression_type=source.compression or "")
        offset = 0
        batches = iter(records.batch(batch_rows))
        while True:
            try:
                serialized = next(batches)
            except StopIteration:
                break
            except tf.errors.OpError as exc:
                raise DataError(
                    f"{path}: cannot read the records after record {offset}: {exc.message}. "
                    "Is it a TFRecord file, and is compression set right "
                    f"(now {source.compression!r})?"
                ) from exc
            try:
                parsed = tf.io.parse_example(serialized, spec)
            except tf.errors.InvalidArgumentError as exc:
                raise DataError(
                    f"{path} records {offset}-{offset + len(serialized) - 1}: {exc.message}. "
                    "Declare each feature with the type it is stored as "
                    "(int64_list: 'int', float_list: 'float', bytes_list: 'string')"
                ) from exc
            count = int(serialized.shape[0])
            columns = {
                name: _column(path, offset, name, kind, parsed[name], count)
                for name, kind in source.features
            }
            ids = np.arange(offset, offset + count, dtype=np.int64) + index * FILE_STRIDE
            offset += count
            if source.test_fraction is not None:
                keep = _in_test(ids, source.test_fraction, source.split_seed)
                keep = ~keep if split == "train" else keep
                columns = {n: a.filter(keep) for n, a in columns.items()}
                ids = ids[keep]
            if len(ids):
                yield from _emit(_frame(columns, ids), batch_rows, counters)


def _column(path: str, offset: int, name: str, kind: str, sparse: Any, count: int) -> Any:
    import numpy as np
    import pyarrow as pa

    rows = sparse.indices.numpy()[:, 0]
    values = sparse.values.numpy()
    per_row = np.bincount(rows, minlength=count)
    if len(per_row) and per_row.max() > 1:
        record = int(np.argmax(per_row))
        raise DataError(
            f"{path} record {offset + record}: feature {name!r} has {per_row[record]} values, "
            "but only scalar features can be read; leave it out of features"
        )
    if kind == "string":
        texts: list[str | None] = [None] * count
        for row, value in zip(rows.tolist(), values.tolist(), strict=True):
            texts[row] = value.decode("utf-8", errors="replace")
        return pa.array(texts, pa.string())
    numbers = np.full(count, np.nan)
    numbers[rows] = values
    return pa.array(numbers, pa.float64(), mask=per_row == 0)
