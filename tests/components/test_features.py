"""Feature operators: transforms on small hand-made batches, analyzers, and the rule that an
analyzer's state does not depend on how the training split is cut into batches."""

from __future__ import annotations

import itertools
import math
import zlib
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from helix_tf import NodeRef
from helix_tf.components import features as F
from helix_tf.components.features import Bag
from helix_tf.errors import ConfigError, ExecutionError
from helix_tf.types import BAG, CATEGORICAL, NUMERIC, STRING, TOKENS

NAN = float("nan")


def fit(op: F.Feature, *batches: list[Any]) -> Any:
    """Run ``op``'s analyzer over batches (each a list of input values) and finalise."""
    analyzer = op.analyzer()
    assert analyzer is not None
    partials = [analyzer.add(analyzer.create(), values) for values in batches]
    return op.finalize_state(analyzer.finalize(analyzer.merge(partials)))


def strings(*values: Any) -> np.ndarray:
    return np.asarray(values, dtype=object)


def bag_rows(bag: Bag) -> list[dict[int, float]]:
    """A bag as one {index: weight} dict per row."""
    out = []
    for i in range(len(bag)):
        s, e = bag.offsets[i], bag.offsets[i + 1]
        out.append({int(k): float(v) for k, v in zip(bag.idx[s:e], bag.val[s:e], strict=True)})
    return out


# --------------------------------------------------------------------------- Numeric


def test_numeric_standardises_with_training_moments_and_fills_missing() -> None:
    op = F.Numeric("x")
    state = fit(op, [np.array([1.0, 2.0])], [np.array([NAN, 3.0])])
    assert state["mean"] == pytest.approx(2.0)
    assert state["std"] == pytest.approx(math.sqrt(2 / 3))
    assert state["count"] == 3  # missing values are not counted
    out = op.transform([np.array([1.0, NAN, 3.0, 4.0])], state, 4)
    assert out.dtype == np.float32
    std = math.sqrt(2 / 3)
    np.testing.assert_allclose(out, [-1 / std, 0.0, 1 / std, 2 / std], rtol=1e-6)


def test_numeric_without_standardisation_fills_missing_with_the_mean() -> None:
    op = F.Numeric("x", standardize=False)
    state = fit(op, [np.array([2.0, 4.0])])
    np.testing.assert_allclose(op.transform([np.array([NAN, 10.0])], state, 2), [3.0, 10.0])


def test_numeric_constant_or_empty_column_does_not_divide_by_zero() -> None:
    op = F.Numeric("x")
    constant = fit(op, [np.array([5.0, 5.0, 5.0])])
    assert constant["std"] == 1.0
    np.testing.assert_allclose(op.transform([np.array([5.0, 6.0])], constant, 2), [0.0, 1.0])
    empty = fit(op, [np.array([NAN, NAN])])
    assert empty == {"mean": 0.0, "std": 1.0, "count": 0}
    assert np.isfinite(op.transform([np.array([NAN, 1.0])], empty, 2)).all()


# --------------------------------------------------------------------------- Bucketize


def test_bucketize_boundaries_and_the_missing_bucket() -> None:
    op = F.Bucketize("age", [18, 30, 50])
    x = np.array([10.0, 18.0, 29.9, 30.0, 50.0, 99.0, NAN])
    out = op.transform([x], None, len(x))
    assert out.dtype == np.int32
    # index i for boundaries[i-1] <= x < boundaries[i]; missing gets len(boundaries) + 1
    assert out.tolist() == [0, 1, 1, 2, 3, 3, 4]
    assert op.cardinality(None) == 5
    assert op.analyzer() is None


