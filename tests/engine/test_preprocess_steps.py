"""The preprocessing steps without Beam give what the fused Beam pipeline gives, file for file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from helix_tf.engine.preprocess_steps import run_preprocessing_here
from tests.engine.test_beam_pipeline import BATCH_ROWS, ORDER, _census_nodes, _run


def _tables(root: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(root)): pq.read_table(p)
        for p in sorted(root.rglob("*.parquet"))
        if "scratch" not in p.parts
    }


@pytest.mark.parametrize("sample", [None, {"fraction": 0.3, "seed": 5}])
def test_in_process_equals_the_beam_pipeline(
    census_like: tuple[Path, Path], tmp_path: Path, sample: dict[str, Any] | None
) -> None:
    results, files = [], []
    for name in ("beam", "here"):
        root = tmp_path / name
        nodes = _census_nodes(census_like, root)
        if sample is not None:
            from dataclasses import replace

            nodes["rows"] = replace(nodes["rows"], sample=sample)
        if name == "beam":
            results.append(_run(nodes, root))
        else:
            results.append(
                run_preprocessing_here(
                    nodes=nodes, order=ORDER, known_batches={}, batch_rows=BATCH_ROWS
                )
            )
        files.append(_tables(root))
    beam, here = results
    assert here.rows == beam.rows and here.bytes == beam.bytes
    assert here.states == beam.states and set(here.seconds) == set(beam.seconds)
    assert files[0].keys() == files[1].keys() and len(files[0]) > 3
    for key, table in files[0].items():
        assert files[1][key].equals(table), key
    if sample is not None:
        assert here.rows["examples"] < 900 - 0.5 * 600  # the train split was sampled


def test_a_sampled_read_keeps_the_same_rows_in_full_batches(
    census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    from dataclasses import replace

    from helix_tf.approx.sampling import keep_mask
    from helix_tf.types import ROW_ID

    nodes = _census_nodes(census_like, tmp_path)
    nodes = {"rows": replace(nodes["rows"], sample={"fraction": 0.5, "seed": 3})}
    result = run_preprocessing_here(nodes=nodes, order=["rows"], known_batches={}, batch_rows=100)
    train = sorted((tmp_path / "rows" / "train").glob("*.parquet"))
    sizes = [pq.read_metadata(p).num_rows for p in train]
    # ~300 of 600 rows kept: full batches of 100 but the last (parsed in blocks of 200).
    assert all(n == 100 for n in sizes[:-1]) and 0 < sizes[-1] <= 100, sizes
    ids = [i for p in train for i in pq.read_table(p).column(ROW_ID).to_pylist()]
    assert ids == sorted(ids) and result.rows["rows"] == len(ids) + 300
    # The same rows as the hash keeps from the whole split, wherever it is applied.
    from helix_tf.components.sources import read_all

    all_ids = read_all(nodes["rows"].op, "train")[ROW_ID].to_numpy()  # type: ignore[arg-type]
    assert ids == sorted(all_ids[keep_mask(all_ids, 0.5, 3)].tolist())


@pytest.mark.parametrize("sample", [None, {"fraction": 0.3, "seed": 5}])
def test_a_sharded_read_writes_the_files_of_a_sequential_one(
    census_like: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sample: dict[str, Any] | None,
) -> None:
    """Byte-range shards read in the pipeline: every file, count and state as one reader's."""
    from dataclasses import replace

    from helix_tf.components.sources import Csv
    from helix_tf.sample_data import CENSUS_CSV_OPTIONS

    big = tmp_path / "big.csv"  # ~6 blocks of 64 KB: a 40 KB shard size cuts it
    big.write_text(census_like[0].read_text() * 6)
    source = Csv(train=str(big), test=str(census_like[1]), **CENSUS_CSV_OPTIONS)
    results, files = [], []
    for name, shard_bytes in (("sequential", 1 << 30), ("sharded", 40_000)):
        monkeypatch.setenv("HELIX_TF_SHARD_BYTES", str(shard_bytes))
        root = tmp_path / name
        nodes = _census_nodes(census_like, root)
        nodes["rows"] = replace(nodes["rows"], op=source, sample=sample)
        results.append(
            _run(nodes, root)
            if name == "sharded"
            else run_preprocessing_here(
                nodes=nodes, order=ORDER, known_batches={}, batch_rows=BATCH_ROWS
            )
        )
        files.append(_tables(root))
    assert len(source.read_shards("train", batch_rows=BATCH_ROWS, shard_bytes=40_000)) > 2
    sequential, sharded = results
    assert sharded.rows == sequential.rows and sharded.states == sequential.states
    assert sharded.bytes == sequential.bytes
    assert files[0].keys() == files[1].keys() and len(files[0]) > 10
    for key, table in files[0].items():
        assert files[1][key].equals(table), key


