"""Holdout: another source's training rows, split again into train and validation.

The agent searches on a validation split so that the test split is read only
when a proposal is verified. ``Holdout(of=source)`` is a source of its own: its
``train`` split is the wrapped source's train rows minus a seeded fraction, its
``test`` split is that fraction (the validation rows). The wrapped source's
test split is never read, and its test files are not part of the identity
(:func:`train_only` drops them before wrapping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.sources._base import COPY_STRIDE, ROW_ID, Source, _in_test

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Holdout", "train_only"]

#: Added to the holdout seed so validation rows are independent of a source's own
#: ``test_fraction`` split drawn with the same ``split_seed`` (the same hash).
_SALT = 0x48454C4958


def train_only(source: Source) -> Source:
    """``source`` without its test files (a source that splits by fraction is kept)."""
    if getattr(source, "test", None) and "test" in source.params():
        return source.with_params(test=None)  # type: ignore[return-value]
    return source


@dataclasses.dataclass(frozen=True, kw_only=True)
class Holdout(Source):
    """The train rows of ``of``: ``train`` keeps ``1 - fraction``, ``test`` the rest.

    Parameters
    ----------
    of
        The wrapped source; only its ``train`` split is read.
    fraction
        The share of its train rows held out for validation, in (0, 1).
    seed
        Which rows: a seeded hash of the row id (the same rows on every read; every
        replicated copy of a row goes where the row goes).

    Examples
    --------
    >>> from helix_tf.components.sources import Csv
    >>> h = Holdout(of=Csv(train="a.csv", columns={"x": "int"}), fraction=0.2)
    >>> h.splits()
    ('train', 'test')
    """

    #: 2: every replicated copy of a row falls on the same side (1 hashed each copy's
    #: own id, so validation held copies of training rows when ``replicate > 1``).
    VERSION: ClassVar[int] = 2

    of: Source
    fraction: float = 0.2
    seed: int = 0

    def validate(self) -> list[str]:
        problems = []
        if not isinstance(self.of, Source) or isinstance(self.of, Holdout):
            problems.append(f"of must be a source other than a Holdout, but got {self.of!r}")
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
            problems.append(f"fraction must be a number in (0, 1), but got {f!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            problems.append(f"seed must be an int, but got {self.seed!r}")
        return problems

    def splits(self) -> tuple[str, ...]:
        return ("train", "test")

    def schema(self) -> dict[str, str]:
        return self.of.schema()

    def files(self) -> tuple[str, ...]:
        return self.of.files()

    def content_files(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """The wrapped source's files: its train data's content is this source's identity
        (without it, a validation run reused results computed from the old data)."""
        return self.of.content_files()

    def check(self) -> list[str]:
        return self.of.check()

    def _mask(self, ids: Any, split: str) -> Any:
        # By the original row: copies of one row (``replicate``) never straddle the split.
        held = _in_test(ids % COPY_STRIDE, float(self.fraction), self.seed + _SALT)
        return held if split == "test" else ~held

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        self._require_split(split)
        for frame in self.of.read("train", batch_rows=batch_rows, counters=counters):
            part = frame[self._mask(frame[ROW_ID].to_numpy(), split)]
            yield part.reset_index(drop=True)

    def read_tables(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pa.Table]:
        self._require_split(split)
        for table in self.of.read_tables("train", batch_rows=batch_rows, counters=counters):
            yield table.filter(self._mask(table.column(ROW_ID).to_numpy(), split))
