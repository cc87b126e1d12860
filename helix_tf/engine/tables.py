"""Stored tables: one Parquet file per (split, batch), and value <-> Arrow conversion.

Every table artifact (a source's rows, a feature column, examples, predictions)
is a folder of ``<split>/<batch:06d>.parquet`` files. Batch numbers come from
the source, so the files of every artifact derived from one source line up:
the engine reads "batch 7 of feature X" next to "batch 7 of the source" without
a shuffle. Paths may be local or any fsspec URL (``gs://``), so the same code
runs on Beam workers of every runner.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from helix_tf.components.features import Bag
from helix_tf.types import BAG, CATEGORICAL, NUMERIC, ROW_ID, STRING, TOKENS

__all__ = [
    "batch_path",
    "write_batch",
    "write_table",
    "read_batch",
    "read_table",
    "read_local",
    "move_file",
    "remove_file",
    "list_batches",
    "read_split",
    "feature_columns",
    "feature_from_table",
]

_BATCH_RE = re.compile(r"^(?P<split>[A-Za-z0-9_\-]+)/(?P<k>\d{6})\.parquet$")


def batch_path(root: str, split: str, k: int) -> str:
    """The file of batch ``k`` of ``split`` under an artifact folder."""
    return f"{root.rstrip('/')}/{split}/{k:06d}.parquet"


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def write_batch(
    root: str, split: str, k: int, table: pa.Table, *, options: Mapping[str, Any] | None = None
) -> int:
    """Write one batch atomically (a temporary file, then renamed); returns the bytes written.

    A worker killed mid-write, or a runner that retries a bundle while the first
    attempt still runs, leaves at most a temporary file no reader lists (hidden
    ``.NNNNNN.parquet.*.tmp`` locally, ``*.tmp-*`` on object stores), never a torn
    ``NNNNNN.parquet``; a write that fails (a full disk) removes its temporary file. On
    object stores the upload itself is atomic (an object appears whole when its upload
    completes); the rename there is a server-side copy. ``options``: how the columns are
    encoded (``pq.write_table`` keywords; default :func:`encoding_options`).
    """
    return write_table(batch_path(root, split, k), table, options=options)


def write_table(path: str, table: pa.Table, *, options: Mapping[str, Any] | None = None) -> int:
    """Write a Parquet file atomically (see :func:`write_batch`); returns its bytes."""
    from helix_tf._atomic import atomic_path, atomic_write_fs

    how = dict(encoding_options(table.schema) if options is None else options)
    if _is_remote(path):
        import fsspec

        fs, final = fsspec.core.url_to_fs(path)
        atomic_write_fs(fs, final, lambda f: pq.write_table(table, f, **how))
        return int(fs.size(final))
    local = path.removeprefix("file://")
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with atomic_path(local, suffix=".tmp") as tmp:
        pq.write_table(table, tmp, **how)
    return os.path.getsize(local)


#: Parquet's own encoding (a dictionary for every column, Snappy): how tables were stored
#: before issue 9's session 11 (``benchmarks.table_encoding`` compares the two).
PARQUET_DEFAULTS: Mapping[str, Any] = MappingProxyType({"compression": "snappy"})


#: Bytes a column's dictionary may grow to before its values are written plain (Parquet's
#: default is 1 MB): a column of distinct floats (scores, TF-IDF weights, continuous
#: measurements) reaches it after ~8,000 values instead of ~130,000, each hashed in vain.
DICTIONARY_BYTES = 64 * 1024


@functools.lru_cache(maxsize=256)
def encoding_options(schema: pa.Schema) -> dict[str, Any]:
    """How a stored table's columns are encoded (``pq.write_table`` keywords).

    The row ids, distinct and counting up, are delta-encoded (a few bits a row);
    Parquet's default dictionary encoding hashed every one of them into a dictionary
    that always outgrew its page and was thrown away. Every other column keeps the
    dictionary encoding (category names, indices and low-cardinality numbers shrink to
    a few bits a value), given up after :data:`DICTIONARY_BYTES`, and Snappy. On census
    ×10's first run's tables: writes a third faster, reads a quarter faster, a quarter
    of the bytes (``benchmarks.table_encoding``); the values read back are the same,
    and any Parquet reader reads the files.

    >>> options = encoding_options(pa.schema([("__row", pa.int64()), ("x", pa.float32()),
    ...                                       ("t", pa.list_(pa.string()))]))
    >>> options["use_dictionary"], options["column_encoding"]
    (['x', 't.list.element'], {'__row': 'DELTA_BINARY_PACKED'})
    """
    import io

    empty = io.BytesIO()
    pq.ParquetWriter(empty, schema).close()  # the Parquet columns this schema becomes
    leaves = pq.ParquetFile(io.BytesIO(empty.getvalue())).schema
    paths = [leaves.column(i).path for i in range(len(leaves))]
    delta = {ROW_ID: "DELTA_BINARY_PACKED"} if _is_row_ids(schema) else {}
    return {
        "compression": "snappy",
        "use_dictionary": [p for p in paths if p not in delta],
        "column_encoding": delta or None,
        "dictionary_pagesize_limit": DICTIONARY_BYTES,
    }


def _is_row_ids(schema: pa.Schema) -> bool:
    index = schema.get_field_index(ROW_ID)
    return index >= 0 and pa.types.is_integer(schema.field(index).type)


def read_table(path: str) -> pa.Table:
    """Read a Parquet file (a local path or a URL)."""
    if _is_remote(path):
        import fsspec

        with fsspec.open(path, "rb") as f:
            return pq.read_table(f)
    return read_local(path.removeprefix("file://"))


def read_local(path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A local Parquet file (only ``columns``, in their order, when given): the table
    ``pq.read_table(path, columns=columns)`` reads, without its dataset layer.

    ``pq.read_table`` discovers a one-file dataset for every call (~0.4 ms of ~1.1 ms a
    batch file of census ×10 here; a served feature edit reads ~130 of them, the
    training's examples ~10): ``ParquetFile.read`` reads the same columns of the same
    row groups, values, types and schema metadata alike. A file it cannot read, or
    one missing a requested column (which ``ParquetFile.read`` would leave out),
    goes through ``pq.read_table``, whose error the caller gets as before.
    """
    cols = list(columns) if columns is not None else None
    try:
        with pq.ParquetFile(path) as parquet:
            names = parquet.schema_arrow.names
            if cols is not None and not set(cols) <= set(names):
                raise KeyError(cols)
            table = parquet.read(columns=cols)
    except Exception:  # read again as before: the same table, or the same error
        return pq.read_table(path, columns=cols)
    return table if cols is None else table.select(cols)


