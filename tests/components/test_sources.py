"""Data sources: CSV on the real census and SMS files, bad input, Parquet, TFRecord, TFDS."""

from __future__ import annotations

import dataclasses
import decimal
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helix_tf.components.sources import (
    COPY_STRIDE,
    FILE_STRIDE,
    Csv,
    Holdout,
    Parquet,
    Source,
    Tfds,
    TFRecord,
    read_all,
)
from helix_tf.components.sources._csv_block import BlockParser
from helix_tf.errors import ConfigError, DataError
from helix_tf.sample_data import CENSUS_COLUMNS, CENSUS_CSV_OPTIONS, SMS_CSV_OPTIONS

DATA = Path(__file__).parents[2] / ".." / "shared" / "data"
ADULT_DATA = DATA / "census" / "adult.data"
ADULT_TEST = DATA / "census" / "adult.test"
SMS = DATA / "sms_spam" / "SMSSpamCollection"
needs_census = pytest.mark.skipif(
    not ADULT_DATA.exists() or not ADULT_TEST.exists(),
    reason=f"the real census files are not in {DATA / 'census'}",
)
needs_sms = pytest.mark.skipif(not SMS.exists(), reason=f"{SMS} is absent")


def census(**overrides: Any) -> Csv:
    options = {**CENSUS_CSV_OPTIONS, **overrides}
    options.setdefault("train", str(ADULT_DATA))
    if "test_fraction" not in options:
        options.setdefault("test", str(ADULT_TEST))
    return Csv(**options)


@pytest.fixture(scope="module")
def census_frames() -> dict[str, pd.DataFrame]:
    if not ADULT_DATA.exists() or not ADULT_TEST.exists():
        pytest.skip(f"the real census files are not in {DATA / 'census'}")
    source = census()
    return {split: read_all(source, split) for split in source.splits()}


# ------------------------------------------------------------------ real census


@needs_census
def test_census_row_counts_labels_and_missing_values(
    census_frames: dict[str, pd.DataFrame],
) -> None:
    train, test = census_frames["train"], census_frames["test"]
    assert len(train) == 32_561 and len(test) == 16_281
    assert list(train.columns) == [name for name, _ in CENSUS_COLUMNS] + ["__row"]
    assert set(train["income"]) == {">50K", "<=50K"} == set(test["income"])
    assert (test["income"] == ">50K").sum() == 3_846
    # missing values (empty fields) are NaN, never "" or "?"
    for frame in (train, test):
        assert frame["workclass"].isna().sum() > 900
        assert frame["native_country"].isna().sum() > 200
        assert not frame["occupation"].isin(["", "?"]).any()
        assert frame["age"].notna().all()
    assert train["workclass"].isna().sum() == 1_836


@needs_census
def test_census_types_and_row_ids(census_frames: dict[str, pd.DataFrame]) -> None:
    train, test = census_frames["train"], census_frames["test"]
    for name, kind in CENSUS_COLUMNS:
        if kind == "string":
            assert pd.api.types.is_string_dtype(train[name]), name
        else:
            assert train[name].dtype == np.float64, name
    assert train["__row"].dtype == np.int64
    # __row is the 1-based line number: adult.data has no junk, adult.test starts with one
    assert train["__row"].tolist() == list(range(1, 32_562))
    assert test["__row"].tolist() == list(range(2, 16_283))
    assert train.iloc[0]["workclass"] == "State-gov" and train.iloc[0]["age"] == 39
    assert test.iloc[0]["education"] == "11th"


@needs_census
def test_census_fast_and_careful_paths_agree(
    census_frames: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BlockParser, "_fast_ok", lambda self, body: False)
    careful = read_all(census(), "test")
    pd.testing.assert_frame_equal(careful, census_frames["test"])


@needs_census
def test_census_batches_are_bounded_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_careful(*args: Any) -> None:
        raise AssertionError("clean census blocks must take the fast path")

    monkeypatch.setattr(BlockParser, "_parse_careful", no_careful)
    counters: dict[str, int] = {}
    frames = list(census().read("train", batch_rows=4_000, counters=counters))
    assert max(len(f) for f in frames) <= 4_000
    assert sum(len(f) for f in frames) == 32_561 == counters["rows_read"]
    rows = np.concatenate([f["__row"].to_numpy() for f in frames])
    assert (np.diff(rows) > 0).all()


