"""The TFRecord source: serialized ``tf.train.Example`` records, parsed with TensorFlow.

TensorFlow is imported inside :meth:`TFRecord.read` only, so importing this module
stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.base import normalized
from helix_tf.components.sources._base import (
    FILE_STRIDE,
    Source,
    _as_pairs,
    _as_paths,
    _column_problems,
    _emit,
    _fraction_problems,
    _frame,
    _in_test,
    _path_problem,
    _paths_problems,
    _split_files,
    _split_names,
)
from helix_tf.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True, kw_only=True)
class TFRecord(Source):
    """TFRecord files of serialized ``tf.train.Example`` with scalar features.

    Parameters
    ----------
    train, test
        File path(s) or URL(s) of each split.
    features
        Feature name -> ``"int"``, ``"float"`` or ``"string"``; a record without
        the feature gives NaN, one with several values is a DataError.
    test_fraction, split_seed
        Without test files: a seeded split of the train rows by a hash of the row id.
    compression
        ``None``, ``"GZIP"`` or ``"ZLIB"``.

    Notes
    -----
    Parsed with TensorFlow (imported when read) in batches; ``__row`` is the
    0-based record index in its file plus ``file index * 10**10``.
    """

    VERSION: ClassVar[int] = 1

    train: str | tuple[str, ...] = normalized(_as_paths)
    test: str | tuple[str, ...] | None = normalized(_as_paths, default=None)
    features: dict[str, str] | tuple[tuple[str, str], ...] = normalized(_as_pairs, default=())
    test_fraction: float | None = None
    split_seed: int = 0
    compression: str | None = None

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = _paths_problems(self.train, self.test)
        problems += [p.replace("columns", "features", 1) for p in _column_problems(self.features)]
        if self.compression not in (None, "GZIP", "ZLIB"):
            problems.append(
                f"compression must be None, 'GZIP' or 'ZLIB', but got {self.compression!r}"
            )
        test = self.test if isinstance(self.test, tuple) else ()
        return problems + _fraction_problems(test, self.test_fraction, self.split_seed)

    def splits(self) -> tuple[str, ...]:
        """``("train", "test")`` with test files or a test_fraction, else ``("train",)``."""
        return _split_names(self.test or (), self.test_fraction)

    def schema(self) -> dict[str, str]:
        """The declared features: name -> type."""
        return dict(self.features)

    def files(self) -> tuple[str, ...]:
        """The train files, then the test files."""
        return tuple(self.train) + tuple(self.test or ())

    def check(self) -> list[str]:
        """Missing, unreadable or directory paths."""
        found = [_path_problem(p, "train", "TFRecord") for p in self.train]
        found += [_path_problem(p, "test", "TFRecord") for p in self.test or ()]
        return [p for p in found if p]

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream a split, parsing ``batch_rows`` records at a time."""
        import numpy as np
        import tensorflow as tf

        param, paths = _split_files(self, split)
        dtypes = {"int": tf.int64, "float": tf.float32, "string": tf.string}
        spec = {name: tf.io.VarLenFeature(dtypes[kind]) for name, kind in self.features}
        for index, path in enumerate(paths):
            problem = _path_problem(path, param, "TFRecord")
            if problem:
                raise DataError(problem)
            records = tf.data.TFRecordDataset(path, compression_type=self.compression or "")
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
                        f"(now {self.compression!r})?"
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
                    name: self._column(path, offset, name, kind, parsed[name], count)
                    for name, kind in self.features
                }
                ids = np.arange(offset, offset + count, dtype=np.int64) + index * FILE_STRIDE
                offset += count
                if self.test_fraction is not None:
                    keep = _in_test(ids, self.test_fraction, self.split_seed)
                    keep = ~keep if split == "train" else keep
                    columns = {n: a.filter(keep) for n, a in columns.items()}
                    ids = ids[keep]
                if len(ids):
                    yield from _emit(_frame(columns, ids), batch_rows, counters)

    @staticmethod
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
