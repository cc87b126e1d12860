"""The TFRecord source: serialized ``tf.train.Example`` records, parsed with TensorFlow.

TensorFlow is imported inside :meth:`TFRecord.read` only, so importing this module
stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from helix_tf.components.base import normalized
from helix_tf.components.sources._base import (
    Source,
    _as_pairs,
    _as_paths,
    _column_problems,
    _fraction_problems,
    _path_problem,
    _paths_problems,
    _split_names,
)

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
        """Stream a split, parsing ``batch_rows`` records at a time (with TensorFlow)."""
        from helix_tf.components.sources._tfrecord_reader import read_tfrecord

        yield from read_tfrecord(self, split, batch_rows=batch_rows, counters=counters)
