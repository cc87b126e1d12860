"""Source batches an in-process run read once, held for its next pass over the same batch.

A run that preprocesses in its own process
(:func:`helix_tf.engine.preprocess_steps.run_preprocessing_here`) passes over a
source's training batches once per analysis level (the analyzers' partials) and once
more to compute and write every node. Each pass read the batch's file again: on census
×10 a feature edit that reads whole rows (a UDF) read each of the ten training batches
twice (~10 ms each here, every column), and a first run read back twice the batches it
had just written. :class:`HeldTables` keeps what the first pass read (the same
immutable Arrow table, so every pass computes from the same values as before) until
the batch is computed, within :data:`HOLD_BYTES`; past that a batch is read again as
before. The Beam runners' steps run in other processes and read each time.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["HOLD_BYTES", "HeldTables"]

#: The most bytes of source batches held at once (beyond: read again, as before).
HOLD_BYTES = 256 * 1024 * 1024


class HeldTables:
    """Source tables by (source, split, batch), held between passes over one batch."""

    def __init__(self, limit_bytes: int | None = None) -> None:
        self.limit_bytes = HOLD_BYTES if limit_bytes is None else limit_bytes
        self._tables: dict[tuple[str, str, int], pa.Table] = {}
        self._bytes = 0

    def get(self, source: str, split: str, k: int) -> pa.Table | None:
        """The table of ``source``'s batch (split, k) read earlier; None: read it."""
        return self._tables.get((source, split, k))

    def keep(self, source: str, split: str, k: int, table: pa.Table) -> None:
        """Hold ``table`` for the next pass over the batch, if it fits."""
        key = (source, split, k)
        if key in self._tables or self._bytes + table.nbytes > self.limit_bytes:
            return
        self._tables[key] = table
        self._bytes += table.nbytes

    def release(self, split: str, k: int) -> None:
        """Forget every table of batch (split, k): its last pass is done."""
        for key in [key for key in self._tables if key[1:] == (split, k)]:
            self._bytes -= self._tables.pop(key).nbytes

    def __len__(self) -> int:
        return len(self._tables)
