"""The CSV source's executor: reading the files of a :class:`~._csv.Csv` spec.

The spec (``_csv.py``) holds and checks the parameters; this module reads files and
shards, cuts them into blocks of lines and applies the bad-row policy. Parsing one
block (a fast path through pyarrow's CSV parser for clean blocks, and a careful path
that names the line of every problem) is ``_csv_block.BlockParser``; the block
splitting and the helpers of the careful path are in ``_csv_parsing.py``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from helix_tf.components.sources._base import (
    COPY_STRIDE,
    FILE_STRIDE,
    ROW_ID,
    ReadShard,
    _in_test,
    _open,
    _split_files,
)
from helix_tf.components.sources._csv_block import BlockParser
from helix_tf.components.sources._csv_parsing import (
    _BadRows,
    _block_groups,
    _blocks,
    _file_hint,
    _plain_size,
    _seek_blocks,
    _split_quoted,
)
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from helix_tf.components.sources._csv import Csv

_MAX_WORKERS = 4
#: A sample's row filter: a boolean mask over an int64 array of row ids.
Keep = Callable[["np.ndarray"], "np.ndarray"]


class CsvReader:
    """Reads one :class:`~._csv.Csv` spec's splits as Arrow tables (its executor)."""

    def __init__(self, spec: Csv) -> None:
        self.spec = spec
        self.parser = BlockParser(spec)

    def read_tables(
        self,
        split: str,
        *,
        batch_rows: int = 50_000,
        counters: dict[str, int] | None = None,
        keep: Keep | None = None,
    ) -> Iterator[pa.Table]:
        """Stream a split as Arrow tables (parsed by Arrow, never through pandas); with
        ``keep``, only the rows it keeps (see :meth:`_file_tables`)."""
        param, paths = _split_files(self.spec, split)
        _check_batch_rows(batch_rows)
        bad = _BadRows(self.spec.on_bad_row, self.spec.max_bad_rows, counters)
        for index, path in enumerate(paths):
            with _open(path, param, "Csv") as handle:
                parsed = self._read_file(handle, path, param, batch_rows, bad)
                yield from self._file_tables(parsed, split, index, batch_rows, counters, keep=keep)
        bad.summarise()

    def read_shards(self, split: str, *, batch_rows: int, shard_bytes: int) -> list[ReadShard]:
        """See :meth:`~._csv.Csv.read_shards`."""
        param, paths = _split_files(self.spec, split)
        _check_batch_rows(batch_rows)
        copies = self.spec.replicate if split == "train" else 1
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
        self,
        shard: ReadShard,
        *,
        batch_rows: int,
        counters: dict[str, int] | None,
        keep: Keep | None = None,
    ) -> Iterator[pa.Table]:
        """See :meth:`~._csv.Csv.read_shard` (and ``read_sample``, with ``keep``)."""
        if shard.file is None:
            yield from self.read_tables(
                shard.split, batch_rows=batch_rows, counters=counters, keep=keep
            )
            return
        param, paths = _split_files(self.spec, shard.split)
        _check_batch_rows(batch_rows)
        path = paths[shard.file]
        again = shard.copies is not None and shard.copies[0] > 0  # copy 0's shard reports
        spec = self.spec
        bad = _BadRows(spec.on_bad_row, spec.max_bad_rows, counters, report=not again)
        with _open(path, param, "Csv") as handle:
            if shard.blocks:
                blocks = _seek_blocks(handle, shard.blocks)
                parsed = self._parse_blocks(blocks, path, bad, first_block=shard.first_block)
            else:
                parsed = self._read_file(handle, path, param, batch_rows, bad)
            yield from self._file_tables(
                parsed, shard.split, shard.file, batch_rows, counters, shard.copies, keep
            )
        bad.summarise()

    def _file_tables(
        self,
        parsed: Iterator[tuple[dict[str, pa.Array], np.ndarray]],
        split: str,
        index: int,
        batch_rows: int,
        counters: dict[str, int] | None,
        copies: tuple[int, int] | None = None,
        keep: Keep | None = None,
    ) -> Iterator[pa.Table]:
        """Tables of at most ``batch_rows`` rows from the parsed blocks of the index-th file
        (each block's ``copies`` range of replicated copies; None: all).

        With ``keep`` (a sampled read), each copy's rows are filtered by their ids before
        its table is built, and copies that keep none are skipped: the same rows, in the
        same order, as filtering the tables read without it (which is what an exact
        read yields, untouched by this).
        """
        import pyarrow as pa

        spec = self.spec
        wanted = range(*(copies or (0, spec.replicate if split == "train" else 1)))
        for columns, ids in self._split_rows(parsed, split, index):
            if keep is not None:  # a sampled read
                yield from _kept_copies(columns, ids, wanted, keep, batch_rows, counters)
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
                yield from _batches(table, batch_rows, counters)

    def _split_rows(
        self, parsed: Iterator[tuple[dict[str, pa.Array], np.ndarray]], split: str, index: int
    ) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
        """The parsed blocks' columns and row ids of the index-th file, left to ``split``
        (``test_fraction``), without empty blocks."""
        spec = self.spec
        for columns, lines in parsed:
            ids = lines + index * FILE_STRIDE
            if spec.test_fraction is not None:
                in_split = _in_test(ids, spec.test_fraction, spec.split_seed)
                if split == "train":
                    in_split = ~in_split
                columns = {n: a.filter(in_split) for n, a in columns.items()}
                ids = ids[in_split]
            if len(ids):
                yield columns, ids

    def _data_start(self, handle: Any, path: str, param: str) -> int | None:
        """Read past ``skip_lines`` and the header (checked); the lines read, None at the end."""
        line = 0
        for _ in range(_skip_for(self.spec, param)):
            if not handle.readline():
                return None
            line += 1
        if self.spec.header:
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
        if first_block and not self.spec.header:
            blocks = self._refuse_header_as_data(blocks, path)
        workers = min(_MAX_WORKERS, os.cpu_count() or 1)
        if workers == 1:
            parsed = (self.parser.parse(*block, path) for block in blocks)
            yield from _report(parsed, path, bad)
            return
        # parse a few blocks ahead in threads (pyarrow releases the GIL), in file order
        with concurrent.futures.ThreadPoolExecutor(workers, "helix-csv") as pool:
            pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()

            def results() -> Iterator[Any]:
                for block in blocks:
                    pending.append(pool.submit(self.parser.parse, *block, path))
                    if len(pending) > workers:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()

            try:
                yield from _report(results(), path, bad)
            finally:
                for future in pending:
                    future.cancel()

    def _header_fields(self, raw: bytes) -> list[str]:
        """The fields of one line as a header would name them (trimmed, no BOM)."""
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n").lstrip("\ufeff")
        try:
            found = _split_quoted(text, self.spec.separator, self.spec.quote, None)
        except ValueError:
            found = text.split(self.spec.separator)
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
        declared = [name for name, _ in self.spec.columns]
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
        declared = [name for name, _ in self.spec.columns]
        if found != declared:
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            hint = _file_hint(text, self.spec.separator, len(declared))
            if hint is None:
                hint = _header_fix(found, list(self.spec.columns))
            raise DataError(
                f"{path} line {line}: the header names columns {_names(found)}, but columns "
                f"declares {_names(declared)}. {hint}"
            )


