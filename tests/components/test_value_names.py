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
