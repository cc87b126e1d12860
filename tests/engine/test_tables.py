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