@pytest.mark.parametrize(
    ("boundaries", "match"),
    [([], "must not be empty"), ([3, 1, 2], "strictly increasing"), ([1, 1], "strictly")],
)
def test_bucketize_rejects_bad_boundaries(boundaries: list[float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.Bucketize("age", boundaries)


# --------------------------------------------------------------------------- Vocabulary


def test_vocabulary_orders_by_count_then_text_with_min_count_and_top_k() -> None:
    values = strings("b", "a", "c", "a", "b", "d", "c", "b", "a", None)
    assert fit(F.Vocabulary("x"), [values])["vocab"] == ["a", "b", "c", None, "d"]
    assert fit(F.Vocabulary("x", min_count=2), [values])["vocab"] == ["a", "b", "c"]
    assert fit(F.Vocabulary("x", min_count=2, top_k=2), [values])["vocab"] == ["a", "b"]


def test_vocabulary_lookup_oov_and_missing_on_a_string_column() -> None:
    op = F.Vocabulary("x", min_count=2)
    state = fit(op, [strings("a", "a", "b", "b", "c")])
    assert state["vocab"] == ["a", "b"]
    out = op.transform([strings("b", "a", "zzz", None)], state, 4)
    assert out.dtype == np.int32
    assert out.tolist()[:2] == [1, 0]
    assert out.tolist()[2:] == [2, 2]  # unseen and missing share the single oov index
    assert op.cardinality(state) == 3
    assert op.output_kind([STRING]) == CATEGORICAL


def test_vocabulary_oov_buckets_hash_deterministically() -> None:
    op = F.Vocabulary("x", oov_buckets=4)
    state = fit(op, [strings("a", "b")])
    unseen = strings("p", "q", "r", "s", "t", "p")
    out = op.transform([unseen], state, len(unseen))
    expected = [2 + zlib.crc32(t.encode()) % 4 for t in unseen]
    assert out.tolist() == expected
    assert out[0] == out[-1]
    assert op.cardinality(state) == 6


def test_vocabulary_on_token_lists_gives_bag_counts() -> None:
    op = F.Vocabulary("words", oov_buckets=1)
    tokens = [["spam", "free", "spam"], ["hello"], ["free", "hello", "free"]]
    state = fit(op, [tokens])
    # counts: free 3, spam 2, hello 2 -> free, hello, spam (ties by text)
    assert state["vocab"] == ["free", "hello", "spam"]
    assert op.output_kind([TOKENS]) == BAG
    bag = op.transform([[["spam", "spam", "unseen"], [], ["free"]]], state, 3)
    assert isinstance(bag, Bag)
    assert bag_rows(bag) == [{2: 2.0, 3: 1.0}, {}, {0: 1.0}]
    # oov_buckets=0 drops unseen tokens
    drop = F.Vocabulary("words", oov_buckets=0)
    bag = drop.transform([[["spam", "unseen"]]], fit(drop, [tokens]), 1)
    assert bag_rows(bag) == [{2: 1.0}]


def test_vocabulary_on_a_string_column_needs_an_oov_bucket() -> None:
    with pytest.raises(ValueError, match="oov_buckets must be >= 1"):
        F.Vocabulary("x", oov_buckets=0).output_kind([STRING])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_count": 0}, "min_count must be an integer >= 1"),
        ({"top_k": 0}, "top_k must be None or an integer >= 1"),
        ({"oov_buckets": -1}, "oov_buckets must be an integer >= 0"),
    ],
)
def test_vocabulary_rejects_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.Vocabulary("x", **kwargs)


@pytest.mark.parametrize("op", [F.Vocabulary, F.TfIdf])
@pytest.mark.parametrize("top_k", [0, -1])
def test_every_vocabulary_selection_rejects_a_top_k_below_one(op: Any, top_k: int) -> None:
    # QA 28: TfIdf took top_k=-1 (every term but the least frequent) and 0 (no term).
    with pytest.raises(ConfigError, match="top_k must be None or an integer >= 1"):
        op("x", top_k=top_k)


def test_vocabulary_on_an_empty_string_batch_is_an_empty_index_array() -> None:
    op = F.Vocabulary("x")
    state = fit(op, [strings("a", "b")])
    out = op.transform([strings()], state, 0)
    assert isinstance(out, np.ndarray) and out.shape == (0,)


