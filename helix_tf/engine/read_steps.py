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
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from helix_tf.components.sources import Source
from helix_tf.components.sources._base import ReadShard
from helix_tf.engine import tables
from helix_tf.engine._writer import BackgroundWrites
from helix_tf.errors import DataError

__all__ = ["Piece", "SAMPLED_READ_ROWS", "SourceRead", "read_split", "shard_bytes"]

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
    of: int
    j: int
    rows: int = 0
    skipped: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SourceRead:
    """How one source node is read: its name, spec, output folder, batch size and sample."""

    name: str
    op: Source
    root: str
    batch_rows: int
    sample: dict[str, Any] | None = None
    #: Writes the final batches in the background (and counts them); None: in line.
    writer: BackgroundWrites | None = None

    def _sampled(self, split: str) -> bool:
        return self.sample is not None and split == "train"

    def _read_rows(self, split: str) -> int:
        """Rows per parsed block: a sampled read parses about batch_rows / fraction at once."""
        if self.sample is None or split != "train":
            return self.batch_rows
        fraction = self.sample["fraction"]
        return min(int(self.batch_rows / fraction), max(self.batch_rows, SAMPLED_READ_ROWS))

    def _piece_path(self, split: str, shard: int, j: int) -> str:
        return f"{self.root.rstrip('/')}/{split}/piece-{shard:06d}-{j:06d}.parquet"

    def plan(self, split: str, size: int) -> list[ReadShard]:
        """The shards of one split, in read order (files over ``size`` bytes in byte ranges)."""
        return self.op.read_shards(split, batch_rows=self._read_rows(split), shard_bytes=size)

    def shard(self, shard: ReadShard, inc: Inc) -> Iterator[Piece]:
        """Read one shard and write its tables: the final batches when it is its split's
        only shard, else pieces for :meth:`finish`. Yields a :class:`Piece` per table,
        then the shard's summary (``j == -1``)."""
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        split, name = shard.split, self.name
        final = shard.of == 1
        if self._sampled(split):  # the source drops the rows the sample does not keep
            assert self.sample is not None
            parsed = self.op.read_sample(
                shard,
                _keep(self.sample["fraction"], self.sample["seed"]),
                batch_rows=self._read_rows(split),
                counters=counts,
            )
            if final:
                parsed = _regrouped(parsed, self.batch_rows)
        else:
            parsed = self.op.read_shard(shard, batch_rows=self._read_rows(split), counters=counts)
        for j, table in enumerate(parsed):
            t1 = time.perf_counter()
            inc(f"micros/{name}", int((t1 - t0) * 1e6))
            if final and self.writer is not None:  # it counts the write
                write = functools.partial(tables.write_batch, self.root, split, j, table)
                self.writer.submit(name, write)
            else:
                path = tables.batch_path(self.root, split, j) if final else None
                size = tables.write_table(path or self._piece_path(split, shard.index, j), table)
                _count_write(inc, name, time.perf_counter() - t1)
                if final or not self._sampled(split):  # a regrouped sample: counted in finish
                    inc(f"bytes/{name}", size)
            if final or not self._sampled(split):
                inc(f"rows/{name}", table.num_rows)
            yield Piece(shard=shard.index, of=shard.of, j=j, rows=table.num_rows)
            t0 = time.perf_counter()
        skipped = counts.get("bad_rows_skipped", 0)
        if skipped:
            inc(f"skipped/{name}", skipped)
        yield Piece(shard=shard.index, of=shard.of, j=-1, skipped=skipped)

    def finish(self, split: str, pieces: Iterable[Piece], inc: Inc) -> Iterator[Key]:
        """Number a split's pieces in read order into batches; yield each batch's key."""
        pieces = list(pieces)
        written = sorted((p for p in pieces if p.j >= 0), key=lambda p: (p.shard, p.j))
        if all(p.of == 1 for p in pieces):  # one shard: its tables are the batches already
            yield from ((split, p.j, p.rows) for p in written)
            return
        limit = self.op.bad_row_limit()
        summaries = [p for p in pieces if p.j < 0]
        skipped = sum(p.skipped for p in summaries)
        if limit is not None and skipped > limit:
            raise DataError(
                f"{self.op.op_name} split {split!r}: {skipped} malformed rows skipped over its "
                f"{len(summaries)} shards, more than max_bad_rows={limit}; the files probably "
                "do not match the declared columns or separator. Fix the files or the "
                "declaration, or raise max_bad_rows"
            )
        paths = [self._piece_path(split, p.shard, p.j) for p in written]
        if not self._sampled(split):
            for k, (piece, path) in enumerate(zip(written, paths, strict=True)):
                tables.move_file(path, tables.batch_path(self.root, split, k))
                yield (split, k, piece.rows)
            return
        t0 = time.perf_counter()
        regrouped = _regrouped((tables.read_table(p) for p in paths), self.batch_rows)
        for k, table in enumerate(regrouped):
            size = tables.write_batch(self.root, split, k, table)
            inc(f"rows/{self.name}", table.num_rows)
            inc(f"bytes/{self.name}", size)
            yield (split, k, table.num_rows)
        for path in paths:
            tables.remove_file(path)
        _count_write(inc, self.name, time.perf_counter() - t0)

    def split(self, split: str, inc: Inc) -> Iterator[Key]:
        """Read one split in this process, shard after shard (the pipeline's steps in order)."""
        pieces = [p for s in self.plan(split, shard_bytes()) for p in self.shard(s, inc)]
        yield from self.finish(split, pieces, inc)


def read_split(
    name: str,
    op: Source,
    root: str,
    batch_rows: int,
    sample: dict[str, Any] | None,
    split: str,
    inc: Inc,
    *,
    writer: BackgroundWrites | None = None,
) -> Iterator[Key]:
    """Read one split of a source in this process into Parquet batches; yield their keys.

    ``writer``: writes the batches in the background (None: in line)."""
    read = SourceRead(
        name=name, op=op, root=root, batch_rows=batch_rows, sample=sample, writer=writer
    )
    yield from read.split(split, inc)


def _count_write(inc: Inc, name: str, seconds: float) -> None:
    """A write made in line: its seconds, all of them waited for by the run."""
    inc(f"write_micros/{name}", int(seconds * 1e6))
    inc(f"write_wait_micros/{name}", int(seconds * 1e6))


def _keep(fraction: float, seed: int) -> Callable[[Any], Any]:
    """The sample's row filter (by row id) for :meth:`Source.read_sample`."""
    from helix_tf.approx.sampling import keep_mask

    def keep(row_ids: Any) -> Any:
        return keep_mask(row_ids, fraction, seed)

    return keep


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