@needs_census
def test_census_replicate_triples_train_rows_with_unique_ids(
    census_frames: dict[str, pd.DataFrame],
) -> None:
    source = census(replicate=3)
    train = read_all(source, "train")
    assert len(train) == 3 * 32_561
    assert train["__row"].is_unique
    assert set(train["__row"] // COPY_STRIDE) == {0, 1, 2}
    copy = train[train["__row"] // COPY_STRIDE == 2].reset_index(drop=True)
    expected = census_frames["train"].assign(
        __row=census_frames["train"]["__row"] + 2 * COPY_STRIDE
    )
    pd.testing.assert_frame_equal(copy, expected)
    assert len(read_all(source, "test")) == 16_281  # only train rows are replicated


@needs_census
def test_census_test_fraction_split_is_stable() -> None:
    source = census(test_fraction=0.2, split_seed=7)
    assert source.splits() == ("train", "test")
    first = read_all(source, "test")
    second = read_all(source, "test", batch_rows=1_000)
    pd.testing.assert_frame_equal(first, second)
    train = read_all(source, "train")
    assert len(first) + len(train) == 32_561
    assert not set(first["__row"]) & set(train["__row"])
    assert abs(len(first) / 32_561 - 0.2) < 0.01
    other_seed = read_all(census(test_fraction=0.2, split_seed=8), "test")
    assert set(other_seed["__row"]) != set(first["__row"])


@needs_sms
def test_sms_free_text_in_the_last_column() -> None:
    source = Csv(train=str(SMS), **SMS_CSV_OPTIONS)
    frame = read_all(source, "train")
    assert len(frame) == 5_574
    assert frame["label"].value_counts().to_dict() == {"ham": 4_827, "spam": 747}
    # quotes are ordinary characters of the free text, kept verbatim
    assert frame.loc[frame["__row"] == 283, "text"].item().startswith('"Wen u miss someone, the')
    assert frame["text"].notna().all()


# ------------------------------------------------------------ CSV on small files

COLUMNS = {"a": "int", "b": "string", "c": "float"}


def write(tmp_path: Path, text: str | bytes, name: str = "small.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def test_csv_blank_lines_quotes_crlf_and_whitespace(tmp_path: Path) -> None:
    text = '1, x, 2.5\n\n  \n2,y,?\r\n3, "q, r" , 1e3\n4,"he said ""hi""",5\n5, ,-1\n'
    frame = read_all(Csv(train=write(tmp_path, text), columns=COLUMNS), "train")
    assert frame["__row"].tolist() == [1, 4, 5, 6, 7]
    assert frame["a"].tolist() == [1, 2, 3, 4, 5]
    assert frame["b"].tolist()[:4] == ["x", "y", "q, r", 'he said "hi"']
    assert pd.isna(frame["b"].iloc[4])
    assert frame["c"].tolist()[:1] == [2.5] and np.isnan(frame["c"].iloc[1])
    assert frame["c"].tolist()[2:] == [1000.0, 5.0, -1.0]


@pytest.mark.parametrize("path", ["fast", "careful"])
def test_csv_line_numbers_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    from helix_tf.components.sources import _csv_parsing

    monkeypatch.setattr(_csv_parsing, "_MIN_BLOCK_BYTES", 16)  # many tiny blocks
    if path == "careful":
        monkeypatch.setattr(BlockParser, "_fast_ok", lambda self, body: False)
    lines, expected = [], []
    for number in range(1, 301):
        if number % 7 == 0:
            lines.append("" if number % 2 else "   ")  # empty and whitespace-only lines
        else:
            lines.append(f"{number}, name {number} ,{number / 4}")
            expected.append(number)
    source = Csv(train=write(tmp_path, "\n".join(lines) + "\n\n"), columns=COLUMNS)
    frames = list(source.read("train", batch_rows=9))
    assert max(len(f) for f in frames) <= 9
    frame = pd.concat(frames, ignore_index=True)
    assert frame["__row"].tolist() == expected
    assert frame["a"].tolist() == expected
    assert frame["b"].tolist() == [f"name {n}" for n in expected]
    assert frame["c"].tolist() == [n / 4 for n in expected]


def test_csv_header_bom_skip_lines_and_replace(tmp_path: Path) -> None:
    text = "junk line\n\ufeffa,b,c\n1,yes.,2\n2,no,3\n"
    source = Csv(
        train=write(tmp_path, text),
        columns=COLUMNS,
        header=True,
        skip_lines=1,
        replace={"b": {"yes.": "yes"}},
    )
    frame = read_all(source, "train")
    assert frame["b"].tolist() == ["yes", "no"] and frame["__row"].tolist() == [3, 4]


def test_csv_rest_in_last_and_multichar_separator(tmp_path: Path) -> None:
    path = write(tmp_path, 'ham\tsee you\tthere\nspam\t"free" prize\n')
    frame = read_all(
        Csv(train=path, columns=SMS_CSV_OPTIONS["columns"], separator="\t", rest_in_last=True),
        "train",
    )
    assert frame["text"].tolist() == ["see you\tthere", '"free" prize']
    path = write(tmp_path, "1 :: x :: 2\n3::y::4\n", "multi.csv")
    frame = read_all(Csv(train=path, columns=COLUMNS, separator="::"), "train")
    assert frame["b"].tolist() == ["x", "y"] and frame["c"].tolist() == [2.0, 4.0]


def test_csv_files_in_one_split_get_distinct_row_ids(tmp_path: Path) -> None:
    import gzip

    first = write(tmp_path, "1,x,2\n2,y,3\n", "one.csv")
    second = str(tmp_path / "two.csv.gz")
    with gzip.open(second, "wt", encoding="utf-8") as out:
        out.write("3,z,4\n")
    source = Csv(train=(first, second), columns=COLUMNS)
    assert source.files() == (first, second) and source.check() == []
    frame = read_all(source, "train")
    assert frame["__row"].tolist() == [1, 2, FILE_STRIDE + 1]
    assert frame["b"].tolist() == ["x", "y", "z"]


def _damaged(kind: str) -> bytes:
    import bz2
    import gzip
    import lzma

    body = "".join(f"{i},x{i},{i}\n" for i in range(2000)).encode()
    if kind == "not gzip":
        return body  # a plain CSV named .gz
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[kind]
    data = compress(body)
    return data[: len(data) // 2]  # truncated (an interrupted copy)


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [(".gz", ".gz"), (".bz2", ".bz2"), (".xz", ".xz"), ("not gzip", ".gz")],
)
def test_a_damaged_compressed_file_names_the_file_and_how_to_check_it(
    tmp_path: Path, kind: str, suffix: str
) -> None:
    """Before: "EOFError: Compressed file ended before the end-of-stream marker was
    reached" (or "Invalid data stream"), naming no file, reported as a pipeline failure."""
    path = tmp_path / f"rows.csv{suffix}"
    path.write_bytes(_damaged(kind))
    tool = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}[suffix]
    with pytest.raises(DataError) as info:
        read_all(Csv(train=str(path), columns=COLUMNS), "train")
    message = str(info.value)
    assert f"train file {str(path)!r} cannot be decompressed as {suffix} data" in message
    assert f"`{tool} -t {path}`" in message


def test_csv_skip_lines_follow_the_files_not_the_split(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(f"{i},x{i},{i}\n" for i in range(1, 201)))
    source = Csv(train=path, columns=COLUMNS, skip_lines={"test": 1}, test_fraction=0.5)
    rows = pd.concat([read_all(source, "train"), read_all(source, "test")])
    assert sorted(rows["__row"]) == list(range(1, 201))


BAD_FILES = [
    # (id, file content or None for special cases, Csv overrides, error, message pattern)
    ("missing file", None, {}, DataError, r"train file '.*nowhere\.csv' does not exist"),
    ("directory", "DIR", {}, DataError, r"train file '.*' is a directory"),
    (
        "wrong column count",
        "1,x,2\n2,y,3\n3,z\n",
        {},
        DataError,
        r"bad\.csv line 3: expected 3 fields separated by ',', found 2: '3,z'\. Fix the row, "
        r"or pass on_bad_row='skip'",
    ),
    (
        "text in a numeric column",
        "1,x,2\n2,y,abc\n",
        {},
        DataError,
        r"bad\.csv line 2: column 'c' \(float\) expects a number, found 'abc': '2,y,abc'",
    ),
    # Beyond int64 an int column's value was read as the nearest float, silently.
    (
        "int column beyond int64",
        "1,x,2\n99999999999999999999,y,3\n",
        {},
        DataError,
        r"bad\.csv line 2: column 'a' \(int\) holds '99999999999999999999', beyond the "
        r"64-bit integer range .*Declare 'a' as 'float' .* or 'string'",
    ),
    (
        "int column just beyond int64",
        "-9223372036854775808,x,2\n-9223372036854775809,y,3\n",
        {},
        DataError,
        r"bad\.csv line 2: column 'a' \(int\) holds '-9223372036854775809', beyond",
    ),
    (
        "int column in exponent notation beyond int64",
        "1,x,2\n1e30,y,3\n",
        {},
        DataError,
        r"bad\.csv line 2: column 'a' \(int\) holds '1e30', beyond",
    ),
    # Numeric columns are float64: an int it cannot hold exactly crashed the fast path
    # (a raw ArrowInvalid) or was rounded silently by the careful one.
    (
        "int column value with no exact float64",
        "1,x,2\n9007199254740993,y,3\n",
        {},
        DataError,
        r"bad\.csv line 2: column 'a' \(int\) holds '9007199254740993', an integer that "
        r"numeric columns .*cannot hold exactly; it would read as 9007199254740992: .*\. "
        r"Declare 'a' as 'float'",
    ),
    (
        "infinity in an int column",
        "1,x,2\ninf,y,3\n",
        {},
        DataError,
        r"bad\.csv line 2: column 'a' \(int\) holds 'inf', beyond",
    ),
    (
        "fraction in an int column",
        "1,x,2\n2.5,y,3\n",
        {},
        DataError,
        r"line 2: column 'a' \(int\) expects an integer, found '2\.5'",
    ),
    # QA pass 25: the fix fits the value (it said "declare 'a' as 'string'" for each).
    (
        "fraction in an int column: declare it float",
        "1,x,2\n2.5,y,3\n",
        {},
        DataError,
        r"found '2\.5'.*\. Declare 'a' as 'float' in columns= \(it holds fractions\)",
    ),
    (
        "NaN in an int column",
        "1,x,2\nNaN,y,3\n",
        {},
        DataError,
        r"found 'NaN'.*\. Add 'NaN' to na_values .*, or declare 'a' as 'float'",
    ),
    (
        "thousands separators",
        '1,x,2\n2,y,"1,234.5"\n',
        {},
        DataError,
        r"found '1,234\.5'.*Csv reads numbers without thousands separators \(1234\.5\)",
    ),
    (
        "a decimal comma",
        "1;x;2\n2;y;3,5\n",
        {"separator": ";"},
        DataError,
        r"found '3,5'.*Csv reads numbers with a decimal point \(3\.5\)",
    ),
    (
        "a value replace= makes",  # it showed the file's '1' and a fix for a fraction
        "1,x,2\n2,y,3\n",
        {"replace": {"a": {"1": "NaN"}}},
        DataError,
        r"line 1: column 'a' \(int\) expects an integer, found 'NaN' \(replace= maps '1' to "
        r"it\): '1,x,2'\. Add 'NaN' to na_values",
    ),
    # Arrow's integer parser read hex (16) where a block had no other bad row; refused
    # beside one, as in a float column.
    (
        "hex in an int column",
        "1,x,2\n0x10,y,3\n",
        {},
        DataError,
        r"line 2: column 'a' \(int\) expects an integer, found '0x10'",
    ),
    (
        "a separator ending every line",
        "1,x,2,\n2,y,3,\n",
        {},
        DataError,
        r"line 1: expected 3 fields .*found 4: '1,x,2,'\. The line ends with the separator ','",
    ),
    (
        "unterminated quote",
        '1,"x,2\n',
        {},
        DataError,
        r"line 1: unterminated quoted field.*A quoted field may not span lines .*quote=None",
    ),
    (
        "invalid UTF-8",
        b"1,x,2\n2,\xff,3\n",
        {},
        DataError,
        r"bad\.csv line 2: the text is not valid UTF-8",
    ),
    (
        "header mismatch",
        "a,B,c\n1,x,2\n",
        {"header": True},
        DataError,
        r"line 1: the header names columns \['a', 'B', 'c'\]",
    ),
    # A problem of the whole file shows on its first line; the fix names it, not the row.
    (
        "UTF-16 text",
        "1,x,2\n2,y,3\n".encode("utf-16"),
        {},
        DataError,
        r"bad\.csv line 1: the text is not valid UTF-8 .*looks UTF-16-encoded.*iconv -f utf-16",
    ),
    (
        "UTF-16 text without a byte-order mark",
        "1,x,2\n2,y,3\n".encode("utf-16-be"),
        {},
        DataError,
        r"line 1: column 'a' \(int\) expects an integer.*looks UTF-16-encoded",
    ),
    (
        "UTF-16 header",
        "a,b,c\n1,x,2\n".encode("utf-16"),
        {"header": True},
        DataError,
        r"line 1: the header names columns .*looks UTF-16-encoded",
    ),
    (
        "lines ended by a bare carriage return",
        b"1,x,2\r2,y,3\r",
        {},
        DataError,
        r"line 1: expected 3 fields separated by ',', found 5: .*bare carriage return",
    ),
    (
        "header with bare carriage returns",
        b"a,b,c\r1,x,2\r",
        {"header": True},
        DataError,
        r"line 1: the header names .*bare carriage return",
    ),
    (
        "another separator",
        b"1;x;2\n2;y;3\n",
        {},
        DataError,
        r"line 1: expected 3 fields separated by ',', found 1: '1;x;2'\. The line splits into "
        r"the 3 declared columns at ';': pass separator=';'",
    ),
    (
        "header with another separator",
        b"a\tb\tc\n1\tx\t2\n",
        {"header": True},
        DataError,
        r"pass separator='\\t'",
    ),
    (
        "header in another order",
        "b,a,c\nx,1,2\n",
        {"header": True},
        DataError,
        r"the header names columns \['b', 'a', 'c'\].*declared columns in another order",
    ),
    (
        "header with a new column",
        "a,b,c,New\n1,x,2,5\n",
        {"header": True},
        DataError,
        r"The file has \['New'\], which columns does not declare\. Declare every column",
    ),
    (
        "header without a declared column",
        "a,c\n1,2\n",
        {"header": True},
        DataError,
        r"Columns declares \['b'\], which the file lacks",
    ),
    (
        "data where header=True expects the header",
        "1,x,2\n2,y,3\n",
        {"header": True},
        DataError,
        r"line 1: the header names columns \['1', 'x', '2'\].*The line holds values of the "
        r"declared types, not column names: if the file has no header line, pass header=False",
    ),
    (
        "a header naming a column twice",
        "a,b,a\n1,x,2\n",
        {"header": True},
        DataError,
        r"The header names 'a' twice: give each column of the file its own name",
    ),
    (
        "invalid UTF-8: the excerpt is the line alone",
        b"1,x,2\n2,\xff,3\n4,NEXT,5\n",
        {},
        DataError,
        r"line 2: the text is not valid UTF-8 .*: '2,.,3'\. Convert the file to UTF-8",
    ),
    (
        "header read as data (numeric columns)",
        "a,b,c\n1,x,2\n",
        {},
        DataError,
        r"bad\.csv line 1: the line holds the column names \['a', 'b', 'c'\].*pass header=True",
    ),
    (
        "header read as data (string columns only)",
        "a,b,c\nx,y,z\n",
        {"columns": (("a", "string"), ("b", "string"), ("c", "string"))},
        DataError,
        r"line 1: the line holds the column names.*header=True",
    ),
    (
        "header read as data after skipped lines, quoted",
        'junk\n"a", "b" ,c\n1,x,2\n',
        {"skip_lines": 1},
        DataError,
        r"line 2: the line holds the column names.*header=True",
    ),
    (
        "too many bad rows",
        "1,x,2\n2\n3\n4\n5,y,6\n",
        {"on_bad_row": "skip", "max_bad_rows": 2},
        DataError,
        r"more than max_bad_rows=2 malformed rows skipped",
    ),
]


@pytest.mark.parametrize(
    ("content", "overrides", "error", "pattern"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_csv_bad_input(
    tmp_path: Path, content: Any, overrides: dict[str, Any], error: type, pattern: str
) -> None:
    if content is None:
        path = str(tmp_path / "nowhere.csv")
    elif content == "DIR":
        path = str(tmp_path)
    else:
        path = write(tmp_path, content, "bad.csv")
    source = Csv(train=path, **{"columns": COLUMNS, **overrides})
    with pytest.raises(error, match=pattern):
        read_all(source, "train")
    if content is None or content == "DIR":
        (problem,) = source.check()
        assert "train file" in problem and "Csv(train=...)" in problem


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.one_of(
        st.integers(min_value=-(2**64), max_value=2**64),
        st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
    ),
    exponent=st.booleans(),
)
def test_csv_int_column_holds_exactly_what_it_reads(tmp_path: Path, n: int, exponent: bool) -> None:
    """An int value is read iff it lies within int64 and float64 (numeric columns)
    holds it exactly, as text or in exponent notation; else it is an error naming the
    line, never the nearest float."""
    text = f"{float(n):e}" if exponent and abs(n) > 1 else str(n)
    value = decimal.Decimal(text)
    path = write(tmp_path, f"1,x,2\n{text},y,3\n", "range.csv")
    source = Csv(train=path, columns=COLUMNS)
    if -(2**63) <= value <= 2**63 - 1 and decimal.Decimal(float(value)) == value:
        assert read_all(source, "train")["a"].iloc[1] == float(value)
    else:
        with pytest.raises(DataError, match=r"range\.csv line 2: column 'a' \(int\) holds"):
            read_all(source, "train")


#: Texts of a number column that Arrow's parsers and Csv's own could read apart.
TRICKY_NUMBERS = [
    "0x10",
    "0X1f",
    "-0",
    "+0",
    "0010",
    "1e3",
    "1.",
    ".5",
    "+5",
    "Inf",
    "-nan",
    "NaN",
    "1e400",
    "-1e400",
    "1_000",
    "5e",
    "9007199254740993",
    "nan(1)",
    "-NaN(x_y)",
    "nan(a-b)",
]


@pytest.mark.parametrize("kind", ["int", "float"])
@pytest.mark.parametrize("text", TRICKY_NUMBERS)
def test_csv_fast_and_careful_paths_read_a_value_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, kind: str
) -> None:
    """A value is read by its text, never by its block's other rows (a bad row elsewhere
    sends the block to the careful path): Arrow's integers read ``0x10`` as 16 where the
    careful path refused it, and ``-0`` as 0 where it gave -0.0 (QA pass 25)."""
    path = write(tmp_path, f"1,x,2\n{text},y,3\n", "num.csv")
    source = Csv(train=path, columns=(("a", kind), ("b", "string"), ("c", "float")))

    def read() -> Any:
        try:
            return read_all(source, "train")["a"].to_numpy().tobytes()  # -0.0 is not 0.0
        except DataError as exc:
            return str(exc)

    fast = read()
    monkeypatch.setattr(BlockParser, "_fast_ok", lambda self, body: False)
    assert read() == fast


def test_csv_skip_policy_counts_warns_and_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "1,x,2\nnot a row\n3,z,4\n4,w,oops\n5,v,6\n"
    counters: dict[str, int] = {}
    source = Csv(train=write(tmp_path, text, "bad.csv"), columns=COLUMNS, on_bad_row="skip")
    with caplog.at_level(logging.WARNING, logger="helix_tf.components.sources"):
        frame = read_all(source, "train", counters=counters)
    assert frame["__row"].tolist() == [1, 3, 5]
    assert counters == {"bad_rows_skipped": 2, "rows_read": 3}
    messages = [r.getMessage() for r in caplog.records]
    assert any("bad.csv line 2: expected 3 fields" in m for m in messages)
    assert any("line 4: column 'c' (float) expects a number, found 'oops'" in m for m in messages)
    assert any("skipped 2 malformed rows" in m for m in messages)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"test_fraction": 1.5}, r"test_fraction must be in \(0, 1\), but got 1\.5"),
        ({"test_fraction": 0.2, "test": "t.csv"}, r"cannot be combined with test files"),
        ({"replicate": 0}, r"replicate must be an int >= 1, but got 0"),
        ({"on_bad_row": "skipp"}, r"on_bad_row must be 'fail' or 'skip'.*did you mean 'skip'"),
        ({"columns": {"a": "integer"}}, r"column 'a' has unknown type 'integer'.*'int'"),
        ({"columns": {}}, r"columns must declare at least one column"),
        ({"replace": {"income": {"a": "b"}}}, r"replace names unknown column 'income'"),
        ({"skip_lines": -1}, r"skip_lines must be a whole number of lines >= 0, but got -1$"),
        # 1.0 was said as "must be >= 0, but got 1.0" (QA pass 20)
        ({"skip_lines": {"test": 1.0}}, r"a whole number of lines >= 0, but got 1\.0 for 'test'"),
        ({"skip_lines": {"tset": 1}}, r"unknown split 'tset'.*did you mean 'test'"),
        ({"separator": ""}, r"separator must be a non-empty string"),
        ({"max_bad_rows": -1}, r"max_bad_rows must be an int >= 0"),
    ],
)
def test_csv_invalid_parameters(overrides: dict[str, Any], pattern: str) -> None:
    options: dict[str, Any] = {"train": "x.csv", "columns": COLUMNS, **overrides}
    with pytest.raises(ConfigError, match=pattern):
        Csv(**options)