def _header_fix(found: list[str], columns: list[tuple[str, str]]) -> str:
    """How to make ``columns`` match a header line that names ``found``."""
    declared = [name for name, _ in columns]
    twice = sorted({n for n in found if found.count(n) > 1})
    if twice:
        return (
            f"The header names {', '.join(map(repr, twice))} twice: give each column of the "
            "file its own name"
        )
    if len(found) == len(columns) and not set(found) & set(declared) and _values(found, columns):
        return (
            "The line holds values of the declared types, not column names: if the file has "
            "no header line, pass header=False (the default)"
        )
    extra = [n for n in found if n not in declared]
    missing = [n for n in declared if n not in found]
    if not extra and not missing:
        return (
            "The file has the declared columns in another order: declare them in the file's order"
        )
    parts = []
    if extra:
        parts.append(f"the file has {_names(extra)}, which columns does not declare")
    if missing:
        parts.append(f"columns declares {_names(missing)}, which the file lacks")
    text = "; ".join(parts)
    return (
        text[0].upper()
        + text[1:]
        + ". Declare every column of the file, in the file's order, with the header's names"
    )


def _values(fields: list[str], columns: list[tuple[str, str]]) -> bool:
    """Whether a line's fields read as values of the declared numeric columns (one at least)."""
    numeric = [f for f, (_, kind) in zip(fields, columns, strict=True) if kind in ("int", "float")]
    try:
        return bool(numeric) and all(math.isfinite(float(f)) for f in numeric)
    except ValueError:
        return False


def _names(names: list[str], most: int = 30) -> str:
    """A list of column names for a message, its elements and length bounded."""
    shown = [repr(n if len(n) <= 40 else n[:40] + "...") for n in names[:most]]
    more = [f"... ({len(names) - most} more)"] if len(names) > most else []
    return "[" + ", ".join(shown + more) + "]"


def _batches(
    table: pa.Table, batch_rows: int, counters: dict[str, int] | None
) -> Iterator[pa.Table]:
    """``table`` in slices of at most ``batch_rows`` rows (counted as read)."""
    for start in range(0, table.num_rows, batch_rows):
        part = table.slice(start, batch_rows)
        if counters is not None:
            counters["rows_read"] = counters.get("rows_read", 0) + part.num_rows
        yield part


def _kept_copies(
    columns: dict[str, pa.Array],
    ids: np.ndarray,
    wanted: range,
    keep: Keep,
    batch_rows: int,
    counters: dict[str, int] | None,
) -> Iterator[pa.Table]:
    """One block's tables in a sampled read: per replicated copy, only the rows ``keep``
    keeps by their ids, filtered before the copy's table is built (a copy keeping none
    is skipped)."""
    import pyarrow as pa

    table = pa.table(columns)
    for copy in wanted:
        copy_ids = ids + copy * COPY_STRIDE if copy else ids
        mask = keep(copy_ids)
        if not mask.any():
            continue
        # One filter of the whole table in Arrow (per column in Python was slower).
        kept = table.append_column(ROW_ID, pa.array(copy_ids, pa.int64())).filter(mask)
        yield from _batches(kept, batch_rows, counters)


def _check_batch_rows(batch_rows: int) -> None:
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, but got {batch_rows}")


def _skip_for(spec: Csv, param: str) -> int:
    """Junk lines at the top of the files of ``param`` (``"train"`` or ``"test"``)."""
    if isinstance(spec.skip_lines, int):
        return spec.skip_lines
    return dict(spec.skip_lines).get(param, 0)


def _report(parsed: Iterator[Any], path: str, bad: _BadRows) -> Iterator[Any]:
    """Apply the bad-row policy to parsed blocks in file order; yield non-empty ones."""
    for columns, lines, issues in parsed:
        if issues is not None:
            bad.handle(path, *issues)
        if len(lines):
            yield columns, lines