# --------------------------------------------------------------------------- Cross


def test_cross_is_deterministic_in_range_and_spreads() -> None:
    op = F.Cross([NodeRef("a"), NodeRef("b")], buckets=1000)
    a = np.repeat(np.arange(20, dtype=np.int32), 20)
    b = np.tile(np.arange(20, dtype=np.int32), 20)
    out = op.transform([a, b], None, len(a))
    assert out.dtype == np.int32
    assert ((out >= 0) & (out < 1000)).all()
    np.testing.assert_array_equal(out, op.transform([a.copy(), b.copy()], None, len(a)))
    assert len(set(out.tolist())) > 300  # 400 pairs into 1000 buckets: few collisions
    assert op.cardinality(None) == 1000
    # the pair (1, 2) differs from (2, 1)
    swapped = op.transform([np.array([1, 2]), np.array([2, 1])], None, 2)
    assert swapped[0] != swapped[1]


def test_cross_values_are_pinned() -> None:
    """An accidental change of the hash would silently change every stored cross."""
    a, b = np.array([0, 1, 2]), np.array([3, 4, 5])
    op = F.Cross([NodeRef("a"), NodeRef("b")], buckets=1000)
    assert op.transform([a, b], None, 3).tolist() == [856, 366, 560]
    renamed = F.Cross([NodeRef("x"), NodeRef("y")], buckets=1000)
    assert renamed.transform([a, b], None, 3).tolist() == [856, 366, 560]


@pytest.mark.parametrize(
    ("columns", "buckets", "match"),
    [((NodeRef("a"),), 10, "at least 2 inputs"), ((NodeRef("a"), NodeRef("b")), 0, "buckets")],
)
def test_cross_rejects_bad_parameters(columns: tuple[Any, ...], buckets: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.Cross(columns, buckets=buckets)


# --------------------------------------------------------------------------- text


def test_tokenize_lowercases_splits_on_non_letters_and_adds_ngrams() -> None:
    texts = strings("Hello, World! 2 hello", None, "FREE-prize")
    assert F.Tokenize("t").transform([texts], None, 3) == [
        ["hello", "world", "hello"],
        [],
        ["free", "prize"],
    ]
    assert F.Tokenize("t", ngrams=(1, 2)).transform([texts[:1]], None, 1) == [
        ["hello", "world", "hello", "hello world", "world hello"]
    ]
    assert F.Tokenize("t", lower=False, ngrams=(2,)).transform([texts[2:]], None, 1) == [
        ["FREE prize"]
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"pattern": "("}, "not a valid regular expression"), ({"ngrams": (0,)}, "ngrams")],
)
def test_tokenize_rejects_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.Tokenize("t", **kwargs)


def test_tfidf_matches_a_hand_computation() -> None:
    docs = [["a", "b", "a"], ["b", "c"], ["a"]]
    op = F.TfIdf("words")
    state = fit(op, [docs])
    # counts a=3, b=2, c=1; df a=2, b=2, c=1; 3 documents; idf = ln((1+N)/(1+df)) + 1
    assert state["vocab"] == ["a", "b", "c"]
    idf = [math.log(4 / 3) + 1, math.log(4 / 3) + 1, math.log(4 / 2) + 1]
    assert state["idf"] == pytest.approx(idf)
    bag = op.transform([[["a", "b", "a"], ["c", "zzz"], []]], state, 3)
    rows = bag_rows(bag)
    w0 = np.array([2 * idf[0], 1 * idf[1]])
    w0 = w0 / np.linalg.norm(w0)
    assert rows[0] == pytest.approx({0: w0[0], 1: w0[1]})
    assert rows[1] == pytest.approx({2: 1.0})  # unseen tokens are dropped; l2 norm 1
    assert rows[2] == {}
    assert op.cardinality(state) == 3
    raw = F.TfIdf("words", norm=None, sublinear_tf=True).transform([[["a", "a", "a"]]], state, 1)
    assert bag_rows(raw) == [pytest.approx({0: (1 + math.log(3)) * idf[0]})]


