"""The generated sample data: exact UCI formats, determinism and a learnable label."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helix_tf.components.sources import Csv, read_all
from helix_tf.sample_data import (
    CENSUS_COLUMNS,
    CENSUS_CSV_OPTIONS,
    SMS_CSV_OPTIONS,
    write_census_like,
    write_sms_like,
)

REAL = Path(__file__).parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def census(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_census_like(tmp_path_factory.mktemp("census"))


@pytest.fixture(scope="module")
def census_frames(census: tuple[Path, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    source = Csv(train=str(census[0]), test=str(census[1]), **CENSUS_CSV_OPTIONS)
    return read_all(source, "train"), read_all(source, "test")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_census_is_deterministic_and_not_rewritten(tmp_path: Path) -> None:
    first = write_census_like(tmp_path / "a", train_rows=500, test_rows=200, seed=3)
    second = write_census_like(tmp_path / "b", train_rows=500, test_rows=200, seed=3)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    other = write_census_like(tmp_path / "c", train_rows=500, test_rows=200, seed=4)
    assert _digest(other[0]) != _digest(first[0])
    mtimes = [p.stat().st_mtime_ns for p in first]
    again = write_census_like(tmp_path / "a", train_rows=500, test_rows=200, seed=3)
    assert [p.stat().st_mtime_ns for p in again] == mtimes  # identical content: left alone


def test_census_format_quirks(census: tuple[Path, Path]) -> None:
    train_text = census[0].read_text(encoding="utf-8")
    test_text = census[1].read_text(encoding="utf-8")
    assert census[0].name == "adult.data" and census[1].name == "adult.test"
    train_lines = train_text.split("\n")
    test_lines = test_text.split("\n")
    # a blank line at the end of both files, no header
    assert train_text.endswith("\n\n") and test_text.endswith("\n\n")
    assert len(train_lines) == 6000 + 2 and len(test_lines) == 1 + 3000 + 2
    assert not train_lines[0][0].isalpha()
    assert test_lines[0] == "|1x3 Cross validator"
    rows = [line.split(", ") for line in train_lines[:-2]]
    assert {len(r) for r in rows} == {15}
    assert {r[-1] for r in rows} == {">50K", "<=50K"}
    assert {line.rsplit(", ", 1)[1] for line in test_lines[1:-2]} == {">50K.", "<=50K."}
    # missing values are empty fields in workclass (1), occupation (6), native-country (13)
    for column in (1, 6, 13):
        assert any(r[column] == "" for r in rows)
    assert ", , " in train_text and "?" not in train_text
    # real category names, education-num consistent with education
    assert {r[3] for r in rows} >= {"HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate"}
    assert {r[9] for r in rows} == {"Male", "Female"}
    assert "Married-civ-spouse" in {r[5] for r in rows}
    assert "United-States" in {r[13] for r in rows}
    pairs = {(r[3], r[4]) for r in rows}
    assert len(pairs) == len({p[0] for p in pairs})


def test_census_reads_with_the_census_settings(
    census_frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = census_frames
    assert len(train) == 6000 and len(test) == 3000
    assert list(train.columns) == [n for n, _ in CENSUS_COLUMNS] + ["__row"]
    assert set(test["income"]) == {">50K", "<=50K"}
    assert test["__row"].iloc[0] == 2  # the junk line is line 1
    assert train["workclass"].isna().sum() > 0 and train["native_country"].isna().sum() > 0
    positive = (train["income"] == ">50K").mean()
    assert 0.15 < positive < 0.35
    assert train["age"].min() >= 17 and train["age"].max() <= 90


def _features(frame: pd.DataFrame, reference: pd.DataFrame) -> np.ndarray:
    numeric = ["age", "education_num", "hours_per_week"]
    parts = [
        ((frame[n] - reference[n].mean()) / reference[n].std()).to_numpy()[:, None] for n in numeric
    ]
    parts.append(np.log1p(frame[["capital_gain", "capital_loss"]].to_numpy()) / 5)
    for name, kind in CENSUS_COLUMNS:
        if kind == "string" and name != "income":
            values = np.array(sorted(reference[name].dropna().unique()))
            parts.append((frame[name].to_numpy()[:, None] == values[None, :]).astype(float))
    parts.append(np.ones((len(frame), 1)))
    return np.hstack(parts)


def test_census_label_is_learnable_by_a_linear_model(
    census_frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = census_frames
    x_train, x_test = _features(train, train), _features(test, train)
    y_train = (train["income"] == ">50K").to_numpy(float)
    y_test = (test["income"] == ">50K").to_numpy(float)
    weights = np.zeros(x_train.shape[1])
    for _ in range(300):
        predicted = 1 / (1 + np.exp(-x_train @ weights))
        weights -= 0.5 * x_train.T @ (predicted - y_train) / len(y_train)
    accuracy = ((x_test @ weights > 0) == (y_test == 1)).mean()
    majority = max(y_test.mean(), 1 - y_test.mean())
    assert accuracy > 0.78, accuracy
    assert accuracy > majority + 0.05, (accuracy, majority)


@pytest.mark.skipif(not (REAL / "census" / "adult.data").exists(), reason="no ../shared/data")
def test_census_looks_like_the_real_file(census: tuple[Path, Path]) -> None:
    real = (REAL / "census" / "adult.data").read_text(encoding="utf-8").split("\n")
    ours = census[0].read_text(encoding="utf-8").split("\n")

    def categories(lines: list[str], column: int) -> set[str]:
        return {line.split(", ")[column] for line in lines if line}

    for column in (1, 3, 5, 6, 7, 8, 9, 13):
        assert categories(ours, column) <= categories(real, column) | {""}, column


def test_sms_format_determinism_and_learnability(tmp_path: Path) -> None:
    path = write_sms_like(tmp_path / "a", messages=1500, seed=1)
    assert path.name == "SMSSpamCollection"
    assert path.read_bytes() == write_sms_like(tmp_path / "b", messages=1500, seed=1).read_bytes()
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(line.count("\t") == 1 for line in lines[:-1])
    frame = read_all(Csv(train=str(path), **SMS_CSV_OPTIONS), "train")
    assert len(frame) == 1500 and set(frame["label"]) == {"ham", "spam"}
    spam = frame["label"] == "spam"
    assert 0.09 < spam.mean() < 0.17
    assert frame["text"].str.contains('"').any()  # quotes inside messages, as in the real file
    # naive Bayes on words: train on the first half, test on the second
    words = frame["text"].str.lower().str.split()
    half = len(frame) // 2
    counts: dict[bool, dict[str, int]] = {True: {}, False: {}}
    for tokens, is_spam in zip(words[:half], spam[:half], strict=True):
        for token in tokens:
            counts[is_spam][token] = counts[is_spam].get(token, 0) + 1
    totals = {k: sum(v.values()) for k, v in counts.items()}
    prior = np.log(spam[:half].mean() / (1 - spam[:half].mean()))

    def score(tokens: list[str]) -> float:
        return prior + sum(
            np.log((counts[True].get(t, 0) + 1) / (totals[True] + 1000))
            - np.log((counts[False].get(t, 0) + 1) / (totals[False] + 1000))
            for t in tokens
        )

    predicted = np.array([score(t) > 0 for t in words[half:]])
    assert (predicted == spam[half:].to_numpy()).mean() > 0.95
