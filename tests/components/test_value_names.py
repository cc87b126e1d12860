"""What each index of a categorical or bag feature stands for (Feature.value_names)."""

from __future__ import annotations

import numpy as np

from helix_tf.components import features as F


def test_vocabulary_names_its_entries_then_the_unseen_buckets() -> None:
    state = {"vocab": ["HS-grad", "Doctorate"]}
    assert F.Vocabulary("education").value_names(state) == ["HS-grad", "Doctorate", "<other>"]
    three = F.Vocabulary("education", oov_buckets=2).value_names(state)
    assert three == ["HS-grad", "Doctorate", "<other 0>", "<other 1>"]
    assert len(three) == F.Vocabulary("education", oov_buckets=2).cardinality(state)


def test_bucketize_names_the_interval_of_each_index() -> None:
    op = F.Bucketize("age", [18, 30.5, 65])
    names = op.value_names(None)
    assert names == ["< 18", "[18, 30.5)", "[30.5, 65)", ">= 65", "<missing>"]
    assert len(names) == op.cardinality(None)
    idx = op.transform([np.array([10.0, 18.0, 40.0, 70.0, np.nan])], None, 5)
    assert [names[i] for i in idx] == ["< 18", "[18, 30.5)", "[30.5, 65)", ">= 65", "<missing>"]


def test_tfidf_names_its_vocabulary_and_numeric_features_have_no_names() -> None:
    assert F.TfIdf("tokens").value_names({"vocab": ["free", "call"], "idf": [1, 1]}) == [
        "free",
        "call",
    ]
    assert F.Numeric("age").value_names({"mean": 1.0, "std": 2.0}) is None
    assert F.Cross(["a", "b"], buckets=10).value_names(None) is None


# -- a value of the data spelled like helix_tf's own names (QA pass 25) ------------------


def test_a_value_spelled_missing_is_no_missing_value_of_a_vocabulary() -> None:
    """The missing value was the token "<missing>": a category of the data spelled so
    shared its index (its rows and the missing ones one value to the model)."""
    op = F.Vocabulary("c")
    analyzer = op.analyzer()
    assert analyzer is not None
    batch = np.asarray(["<missing>", None, "a", "<missing>", None, "a", "'<missing>'"], object)
    state = op.finalize_state(analyzer.finalize(analyzer.add(analyzer.create(), [batch])))
    assert state["vocab"] == [None, "<missing>", "a", "'<missing>'"]
    idx = op.transform([batch], state, len(batch)).tolist()
    assert idx == [1, 0, 2, 1, 0, 2, 3]
    assert op.value_names(state) == ["<missing>", "'<missing>'", "a", "''<missing>''", "<other>"]


def test_a_value_spelled_like_an_unseen_bucket_is_named_apart() -> None:
    state = {"vocab": ["<other>", "<other 1>", None, "x"]}
    assert F.Vocabulary("c").value_names(state) == [
        "'<other>'",
        "<other 1>",
        "<missing>",
        "x",
        "<other>",
    ]
    names = F.Vocabulary("c", oov_buckets=2).value_names(state)
    assert names == ["<other>", "'<other 1>'", "<missing>", "x", "<other 0>", "<other 1>"]
    assert len(set(names)) == len(names)


def test_an_unseen_missing_value_hashes_apart_from_any_text() -> None:
    """With several OOV buckets a missing value hashed as the text "<missing>" did."""
    op = F.Vocabulary("c", oov_buckets=1000)
    state = {"vocab": ["a"]}
    out = op.transform([np.asarray([None, "<missing>", "\xff"], object)], state, 3).tolist()
    assert len(set(out)) == 3


def test_bucket_names_write_each_boundary_in_full() -> None:
    """``:g`` wrote 1000000 and 1000001 both ``1e+06`` (two buckets of one name)."""
    names = F.Bucketize("x", [1e6, 1_000_001, 1234567.25]).value_names(None)
    assert names == [
        "< 1000000",
        "[1000000, 1000001)",
        "[1000001, 1234567.25)",
        ">= 1234567.25",
        "<missing>",
    ]


def test_a_token_spelled_missing_is_quoted_by_every_feature() -> None:
    state = {"vocab": ["free", "<missing>"], "idf": [1, 1]}
    assert F.TfIdf("tokens").value_names(state) == ["free", "'<missing>'"]
    assert F.Vocabulary("tokens").value_names(state)[:2] == ["free", "'<missing>'"]
