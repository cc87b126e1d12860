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

from __future__ import annotations

import abc
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.base import Operator, did_you_mean
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "COLUMN_TYPES",
    "ROW_ID",
    "Csv",
    "Parquet",
    "Source",
    "TFRecord",
    "Tfds",
    "read_all",
]

logger = logging.getLogger(__name__)

ROW_ID = "__row"
"""Name of the row-id column every source adds."""
COLUMN_TYPES = ("int", "float", "string")
"""The column types a source may declare."""
FILE_STRIDE = 10**10
"""Row ids of the k-th file of a split start at ``k * FILE_STRIDE``."""
COPY_STRIDE = 10**12
"""Row ids of the c-th replicated copy of a row are offset by ``c * COPY_STRIDE``."""
_MAX_TEXT = 120
_MAX_WORKERS = 4
_MIN_BLOCK_BYTES = 1 << 16
_WARN_FIRST = 5
_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf|infinity)$"


# --------------------------------------------------------------------------- base


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source(Operator, abc.ABC):
    """Base class of data sources.

    Subclasses declare their splits and schema without reading data and stream a
    split with :meth:`read`. ``VERSION`` is bumped whenever the rows read for the
    same files and parameters change.
    """

    KIND: ClassVar[str] = "source"

    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The split names, e.g. ``("train", "test")``."""

    @abc.abstractmethod
    def schema(self) -> dict[str, str]:
        """The declared columns: name -> ``"int"``, ``"float"`` or ``"string"``."""

    @abc.abstractmethod
    def files(self) -> tuple[str, ...]:
        """The data files (local paths or URLs) whose content defines the source."""

    def check(self) -> list[str]:
        """Problems found without reading data (missing or unreadable files)."""
        return []

    @abc.abstractmethod
    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream one split as DataFrames of at most ``batch_rows`` rows.

        Parameters
        ----------
        split
            One of :meth:`splits`.
        batch_rows
            The most rows one frame holds.
        counters
            If given, ``"rows_read"`` and ``"bad_rows_skipped"`` are incremented.

        Yields
        ------
        pandas.DataFrame
            The declared columns plus ``__row`` (int64).
        """

    def read_tables(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pa.Table]:
        """Like :meth:`read`, as Arrow tables (the engine's form; no pandas round trip).

        The default converts :meth:`read`'s frames; sources that parse into Arrow
        override it.
        """
        import pyarrow as pa

        for frame in self.read(split, batch_rows=batch_rows, counters=counters):
            yield pa.Table.from_pandas(frame, preserve_index=False)

    def _require_split(self, split: str) -> None:
        names = self.splits()
        if split not in names:
            raise ConfigError(
                f"{self.op_name} has no split {split!r}{did_you_mean(split, names)}; "
                f"its splits are: {', '.join(names)}"
            )


def read_all(source: Source, split: str, **kwargs: Any) -> pd.DataFrame:
    """Read a whole split into one DataFrame (for tests and small data).

    Parameters
    ----------
    source
        The source to read.
    split
        One of ``source.splits()``.
    **kwargs
        Passed to :meth:`Source.read`.

    Returns
    -------
    pandas.DataFrame
        All batches concatenated, with a fresh RangeIndex.
    """
    import pandas as pd

    frames = list(source.read(split, **kwargs))
    if frames:
        return pd.concat(frames, ignore_index=True)
    empty = {
        n: pd.Series([], dtype="str" if t == "string" else "float64")
        for n, t in source.schema().items()
    }
    empty[ROW_ID] = pd.Series([], dtype="int64")
    return pd.DataFrame(empty)


# ------------------------------------------------------------------ shared helpers