# --------------------------------------------------------------------------- UDFs


FRAME = pd.DataFrame({"a": [1.0, 2.0, 3.0], "name": ["x", "y", "z"]})


def test_row_udf_sees_one_row_as_a_dict() -> None:
    seen: list[dict[str, Any]] = []

    def fn(row: dict[str, Any]) -> float:
        seen.append(row)
        return row["a"] * 2

    op = F.Udf(fn)
    out = op.transform([FRAME], None, 3)
    assert out.dtype == np.float32 and out.tolist() == [2.0, 4.0, 6.0]
    assert seen[1] == {"a": 2.0, "name": "y"}
    assert op.reads_whole_row() and op.output_kind([]) == NUMERIC


def test_batched_udf_sees_the_whole_batch() -> None:
    calls: list[int] = []

    def fn(batch: pd.DataFrame) -> Any:
        calls.append(len(batch))
        return np.log1p(batch["a"])

    op = F.Udf(fn, batched=True)
    out = op.transform([FRAME], None, 3)
    assert calls == [3, 1, 2]  # the whole batch, then once per process its two halves
    np.testing.assert_allclose(out, np.log1p([1.0, 2.0, 3.0]), rtol=1e-6)
    op.transform([FRAME], None, 3)
    assert calls == [3, 1, 2, 3]


BATCH_DEPENDENT = {
    "batch-mean": F.Udf(lambda b: b["a"] - b["a"].mean(), batched=True),
    "rank": F.Udf(lambda b: b["a"].rank(), batched=True),
    "shift-string": F.Udf(lambda b: b["name"].shift().fillna("-"), batched=True, output="string"),
    "position": F.Udf(lambda b: np.arange(len(b)) % 2, batched=True, output="categorical", size=2),
    # QA pass 21: the halves were checked with the whole batch's index labels, so a
    # function reading a row's place in its batch passed and followed --batch-rows
    "batch-index": F.Udf(lambda b: b.index.to_numpy(dtype=float), batched=True),
    "index-parity": F.Udf(lambda b: b.index % 2, batched=True, output="categorical", size=2),
    "dataset-apply": F.DatasetUdf(
        fit=lambda frame: {}, apply=lambda b, s: b["a"] / b["a"].sum(), columns=["a"]
    ),
}


@pytest.mark.parametrize("op", BATCH_DEPENDENT.values(), ids=BATCH_DEPENDENT.keys())
def test_a_batch_function_whose_values_depend_on_the_batch_is_refused(op: F.Feature) -> None:
    """A batch mean once gave values that followed --batch-rows, which is no part of a
    result's identity: a rerun with other batches reused results a fresh run differs from."""
    frame = FRAME.assign(__row=[11, 12, 13])
    with pytest.raises(
        ExecutionError,
        match=r"gives a row a value that depends on the other rows of its batch \(or on "
        r"its place there, batch\.index\): row 1[123] \(the line number in its file\) got "
        r".*Compute each row's value from that row alone.*F\.DatasetUdf",
    ):
        op.transform([frame], {}, 3)


def test_a_function_drawing_random_numbers_is_not_called_batch_dependent() -> None:
    """A draw from numpy's global generator differs on every call: the compiler already
    refuses to reuse it (it is recomputed every run), so it runs, as before."""
    op = F.Udf(lambda b: b["a"] + np.random.normal(size=len(b)), batched=True)
    assert op.transform([FRAME], None, 3).shape == (3,)


def test_a_row_local_string_function_with_missing_values_is_accepted() -> None:
    frame = pd.DataFrame({"name": ["x", None, "z", None]})
    op = F.Udf(lambda b: b["name"].astype("string").str.upper(), batched=True, output="string")
    out = op.transform([frame], None, 4)
    assert out[0] == "X" and pd.isna(out[1]) and out[2] == "Z"


