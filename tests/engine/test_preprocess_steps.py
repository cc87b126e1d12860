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
