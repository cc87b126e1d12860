"""The sampled training rows of stored examples, kept between a process's runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import helix_tf
from helix_tf.approx import sample_cache


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    sample_cache.clear()
    yield
    sample_cache.clear()


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "000000.parquet").write_bytes(b"rows")
    return folder


class _Draws:
    """A draw that counts its calls and returns a new table each time."""

    def __init__(self, rows: int = 3) -> None:
        self.calls = 0
        self.rows = rows

    def __call__(self) -> pa.Table:
        self.calls += 1
        return pa.table({"x": np.arange(self.rows)})


def test_the_same_files_and_sample_are_drawn_once(tmp_path: Path) -> None:
    folder, draw = _folder(tmp_path), _Draws()
    first = sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, draw)
    second = sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, draw)
    assert draw.calls == 1
    assert second is first


@pytest.mark.parametrize(
    "change",
    ["content", "fraction", "seed", "file rewritten", "file added"],
)
def test_anything_else_is_drawn_again(tmp_path: Path, change: str) -> None:
    folder, draw = _folder(tmp_path), _Draws()
    sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, draw)
    content, fraction, seed = ("sha-a",), 0.1, 0
    if change == "content":
        content = ("sha-b",)
    elif change == "fraction":
        fraction = 0.2
    elif change == "seed":
        seed = 1
    elif change == "file rewritten":  # same size, a later time
        path = folder / "000000.parquet"
        stat = path.stat()
        path.write_bytes(b"ROWS")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    else:
        (folder / "000001.parquet").write_bytes(b"more")
    sample_cache.sampled_rows(str(folder), content, fraction, seed, draw)
    assert draw.calls == 2


def test_a_copy_with_its_files_times_finds_the_rows(tmp_path: Path) -> None:
    """A store copied with its files' times (shutil.copytree, cp -a) holds the same files."""
    folder, draw = _folder(tmp_path), _Draws()
    copy = tmp_path / "copy" / "train"
    shutil.copytree(folder, copy)
    sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, draw)
    sample_cache.sampled_rows(str(copy), ("sha-a",), 0.1, 0, draw)
    assert draw.calls == 1


def test_no_files_or_no_content_are_never_kept(tmp_path: Path) -> None:
    draw = _Draws()
    empty = tmp_path / "empty"
    empty.mkdir()
    folder = _folder(tmp_path)
    for _ in range(2):
        sample_cache.sampled_rows(str(empty), ("sha-a",), 0.1, 0, draw)
        sample_cache.sampled_rows(str(tmp_path / "missing"), ("sha-a",), 0.1, 0, draw)
        sample_cache.sampled_rows(str(folder), (), 0.1, 0, draw)
    assert draw.calls == 6


def test_a_failed_draw_is_not_kept(tmp_path: Path) -> None:
    folder, draw = _folder(tmp_path), _Draws()

    def failing() -> Any:
        raise ValueError("one label")

    with pytest.raises(ValueError, match="one label"):
        sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, failing)
    sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, draw)
    assert draw.calls == 1


def test_kept_rows_are_bounded_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above MAX_BYTES the least recently used are dropped; a larger draw is not kept."""
    rows = 1000  # 8,000 bytes a table
    monkeypatch.setattr(sample_cache, "MAX_BYTES", 20_000)
    folder, draw = _folder(tmp_path), _Draws(rows)
    for seed in (0, 1, 2):  # the third drops seed 0's
        sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, seed, draw)
    sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 2, draw)
    sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 1, draw)
    assert draw.calls == 3
    sample_cache.sampled_rows(str(folder), ("sha-a",), 0.1, 0, draw)
    assert draw.calls == 4
    big = _Draws(5000)  # 40,000 bytes
    for _ in range(2):
        sample_cache.sampled_rows(str(folder), ("sha-a",), 0.5, 0, big)
    assert big.calls == 2


def _train_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from helix_tf.engine import tables

    reads: list[str] = []
    real = tables.read_split

    def read_split(root: str, split: str, columns: Any = None) -> Any:
        if split == "train":
            reads.append(root)
        return real(root, split, columns)

    monkeypatch.setattr(tables, "read_split", read_split)
    return reads


def test_approximate_runs_in_one_process_draw_the_stored_sample_once(
    tiny_census_config: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second approximate edit over the same stored examples in the same process (the
    agent's trial worker, a notebook) trains on the kept sample, with the same results as
    a run that draws it again."""
    helix_tf.run(tiny_census_config, store=store, materialize="all")
    approx = helix_tf.Approx(sample=0.5, seed=1, min_saving_seconds=0)
    reads = _train_reads(monkeypatch)
    first = helix_tf.run(
        tiny_census_config, store=store, params={"learner.l2": 0.001}, approx=approx
    )
    assert first.approx and len(reads) == 1
    twin = f"{store}-twin"  # the same stored entries, for a run that draws the sample again
    shutil.copytree(store, twin)
    second = helix_tf.run(
        tiny_census_config, store=store, params={"learner.l2": 0.01}, approx=approx
    )
    assert len(reads) == 1  # the kept sample
    sample_cache.clear()
    again = helix_tf.run(tiny_census_config, store=twin, params={"learner.l2": 0.01}, approx=approx)
    assert len(reads) == 2
    assert second.approx and again.approx
    assert second.metrics == again.metrics
    assert second.intervals == again.intervals