def test_a_row_local_batch_function_that_edits_its_batch_is_accepted() -> None:
    def fn(batch: pd.DataFrame) -> Any:
        batch["a"] = batch["a"] * 2  # edits the batch it is given: every call sees fresh rows
        return np.sqrt(batch["a"]) + np.log1p(batch["a"])

    out = F.Udf(fn, batched=True).transform([FRAME.copy()], None, 3)
    np.testing.assert_allclose(out, np.sqrt([2.0, 4.0, 6.0]) + np.log1p([2.0, 4.0, 6.0]), 1e-6)


def test_categorical_and_string_udfs() -> None:
    cat = F.Udf(lambda row: int(row["a"]) % 2, output="categorical", size=2)
    assert cat.transform([FRAME], None, 3).tolist() == [1, 0, 1]
    assert cat.cardinality(None) == 2
    text = F.Udf(lambda b: b["name"].str.upper(), batched=True, output="string")
    assert text.transform([FRAME], None, 3).tolist() == ["X", "Y", "Z"]


@pytest.mark.parametrize(
    ("op", "match"),
    [
        (F.Udf(lambda b: [1.0, 2.0], batched=True), r"returned shape \(2,\), expected \(3,\)"),
        (
            F.Udf(lambda r: 5, output="categorical", size=2),
            r"returned index 5 at position 0 of its batch, outside \[0, 2\)",
        ),
    ],
    ids=["wrong_length", "index_out_of_range"],
)
def test_udf_output_is_checked(op: F.Udf, match: str) -> None:
    with pytest.raises(ExecutionError, match=match):
        op.transform([FRAME], None, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"output": "categorical"}, "needs size=K"),
        ({"output": "tokens"}, "output must be one of"),
    ],
)
def test_udf_rejects_bad_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        F.Udf(lambda r: 0, **kwargs)


@pytest.mark.parametrize(
    "op",
    [
        F.Udf(lambda row: row["nmae"]),
        F.Udf(lambda batch: batch["nmae"], batched=True),
        F.DatasetUdf(fit=lambda frame: {}, apply=lambda b, s: b["nmae"], columns=["a"]),
    ],
    ids=["row", "batched", "dataset_apply"],
)
def test_udf_key_error_on_a_column_lists_the_columns(op: F.Feature) -> None:
    with pytest.raises(
        ExecutionError,
        match=r"KeyError: 'nmae'.*no column 'nmae' \(did you mean 'name'\?\)\. "
        r"Available columns: a, name",
    ):
        op.transform([FRAME], {}, 3)


def test_udf_key_error_on_a_column_names_the_line_that_read_it() -> None:
    def pick(batch: Any) -> Any:
        return batch["nmae"]

    with pytest.raises(ExecutionError) as info:
        F.Udf(pick, batched=True).transform([FRAME], {}, 3)
    assert f"test_features.py:{pick.__code__.co_firstlineno + 1};" in str(info.value)


def test_udf_key_error_that_is_not_a_column_is_the_users_own() -> None:
    table = {"x": 1}
    op = F.Udf(lambda batch: batch["a"] * table["y"], batched=True)
    with pytest.raises(KeyError, match="'y'"):
        op.transform([FRAME.assign(y=1.0)], None, 3)


def test_dataset_udf_fits_on_the_training_split_then_applies_per_batch() -> None:
    fitted: list[int] = []

    def fit_median(frame: pd.DataFrame) -> dict[str, float]:
        fitted.append(len(frame))
        return {"median": float(frame["a"].median())}

    op = F.DatasetUdf(
        fit=fit_median,
        apply=lambda batch, state: (batch["a"] > state["median"]).astype(int),
        columns=["a"],
        output="categorical",
        size=2,
    )
    state = fit(op, [FRAME.iloc[:2]], [FRAME.iloc[2:]], [FRAME.iloc[:0]])
    assert fitted == [3] and state == {"median": 2.0}
    assert op.transform([FRAME], state, 3).tolist() == [0, 0, 1]


