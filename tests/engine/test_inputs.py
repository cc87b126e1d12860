"""How a run's messages describe the data files a source read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from helix_tf.engine._inputs import _file_size


def test_a_small_binary_file_is_described_by_its_bytes_not_its_lines(tmp_path: Path) -> None:
    """An empty Parquet file (a table without rows) was described as "14 non-blank lines"
    in "the examples have no 'train' split" message."""
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), empty)
    assert _file_size(str(empty)) == f"{empty.stat().st_size:,} bytes"
    text = tmp_path / "header.csv"
    text.write_text("a,b\n\n")
    assert _file_size(str(text)) == "1 non-blank line"