def move_file(source: str, target: str) -> None:
    """Rename a file (a server-side copy on object stores).

    Idempotent, for a retried bundle: a missing source whose target exists was moved.
    """
    if _is_remote(source):
        import fsspec

        fs, path = fsspec.core.url_to_fs(source)
        final = fs._strip_protocol(target)
        if fs.exists(path) or not fs.exists(final):
            fs.mv(path, final)
        return
    source, target = source.removeprefix("file://"), target.removeprefix("file://")
    if os.path.exists(source) or not os.path.exists(target):
        os.replace(source, target)


def remove_file(path: str) -> None:
    """Delete a file if it exists."""
    if _is_remote(path):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(path)
        if fs.exists(inner):
            fs.rm(inner)
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(path.removeprefix("file://"))


def read_batch(root: str, split: str, k: int, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one batch (optionally only some columns)."""
    path = batch_path(root, split, k)
    cols = list(columns) if columns is not None else None
    if _is_remote(path):
        import fsspec

        with fsspec.open(path, "rb") as f:
            return pq.read_table(f, columns=cols)
    return read_local(path.removeprefix("file://"), cols)


def list_batches(files: Iterable[str]) -> list[tuple[str, int]]:
    """(split, batch) pairs named by artifact-relative file paths, sorted."""
    out = []
    for f in files:
        m = _BATCH_RE.match(f.replace(os.sep, "/"))
        if m:
            out.append((m["split"], int(m["k"])))
    return sorted(set(out))


def split_files(root: str, split: str) -> list[str]:
    """The batch files of one split of a LOCAL artifact folder, in batch order (none if
    the split is absent: no row reached it)."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".parquet")]


def read_split(root: str, split: str, columns: Sequence[str] | None = None) -> pa.Table | None:
    """All batches of one split of a LOCAL artifact folder, in batch order (None if absent)."""
    files = split_files(root, split)
    if not files:
        return None
    tables = [read_local(f, list(columns) if columns else None) for f in files]
    return pa.concat_tables(tables)


# ---------------------------------------------------------------------------- feature values


def feature_columns(prefix: str, kind: str, values: Any) -> dict[str, pa.Array]:
    """Arrow columns for a feature's values; ``prefix`` names them (``x`` or ``x.idx``)."""
    if kind == BAG:
        bag: Bag = values
        offsets = pa.array(bag.offsets.astype(np.int32))
        return {
            f"{prefix}.idx": pa.ListArray.from_arrays(offsets, pa.array(bag.idx, pa.int32())),
            f"{prefix}.val": pa.ListArray.from_arrays(offsets, pa.array(bag.val, pa.float32())),
        }
    if kind == NUMERIC:
        return {prefix: pa.array(np.asarray(values, dtype=np.float32), pa.float32())}
    if kind == CATEGORICAL:
        return {prefix: pa.array(np.asarray(values, dtype=np.int32), pa.int32())}
    if kind == STRING:
        return {prefix: pa.array(list(values), pa.string(), from_pandas=True)}
    if kind == TOKENS:
        return {prefix: pa.array(list(values), pa.list_(pa.string()))}
    raise ValueError(f"unknown value kind {kind!r}")


def feature_from_table(table: pa.Table, prefix: str, kind: str) -> Any:
    """The inverse of :func:`feature_columns`."""
    if kind == BAG:
        idx_col = table.column(f"{prefix}.idx").combine_chunks()
        val_col = table.column(f"{prefix}.val").combine_chunks()
        offsets = np.asarray(idx_col.offsets, dtype=np.int64)
        start = offsets[0]
        return Bag(
            offsets - start,
            np.asarray(idx_col.values, dtype=np.int32)[start : offsets[-1]],
            np.asarray(val_col.values, dtype=np.float32)[start : offsets[-1]],
        )
    col = table.column(prefix)
    if kind == NUMERIC:
        return col.to_numpy().astype(np.float32)
    if kind == CATEGORICAL:
        return col.to_numpy().astype(np.int32)
    if kind == STRING:
        return np.asarray(col.to_pylist(), dtype=object)
    if kind == TOKENS:
        return col.to_pylist()
    raise ValueError(f"unknown value kind {kind!r}")


def batch_rows(root: str) -> list[tuple[str, int, int]]:
    """(split, batch, rows) of every batch of a LOCAL artifact folder (from Parquet footers)."""
    out = []
    for split in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            m = _BATCH_RE.match(f"{split}/{name}")
            if m:
                rows = pq.read_metadata(os.path.join(folder, name)).num_rows
                out.append((split, int(m["k"]), rows))
    return out


def row_ids(table: pa.Table) -> np.ndarray:
    return table.column(ROW_ID).to_numpy()
