"""Reading a source into Parquet batches, shard by shard (the first steps of preprocessing).

A split is cut into :class:`~helix_tf.components.sources.ReadShard` s (its files, and
byte ranges of large CSV files) that workers read in parallel::

    split ─plan_reads─▶ shards ─read_shard (parallel)─▶ pieces ─finish_split─▶ batches

A split of one shard writes its final batches at once (the path every small
source takes). With several, each shard writes its tables as *pieces*
(``SPLIT/piece-SHARD-J.parquet``); :func:`finish_split` then numbers them in read
order into the batches a sequential read writes (``SPLIT/NNNNNN.parquet``): a
rename each, or, for a sampled read, the kept rows regrouped into full batches.
Batch numbers run 0, 1, … per split because every derived artifact's files line
up with them; rows, row ids, order and batch boundaries equal the sequential read's.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from helix_tf.components.sources import ROW_ID, Source
from helix_tf.components.sources._base import ReadShard
from helix_tf.engine import tables
from helix_tf.errors import DataError

__all__ = [
    "Piece",
    "SAMPLED_READ_ROWS",
    "finish_split",
    "plan_reads",
    "read_shard",
    "read_split",
    "shard_bytes",
]

#: ``inc(counter name, value)``: how a step counts rows, bytes and microseconds.
Inc = Callable[[str, int], None]
Key = tuple[str, int, int]  # (split, batch number, rows)

#: The most rows a sampled read parses at a time (memory: one block of the source).
SAMPLED_READ_ROWS = 500_000
#: Files larger than this are read in byte ranges of about this size.
SHARD_BYTES = 64 << 20


def shard_bytes() -> int:
    """The byte-range size of a sharded read: ``HELIX_TF_SHARD_BYTES`` or 64 MiB."""
    value = os.environ.get("HELIX_TF_SHARD_BYTES", "")
    return int(value) if value.strip() else SHARD_BYTES


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Piece:
    """What reading one shard wrote: its j-th table (``j == -1``: the shard's summary)."""

    shard: int
    j: int
    rows: int = 0
    skipped: int = 0


def _read_rows(batch_rows: int, sample: dict[str, Any] | None, split: str) -> int:
    """Rows per parsed block: a sampled read parses about batch_rows / fraction at a time."""
    if sample is not None and split == "train":
        return min(int(batch_rows / sample["fraction"]), max(batch_rows, SAMPLED_READ_ROWS))
    return batch_rows


def plan_reads(
    op: Source, batch_rows: int, sample: dict[str, Any] | None, split: str, size: int
) -> list[ReadShard]:
    """The shards of one split, in read order (files over ``size`` bytes in byte ranges)."""
    return op.read_shards(split, batch_rows=_read_rows(batch_rows, sample, split), shard_bytes=size)


def _piece_path(root: str, split: str, shard: int, j: int) -> str:
    return f"{root.rstrip('/')}/{split}/piece-{shard:06d}-{j:06d}.parquet"


def read_shard(
    name: str,
    op: Source,
    root: str,
    batch_rows: int,
    sample: dict[str, Any] | None,
    shard: ReadShard,
    inc: Inc,
) -> Iterator[Piece]:
    """Read one shard and write its tables: the final batches when it is its split's only
    shard, else pieces for :func:`finish_split`. Yields a :class:`Piece` per table, then
    the shard's summary (``j == -1``)."""
    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    split = shard.split
    parsed = op.read_shard(shard, batch_rows=_read_rows(batch_rows, sample, split), counters=counts)
    sampled = sample is not None and split == "train"
    final = shard.of == 1
    if sampled:
        kept = _kept(parsed, sample["fraction"], sample["seed"])  # type: ignore[index]
        parsed = _regrouped(kept, batch_rows) if final else kept
    for j, table in enumerate(parsed):
        t1 = time.perf_counter()
        if final:
            size = tables.write_batch(root, split, j, table)
        else:
            size = tables.write_table(_piece_path(root, split, shard.index, j), table)
        t2 = time.perf_counter()
        inc(f"micros/{name}", int((t1 - t0) * 1e6))
        inc(f"write_micros/{name}", int((t2 - t1) * 1e6))
        if final or not sampled:  # a regrouped sample is counted as its batches are written
            inc(f"rows/{name}", table.num_rows)
            inc(f"bytes/{name}", size)
        yield Piece(shard=shard.index, j=j, rows=table.num_rows)
        t0 = time.perf_counter()
    skipped = counts.get("bad_rows_skipped", 0)
    if skipped:
        inc(f"skipped/{name}", skipped)
    yield Piece(shard=shard.index, j=-1, skipped=skipped)


def finish_split(
    name: str,
    op: Source,
    root: str,
    batch_rows: int,
    sample: dict[str, Any] | None,
    split: str,
    pieces: Iterable[Piece],
    inc: Inc,
) -> Iterator[Key]:
    """Number a split's pieces in read order into batches; yield each batch's key."""
    pieces = list(pieces)
    written = sorted((p for p in pieces if p.j >= 0), key=lambda p: (p.shard, p.j))
    summaries = [p for p in pieces if p.j < 0]
    if len(summaries) <= 1 and all(p.shard == 0 for p in summaries):
        # one shard: its tables are the batches already
        yield from ((split, p.j, p.rows) for p in written)
        return
    limit = op.bad_row_limit()
    skipped = sum(p.skipped for p in summaries)
    if limit is not None and skipped > limit:
        raise DataError(
            f"{op.op_name} split {split!r}: {skipped} malformed rows skipped over its "
            f"{len(summaries)} shards, more than max_bad_rows={limit}; the files probably do "
            "not match the declared columns or separator. Fix the files or the declaration, "
            "or raise max_bad_rows"
        )
    paths = [_piece_path(root, split, p.shard, p.j) for p in written]
    if sample is not None and split == "train":
        t0 = time.perf_counter()
        regrouped = _regrouped((tables.read_table(p) for p in paths), batch_rows)
        for k, table in enumerate(regrouped):
            size = tables.write_batch(root, split, k, table)
            inc(f"rows/{name}", table.num_rows)
            inc(f"bytes/{name}", size)
            yield (split, k, table.num_rows)
        for path in paths:
            tables.remove_file(path)
        inc(f"write_micros/{name}", int((time.perf_counter() - t0) * 1e6))
        return
    for k, (piece, path) in enumerate(zip(written, paths, strict=True)):
        tables.move_file(path, tables.batch_path(root, split, k))
        yield (split, k, piece.rows)


def read_split(
    name: str,
    op: Source,
    root: str,
    batch_rows: int,
    sample: dict[str, Any] | None,
    split: str,
    inc: Inc,
) -> Iterator[Key]:
    """Read one split in this process, shard after shard (the pipeline's steps in order)."""
    shards = plan_reads(op, batch_rows, sample, split, shard_bytes())
    pieces = [p for s in shards for p in read_shard(name, op, root, batch_rows, sample, s, inc)]
    yield from finish_split(name, op, root, batch_rows, sample, split, pieces, inc)


def _kept(tables_in: Iterator[Any], fraction: float, seed: int) -> Iterator[Any]:
    """The rows of each table a sample keeps (by row id); empty tables are dropped."""
    from helix_tf.approx.sampling import keep_mask

    for table in tables_in:
        kept = table.filter(keep_mask(table.column(ROW_ID).to_numpy(), fraction, seed))
        if kept.num_rows:
            yield kept


def _regrouped(tables_in: Iterable[Any], batch_rows: int) -> Iterator[Any]:
    """The rows of ``tables_in`` in order, regrouped into batches of ``batch_rows`` rows
    (the last may be shorter)."""
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    for table in tables_in:
        pending.append(table)
        count += table.num_rows
        while count >= batch_rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, batch_rows)
            rest = whole.slice(batch_rows)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield pa.concat_tables(pending)
