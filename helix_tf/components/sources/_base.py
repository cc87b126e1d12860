"""The source base class, :func:`read_all` and the helpers every source shares."""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.base import Operator, did_you_mean
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

ROW_ID = "__row"
"""Name of the row-id column every source adds."""
COLUMN_TYPES = ("int", "float", "string")
"""The column types a source may declare."""
FILE_STRIDE = 10**10
"""Row ids of the k-th file of a split start at ``k * FILE_STRIDE``."""
COPY_STRIDE = 10**12
"""Row ids of the c-th replicated copy of a row are offset by ``c * COPY_STRIDE``."""
_MAX_TEXT = 120


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReadShard:
    """One independently readable part of a split: a whole split, a file, or byte ranges.

    A split read shard by shard, in ``index`` order, yields exactly the tables of
    :meth:`Source.read_tables` (same rows, ids, order and table boundaries).
    """

    split: str
    index: int = 0
    """Position of this shard in the split's read order."""
    of: int = 1
    """How many shards the split has."""
    file: int | None = None
    """The file's index within the split; None: the whole split."""
    blocks: tuple[tuple[int, int, int], ...] = ()
    """(byte offset, byte length, lines before) of each block of lines this shard parses;
    empty: the whole file."""
    first_block: bool = True
    """Whether the shard holds the file's first block of data lines."""
    copies: tuple[int, int] | None = None
    """The range of replicated copies of each row this shard emits; None: all."""


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

    def content_files(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """The ``train``/``test`` files, labelled by the compression their name implies,
        and under ``"files"`` any other file :meth:`files` names (a source of your own
        that keeps its paths in another parameter).

        The source's identity is these files' content, wherever they lie: every file
        :meth:`files` names is hashed, so editing one never reuses stale results.
        """
        out: dict[str, tuple[tuple[str, str], ...]] = {}
        for param in ("train", "test"):
            paths = getattr(self, param, None)
            if isinstance(paths, tuple):
                out[param] = tuple((_compression_of(p), p) for p in paths)
        covered = {p for pairs in out.values() for _, p in pairs}
        rest = tuple(p for p in self.files() if p not in covered)
        if rest:
            out["files"] = tuple((_compression_of(p), p) for p in rest)
        return out

    def inert_params(self) -> set[str]:
        """``split_seed`` when there is no ``test_fraction`` to split by."""
        inert = set()
        if "split_seed" in self.params() and getattr(self, "test_fraction", None) is None:
            inert.add("split_seed")
        return inert

    def check(self) -> list[str]:
        """Problems found without reading data (missing or unreadable files)."""
        return []

    #: What one unit of a file is called in messages ("line" for text formats).
    ROW_UNIT: ClassVar[str] = "row"

    def describe_row(self, split: str, row: int) -> str:
        """Where row id ``row`` of ``split`` comes from, e.g. ``"line 12 of data/adult.data"``."""
        try:
            _, paths = _split_files(self, split)
        except (AttributeError, ConfigError):
            return f"{self.ROW_UNIT} {row} of split {split!r}"
        index, offset = divmod(row % COPY_STRIDE, FILE_STRIDE)
        if index >= len(paths):
            return f"{self.ROW_UNIT} {row} of split {split!r}"
        return f"{self.ROW_UNIT} {offset} of {paths[index]}"

    def estimated_rows(self, split: str) -> int | None:
        """About how many rows ``split`` holds, found without parsing it (``None``: not
        known here). An approximate run sizes its sample by it (``Approx.resolved``)."""
        return None

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

    def read_shards(
        self, split: str, *, batch_rows: int = 50_000, shard_bytes: int = 64 << 20
    ) -> list[ReadShard]:
        """The parts of ``split`` that workers may read in parallel (in read order).

        The default is one shard, the whole split; sources whose files can be read
        independently (or by byte range) return more.
        """
        return [ReadShard(split=split)]

    def read_shard(
        self, shard: ReadShard, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pa.Table]:
        """The tables of one shard of :meth:`read_shards` (``batch_rows`` as given there)."""
        yield from self.read_tables(shard.split, batch_rows=batch_rows, counters=counters)

    def read_sample(
        self,
        shard: ReadShard,
        keep: Callable[[np.ndarray], np.ndarray],
        *,
        batch_rows: int = 50_000,
        counters: dict[str, int] | None = None,
    ) -> Iterator[pa.Table]:
        """The rows of one shard that ``keep`` keeps, in read order, without empty tables.

        ``keep(row_ids)`` is a boolean mask over an int64 array of row ids (an approximate
        run's sample, :func:`helix_tf.approx.sampling.keep_mask`): a row is kept or not by
        its id alone, so every way of reading gives the same rows. The default filters
        :meth:`read_shard`'s tables; a source that can drop rows before it builds them
        overrides it (``Csv``: before it makes each replicated copy).
        """
        for table in self.read_shard(shard, batch_rows=batch_rows, counters=counters):
            kept = table.filter(keep(table.column(ROW_ID).to_numpy()))
            if kept.num_rows:
                yield kept

    def bad_row_limit(self) -> int | None:
        """The most malformed rows a split may skip in all (None: no rows are skipped)."""
        return None

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
        if any(ch in local for ch in "*?["):
            return (
                f"{param} file {path!r} does not exist: patterns are not expanded; pass the "
                f"files it matches, e.g. {param}=sorted(glob.glob({path!r})), in {where}"
            )
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


def _split_files(source: Any, split: str) -> tuple[str, tuple[str, ...]]:
    """The file parameter (``"train"`` or ``"test"``) a split reads, and its paths.

    Without ``test`` files both splits read the ``train`` files (``test_fraction``).
    """
    source._require_split(split)
    param = "test" if split == "test" and source.test else "train"
    return param, (source.test if param == "test" else source.train)


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


_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")


def _compression_of(path: str) -> str:
    """The compression a file's name makes :func:`_open` undo ("" for none)."""
    return next((s for s in _COMPRESSED if path.endswith(s)), "")


def _open(path: str, param: str, op: str) -> Any:
    """Open a file for binary reading; a missing or unreadable file is a DataError."""
    problem = _path_problem(path, param, op)
    if problem:
        raise DataError(problem)
    try:
        if _is_url(path) or _compression_of(path):
            import fsspec

            handle = fsspec.open(_local(path), "rb", compression="infer").open()
            kind = _compression_of(path)
            return _Decompressing(handle, path, param, kind) if kind else handle
        return open(_local(path), "rb")  # the caller closes it
    except OSError as exc:
        raise DataError(f"{param} file {path!r} cannot be opened: {exc}") from exc


#: The tool that tests a file of each compression (``gzip -t FILE``).
_TESTED_BY = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}


