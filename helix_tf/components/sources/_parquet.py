"""The Parquet source: columns and kinds from the files' footers, streamed in batches."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.base import did_you_mean, list_as_tuple, normalized
from helix_tf.components.sources._base import (
    FILE_STRIDE,
    ROW_ID,
    Source,
    _arrow_kind,
    _as_column,
    _as_paths,
    _emit,
    _fraction_problems,
    _frame,
    _in_test,
    _is_url,
    _local,
    _open,
    _path_problem,
    _paths_problems,
    _split_files,
    _split_names,
)
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parquet(Source):
    """Parquet files; the schema comes from the files' footers.

    Parameters
    ----------
    train, test
        File path(s) or URL(s) of each split.
    columns
        The columns to read (default: every column of a supported type). Integer and
        boolean columns are ``"int"``, floating and decimal ``"float"``, string
        ``"string"``.
    test_fraction, split_seed
        Without test files: a seeded split of the train rows by a hash of the row id.

    Notes
    -----
    Streamed with ``pyarrow.parquet.ParquetFile.iter_batches``; ``__row`` is the
    0-based row index in its file plus ``file index * 10**10``. Every file (train and
    test) must hold the first train file's columns with the same kind (int32 and int64
    agree; a string column in one file and an int in another is an error naming both,
    never a conversion).
    """

    VERSION: ClassVar[int] = 1

    train: str | tuple[str, ...] = normalized(_as_paths)
    test: str | tuple[str, ...] | None = normalized(_as_paths, default=None)
    columns: tuple[str, ...] | None = normalized(list_as_tuple, default=None)
    test_fraction: float | None = None
    split_seed: int = 0

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = _paths_problems(self.train, self.test)
        if self.columns is not None:
            if not isinstance(self.columns, tuple) or not all(
                isinstance(c, str) for c in self.columns
            ):
                problems.append(f"columns must be a tuple of names, but got {self.columns!r}")
            elif not self.columns or len(set(self.columns)) != len(self.columns):
                problems.append(f"columns must name distinct columns, but got {self.columns!r}")
            elif ROW_ID in self.columns:
                problems.append(f"column name {ROW_ID!r} is reserved for the row id")
        test = self.test if isinstance(self.test, tuple) else ()
        return problems + _fraction_problems(test, self.test_fraction, self.split_seed)

    def splits(self) -> tuple[str, ...]:
        """``("train", "test")`` with test files or a test_fraction, else ``("train",)``."""
        return _split_names(self.test or (), self.test_fraction)

    def files(self) -> tuple[str, ...]:
        """The train files, then the test files."""
        return tuple(self.train) + tuple(self.test or ())

    def schema(self) -> dict[str, str]:
        """The columns and their kinds, from the first train file's footer."""
        problems: list[str] = []
        path = self.train[0]
        found = self._schema_of(path, "train", self._types_of(path, "train", problems), problems)
        if problems:
            raise ConfigError([f"Parquet: {p}" for p in problems])
        return found

    def check(self) -> list[str]:
        """Missing files, unreadable footers, unknown or unsupported columns, and files
        whose column types disagree with the first train file's."""
        problems: list[str] = []
        first: tuple[str, dict[str, Any], dict[str, str]] | None = None  # path, types, kinds
        for param, paths in (("train", self.train), ("test", self.test or ())):
            for path in paths:
                problem = _path_problem(path, param, "Parquet")
                if problem:
                    problems.append(problem)
                    continue
                before = len(problems)
                types = self._types_of(path, param, problems)
                if first is None:
                    first = (path, types, self._schema_of(path, param, types, problems))
                elif len(problems) == before:
                    problems += _disagreements(first[0], first[1], path, types, first[2])
        return problems

    def _types_of(self, path: str, param: str, problems: list[str]) -> dict[str, Any]:
        """The arrow type of each column in a file's footer ({} when unreadable)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with _open_parquet(path, param) as handle:
                schema = pq.read_schema(handle)
        except (pa.ArrowInvalid, OSError, DataError) as exc:
            problems.append(
                f"{param} file {path!r} is not a readable Parquet file: {exc}; write it again "
                f"(a copy cut short, a file still being written), or point {param}= at a "
                "Parquet file (a CSV file is read by sources.Csv)"
            )
            return {}
        return {field.name: field.type for field in schema}

    def _schema_of(
        self, path: str, param: str, types: dict[str, Any], problems: list[str]
    ) -> dict[str, str]:
        """The kind of each wanted column of a file, from its footer's ``types`` ({} for a
        footer that could not be read: its problem is already listed)."""
        if not types:
            return {}
        kinds = {name: _arrow_kind(type_) for name, type_ in types.items()}
        names = self.columns if self.columns is not None else tuple(kinds)
        out: dict[str, str] = {}
        for name in names:
            if name not in kinds:
                problems.append(
                    f"{param} file {path!r} has no column {name!r}{did_you_mean(name, kinds)}; "
                    f"its columns are: {', '.join(kinds)}"
                )
            elif kinds[name] is None:
                if self.columns is not None:
                    problems.append(
                        f"column {name!r} of {path!r} has type {types[name]}, which "
                        "is not int, float or string; leave it out of columns"
                    )
                else:
                    logger.info("Parquet: leaving out column %r of type %s", name, types[name])
            else:
                out[name] = kinds[name]  # type: ignore[assignment]
        return out

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream a split in record batches of at most ``batch_rows`` rows."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        param, paths = _split_files(self, split)
        kinds = self.schema()
        first_types = self._types_of(self.train[0], "train", [])
        for index, path in enumerate(paths):
            offset = 0
            with _open_parquet(path, param) as handle, pq.ParquetFile(handle) as parquet:
                types = {f.name: f.type for f in parquet.schema_arrow}
                disagree = _disagreements(self.train[0], first_types, path, types, kinds)
                if disagree:
                    raise DataError("; ".join(disagree))
                try:
                    batches = parquet.iter_batches(batch_size=batch_rows, columns=list(kinds))
                    for batch in batches:
                        ids = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
                        ids += index * FILE_STRIDE
                        columns = {
                            n: _read_column(path, n, batch.column(n), k, offset)
                            for n, k in kinds.items()
                        }
                        offset += batch.num_rows
                        if self.test_fraction is not None:
                            keep = _in_test(ids, self.test_fraction, self.split_seed)
                            keep = ~keep if split == "train" else keep
                            columns = {n: a.filter(keep) for n, a in columns.items()}
                            ids = ids[keep]
                        if len(ids):
                            yield from _emit(_frame(columns, ids), batch_rows, counters)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
                    raise DataError(
                        f"{path}: cannot read columns {list(kinds)} (row {offset}): {exc}. All "
                        "files of a Parquet source need the same columns and types"
                    ) from exc


def _read_column(path: str, name: str, values: pa.Array, kind: str, first_row: int) -> pa.Array:
    """Column ``name`` of one batch (from row ``first_row`` of ``path``) as its kind; an
    integer that float64 cannot hold exactly is an error naming its row, as in a CSV file,
    never the nearest float."""
    import pyarrow as pa

    try:
        return _as_column(values, kind)
    except pa.ArrowInvalid:
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        inexact = (
            (row, v)
            for row, v in enumerate(values.to_pylist())
            if isinstance(v, int) and int(float(v)) != v
        )
        row, value = next(inexact, (None, None))
        if value is None:
            raise
        raise DataError(
            f"{path}: column {name!r} holds {value} at row {first_row + row}, an integer "
            f"that numeric columns (float64, exact up to 2**53) cannot hold exactly; it would "
            f"read as {int(float(value))}. Write the column as float (approximate values) or "
            "string (exact text), e.g. with pyarrow's Table.cast, or leave it out with "
            "columns=[...]"
        ) from None


def _disagreements(
    first: str, first_types: dict[str, Any], path: str, types: dict[str, Any], kinds: Any
) -> list[str]:
    """How a file's columns disagree with the first train file's (which set the schema).

    A column's kind (int, float, string) must be the same in every file: reading
    each file's values as the first file's kind would turn the text "1" into the
    number 1, or a float 2.5 into an int column, silently. Arrow types of one kind
    (int32 and int64, string and large_string) agree.
    """
    if path == first:
        return []
    out = []
    for name in kinds:
        if name not in types:
            out.append(
                f"{path!r} has no column {name!r}, which {first!r} has; all files of a "
                "Parquet source need the same columns (or pass columns=[...] to read "
                "only the ones they share)"
            )
            continue
        first_type = first_types.get(name)
        first_kind = _arrow_kind(first_type) if first_type is not None else None
        kind = _arrow_kind(types[name])
        if kind != first_kind:
            out.append(
                f"column {name!r} is {first_type} ({first_kind}) in {first!r} but "
                f"{types[name]} ({kind or 'not int, float or string'}) in "
                f"{path!r}; all files of a Parquet source need one type per column: "
                "rewrite one file with the other's type (e.g. with pyarrow's "
                "Table.cast) so no value is converted silently"
            )
    return out


class _open_parquet:  # a context manager used like a function
    """A Parquet file as a path (local) or an open file object (URLs)."""

    def __init__(self, path: str, param: str) -> None:
        self.path, self.param, self.handle = path, param, None

    def __enter__(self) -> Any:
        if not _is_url(self.path):
            problem = _path_problem(self.path, self.param, "Parquet")
            if problem:
                raise DataError(problem)
            return _local(self.path)
        self.handle = _open(self.path, self.param, "Parquet")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()