def test_dataset_udf_fit_sees_the_rows_in_file_order_however_batches_merge() -> None:
    """Beam merges the analyzer's partial results in any order: fit once saw the rows in
    that order, so an order-sensitive fit (a float sum, the first rows) changed bits."""
    seen: list[list[float]] = []

    def first_rows(frame: pd.DataFrame) -> dict[str, Any]:
        seen.append(frame["a"].tolist())
        assert list(frame.columns) == ["a"] and list(frame.index) == list(range(len(frame)))
        return {}

    op = F.DatasetUdf(fit=first_rows, apply=lambda b, s: b["a"], columns=["a"])
    rows = FRAME.assign(__row=[7, 8, 9])
    fit(op, [rows.iloc[:1]], [rows.iloc[1:]])
    fit(op, [rows.iloc[1:]], [rows.iloc[:1]])
    assert seen == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]


def test_dataset_udf_state_must_be_json() -> None:
    op = F.DatasetUdf(fit=lambda frame: {"x": object()}, apply=lambda b, s: b["a"], columns=["a"])
    with pytest.raises(ExecutionError, match="not JSON-serialisable"):
        fit(op, [FRAME])


# --------------------------------------------------------------------------- Label


def test_label_positive_value_and_missing_labels() -> None:
    labels, missing = F.Label("income", positive=">50K").transform(
        strings(">50K", "<=50K", None, NAN, ">50K")
    )
    assert labels.tolist() == [1, 0, 0, 0, 1]
    assert missing.tolist() == [False, False, True, True, False]


def test_label_zero_one_column_flags_other_values() -> None:
    labels, bad = F.Label("y").transform(np.array([0.0, 1.0, 1, 2.0, NAN], dtype=object))
    assert labels[:3].tolist() == [0, 1, 1]
    assert bad.tolist() == [False, False, False, True, True]


# --------------------------------------------------------------------------- analyzers


def _split(values: list[Any], cuts: list[int]) -> list[list[Any]]:
    edges = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    return [values[a:b] for a, b in itertools.pairwise(edges)] or [values]


def _state(op: F.Feature, chunks: list[list[Any]], wrap: Any = list) -> Any:
    """``op``'s finalised state over ``chunks`` (each wrapped as one batch's input)."""
    analyzer = op.analyzer()
    assert analyzer is not None
    partials = [analyzer.add(analyzer.create(), [wrap(c)]) for c in chunks]
    # merge in two levels, as a runner that combines partial merges would
    half = len(partials) // 2
    merged = analyzer.merge(
        [analyzer.merge(partials[:half] or [analyzer.create()]), analyzer.merge(partials[half:])]
    )
    return op.finalize_state(analyzer.finalize(merged))


def _objects(chunk: list[Any]) -> np.ndarray:
    return np.asarray(chunk, dtype=object)


def _floats(chunk: list[Any]) -> np.ndarray:
    return np.asarray(chunk, dtype=np.float64)


