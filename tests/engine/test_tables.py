"""Batch files are written atomically on every filesystem (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pytest

from helix_tf.engine import tables


def _table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n)), "__row": list(range(n))})


def _torn_writer(real: Any) -> Any:
    def write(table: pa.Table, where: Any, **kwargs: Any) -> None:
        real(table.slice(0, 1), where, **kwargs)  # part of the data reached the file ...
        raise OSError("worker killed mid-write")  # ... then the worker died

    return write


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_a_write_that_dies_midway_leaves_the_old_batch_whole_and_no_torn_file(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path / "art") if kind == "local" else f"memory://{tmp_path.name}/art"
    assert tables.write_batch(root, "train", 3, _table(5)) > 0
    monkeypatch.setattr(tables.pq, "write_table", _torn_writer(tables.pq.write_table))
    with pytest.raises(OSError, match="killed"):
        tables.write_batch(root, "train", 3, _table(50))
    with pytest.raises(OSError, match="killed"):
        tables.write_batch(root, "train", 4, _table(50))
    monkeypatch.undo()
    assert tables.read_batch(root, "train", 3).num_rows == 5  # the old batch, whole
    fs, path = fsspec.core.url_to_fs(root)
    names = sorted(p.rsplit("/", 1)[1] for p in fs.find(path))
    assert "000004.parquet" not in names  # never a torn batch under its final name
    assert tables.list_batches(f"train/{n}" for n in names) == [("train", 3)]
    if kind == "local":
        assert names == ["000003.parquet"]  # the temporary file is removed


def test_a_successful_write_leaves_only_the_batch(tmp_path: Path) -> None:
    for root in (str(tmp_path / "a"), f"memory://{tmp_path.name}/b"):
        size = tables.write_batch(root, "test", 0, _table(7))
        fs, path = fsspec.core.url_to_fs(root)
        files = fs.find(path)
        assert [f.rsplit("/", 1)[1] for f in files] == ["000000.parquet"]
        assert size == fs.size(files[0])
        assert tables.read_batch(root, "test", 0).num_rows == 7


def _kinds() -> dict[str, Any]:
    import numpy as np

    from helix_tf.components.features import Bag

    offsets = np.array([0, 2, 2, 5], dtype=np.int64)
    return {
        "numeric": np.array([0.5, -1.25, 3.0e7], dtype=np.float32),
        "categorical": np.array([3, 0, 11], dtype=np.int32),
        "string": ["Bachelors", None, "HS-grad"],
        "tokens": [["free", "prize"], [], ["call", "now", "free"]],
        "bag": Bag(offsets, np.array([4, 9, 1, 2, 3], np.int32), np.arange(5, dtype=np.float32)),
    }


@pytest.mark.parametrize("kind", ["numeric", "categorical", "string", "tokens", "bag"])
def test_every_kind_of_feature_value_reads_back_as_written(kind: str, tmp_path: Path) -> None:
    values = _kinds()[kind]
    cols = tables.feature_columns("value", kind, values)
    cols["__row"] = pa.array([7, 8, 9], pa.int64())
    tables.write_batch(str(tmp_path), "train", 0, pa.table(cols))
    back = tables.read_batch(str(tmp_path), "train", 0)
    assert back.equals(pa.table(cols))
    again = tables.feature_columns("value", kind, tables.feature_from_table(back, "value", kind))
    assert all(again[c].equals(cols[c]) for c in again)


def test_row_ids_are_delta_encoded_and_the_values_keep_their_dictionary(tmp_path: Path) -> None:
    """Row ids were hashed into a dictionary thrown away at every write (issue 9)."""
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "__row": pa.array(range(5000), pa.int64()),
            "x": pa.array([float(i % 70) for i in range(5000)], pa.float32()),
            "s": pa.array(["a", "b"] * 2500),
        }
    )
    tables.write_batch(str(tmp_path), "train", 0, table)
    meta = pq.ParquetFile(tables.batch_path(str(tmp_path), "train", 0)).metadata.row_group(0)
    chunks = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" not in chunks["__row"].encodings
    assert "DELTA_BINARY_PACKED" in chunks["__row"].encodings
    assert all("RLE_DICTIONARY" in chunks[c].encodings for c in ("x", "s"))
    assert tables.read_batch(str(tmp_path), "train", 0).equals(table)


def _awkward_table() -> pa.Table:
    """Names with dots (a bag's ``x.idx``), one a prefix of others, lists, strings, metadata."""
    bag = tables.feature_columns("x", "bag", _bag())
    columns = {"x": pa.array([1.5, 2.5, 3.5], pa.float32()), **bag}
    columns["xy"] = pa.array(["a", None, "c"])
    columns["__row"] = pa.array([7, 8, 9], pa.int64())
    return pa.table(columns).replace_schema_metadata({"helix": "1"})


def _bag() -> Any:
    import numpy as np

    from helix_tf.components.features import Bag

    offsets = np.array([0, 1, 1, 3], np.int64)
    return Bag(offsets, np.array([4, 5, 6], np.int32), np.array([1.0, 0.5, 2.0], np.float32))


@pytest.mark.parametrize(
    "columns",
    [None, ["x"], ["x.idx"], ["xy", "x"], ["x.val", "x.idx", "__row"], ["x", "x"], []],
)
def test_a_local_read_equals_pyarrows_read_table(columns: list[str] | None, tmp_path: Path) -> None:
    """``read_local`` (``ParquetFile.read``, without ``pq.read_table``'s one-file dataset:
    ~0.3 ms of ~1.1 ms a batch file) reads the table ``pq.read_table`` reads: the same
    columns in the asked order (repeated ones repeated), values, types, metadata; a dotted
    name is a column, not a nested path, and not the prefix of another."""
    import pyarrow.parquet as pq

    tables.write_batch(str(tmp_path), "train", 0, _awkward_table())
    path = tables.batch_path(str(tmp_path), "train", 0)
    want = pq.read_table(path, columns=columns)
    got = tables.read_local(path, columns)
    assert got.schema.equals(want.schema, check_metadata=True)
    assert got.equals(want) and got.num_rows == want.num_rows == 3
    assert tables.read_batch(str(tmp_path), "train", 0, columns).equals(want)


def test_a_local_read_fails_as_pyarrows_read_table(tmp_path: Path) -> None:
    """A missing column (``ParquetFile.read`` would leave it out) and a damaged file fail
    with ``pq.read_table``'s own error, which names the file and what is wrong."""
    import pyarrow.parquet as pq

    tables.write_batch(str(tmp_path), "train", 0, _awkward_table())
    path = tables.batch_path(str(tmp_path), "train", 0)
    with pytest.raises(pa.ArrowInvalid, match=r"No match for FieldRef\.Name\(nope\)"):
        tables.read_local(path, ["x", "nope"])
    Path(path).write_bytes(b"PAR1 not a table")
    with pytest.raises(pa.ArrowInvalid) as expected:
        pq.read_table(path)
    with pytest.raises(pa.ArrowInvalid) as got:
        tables.read_local(path)
    assert str(got.value) == str(expected.value) and path in str(got.value)
