"""Reading a CSV split shard by shard (files, byte ranges) gives the sequential read exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helix_tf.components.sources import Csv, _csv_parsing
from helix_tf.errors import DataError

LINES = st.one_of(
    st.tuples(st.integers(-99, 99), st.text("ab ,é", max_size=4)).map(
        lambda t: f"{t[0]},{t[1].replace(',', '')}"
    ),
    st.tuples(st.integers(0, 9), st.text("x,y ", max_size=4)).map(
        lambda t: f'{t[0]},"{t[1]}"'  # a quoted field holding separators
    ),
    st.sampled_from(["", "  ", "1,2,3", "x,y", '3,"open', "?,na", "4,ok\r"]),
)


def _shards_tables(source: Csv, split: str, batch_rows: int, shard_bytes: int) -> tuple:
    counts: dict[str, int] = {}
    shards = source.read_shards(split, batch_rows=batch_rows, shard_bytes=shard_bytes)
    assert [s.index for s in shards] == list(range(len(shards)))
    assert {s.of for s in shards} == {len(shards)}
    got = [t for s in shards for t in source.read_shard(s, batch_rows=batch_rows, counters=counts)]
    return got, counts, len(shards)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(st.lists(LINES, max_size=40), min_size=1, max_size=3),
    trailing_newline=st.booleans(),
    header=st.booleans(),
    skip=st.integers(0, 2),
    batch_rows=st.integers(1, 7),
    block_bytes=st.integers(1, 64),
    shard_bytes=st.integers(1, 400),
    test_fraction=st.sampled_from([None, 0.3]),
    replicate=st.integers(1, 4),
)
def test_shards_read_the_rows_of_the_sequential_read_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    files: list[list[str]],
    trailing_newline: bool,
    header: bool,
    skip: int,
    batch_rows: int,
    block_bytes: int,
    shard_bytes: int,
    test_fraction: float | None,
    replicate: int,
) -> None:
    folder = tmp_path_factory.mktemp("csv")
    paths = []
    for i, lines in enumerate(files):
        top = ["junk,line"] * skip + (["n,s"] if header else [])
        text = "\n".join(top + lines) + ("\n" if trailing_newline else "")
        path = folder / f"part{i}.csv"
        path.write_bytes(text.encode())
        paths.append(str(path))
    source = Csv(
        train=tuple(paths),
        columns={"n": "int", "s": "string"},
        header=header,
        skip_lines=skip,
        on_bad_row="skip",
        max_bad_rows=10**6,
        test_fraction=test_fraction,
        replicate=replicate,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", block_bytes)  # many small blocks
        for split in source.splits():
            counts: dict[str, int] = {}
            want = list(source.read_tables(split, batch_rows=batch_rows, counters=counts))
            got, got_counts, _ = _shards_tables(source, split, batch_rows, shard_bytes)
            assert len(got) == len(want)
            for a, b in zip(got, want, strict=True):
                assert a.equals(b)
            assert got_counts == counts


def test_a_large_file_is_cut_into_byte_ranges_that_start_at_a_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("".join(f"{i},row {i}\n" for i in range(5000)))
    source = Csv(train=str(path), columns={"n": "int", "s": "string"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", 1000)
        shards = source.read_shards("train", batch_rows=10, shard_bytes=5000)
        got, _, n = _shards_tables(source, "train", 10, 5000)
    assert n > 5 and all(s.file == 0 and s.blocks for s in shards)
    data = path.read_bytes()
    for shard in shards:
        offset, _, before = shard.blocks[0]
        assert offset == 0 or data[offset - 1 : offset] == b"\n"
        assert data.count(b"\n", 0, offset) == before
    ids = [i for t in got for i in t.column("__row").to_pylist()]
    assert ids == list(range(1, 5001))


def test_a_compressed_or_small_file_is_one_shard(tmp_path: Path) -> None:
    import gzip

    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"1,a\n" * 5000))
    (tmp_path / "b.csv").write_text("2,b\n")
    source = Csv(
        train=(str(tmp_path / "a.csv.gz"), str(tmp_path / "b.csv")),
        columns={"n": "int", "s": "string"},
    )
    shards = source.read_shards("train", batch_rows=10, shard_bytes=100)
    assert [(s.file, s.blocks) for s in shards] == [(0, ()), (1, ())]


def test_a_bad_row_in_a_later_shard_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    lines = [f"{i},row" for i in range(3000)]
    lines[2500] = "2500,row,extra"
    path.write_text("\n".join(lines) + "\n")
    source = Csv(train=str(path), columns={"n": "int", "s": "string"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", 1000)
        shards = source.read_shards("train", batch_rows=10, shard_bytes=3000)
        assert len(shards) > 3
        with pytest.raises(DataError, match=rf"{path} line 2501: expected 2 fields"):
            for shard in shards:
                list(source.read_shard(shard, batch_rows=10))


def test_a_header_read_as_data_is_refused_only_in_the_first_shard(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("n,s\n" + "".join(f"{i},row\n" for i in range(3000)))
    source = Csv(train=str(path), columns={"n": "int", "s": "string"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", 1000)
        shards = source.read_shards("train", batch_rows=10, shard_bytes=3000)
        assert [s.first_block for s in shards] == [True] + [False] * (len(shards) - 1)
        with pytest.raises(DataError, match="line 1: the line holds the column names"):
            list(source.read_shard(shards[0], batch_rows=10))
        assert len(list(source.read_shard(shards[1], batch_rows=10))) > 0


def test_the_copies_of_a_replicated_block_are_read_by_several_shards(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("".join(f"{i},row {i}\n" for i in range(100)))  # one block
    source = Csv(train=str(path), columns={"n": "int", "s": "string"}, replicate=10)
    shards = source.read_shards("train", batch_rows=30, shard_bytes=3 * path.stat().st_size)
    assert [s.copies for s in shards] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    got, _, _ = _shards_tables(source, "train", 30, 3 * path.stat().st_size)
    want = list(source.read_tables("train", batch_rows=30))
    assert len(got) == len(want) == 40 and all(a.equals(b) for a, b in zip(got, want, strict=True))


def _filtered(tables: list, fraction: float, seed: int) -> list:
    """What an approximate read kept before read_sample: each table read in full, then
    filtered by the sample's mask on its row ids (empty tables dropped)."""
    from helix_tf.approx.sampling import keep_mask
    from helix_tf.components.sources import ROW_ID

    kept = [t.filter(keep_mask(t.column(ROW_ID).to_numpy(), fraction, seed)) for t in tables]
    return [t for t in kept if t.num_rows]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(st.lists(LINES, max_size=40), min_size=1, max_size=3),
    header=st.booleans(),
    batch_rows=st.integers(1, 7),
    block_bytes=st.integers(1, 64),
    shard_bytes=st.integers(1, 400),
    test_fraction=st.sampled_from([None, 0.3]),
    replicate=st.integers(1, 5),
    fraction=st.sampled_from([0.05, 0.3, 0.5, 0.99]),
    seed=st.integers(0, 3),
)
def test_a_sampled_read_keeps_exactly_the_rows_filtering_the_full_read_keeps(
    tmp_path_factory: pytest.TempPathFactory,
    files: list[list[str]],
    header: bool,
    batch_rows: int,
    block_bytes: int,
    shard_bytes: int,
    test_fraction: float | None,
    replicate: int,
    fraction: float,
    seed: int,
) -> None:
    """Csv.read_sample drops a copy's rows before building them; the rows (values, ids,
    order) are those of the full read filtered by the same mask, shard by shard and
    whole; the generic Source.read_sample (filter after reading) agrees."""
    import pyarrow as pa

    from helix_tf.approx.sampling import keep_mask
    from helix_tf.components.sources._base import Source

    folder = tmp_path_factory.mktemp("csv")
    paths = []
    for i, lines in enumerate(files):
        text = "\n".join((["n,s"] if header else []) + lines) + "\n"
        path = folder / f"part{i}.csv"
        path.write_bytes(text.encode())
        paths.append(str(path))
    source = Csv(
        train=tuple(paths),
        columns={"n": "int", "s": "string"},
        header=header,
        on_bad_row="skip",
        max_bad_rows=10**6,
        test_fraction=test_fraction,
        replicate=replicate,
    )

    def keep(ids):  # type: ignore[no-untyped-def]
        return keep_mask(ids, fraction, seed)

    def rows(tables: list) -> pa.Table | None:
        return pa.concat_tables(tables) if tables else None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", block_bytes)
        for split in source.splits():
            shards = source.read_shards(split, batch_rows=batch_rows, shard_bytes=shard_bytes)
            for shard in shards:
                full = list(source.read_shard(shard, batch_rows=batch_rows))
                want = rows(_filtered(full, fraction, seed))
                got_tables = list(source.read_sample(shard, keep, batch_rows=batch_rows))
                assert all(0 < t.num_rows <= batch_rows for t in got_tables)
                got = rows(got_tables)
                generic = rows(list(Source.read_sample(source, shard, keep, batch_rows=batch_rows)))
                assert (got is None) == (want is None) == (generic is None)
                if want is not None:
                    assert got is not None and generic is not None
                    assert got.equals(want) and generic.equals(want)