WORDS = st.sampled_from(["a", "b", "c", "spam", "ham", "x y", ""])
CUTS = st.lists(st.integers(min_value=0, max_value=60), max_size=6)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(WORDS, st.none()), min_size=1, max_size=40), cuts=CUTS)
def test_vocabulary_state_is_independent_of_batching(values: list[Any], cuts: list[int]) -> None:
    for op in (F.Vocabulary("x"), F.Vocabulary("x", min_count=2, top_k=3)):
        whole = _state(op, [values], _objects)
        assert _state(op, _split(values, cuts), _objects) == whole


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(WORDS.filter(bool), max_size=5), min_size=1, max_size=30),
    cuts=CUTS,
)
def test_token_analyzers_are_independent_of_batching(
    docs: list[list[str]], cuts: list[int]
) -> None:
    for op in (F.TfIdf("w"), F.Vocabulary("w", min_count=2)):
        chunks = [c for c in _split(docs, cuts) if c]
        assert _state(op, chunks) == _state(op, [docs])


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(min_value=-1e3, max_value=1e3), st.just(NAN)), min_size=1, max_size=40
    ),
    cuts=CUTS,
)
def test_moments_are_independent_of_batching(values: list[float], cuts: list[int]) -> None:
    op = F.Numeric("x")
    whole = _state(op, [values], _floats)
    parts = _state(op, _split(values, cuts), _floats)
    assert parts["count"] == whole["count"]
    assert parts["mean"] == pytest.approx(whole["mean"], rel=1e-9, abs=1e-9)
    assert parts["std"] == pytest.approx(whole["std"], rel=1e-6, abs=1e-6)


def test_every_user_function_feature_checks_its_declared_output() -> None:
    # Row-wise and whole-dataset UDFs validate output/size the same way.
    with pytest.raises(ConfigError, match=r"categorical UDF needs size=K"):
        F.DatasetUdf(
            fit=lambda f: {}, apply=lambda b, s: b["x"], columns=("x",), output="categorical"
        )
    with pytest.raises(ConfigError, match=r"categorical UDF needs size=K"):
        F.Udf(lambda row: 0, output="categorical")


# ------------------------------------------------ standardisation independent of batching


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(allow_infinity=False, width=64)  # any finite value, or NaN (missing)
        | st.sampled_from([NAN, 0.1, 0.2, 0.3, 1e-320, -0.0, 5e-324, 1e16, 1.0 + 2**-52, 1e300]),
        min_size=1,
        max_size=60,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    data=st.data(),
)
def test_numeric_statistics_are_the_same_bits_however_the_rows_are_batched(
    values: list[float], cuts: list[int], data: st.DataObject
) -> None:
    """The mean and std a Numeric feature standardises with do not depend on how the
    training rows are cut into batches or in which order Beam merges the batches'
    accumulators (``--batch-rows`` once changed the last bits, so a result reused from
    a run with another batch size was not what a fresh run computes)."""
    from fractions import Fraction

    analyzer = F.Numeric("x").analyzer()
    assert analyzer is not None
    x = np.array(values, dtype=np.float64)

    def stats(pieces: list[np.ndarray]) -> dict[str, float]:
        accs = [analyzer.add(analyzer.create(), [p]) for p in pieces]
        return analyzer.finalize(analyzer.merge(accs))

    whole = stats([x])
    bounds = sorted({min(c, len(x)) for c in cuts})
    pieces = np.split(x, bounds)
    order = data.draw(st.permutations(range(len(pieces))))
    assert stats([pieces[i] for i in order]) == whole
    from helix_tf.components.features._numeric import _SCALE, exact_sum

    finite = x[np.isfinite(x)]
    assert exact_sum(finite) == sum(Fraction(v) for v in finite.tolist()) * 2**_SCALE
    if len(finite):  # the exact mean, rounded once
        exact = sum(Fraction(v) for v in finite.tolist())
        assert whole["mean"] == float(exact / len(finite))


def _within_ulps(value: float, exact_square: Fraction, ulps: int = 1) -> bool:
    """``value`` is within ``ulps`` of the square root of ``exact_square`` (exact test)."""
    lo, hi = value, value
    for _ in range(ulps):
        lo, hi = math.nextafter(lo, 0.0), math.nextafter(hi, math.inf)
    return Fraction(lo) ** 2 <= exact_square and (
        math.isinf(hi) or exact_square <= Fraction(hi) ** 2  # the std of +-1.8e308: 1.8e308
    )


