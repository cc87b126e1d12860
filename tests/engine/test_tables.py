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