def test_max_bad_rows_counts_the_rows_skipped_by_every_shard_of_a_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.components.sources import Csv, _csv_parsing
    from helix_tf.engine.read_steps import read_split
    from helix_tf.errors import DataError

    path = tmp_path / "rows.csv"
    lines = [f"{i},row" for i in range(3000)]
    for bad in (100, 1500, 2900):  # one bad row in each of several shards
        lines[bad] = "oops"
    path.write_text("\n".join(lines) + "\n")
    source = Csv(
        train=str(path), columns={"n": "int", "s": "string"}, on_bad_row="skip", max_bad_rows=2
    )
    monkeypatch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", 1000)
    monkeypatch.setenv("HELIX_TF_SHARD_BYTES", "3000")
    assert len(source.read_shards("train", batch_rows=10, shard_bytes=3000)) > 3
    with pytest.raises(DataError, match=r"3 malformed rows skipped over its \d+ shards"):
        list(read_split("rows", source, str(tmp_path / "out"), 10, None, "train", lambda *_: None))
    source = Csv(
        train=str(path), columns={"n": "int", "s": "string"}, on_bad_row="skip", max_bad_rows=3
    )
    keys = list(
        read_split("rows", source, str(tmp_path / "ok"), 10, None, "train", lambda *_: None)
    )
    assert sum(rows for _, _, rows in keys) == 2997


@pytest.mark.parametrize("hold", [True, False])
def test_in_process_reads_each_source_batch_once_whatever_the_passes(
    census_like: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hold: bool,
) -> None:
    """Two analysis levels (``age``, then ``zage`` of it) and the pass that computes and
    writes: each training batch of the source was read back once per pass (three times
    here); the analysis passes hold what they read for the passes after
    (``engine._held``), so it is read once. Held or read again (``HOLD_BYTES`` 0: the
    batches do not fit), the files written are the same, file for file."""
    from helix_tf import NodeRef
    from helix_tf.components import features as F
    from helix_tf.engine import _held, tables
    from tests.engine.test_beam_pipeline import _pre

    if not hold:
        monkeypatch.setattr(_held, "HOLD_BYTES", 0)
    reads: dict[tuple[str, str, int], int] = {}
    real = tables.read_batch

    def counted(root: str, split: str, k: int, columns: Any = None) -> Any:
        key = (Path(root).name, split, k)
        reads[key] = reads.get(key, 0) + 1
        return real(root, split, k, columns)

    monkeypatch.setattr(tables, "read_batch", counted)
    root = tmp_path / "here"
    nodes = _census_nodes(census_like, root)
    nodes["zage"] = _pre("zage", "feature", F.Numeric(NodeRef("age")), root, kind="numeric")
    order = ["rows", "age", "zage", "edu", "age_bucket", "examples"]
    run_preprocessing_here(nodes=nodes, order=order, known_batches={}, batch_rows=BATCH_ROWS)
    train = {key: n for key, n in reads.items() if key[0] == "rows" and key[1] == "train"}
    assert len(train) >= 3
    assert set(train.values()) == ({1} if hold else {3})
    if hold:  # the same files as without holding (the other case, run alike)
        monkeypatch.setattr(_held, "HOLD_BYTES", 0)
        again = tmp_path / "again"
        nodes = _census_nodes(census_like, again)
        nodes["zage"] = _pre("zage", "feature", F.Numeric(NodeRef("age")), again, kind="numeric")
        run_preprocessing_here(nodes=nodes, order=order, known_batches={}, batch_rows=BATCH_ROWS)
        mine, other = _tables(root), _tables(again)
        assert mine.keys() == other.keys() and len(mine) > 3
        for key, table in mine.items():
            assert other[key].equals(table), key