def test_csv_spec_is_normalised_hashable_and_overridable() -> None:
    as_dict = Csv(train="x.csv", columns=COLUMNS, skip_lines={"test": 1}, test="y.csv")
    as_pairs = Csv(
        train=("x.csv",), columns=tuple(COLUMNS.items()), skip_lines=(("test", 1),), test=("y.csv",)
    )
    assert as_dict == as_pairs and hash(as_dict) == hash(as_pairs)
    assert Csv(train=Path("x.csv"), columns=COLUMNS).train == ("x.csv",)
    assert as_dict.schema() == COLUMNS and as_dict.splits() == ("train", "test")
    assert as_dict.KIND == "source"
    changed = as_dict.with_params(replicate=2)
    assert changed.replicate == 2 and changed != as_dict
    with pytest.raises(ConfigError, match=r"has no split 'tset'.*did you mean 'test'"):
        next(as_dict.read("tset"))


def test_importing_sources_is_light() -> None:
    code = (
        "import sys, helix_tf.components.sources as s; "
        "print(sorted(m for m in ('tensorflow', 'apache_beam', 'tensorflow_datasets') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------ Parquet


def test_parquet_roundtrip_schema_and_row_ids(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = pa.table(
        {
            "n": pa.array([1, None, 3], pa.int32()),
            "x": [0.5, 1.5, None],
            "s": ["a", None, "c"],
            "flag": [True, False, True],
            "when": pa.array([1, 2, 3], pa.timestamp("s")),
        }
    )
    pq.write_table(first, tmp_path / "a.parquet", row_group_size=2)
    pq.write_table(first.slice(0, 2), tmp_path / "b.parquet")
    source = Parquet(train=(str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")))
    assert source.schema() == {"n": "int", "x": "float", "s": "string", "flag": "int"}
    assert source.check() == []
    frame = read_all(source, "train", batch_rows=2)
    assert frame["__row"].tolist() == [0, 1, 2, FILE_STRIDE, FILE_STRIDE + 1]
    assert frame["n"].tolist()[:1] == [1.0] and np.isnan(frame["n"].iloc[1])
    assert frame["flag"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert frame["s"].iloc[0] == "a" and pd.isna(frame["s"].iloc[1])
    assert frame["x"].dtype == np.float64

    picked = Parquet(train=str(tmp_path / "a.parquet"), columns=("s", "nn"))
    (problem,) = picked.check()
    assert "has no column 'nn' (did you mean 'n'?)" in problem
    timestamp = Parquet(train=str(tmp_path / "a.parquet"), columns=("when",))
    assert "not int, float or string" in timestamp.check()[0]
    missing = Parquet(train=str(tmp_path / "none.parquet"))
    assert "does not exist" in missing.check()[0]
    with pytest.raises(ConfigError, match="does not exist"):
        missing.schema()


@pytest.mark.parametrize(
    ("first", "other", "split"),
    [
        (("int64", [1, 2]), ("string", ["1", "2"]), "train"),  # text read as numbers
        (("string", ["1", "2"]), ("int64", [1, 2]), "train"),  # numbers read as text
        (("int64", [1, 2]), ("float64", [2.5, 3.0]), "test"),  # a fraction in an int column
    ],
    ids=["string_in_int", "int_in_string", "float_in_int_test_file"],
)
def test_parquet_files_whose_column_types_disagree_are_an_error(
    tmp_path: Path, first: tuple[str, list[Any]], other: tuple[str, list[Any]], split: str
) -> None:
    """Each file was read as the first train file's kinds: the string "1" of a second
    file became the number 1 silently. Int widths (int32/int64) still agree."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(name: str, kind: str, values: list[Any]) -> str:
        table = pa.table({"v": pa.array(values, getattr(pa, kind)()), "w": pa.array([1, 2])})
        pq.write_table(table, tmp_path / name)
        return str(tmp_path / name)

    a, b = write("a.parquet", *first), write("b.parquet", *other)
    source = Parquet(train=(a, b)) if split == "train" else Parquet(train=a, test=b)
    kind = {"int64": "int", "string": "string", "float64": "float"}
    pattern = (
        rf"column 'v' is \S+ \({kind[first[0]]}\) in '.*a\.parquet' "
        rf"but \S+ \({kind[other[0]]}\) in '.*b\.parquet'"
    )
    with pytest.raises(DataError, match=pattern):
        read_all(source, split)
    (problem,) = source.check()
    assert re.search(pattern, problem), problem

    narrow = write("c.parquet", "int32", [3, 4])
    agreeing = Parquet(train=(a, narrow)) if first[0] == "int64" else None
    if agreeing is not None:
        assert agreeing.check() == []
        assert read_all(agreeing, "train")["v"].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_parquet_file_without_a_column_of_the_first_is_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"v": [1], "w": [2]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"v": [1]}), tmp_path / "b.parquet")
    source = Parquet(train=(str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")))
    with pytest.raises(DataError, match=r"b\.parquet' has no column 'w', which .*a\.parquet"):
        read_all(source, "train")
    assert "has no column 'w'" in source.check()[0]


def test_parquet_integer_past_float64_is_named_by_column_and_row(tmp_path: Path) -> None:
    """It said "cannot read columns ['id', 'big'] (row 3): Integer value ... not in range
    ... All files of a Parquet source need the same columns and types": the row was the
    batch's end and the fix another problem's (QA pass 25)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = pa.array([1, None, 2**53 + 1], pa.int64())
    pq.write_table(pa.table({"id": [1, 2, 3], "big": big}), tmp_path / "a.parquet")
    with pytest.raises(
        DataError,
        match=r"a\.parquet: column 'big' holds 9007199254740993 at row 2, an integer that "
        r"numeric columns .*would read as 9007199254740992\. Write the column as float",
    ):
        read_all(Parquet(train=str(tmp_path / "a.parquet")), "train", batch_rows=2)


def test_parquet_test_fraction_partitions_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"v": list(range(1000))}), tmp_path / "v.parquet")
    source = Parquet(train=str(tmp_path / "v.parquet"), test_fraction=0.3)
    train, test = read_all(source, "train"), read_all(source, "test")
    assert sorted(train["v"].tolist() + test["v"].tolist()) == list(range(1000))
    assert 0.25 < len(test) / 1000 < 0.35
    pd.testing.assert_frame_equal(test, read_all(source, "test", batch_rows=7))


# ----------------------------------------------------------------------- TFRecord


@pytest.fixture(scope="module")
def tf() -> Any:
    return pytest.importorskip("tensorflow")


def _example(tf: Any, **features: Any) -> bytes:
    feature = {}
    for name, values in features.items():
        if isinstance(values[0], bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif isinstance(values[0], float):
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString()


def test_tfrecord_roundtrip_missing_features_and_compression(tf: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "rows.tfrecord.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(5):
            features: dict[str, Any] = {"n": [i], "x": [i / 2], "s": [f"row {i}".encode()]}
            if i == 3:
                del features["x"], features["s"]
            writer.write(_example(tf, **features))
    source = TFRecord(
        train=path, features={"n": "int", "x": "float", "s": "string"}, compression="GZIP"
    )
    assert source.schema() == {"n": "int", "x": "float", "s": "string"}
    frame = read_all(source, "train", batch_rows=2)
    assert frame["__row"].tolist() == [0, 1, 2, 3, 4]
    assert frame["n"].tolist() == [0, 1, 2, 3, 4]
    assert np.isnan(frame["x"].iloc[3]) and frame["x"].iloc[4] == 2.0
    assert pd.isna(frame["s"].iloc[3]) and frame["s"].iloc[0] == "row 0"
    wrong = TFRecord(train=path, features={"n": "int"})  # compression not declared
    with pytest.raises(DataError, match="is compression set right"):
        read_all(wrong, "train")


def test_tfrecord_bad_records(tf: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "rows.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(_example(tf, n=[1], v=[1, 2]))
    with pytest.raises(DataError, match=r"record 0: feature 'v' has 2 values"):
        read_all(TFRecord(train=path, features={"v": "int"}), "train")
    with pytest.raises(DataError, match=r"Declare each feature with the type it is stored as"):
        read_all(TFRecord(train=path, features={"n": "string"}), "train")
    with pytest.raises(ConfigError, match="compression must be None, 'GZIP' or 'ZLIB'"):
        TFRecord(train=path, features={"n": "int"}, compression="gzip")


# --------------------------------------------------------------------------- TFDS


@pytest.fixture(scope="module")
def toy_tfds(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny dataset builder, prepared offline into a fresh data_dir."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class HelixToyRows(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> Any:
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "x": tfds.features.Scalar(np.float32),
                        "label": tfds.features.ClassLabel(names=["no", "yes"]),
                        "text": tfds.features.Text(),
                        "nested": {"k": tfds.features.Scalar(np.int64)},
                        "vector": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                    }
                ),
            )

        def _split_generators(self, dl_manager: Any) -> Any:
            return {"train": self._generate_examples(20), "test": self._generate_examples(6)}

        def _generate_examples(self, count: int) -> Any:
            for i in range(count):
                yield (
                    i,
                    {
                        "x": i / 2,
                        "label": i % 2,
                        "text": f"row {i}",
                        "nested": {"k": -i},
                        "vector": [i, i],
                    },
                )

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    skip_stats = tfds.download.DownloadConfig(compute_stats=tfds.download.ComputeStatsMode.SKIP)
    HelixToyRows(data_dir=data_dir).download_and_prepare(download_config=skip_stats)
    return data_dir


def test_tfds_reads_a_prepared_dataset(toy_tfds: str) -> None:
    source = Tfds(name="helix_toy_rows", data_dir=toy_tfds)
    assert source.check() == []
    files = source.files()
    assert any("helix_toy_rows-train.tfrecord" in f for f in files)
    assert all(Path(f).is_file() and f.startswith(toy_tfds) for f in files)
    assert source.schema() == {"x": "float", "label": "int", "text": "string", "nested/k": "int"}
    train = read_all(source, "train", batch_rows=8)
    assert len(train) == 20 and train["__row"].tolist() == list(range(20))
    index = train["text"].str.removeprefix("row ").astype(int)
    assert (train["x"] == index / 2).all() and (train["nested/k"] == -index).all()
    assert (train["label"] == index % 2).all()
    assert sorted(index) == list(range(20))
    custom = Tfds(
        name="helix_toy_rows:1.0.0",
        data_dir=toy_tfds,
        columns={"x": "float"},
        tfds_splits={"train": "train[:50%]", "test": "test"},
    )
    assert len(read_all(custom, "train")) == 10 and list(read_all(custom, "test")) == ["x", "__row"]


def test_tfds_not_prepared_is_a_config_error(toy_tfds: str, tmp_path: Path) -> None:
    source = Tfds(name="helix_toy_rows", data_dir=str(tmp_path))
    assert source.files() == ()
    (problem,) = source.check()
    assert "is not prepared in data_dir" in problem and "download_and_prepare()" in problem
    with pytest.raises(ConfigError, match=r"is not prepared in data_dir.*never downloads"):
        read_all(source, "train")


def test_tfds_with_mock_data(toy_tfds: str, tmp_path: Path) -> None:
    import tensorflow_datasets as tfds

    source = Tfds(
        name="helix_toy_rows",
        data_dir=str(tmp_path),
        columns={"x": "float", "text": "string", "nested/k": "int"},
    )
    with tfds.testing.mock_data(num_examples=7):
        # mock_data replaces as_dataset, not the files: check() still sees nothing prepared
        assert source.check() and source.files() == ()
        frame = read_all(source, "test", batch_rows=3)
    assert len(frame) == 7 and frame["__row"].tolist() == list(range(7))
    assert frame["x"].dtype == np.float64 and frame["nested/k"].notna().all()
    assert pd.api.types.is_string_dtype(frame["text"])


def test_tfds_without_columns_compiles_without_importing_tfds(toy_tfds: str) -> None:
    """The columns come from the prepared features.json: compiling stays light."""
    import subprocess
    import sys

    from helix_tf.components.sources._tfds_reader import scalar_features

    source = Tfds(name="helix_toy_rows", data_dir=toy_tfds)
    assert list(source.schema().items()) == sorted(scalar_features(source).items())
    code = (
        "import sys\n"
        "from helix_tf import Workflow, features as F, sources\n"
        "from helix_tf.compiler.graph import compile_workflow\n"
        "wf = Workflow('toy')\n"
        f"wf.source('rows', sources.Tfds(name='helix_toy_rows', data_dir={toy_tfds!r}))\n"
        "wf.output(wf.feature('k', F.Numeric('nested/k')), wf.feature('t', F.Vocabulary('text')))\n"
        "compile_workflow(wf)\n"
        "print(sorted(m for m in ('tensorflow_datasets', 'tensorflow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_tfds_features_json_kinds_it_does_not_know_fall_back_to_tfds(tmp_path: Path) -> None:
    from helix_tf.components.sources._tfds import _scalars_from_features_json

    def write(features: dict[str, Any]) -> str:
        (tmp_path / "features.json").write_text(
            json.dumps({"featuresDict": {"features": features}})
        )
        return str(tmp_path)

    scalar = {"tensor": {"dtype": "float32", "shape": {}}}
    found = _scalars_from_features_json(
        write({"b": scalar, "a": {"classLabel": {}}, "img": {"image": {}}, "t": {"text": {}}})
    )
    assert list(found.items()) == [("b", "float"), ("a", "int"), ("t", "string")]
    assert _scalars_from_features_json(write({"x": {"someNewFeature": {}}})) is None
    assert _scalars_from_features_json(write({"x": {"tensor": {"dtype": "complex64"}}})) is None
    assert _scalars_from_features_json(str(tmp_path / "absent")) is None


# ------------------------------------------------------------------ identity

OWN_COLUMNS = {"x": "int", "y": "string"}

SOURCES = {
    "csv": lambda d: Csv(train=str(d / "a.csv"), test=str(d / "b.csv"), columns=OWN_COLUMNS),
    "parquet": lambda d: Parquet(train=str(d / "a.parquet"), test_fraction=0.2),
    "tfrecord": lambda d: TFRecord(
        train=str(d / "a.tfrecord"), test=str(d / "b.tfrecord"), features={"x": "int"}
    ),
    "holdout": lambda d: Holdout(of=Csv(train=str(d / "a.csv"), columns=OWN_COLUMNS)),
    "holdout-parquet": lambda d: Holdout(of=Parquet(train=str(d / "a.parquet"))),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class _OwnSource(Source):
    """A source of the user's own that keeps its path in a parameter of another name."""

    path: str

    def splits(self) -> tuple[str, ...]:
        return ("train",)

    def schema(self) -> dict[str, str]:
        return dict(OWN_COLUMNS)

    def files(self) -> tuple[str, ...]:
        return (self.path,)

    def read(self, split: str, **kwargs: Any) -> Iterator[pd.DataFrame]:
        raise NotImplementedError


SOURCES["own"] = lambda d: _OwnSource(path=str(d / "own.csv"))
SOURCES["holdout-own"] = lambda d: Holdout(of=_OwnSource(path=str(d / "own.csv")))


@pytest.mark.parametrize("make", SOURCES.values(), ids=SOURCES.keys())
def test_every_source_identity_covers_every_file_it_reads(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    """What a source reads (``files()``) is what its fingerprint hashes (``content_files()``)."""
    source = make(tmp_path)
    hashed = {path for pairs in source.content_files().values() for _, path in pairs}
    assert source.files() and set(source.files()) <= hashed