_ANY_FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        _ANY_FINITE
        | st.sampled_from([1e308, -1e308, 1.7e308, 1e200, 1.3e154, 1e9, 1e9 + 1, 5e-324, 0.0])
        | st.builds(lambda k: 1e9 + k, st.integers(0, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_numeric_statistics_are_the_exact_ones_for_every_finite_input(values: list[float]) -> None:
    """The mean and std of a Numeric feature are the exact ones rounded (the std within an
    ulp) for every finite input, and every standardised value is finite and where the exact
    one is. A value past 1.3e154 made the std infinite and every standardised value 0;
    values 1e9 + {0, 1, 2} gave std 1 (the float sum of squares cancelled); two values of
    1e308 failed with OverflowError."""
    feature = F.Numeric("x")
    analyzer = feature.analyzer()
    assert analyzer is not None
    x = np.array(values, dtype=np.float64)
    state = analyzer.finalize(analyzer.add(analyzer.create(), [x]))
    exact = [Fraction(v) for v in values]
    n = len(exact)
    mean = sum(exact) / n
    var = sum((v - mean) ** 2 for v in exact) / n
    assert state["mean"] == float(mean)
    assert state["count"] == n
    if state["std"] == 1.0 and var < Fraction(5e-324):  # constant (or next to it)
        pass
    else:
        assert _within_ulps(state["std"], var), (state["std"], var)
    z = feature.transform([x], state, n)
    assert np.isfinite(z).all()
    assert np.abs(z).max() <= math.sqrt(n) * (1 + 1e-6) + 1e-6  # at most sqrt(n - 1)
    assert feature.transform([np.array([NAN])], state, 1).tolist() == [0.0]  # the mean
    if state["std"] != 1.0 or var == 1:
        # the exact z-scores, to float32's precision: also where the spread is a few of
        # the mean's last bits (x - mean alone was off by up to 2 there)
        reference = np.array([float((v - mean) / Fraction(state["std"])) for v in exact])
        assert np.all(np.abs(z - reference) <= 1e-6 * np.maximum(1, np.abs(reference)))


def test_numeric_statistics_of_columns_in_the_usual_range_agree_with_numpy() -> None:
    """Where float64's formulas are accurate (no overflow, no cancellation), the exact
    statistics agree with numpy's and with a longdouble reference."""
    rng = np.random.default_rng(3)
    for x in (rng.normal(40, 12, 5000), rng.integers(0, 10**6, 3000).astype(float)):
        analyzer = F.Numeric("x").analyzer()
        assert analyzer is not None
        halves = [analyzer.add(analyzer.create(), [p]) for p in np.array_split(x, 3)]
        state = analyzer.finalize(analyzer.merge(halves))
        assert state["mean"] == pytest.approx(float(np.mean(x)), rel=1e-15)
        assert state["std"] == pytest.approx(float(np.std(x)), rel=1e-13)
        wide = x.astype(np.longdouble)
        assert state["std"] == pytest.approx(float(np.std(wide)), rel=1e-13)


def test_bucketize_boundaries_with_nan_are_named_as_such() -> None:
    """A NaN boundary was "must be strictly increasing" (sorted() leaves NaN in place)."""
    with pytest.raises(ConfigError, match=r"boundaries must be numbers, but got \[1\.0, nan\]"):
        F.Bucketize("x", boundaries=[1.0, float("nan")])


def test_exact_square_sum_is_exact_for_every_float_range() -> None:
    from helix_tf.components.features._numeric import _SCALE, exact_square_sum

    rng = np.random.default_rng(4)
    x = np.concatenate(
        [
            rng.normal(0, 1, 70_000) * 10.0 ** rng.integers(-320, 308, 70_000),
            [5e-324, -1.7976931348623157e308, 0.0, -0.0, 3.0],
        ]
    )
    x = x[np.isfinite(x)]
    expected = sum(Fraction(v) ** 2 for v in x.tolist()) * 2 ** (2 * _SCALE)
    assert exact_square_sum(x) == expected