class _Decompressing:
    """A compressed file being read: a damaged stream is a DataError naming the file.

    Decompressors fail with their own words ("EOFError: Compressed file ended before
    the end-of-stream marker was reached", "OSError: Invalid data stream"), which name
    no file; read inside ``with``, such an error becomes one that does. Anything else
    is the wrapped file's (attribute access is passed through).
    """

    def __init__(self, handle: Any, path: str, param: str, kind: str) -> None:
        self._handle, self._path, self._param, self._kind = handle, path, param, kind

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> Any:
        return self._handle

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._handle.close()
        if exc is not None and _is_decompression_error(exc):
            tool = _TESTED_BY[self._kind]
            raise DataError(
                f"{self._param} file {self._path!r} cannot be decompressed as {self._kind} "
                f"data ({type(exc).__name__}: {exc}): it is truncated or damaged, or not "
                f"{self._kind}-compressed; check it with `{tool} -t {self._path}` and write "
                "it again"
            ) from exc

    def close(self) -> None:
        self._handle.close()


def _is_decompression_error(exc: BaseException) -> bool:
    import lzma
    import zlib

    if isinstance(exc, EOFError | zlib.error | lzma.LZMAError):
        return True
    # gzip.BadGzipFile and bz2's "Invalid data stream" are OSErrors; so is zstd's.
    return isinstance(exc, OSError)


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
