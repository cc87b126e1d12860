"""The CSV source: delimited text files, parsed by Arrow and checked row by row."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.base import did_you_mean
from helix_tf.components.sources._base import (
    COPY_STRIDE,
    FILE_STRIDE,
    ROW_ID,
    ReadShard,
    Source,
    _as_column,
    _as_pairs,
    _as_paths,
    _column_problems,
    _fraction_problems,
    _in_test,
    _normalise,
    _open,
    _path_problem,
    _paths_problems,
    _shorten,
    _split_files,
    _split_names,
)
from helix_tf.components.sources._csv_parsing import (
    _FIX_ROW,
    _BadRows,
    _blank_lines,
    _block_groups,
    _blocks,
    _cast_lenient,
    _decode_lines,
    _plain_size,
    _seek_blocks,
    _split_quoted,
)
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

_MAX_WORKERS = 4
_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf|infinity)$"


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
    ROW_UNIT: ClassVar[str] = "line"

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

    def inert_params(self) -> set[str]:
        """Also ``max_bad_rows`` when bad rows fail the read instead of being skipped."""
        inert = super().inert_params()
        if self.on_bad_row == "fail":
            inert.add("max_bad_rows")
        return inert

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
        param, paths = _split_files(self, split)
        _check_batch_rows(batch_rows)
        bad = _BadRows(self.on_bad_row, self.max_bad_rows, counters)
        for index, path in enumerate(paths):
            with _open(path, param, "Csv") as handle:
                parsed = self._read_file(handle, path, param, batch_rows, bad)
                yield from self._file_tables(parsed, split, index, batch_rows, counters)
        bad.summarise()

    def read_shards(
        self, split: str, *, batch_rows: int = 50_000, shard_bytes: int = 64 << 20
    ) -> list[ReadShard]:
        """One shard per file; a file over ``shard_bytes`` in byte ranges of about that size.

        A file is cut only between the blocks of lines :meth:`read_tables` parses
        (found by one pass that reads the file and counts newlines, without
        parsing), so each shard knows the line number its first block starts at
        and the shards' tables are exactly the sequential read's. A line belongs
        to the block it starts in; a quoted field never spans lines (see
        ``quote``), so every newline ends a row. Compressed files are one shard.
        With ``replicate``, sizes count every copy, and a block whose copies
        exceed ``shard_bytes`` is read by several shards, each a range of copies.
        """
        param, paths = _split_files(self, split)
        _check_batch_rows(batch_rows)
        copies = self.replicate if split == "train" else 1
        parts: list[dict[str, Any]] = []
        for index, path in enumerate(paths):
            size = _plain_size(path)
            if size is None or size * copies <= shard_bytes:
                parts.append({"file": index})
                continue
            with _open(path, param, "Csv") as handle:
                line = self._data_start(handle, path, param)
                groups = _block_groups(handle, line, batch_rows, max(1, shard_bytes // copies))
            for i, group in enumerate(groups):
                span = sum(length + 1 for _, length, _ in group)
                step = max(1, shard_bytes // span) if len(group) == 1 else copies
                for start in range(0, copies, step):
                    stop = min(start + step, copies)
                    parts.append(
                        {
                            "file": index,
                            "blocks": group,
                            "first_block": i == 0,
                            "copies": None if (start, stop) == (0, copies) else (start, stop),
                        }
                    )
            if not groups:
                parts.append({"file": index})
        return [
            ReadShard(split=split, index=i, of=len(parts), **part) for i, part in enumerate(parts)
        ]

    def read_shard(
        self, shard: ReadShard, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pa.Table]:
        """The tables of one shard of :meth:`read_shards`; bad rows name file and line."""
        if shard.file is None:
            yield from self.read_tables(shard.split, batch_rows=batch_rows, counters=counters)
            return
        param, paths = _split_files(self, shard.split)
        _check_batch_rows(batch_rows)
        path = paths[shard.file]
        again = shard.copies is not None and shard.copies[0] > 0  # copy 0's shard reports
        bad = _BadRows(self.on_bad_row, self.max_bad_rows, counters, report=not again)
        with _open(path, param, "Csv") as handle:
            if shard.blocks:
                blocks = _seek_blocks(handle, shard.blocks)
                parsed = self._parse_blocks(blocks, path, bad, first_block=shard.first_block)
            else:
                parsed = self._read_file(handle, path, param, batch_rows, bad)
            yield from self._file_tables(
                parsed, shard.split, shard.file, batch_rows, counters, shard.copies
            )
        bad.summarise()

    def bad_row_limit(self) -> int | None:
        """``max_bad_rows`` when malformed rows are skipped."""
        return self.max_bad_rows if self.on_bad_row == "skip" else None

    def _file_tables(
        self,
        parsed: Iterator[tuple[dict[str, pa.Array], np.ndarray]],
        split: str,
        index: int,
        batch_rows: int,
        counters: dict[str, int] | None,
        copies: tuple[int, int] | None = None,
    ) -> Iterator[pa.Table]:
        """Tables of at most ``batch_rows`` rows from the parsed blocks of the index-th file
        (each block's ``copies`` range of replicated copies; None: all)."""
        import pyarrow as pa

        wanted = range(*(copies or (0, self.replicate if split == "train" else 1)))
        for columns, lines in parsed:
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
            for copy in wanted:
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

    def _data_start(self, handle: Any, path: str, param: str) -> int | None:
        """Read past ``skip_lines`` and the header (checked); the lines read, None at the end."""
        line = 0
        for _ in range(self._skip_for(param)):
            if not handle.readline():
                return None
            line += 1
        if self.header:
            text = handle.readline()
            if not text:
                return None
            line += 1
            self._check_header(text, path, line)
        return line

    def _read_file(
        self, handle: Any, path: str, param: str, batch_rows: int, bad: _BadRows
    ) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
        """Parse one file (of the ``train`` or ``test`` parameter) into blocks of rows."""
        line = self._data_start(handle, path, param)
        if line is None:
            return
        yield from self._parse_blocks(_blocks(handle, line, batch_rows), path, bad)

    def _parse_blocks(
        self,
        blocks: Iterator[tuple[int, bytes, int]],
        path: str,
        bad: _BadRows,
        *,
        first_block: bool = True,
    ) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
        """Parse blocks of a file (a few ahead, in threads), in file order."""
        if first_block and not self.header:
            blocks = self._refuse_header_as_data(blocks, path)
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

    def _header_fields(self, raw: bytes) -> list[str]:
        """The fields of one line as a header would name them (trimmed, no BOM)."""
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n").lstrip("\ufeff")
        try:
            found = _split_quoted(text, self.separator, self.quote, None)
        except ValueError:
            found = text.split(self.separator)
        return [f.strip() for f in found]

    def _refuse_header_as_data(
        self, blocks: Iterator[tuple[int, bytes, int]], path: str
    ) -> Iterator[tuple[int, bytes, int]]:
        """Pass ``blocks`` through; fail if the first data line names the declared columns.

        Read as data, a header row becomes a row of strings (or fails to convert
        with a misleading "expects an integer" message): say ``header=True`` instead.
        """
        first = next(blocks, None)
        if first is None:
            return
        start, body, _ = first
        declared = [name for name, _ in self.columns]
        if self._header_fields(body.split(b"\n", 1)[0]) == declared:
            raise DataError(
                f"{path} line {start + 1}: the line holds the column names {declared}, so the "
                "file starts with a header, but Csv reads it as data; pass header=True (or "
                "skip it with skip_lines)"
            )
        yield first
        yield from blocks

    def _check_header(self, raw: bytes, path: str, line: int) -> None:
        found = self._header_fields(raw)
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


def _check_batch_rows(batch_rows: int) -> None:
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, but got {batch_rows}")