def _as_paths(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        return (os.fspath(value),)
    if isinstance(value, (list, tuple)):
        return tuple(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
    return value  # left for validate() to report


def _as_pairs(value: Any) -> Any:
    """A mapping or sequence of pairs as a tuple of pairs (hashable, ordered)."""
    if isinstance(value, Mapping):
        return tuple((k, _as_pairs(v) if isinstance(v, Mapping) else v) for k, v in value.items())
    if isinstance(value, list):
        return tuple(tuple(p) if isinstance(p, list) else p for p in value)
    return value


def _normalise(obj: Any, **fields: Callable[[Any], Any]) -> None:
    """Replace frozen fields by normalised values (before validation)."""
    for name, fn in fields.items():
        with contextlib.suppress(TypeError, ValueError):  # validate() reports bad values
            object.__setattr__(obj, name, fn(getattr(obj, name)))


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _path_problem(path: Any, param: str, op: str) -> str | None:
    """Why ``path`` cannot be read, with the fix; None when it looks readable."""
    if not isinstance(path, str) or not path:
        return f"{param} must be a file path or URL, but got {path!r}"
    if _is_url(path):
        return None  # remote objects are checked when read (no network at compile time)
    local = _local(path)
    where = f"{op}({param}=...)"
    if not os.path.exists(local):
        return (
            f"{param} file {path!r} does not exist (relative paths start at {os.getcwd()}); "
            f"fix the path in {where}"
        )
    if os.path.isdir(local):
        return (
            f"{param} file {path!r} is a directory, not a data file; pass the file(s) inside it "
            f"in {where}"
        )
    if not os.access(local, os.R_OK):
        return f"{param} file {path!r} is not readable (permission denied); fix its permissions"
    return None


def _fraction_problems(test: tuple[str, ...], test_fraction: Any, split_seed: Any) -> list[str]:
    problems = []
    if test_fraction is not None:
        if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
            problems.append(f"test_fraction must be a number in (0, 1), but got {test_fraction!r}")
        elif not 0 < test_fraction < 1:
            problems.append(f"test_fraction must be in (0, 1), but got {test_fraction}")
        if test:
            problems.append(
                "test_fraction splits the train files and cannot be combined with test files; "
                "pass either test=... or test_fraction=..."
            )
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        problems.append(f"split_seed must be an int, but got {split_seed!r}")
    return problems


def _paths_problems(train: Any, test: Any) -> list[str]:
    problems = []
    for param, value, required in (("train", train, True), ("test", test, False)):
        if not isinstance(value, tuple) or not all(isinstance(p, str) and p for p in value):
            problems.append(f"{param} must be a path or a tuple of paths, but got {value!r}")
        elif required and not value:
            problems.append(f"{param} must name at least one file")
    return problems


def _split_names(test: tuple[str, ...], test_fraction: float | None) -> tuple[str, ...]:
    return ("train", "test") if test or test_fraction is not None else ("train",)


def _in_test(ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whether each row id falls in the test fraction: a seeded splitmix64 hash."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 1) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


def _open(path: str, param: str, op: str) -> Any:
    """Open a file for binary reading; a missing or unreadable file is a DataError."""
    problem = _path_problem(path, param, op)
    if problem:
        raise DataError(problem)
    try:
        if _is_url(path) or path.endswith((".gz", ".bz2", ".xz", ".zst")):
            import fsspec

            return fsspec.open(_local(path), "rb", compression="infer").open()
        return open(_local(path), "rb")  # the caller closes it
    except OSError as exc:
        raise DataError(f"{param} file {path!r} cannot be opened: {exc}") from exc


def _shorten(text: str) -> str:
    return repr(text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "...")


def _frame(columns: dict[str, pa.Array], ids: np.ndarray) -> pd.DataFrame:
    """Build a frame from arrow arrays (strings, float64) and row ids."""
    import pyarrow as pa

    arrays = dict(columns)
    arrays[ROW_ID] = pa.array(ids, pa.int64())
    return pa.table(arrays).to_pandas()


def _emit(
    frame: pd.DataFrame, batch_rows: int, counters: dict[str, int] | None
) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), batch_rows):
        part = frame if len(frame) <= batch_rows else frame.iloc[start : start + batch_rows]
        if counters is not None:
            counters["rows_read"] = counters.get("rows_read", 0) + len(part)
        yield part.reset_index(drop=True) if start else part


def _as_column(values: pa.Array, kind: str) -> pa.Array:
    """An arrow array of any type as float64 (int/float) or string."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if kind == "string":
        return values if values.type == pa.string() else pc.cast(values, pa.string())
    if pa.types.is_boolean(values.type):
        values = pc.cast(values, pa.int8())
    return pc.cast(values, pa.float64())


def _arrow_kind(dtype: pa.DataType) -> str | None:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_boolean(dtype):
        return "int"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if hasattr(pa.types, "is_string_view") and pa.types.is_string_view(dtype):
        return "string"
    return None


def _column_problems(columns: Any) -> list[str]:
    if not isinstance(columns, tuple) or not columns:
        return [
            "columns must declare at least one column as name -> type, e.g. "
            f"columns={{'age': 'int', 'income': 'string'}}, but got {columns!r}"
        ]
    problems, seen = [], set()
    for pair in columns:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            problems.append(f"columns entries must be (name, type) pairs, but got {pair!r}")
            continue
        name, kind = pair
        if kind not in COLUMN_TYPES:
            problems.append(
                f"column {name!r} has unknown type {kind!r}{did_you_mean(str(kind), COLUMN_TYPES)}"
                f"; expected one of {', '.join(map(repr, COLUMN_TYPES))}"
            )
        if name in seen:
            problems.append(f"column {name!r} is declared twice")
        if name == ROW_ID:
            problems.append(f"column name {ROW_ID!r} is reserved for the row id")
        seen.add(name)
    return problems


class _BadRows:
    """Applies the on_bad_row policy: raise, or skip, count and warn."""

    def __init__(self, policy: str, limit: int, counters: dict[str, int] | None) -> None:
        self.policy, self.limit, self.counters = policy, limit, counters
        self.skipped = 0
        self.per_file: dict[str, int] = {}

    def handle(
        self, path: str, lines: list[int], describe: Callable[[int], tuple[str, str]]
    ) -> None:
        """Report bad rows at sorted ``lines``; ``describe(i)`` gives (reason, fix) of the i-th."""
        if not lines:
            return
        if self.policy == "fail":
            reason, fix = describe(0)
            raise DataError(f"{path} line {lines[0]}: {reason}. {fix}")
        for i in range(min(len(lines), max(0, _WARN_FIRST - self.skipped))):
            logger.warning("skipping %s line %d: %s", path, lines[i], describe(i)[0])
        self.skipped += len(lines)
        self.per_file[path] = self.per_file.get(path, 0) + len(lines)
        if self.counters is not None:
            total = self.counters.get("bad_rows_skipped", 0) + len(lines)
            self.counters["bad_rows_skipped"] = total
        if self.skipped > self.limit:
            raise DataError(
                f"{path}: more than max_bad_rows={self.limit} malformed rows skipped "
                f"({self.skipped} so far; line {lines[0]}: {describe(0)[0]}); the file probably "
                "does not match the declared columns or separator. Fix the file or the "
                "declaration, or raise max_bad_rows"
            )

    def summarise(self) -> None:
        for path, count in self.per_file.items():
            logger.warning("skipped %d malformed rows in %s", count, path)


# ---------------------------------------------------------------------------- CSV


@dataclasses.dataclass(frozen=True, kw_only=True)
class Csv(Source):
    """Delimited text files (CSV, TSV, ", "-separated), read fast and checked row by row.

    Parameters
    ----------
    train, test
        File path(s) or URL(s) of each split (``.gz``/``.bz2``/``.xz`` are decompressed).
    columns
        The columns in file order: ``{"age": "int", ...}`` or ``(("age", "int"), ...)``;
        types are ``"int"``, ``"float"`` and ``"string"``.
    header
        The first line (after ``skip_lines``) names the columns; it must match ``columns``.
    separator
        The field separator (one or more characters).
    strip
        Trim whitespace around string values (numbers are always trimmed).
    skip_lines
        Junk lines at the top of each file; an int, or a dict by split name.
    na_values
        Values (after trimming) that mean "missing".
    replace
        Value normalisation per column, applied before ``na_values``:
        ``{"income": {">50K.": ">50K"}}``.
    quote
        The quote character (``None``: quotes are ordinary characters). A field that
        starts with it may contain separators; a doubled quote is a literal quote.
        Quoted fields may not span lines.
    on_bad_row
        ``"fail"`` raises :class:`~helix_tf.errors.DataError` at the first malformed row;
        ``"skip"`` skips, counts and warns, failing after ``max_bad_rows``.
    max_bad_rows
        The most rows ``"skip"`` may skip per read of a split.
    test_fraction, split_seed
        Without test files: a seeded split of the train rows by a hash of the row id
        (the same rows on every read).
    replicate
        Emit every train row this many times (each copy with its own row id): for
        benchmarks at scale.
    rest_in_last
        The last column takes the rest of the line, separators and quotes included
        (free text).

    Notes
    -----
    Rows are parsed in blocks of about ``batch_rows`` lines. A block without quote
    characters, a one-character separator and ``rest_in_last=False`` goes through
    pyarrow's multi-threaded CSV parser; any anomaly (a bad row, a value that does
    not convert, a whitespace-only line, invalid UTF-8) sends the block to the
    careful path, which splits lines with vectorised pyarrow.compute kernels,
    counts fields per line and parses only the lines with quotes in Python. Both
    paths give identical results; the careful one names the line of every problem.
    ``__row`` is the 1-based line number in the file, plus ``file index * 10**10``
    and, for replicated rows, ``copy * 10**12``. Text must be UTF-8.
    """

    VERSION: ClassVar[int] = 1

    train: str | tuple[str, ...]
    test: str | tuple[str, ...] | None = None
    columns: tuple[tuple[str, str], ...] | dict[str, str] = ()
    header: bool = False
    separator: str = ","
    strip: bool = True
    skip_lines: int | dict[str, int] = 0
    na_values: tuple[str, ...] = ("", "?")
    replace: dict[str, dict[str, str]] | None = None
    quote: str | None = '"'
    on_bad_row: str = "fail"
    max_bad_rows: int = 100
    test_fraction: float | None = None
    split_seed: int = 0
    replicate: int = 1
    rest_in_last: bool = False

    def __post_init__(self) -> None:
        _normalise(
            self,
            train=_as_paths,
            test=_as_paths,
            columns=_as_pairs,
            skip_lines=_as_pairs,
            replace=_as_pairs,
            na_values=lambda v: tuple(v) if isinstance(v, list) else v,
        )
        super().__post_init__()

    # -- spec ----------------------------------------------------------------

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = _paths_problems(self.train, self.test)
        problems += _column_problems(self.columns)
        names = [p[0] for p in self.columns if isinstance(p, tuple) and p]
        if not isinstance(self.separator, str) or not self.separator or "\n" in self.separator:
            problems.append(f"separator must be a non-empty string, but got {self.separator!r}")
        if self.quote is not None and (not isinstance(self.quote, str) or len(self.quote) != 1):
            problems.append(f"quote must be one character or None, but got {self.quote!r}")
        elif self.quote is not None and self.quote in str(self.separator):
            problems.append(f"quote {self.quote!r} must differ from separator {self.separator!r}")
        problems += self._skip_problems()
        if not isinstance(self.na_values, tuple) or not all(
            isinstance(v, str) for v in self.na_values
        ):
            problems.append(f"na_values must be a tuple of strings, but got {self.na_values!r}")
        problems += self._replace_problems(names)
        if self.on_bad_row not in ("fail", "skip"):
            problems.append(
                f"on_bad_row must be 'fail' or 'skip', but got {self.on_bad_row!r}"
                f"{did_you_mean(str(self.on_bad_row), ('fail', 'skip'))}"
            )
        if (
            isinstance(self.max_bad_rows, bool)
            or not isinstance(self.max_bad_rows, int)
            or (self.max_bad_rows < 0)
        ):
            problems.append(f"max_bad_rows must be an int >= 0, but got {self.max_bad_rows!r}")
        if (
            isinstance(self.replicate, bool)
            or not isinstance(self.replicate, int)
            or (self.replicate < 1)
        ):
            problems.append(f"replicate must be an int >= 1, but got {self.replicate!r}")
        test = self.test if isinstance(self.test, tuple) else ()
        return problems + _fraction_problems(test, self.test_fraction, self.split_seed)

    def _skip_problems(self) -> list[str]:
        value = self.skip_lines
        pairs = value if isinstance(value, tuple) else (("*", value),)
        problems = []
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                return [f"skip_lines must be an int or a dict split -> int, but got {value!r}"]
            split, n = pair
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                problems.append(f"skip_lines must be >= 0, but got {n!r} for {split!r}")
            if split != "*" and split not in ("train", "test"):
                problems.append(
                    f"skip_lines names unknown split {split!r}"
                    f"{did_you_mean(str(split), ('train', 'test'))}; the splits are train and test"
                )
        return problems

    def _replace_problems(self, names: list[str]) -> list[str]:
        if self.replace is None:
            return []
        if not isinstance(self.replace, tuple):
            return [f"replace must be a dict column -> {{old: new}}, but got {self.replace!r}"]
        problems = []
        for pair in self.replace:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], tuple)):
                problems.append(f"replace entries must be column -> {{old: new}}, got {pair!r}")
                continue
            if pair[0] not in names:
                problems.append(
                    f"replace names unknown column {pair[0]!r}{did_you_mean(str(pair[0]), names)}"
                )
            if not all(isinstance(kv, tuple) and len(kv) == 2 for kv in pair[1]) or not all(
                isinstance(x, str) for kv in pair[1] for x in kv
            ):
                problems.append(f"replace[{pair[0]!r}] must map strings to strings")
        return problems

    def splits(self) -> tuple[str, ...]:
        """``("train", "test")`` with test files or a test_fraction, else ``("train",)``."""
        return _split_names(self.test or (), self.test_fraction)

    def schema(self) -> dict[str, str]:
        """The declared columns: name -> type."""
        return dict(self.columns)

    def files(self) -> tuple[str, ...]:
        """The train files, then the test files."""
        return tuple(self.train) + tuple(self.test or ())

    def check(self) -> list[str]:
        """Missing, unreadable or directory paths, each with the parameter to fix."""
        found = [_path_problem(p, "train", "Csv") for p in self.train]
        found += [_path_problem(p, "test", "Csv") for p in self.test or ()]
        return [p for p in found if p]

    def _skip_for(self, param: str) -> int:
        """Junk lines at the top of the files of ``param`` (``"train"`` or ``"test"``)."""
        if isinstance(self.skip_lines, int):
            return self.skip_lines
        return dict(self.skip_lines).get(param, 0)

    # -- reading -------------------------------------------------------------

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream a split; see the class notes for the parsing strategy."""
        for table in self.read_tables(split, batch_rows=batch_rows, counters=counters):
            yield table.to_pandas()

    def read_tables(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pa.Table]:
        """Stream a split as Arrow tables (parsed by Arrow, never through pandas)."""
        import pyarrow as pa

        self._require_split(split)
        if batch_rows < 1:
            raise ConfigError(f"batch_rows must be >= 1, but got {batch_rows}")
        param = "test" if split == "test" and self.test else "train"
        paths = self.test if param == "test" else self.train
        bad = _BadRows(self.on_bad_row, self.max_bad_rows, counters)
        copies = self.replicate if split == "train" else 1
        for index, path in enumerate(paths):
            with _open(path, param, "Csv") as handle:
                for columns, lines in self._read_file(handle, path, param, batch_rows, bad):
                    ids = lines + index * FILE_STRIDE
                    if self.test_fraction is not None:
                        keep = _in_test(ids, self.test_fraction, self.split_seed)
                        if split == "train":
                            keep = ~keep
                        columns = {n: a.filter(keep) for n, a in columns.items()}
                        ids = ids[keep]
                    if not len(ids):
                        continue
                    arrays = dict(columns)
                    arrays[ROW_ID] = pa.array(ids, pa.int64())
                    table = pa.table(arrays)
                    for copy in range(copies):
                        if copy:
                            table = table.set_column(
                                table.schema.get_field_index(ROW_ID),
                                ROW_ID,
                                pa.array(ids + copy * COPY_STRIDE, pa.int64()),
                            )
                        for start in range(0, table.num_rows, batch_rows):
                            part = table.slice(start, batch_rows)
                            if counters is not None:
                                counters["rows_read"] = counters.get("rows_read", 0) + part.num_rows
                            yield part
        bad.summarise()

    def _read_file(
        self, handle: Any, path: str, param: str, batch_rows: int, bad: _BadRows
    ) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
        """Parse one file (of the ``train`` or ``test`` parameter) into blocks of rows."""
        line = 0
        for _ in range(self._skip_for(param)):
            if not handle.readline():
                return
            line += 1
        if self.header:
            text = handle.readline()
            if not text:
                return
            line += 1
            self._check_header(text, path, line)
        blocks = _blocks(handle, line, batch_rows)
        workers = min(_MAX_WORKERS, os.cpu_count() or 1)
        if workers == 1:
            parsed = (self._parse_block(*block, path) for block in blocks)
            yield from self._report(parsed, path, bad)
            return
        # parse a few blocks ahead in threads (pyarrow releases the GIL), in file order
        with concurrent.futures.ThreadPoolExecutor(workers, "helix-csv") as pool:
            pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()

            def results() -> Iterator[Any]:
                for block in blocks:
                    pending.append(pool.submit(self._parse_block, *block, path))
                    if len(pending) > workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()

            try:
                yield from self._report(results(), path, bad)
            finally:
                for future in pending:
                    future.cancel()

    @staticmethod
    def _report(parsed: Iterator[Any], path: str, bad: _BadRows) -> Iterator[Any]:
        """Apply the bad-row policy to parsed blocks in file order; yield non-empty ones."""
        for columns, lines, issues in parsed:
            if issues is not None:
                bad.handle(path, *issues)
            if len(lines):
                yield columns, lines

    def _parse_block(
        self, first: int, body: bytes, count: int, path: str
    ) -> tuple[dict[str, pa.Array], np.ndarray, Any]:
        """Parse one block: the fast path when it applies and succeeds, else the careful one."""
        if first == 0 and body.startswith(b"\xef\xbb\xbf"):
            body = body[3:]  # UTF-8 byte-order mark
        if self._fast_ok(body):
            parsed = self._parse_fast(body, first, count)
            if parsed is not None:
                return parsed[0], parsed[1], None
        return self._parse_careful(body, first, path)

    def _check_header(self, raw: bytes, path: str, line: int) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n").lstrip("\ufeff")
        try:
            found = _split_quoted(text, self.separator, self.quote, None)
        except ValueError:
            found = text.split(self.separator)
        found = [f.strip() for f in found]
        declared = [name for name, _ in self.columns]
        if found != declared:
            raise DataError(
                f"{path} line {line}: the header names columns {found}, but columns declares "
                f"{declared}; declare the columns in the file's order with the header's names"
            )

    # fast path: pyarrow.csv on a clean block --------------------------------

    def _fast_ok(self, body: bytes) -> bool:
        return (
            len(self.separator) == 1
            and not self.rest_in_last
            and (self.quote is None or self.quote.encode() not in body)
        )

    def _parse_fast(
        self, body: bytes, first: int, n_lines: int
    ) -> tuple[dict[str, pa.Array], np.ndarray] | None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.csv as pcsv

        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
        names = [name for name, _ in self.columns]
        replaced = {c for c, _ in self.replace or ()}
        types = {
            n: pa.int64() if k == "int" else pa.float64()
            for n, k in self.columns
            if k != "string" and n not in replaced
        }
        nulls = sorted({w for v in self.na_values for w in (v, f" {v}", f"{v} ", f" {v} ")})
        invalid: list[Any] = []
        try:
            table = pcsv.read_csv(
                pa.py_buffer(body),
                read_options=pcsv.ReadOptions(
                    column_names=names, block_size=1 << 20, use_threads=False
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter=self.separator,
                    quote_char=False,
                    escape_char=False,
                    ignore_empty_lines=True,
                    invalid_row_handler=lambda row: invalid.append(row) or "skip",
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: types.get(n, pa.string()) for n in names},
                    null_values=nulls,
                    strings_can_be_null=False,
                    check_utf8=True,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        if invalid:
            return None
        lines = np.arange(first + 1, first + n_lines + 1, dtype=np.int64)
        if table.num_rows != n_lines:  # arrow skipped the empty lines: find them
            blank = _blank_lines(body)
            if table.num_rows != n_lines - len(blank):
                return None
            lines = np.delete(lines, blank)
        columns: dict[str, pa.Array] = {}
        for name, kind in self.columns:
            values = table.column(name).combine_chunks()
            if name in types:
                columns[name] = _as_column(values, kind)
                continue
            converted = self._convert(name, kind, values)
            if converted[1] is not None:
                return None
            columns[name] = converted[0]
        return columns, lines

    # careful path: vectorised split, exact line numbers, every problem named --

    def _parse_careful(
        self, body: bytes, first: int, path: str
    ) -> tuple[dict[str, pa.Array], np.ndarray, Any]:
        """Parse a block line by line (vectorised); returns (columns, line numbers, issues).

        ``issues`` is None, or the (line numbers, describe) of the bad rows, for
        :meth:`_BadRows.handle`; bad rows are left out of the columns.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        lines = _decode_lines(body, first, path)
        if b"\r" in body:
            lines = pc.utf8_rtrim(lines, characters="\r")
        n = len(self.columns)
        sep = self.separator
        parts = pc.split_pattern(lines, sep, max_splits=n - 1 if self.rest_in_last else None)
        counts = pc.list_value_length(parts).to_numpy()
        empty = pc.or_(pc.equal(pc.binary_length(lines), 0), pc.utf8_is_space(lines))
        blank = (counts == 1) & np.asarray(empty)
        quoted = np.zeros(len(lines), dtype=bool)
        if self.quote is not None and self.quote.encode() in body:
            has_quote = np.asarray(pc.match_substring(lines, self.quote)) & ~blank
            for i in np.flatnonzero(has_quote):
                text = lines[int(i)].as_py()
                head = text.split(sep, n - 1)[: n - 1] if self.rest_in_last else [text]
                quoted[i] = any(self.quote in h for h in head)
        good = (counts == n) & ~blank & ~quoted
        # problems: position in block -> (kind, detail); formatted only when reported
        issues: dict[int, tuple[str, Any]] = {
            int(i): ("count", int(counts[i])) for i in np.flatnonzero(~good & ~blank & ~quoted)
        }
        slow_rows: list[list[str]] = []
        slow_at: list[int] = []
        for i in np.flatnonzero(quoted):
            try:
                fields = _split_quoted(
                    lines[int(i)].as_py(), sep, self.quote, n if self.rest_in_last else None
                )
            except ValueError as exc:
                issues[int(i)] = ("quote", str(exc))
                continue
            if len(fields) != n:
                issues[int(i)] = ("count", len(fields))
            else:
                slow_rows.append(fields)
                slow_at.append(int(i))
        position = np.flatnonzero(good)
        good_parts = parts.filter(pa.array(good))
        raw: dict[str, pa.Array] = {}
        for j, (name, _) in enumerate(self.columns):
            column = pc.list_element(good_parts, j) if len(position) else pa.array([], pa.string())
            if slow_rows:
                extra = pa.array([r[j] for r in slow_rows], pa.string())
                column = pa.concat_arrays([column, extra])
            raw[name] = column
        if slow_rows:
            position = np.concatenate([position, np.asarray(slow_at, dtype=np.int64)])
            order = np.argsort(position, kind="stable")
            position = position[order]
            raw = {k: v.take(pa.array(order)) for k, v in raw.items()}
        failed = np.zeros(len(position), dtype=bool)
        columns: dict[str, pa.Array] = {}
        for name, kind in self.columns:
            columns[name], bad_values = self._convert(name, kind, raw[name])
            if bad_values is not None:
                for r in np.flatnonzero(bad_values & ~failed):
                    value = raw[name][int(r)].as_py().strip()
                    issues[int(position[r])] = ("number", (name, kind, value))
                failed |= bad_values
        report = None
        if issues:
            where = sorted(issues)

            def describe(k: int) -> tuple[str, str]:
                return self._describe(issues[where[k]], lines[where[k]].as_py())

            report = ([first + 1 + w for w in where], describe)
        if failed.any():
            keep = pa.array(~failed)
            columns = {k: v.filter(keep) for k, v in columns.items()}
            position = position[~failed]
        return columns, position + first + 1, report

    def _describe(self, issue: tuple[str, Any], text: str) -> tuple[str, str]:
        """(reason, fix) for a problem found in the careful path."""
        kind, detail = issue
        if kind == "count":
            return (
                f"expected {len(self.columns)} fields separated by {self.separator!r}, "
                f"found {detail}: {_shorten(text)}",
                _FIX_ROW,
            )
        if kind == "quote":
            return f"{detail}: {_shorten(text)}", _FIX_ROW
        name, column_kind, value = detail
        what = "an integer" if column_kind == "int" else "a number"
        return (
            f"column {name!r} ({column_kind}) expects {what}, found {_shorten(value)}: "
            f"{_shorten(text)}",
            f"Fix the value, declare {name!r} as 'string', add {value!r} to na_values, "
            "or pass on_bad_row='skip' to skip malformed rows",
        )

    def _convert(
        self, name: str, kind: str, values: pa.Array
    ) -> tuple[pa.Array, np.ndarray | None]:
        """Trim, replace, apply na_values, convert; returns (array, mask of failures or None)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.strip or kind != "string":
            values = pc.utf8_trim_whitespace(values)
        mapping = dict(self.replace or ()).get(name)
        if mapping:
            keys = pa.array([k for k, _ in mapping], pa.string())
            mapped = pa.array([v for _, v in mapping], pa.string()).take(
                pc.index_in(values, value_set=keys)
            )
            values = pc.coalesce(mapped, values)
        if self.na_values:
            missing = pc.is_in(values, value_set=pa.array(self.na_values, pa.string()))
            values = pc.if_else(missing, pa.scalar(None, pa.string()), values)
        if kind == "string":
            return values, None
        failed = None
        try:
            numbers = pc.cast(values, pa.float64())
        except pa.ArrowInvalid:
            ok = pc.fill_null(pc.match_substring_regex(values, _NUMBER_RE, ignore_case=True), True)
            failed = ~np.asarray(ok)
            numbers = _cast_lenient(pc.if_else(ok, values, pa.scalar(None, pa.string())), failed)
        if kind == "int":
            array = numbers.to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                fraction = np.asarray(numbers.is_valid()) & ~(np.floor(array) == array)
            if fraction.any():
                failed = fraction if failed is None else failed | fraction
                numbers = pc.if_else(pa.array(fraction), pa.scalar(None, pa.float64()), numbers)
        return numbers, failed


_FIX_ROW = "Fix the row, or pass on_bad_row='skip' to skip malformed rows"


def _blocks(handle: Any, first: int, batch_rows: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield (lines before the block, block, lines in it) for blocks of about batch_rows lines.

    A block holds complete lines joined by newlines, without the final newline.
    """
    carry = b""
    line_bytes = 128.0
    while True:
        data = handle.read(max(_MIN_BLOCK_BYTES, int(batch_rows * line_bytes * 0.95)))
        if not data:
            if carry:
                yield first, carry, carry.count(b"\n") + 1
            return
        buffer = carry + data if carry else data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            carry = buffer
            continue
        block, carry = buffer[:cut], buffer[cut + 1 :]
        count = block.count(b"\n") + 1
        yield first, block, count
        first += count
        line_bytes = max(8.0, (cut + 1) / count)


def _blank_lines(block: bytes) -> list[int]:
    """Indices of the empty lines of a block (lines joined by newlines)."""
    blank = []
    line = 0
    position = 0
    if block.startswith(b"\n") or not block:
        blank.append(0)
    while True:
        found = block.find(b"\n\n", position)
        if found < 0:
            break
        line += block.count(b"\n", position, found + 1)
        blank.append(line)
        position = found + 1
    if block.endswith(b"\n"):
        last = block.count(b"\n")
        if not blank or blank[-1] != last:
            blank.append(last)
    return blank


def _decode_lines(block: bytes, first: int, path: str) -> pa.Array:
    """A block's lines as an arrow string array; invalid UTF-8 is a DataError."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = pc.split_pattern(pa.array([block], pa.binary()), b"\n").flatten()
    try:
        return lines.cast(pa.string())
    except pa.ArrowInvalid:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first + 1 + block.count(b"\n", 0, exc.start)
            start = block.rfind(b"\n", 0, exc.start) + 1
            text = block[start : start + _MAX_TEXT].decode("utf-8", errors="replace")
            raise DataError(
                f"{path} line {line}: the text is not valid UTF-8 ({exc.reason} at byte "
                f"{exc.start - start + 1} of the line): {_shorten(text)}. Convert the file to "
                "UTF-8, e.g. iconv -f latin1 -t utf-8"
            ) from exc
        raise


def _split_quoted(text: str, sep: str, quote: str | None, max_fields: int | None) -> list[str]:
    """Split one line with quoted fields; ``max_fields``: the last takes the rest.

    A field whose first non-blank character is ``quote`` runs to the matching quote
    (a doubled quote is a literal one) and may contain separators; a quote inside
    an unquoted field is an ordinary character. Raises ValueError for an
    unterminated quote or text after a closing quote.
    """
    fields: list[str] = []
    size = len(text)
    i = 0
    while True:
        if max_fields is not None and len(fields) == max_fields - 1:
            fields.append(text[i:])
            return fields
        j = i
        while j < size and text[j] in " \t" and not text.startswith(sep, j):
            j += 1
        if quote is None or j >= size or text[j] != quote:
            end = text.find(sep, i)
            if end < 0:
                fields.append(text[i:])
                return fields
            fields.append(text[i:end])
            i = end + len(sep)
            continue
        pieces, k = [], j + 1
        while True:
            close = text.find(quote, k)
            if close < 0:
                raise ValueError(f"unterminated quoted field starting at character {j + 1}")
            pieces.append(text[k:close])
            if text.startswith(quote, close + 1):
                pieces.append(quote)
                k = close + 2
                continue
            k = close + 1
            break
        while k < size and text[k] in " \t" and not text.startswith(sep, k):
            k += 1
        fields.append("".join(pieces))
        if k >= size:
            return fields
        if not text.startswith(sep, k):
            raise ValueError(f"text after the closing quote at character {k + 1}")
        i = k + len(sep)


def _cast_lenient(values: pa.Array, failed: np.ndarray) -> pa.Array:
    """Cast strings to float64 when a regex pre-check may disagree with arrow's parser.

    Values that still do not parse are marked in ``failed`` (in place) and become null.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        out = []
        for i, value in enumerate(values.to_pylist()):
            try:
                number = None if value is None else pc.cast(pa.scalar(value), pa.float64())
                out.append(None if number is None else number.as_py())
            except pa.ArrowInvalid:
                failed[i] = True
                out.append(None)
        return pa.array(out, pa.float64())


# ------------------------------------------------------------------------ Parquet


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
    0-based row index in its file plus ``file index * 10**10``.
    """

    VERSION: ClassVar[int] = 1

    train: str | tuple[str, ...]
    test: str | tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None
    test_fraction: float | None = None
    split_seed: int = 0

    def __post_init__(self) -> None:
        _normalise(
            self,
            train=_as_paths,
            test=_as_paths,
            columns=lambda v: tuple(v) if isinstance(v, list) else v,
        )
        super().__post_init__()

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
        found = self._schema_of(self.train[0], "train", problems)
        if problems:
            raise ConfigError([f"Parquet: {p}" for p in problems])
        return found

    def check(self) -> list[str]:
        """Missing files, unreadable footers and unknown or unsupported columns."""
        problems: list[str] = []
        for param, paths in (("train", self.train), ("test", self.test or ())):
            for path in paths:
                problem = _path_problem(path, param, "Parquet")
                if problem:
                    problems.append(problem)
                else:
                    self._schema_of(path, param, problems)
        return problems

    def _schema_of(self, path: str, param: str, problems: list[str]) -> dict[str, str]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with _open_parquet(path, param) as handle:
                schema = pq.read_schema(handle)
        except (pa.ArrowInvalid, OSError, DataError) as exc:
            problems.append(f"{param} file {path!r} is not a readable Parquet file: {exc}")
            return {}
        kinds = {field.name: _arrow_kind(field.type) for field in schema}
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
                        f"column {name!r} of {path!r} has type {schema.field(name).type}, which "
                        "is not int, float or string; leave it out of columns"
                    )
                else:
                    logger.info(
                        "Parquet: leaving out column %r of type %s", name, schema.field(name).type
                    )
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

        self._require_split(split)
        param = "test" if split == "test" and self.test else "train"
        paths = self.test if param == "test" else self.train
        kinds = self.schema()
        for index, path in enumerate(paths):
            offset = 0
            with _open_parquet(path, param) as handle, pq.ParquetFile(handle) as parquet:
                try:
                    batches = parquet.iter_batches(batch_size=batch_rows, columns=list(kinds))
                    for batch in batches:
                        ids = np.arange(offset, offset + batch.num_rows, dtype=np.int64)
                        ids += index * FILE_STRIDE
                        offset += batch.num_rows
                        columns = {n: _as_column(batch.column(n), k) for n, k in kinds.items()}
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


# ----------------------------------------------------------------------- TFRecord


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

    train: str | tuple[str, ...]
    test: str | tuple[str, ...] | None = None
    features: dict[str, str] | tuple[tuple[str, str], ...] = ()
    test_fraction: float | None = None
    split_seed: int = 0
    compression: str | None = None

    def __post_init__(self) -> None:
        _normalise(self, train=_as_paths, test=_as_paths, features=_as_pairs)
        super().__post_init__()

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

        self._require_split(split)
        param = "test" if split == "test" and self.test else "train"
        paths = self.test if param == "test" else self.train
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


# --------------------------------------------------------------------------- TFDS


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tfds(Source):
    """A TensorFlow Datasets dataset that is already prepared in ``data_dir``.

    helix_tf never downloads: a dataset that is not in ``data_dir`` is a
    ConfigError that says how to prepare it.

    Parameters
    ----------
    name
        The TFDS name, optionally with config and version: ``"mnist"``,
        ``"wine_quality/white:1.0.0"``.
    data_dir
        The folder the dataset was prepared in.
    tfds_splits
        Our split name -> TFDS split spec, e.g. ``{"train": "train[:80%]",
        "test": "train[80%:]"}``.
    columns
        Scalar features to read: name -> type; nested features as ``"a/b"``.
        Default: every scalar feature (finding them imports TensorFlow Datasets,
        so declare them to keep compilation light).

    Notes
    -----
    ``__row`` is the 0-based example index in the split, read in TFDS's
    deterministic order (``shuffle_files=False``). :meth:`files` lists the
    prepared files without importing TensorFlow.
    """

    VERSION: ClassVar[int] = 1

    name: str
    data_dir: str
    tfds_splits: dict[str, str] | tuple[tuple[str, str], ...] = (
        ("train", "train"),
        ("test", "test"),
    )
    columns: dict[str, str] | tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        _normalise(
            self,
            tfds_splits=_as_pairs,
            columns=_as_pairs,
            data_dir=lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v,
        )
        super().__post_init__()

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a TFDS dataset name, but got {self.name!r}")
        if not isinstance(self.data_dir, str) or not self.data_dir:
            problems.append(f"data_dir must be a folder, but got {self.data_dir!r}")
        if (
            not isinstance(self.tfds_splits, tuple)
            or not self.tfds_splits
            or not all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in self.tfds_splits
            )
        ):
            problems.append(
                "tfds_splits must map split names to TFDS split specs, e.g. "
                f"{{'train': 'train', 'test': 'test'}}, but got {self.tfds_splits!r}"
            )
        if self.columns is not None:
            problems += _column_problems(self.columns)
        return problems

    def splits(self) -> tuple[str, ...]:
        """Our split names (the keys of ``tfds_splits``)."""
        return tuple(k for k, _ in self.tfds_splits)

    def schema(self) -> dict[str, str]:
        """The declared columns, or every scalar feature of the dataset."""
        if self.columns is not None:
            return dict(self.columns)
        builder = self._builder()
        found: dict[str, str] = {}
        _scalar_features(builder.info.features, "", found)
        return found

    def files(self) -> tuple[str, ...]:
        """The prepared dataset's files under ``data_dir`` (empty when not prepared)."""
        directory, _ = self._variant_dir()
        if directory is None:
            return ()
        found = []
        for root, dirs, names in os.walk(directory):
            dirs.sort()
            found += [os.path.join(root, n) for n in sorted(names)]
        return tuple(found)

    def check(self) -> list[str]:
        """Whether the dataset is prepared in ``data_dir``, and how to prepare it if not."""
        directory, why = self._variant_dir()
        return [] if directory is not None else [self._not_prepared(why)]

    def _not_prepared(self, why: str) -> str:
        dataset = self.name.partition(":")[0]
        return (
            f"TFDS dataset {self.name!r} is not prepared in data_dir {self.data_dir!r} ({why}); "
            "helix_tf never downloads. Prepare it once with `tfds build "
            f"{dataset} --data_dir {self.data_dir}` or, in Python, "
            f"tfds.builder({self.name!r}, data_dir={self.data_dir!r}).download_and_prepare()"
        )

    def _variant_dir(self) -> tuple[str | None, str]:
        """The prepared ``data_dir/dataset[/config]/version`` folder, or (None, why)."""
        dataset, _, version = self.name.partition(":")
        base = os.path.join(self.data_dir, *dataset.split("/"))
        if not os.path.isdir(base):
            return None, f"no folder {base}"
        if version:
            chosen = os.path.join(base, version)
            return (chosen, "") if _prepared(chosen) else (None, f"no prepared {chosen}")
        versions = _versions(base)
        if versions:
            return os.path.join(base, versions[-1]), ""
        configs = sorted(c for c in os.listdir(base) if _versions(os.path.join(base, c)))
        if len(configs) == 1:
            return os.path.join(base, configs[0], _versions(os.path.join(base, configs[0]))[-1]), ""
        if configs:
            return None, f"it has configs {configs}; name one, e.g. '{dataset}/{configs[0]}'"
        return None, f"no prepared version under {base}"

    def _builder(self) -> Any:
        import tensorflow_datasets as tfds

        try:
            return tfds.builder(self.name, data_dir=self.data_dir)
        except Exception as exc:  # TFDS raises many kinds (not found, bad version, ...)
            raise ConfigError(
                f"Tfds: cannot load dataset {self.name!r} from data_dir {self.data_dir!r}: {exc}"
            ) from exc

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream a split from the prepared dataset (never downloads)."""
        import numpy as np
        import pyarrow as pa
        import tensorflow_datasets as tfds

        self._require_split(split)
        spec = dict(self.tfds_splits)[split]
        kinds = self.schema()
        builder = self._builder()
        try:
            dataset = builder.as_dataset(split=spec, shuffle_files=False)
        except (AssertionError, FileNotFoundError) as exc:
            raise ConfigError(self._not_prepared(str(exc).splitlines()[0])) from exc
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"Tfds: cannot read split {spec!r} of {self.name!r}: {exc}; "
                f"check tfds_splits (splits: {list(builder.info.splits)})"
            ) from exc
        missing = [c for c in kinds if _feature(builder.info.features, c) is None]
        if missing or not kinds:
            missing = missing or ["(none)"]
            raise ConfigError(
                f"Tfds: dataset {self.name!r} has no feature {missing[0]!r}; its scalar "
                f"features are: {', '.join(self._scalars(builder))}"
            )
        dataset = dataset.map(lambda ex: {c: _feature(ex, c) for c in kinds})
        offset = 0
        for batch in tfds.as_numpy(dataset.batch(batch_rows)):
            count = len(next(iter(batch.values()))) if batch else 0
            columns = {}
            for name, kind in kinds.items():
                values = np.asarray(batch[name])
                if values.ndim != 1:
                    raise DataError(
                        f"Tfds: feature {name!r} of {self.name!r} has shape {values.shape[1:]} "
                        "per example; only scalar features can be read"
                    )
                if kind == "string":
                    texts = [
                        v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                        for v in values.tolist()
                    ]
                    columns[name] = pa.array(texts, pa.string())
                else:
                    if values.dtype.kind not in "biuf":
                        raise DataError(
                            f"Tfds: feature {name!r} of {self.name!r} holds {values.dtype} "
                            f"values, not numbers; declare it as 'string'"
                        )
                    columns[name] = pa.array(values.astype(np.float64), pa.float64())
            ids = np.arange(offset, offset + count, dtype=np.int64)
            offset += count
            if count:
                yield from _emit(_frame(columns, ids), batch_rows, counters)

    @staticmethod
    def _scalars(builder: Any) -> list[str]:
        found: dict[str, str] = {}
        _scalar_features(builder.info.features, "", found)
        return list(found)


def _prepared(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "dataset_info.json"))


def _versions(directory: str) -> list[str]:
    """Prepared version folders (``1.2.3``) in ``directory``, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        parts = name.split(".")
        if (
            len(parts) == 3
            and all(p.isdigit() for p in parts)
            and _prepared(os.path.join(directory, name))
        ):
            found.append(name)
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def _feature(example: Any, path: str) -> Any:
    """``example["a"]["b"]`` for ``"a/b"``; None when absent."""
    value = example
    for key in path.split("/"):
        try:
            value = value[key]
        except (KeyError, TypeError):
            return None
    return value


def _scalar_features(features: Any, prefix: str, found: dict[str, str]) -> None:
    """Collect the scalar leaves of a TFDS FeaturesDict as name -> kind."""
    import numpy as np

    shape = getattr(features, "shape", None)
    if isinstance(shape, dict) and hasattr(features, "items"):  # a FeaturesDict
        for key, value in features.items():
            _scalar_features(value, f"{prefix}{key}/", found)
        return
    if shape is None or tuple(shape) != ():
        return
    dtype = np.dtype(getattr(features, "np_dtype", None) or object)
    if dtype.kind in "biu":
        found[prefix[:-1]] = "int"
    elif dtype.kind == "f":
        found[prefix[:-1]] = "float"
    elif dtype.kind in "OSU":
        found[prefix[:-1]] = "string"
