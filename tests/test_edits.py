"""Structural edits as -p overrides: model swap, add a column, bucketize, cross."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf import history
from helix_tf.components import features as F, learners
from helix_tf.config import load_config
from helix_tf.errors import ConfigError


def test_every_edit_applies_and_node_overrides_apply_after(tiny_census_config: Path) -> None:
    wf = load_config(
        tiny_census_config,
        {
            "model:learner": "WideDeep",
            "add:capital_loss": "numeric",
            "add:workclass": "vocabulary",
            "bucketize:age": "25,35.5,50",
            "cross:education*occupation": 500,
            "learner.l2": 0.01,
            "learner.dropout": 0.2,  # a DNN parameter: the swap applies first
        },
    ).workflow
    learner = wf.declaration("learner").op
    assert isinstance(learner, learners.WideDeep)
    assert (learner.l2, learner.dropout, learner.learning_rate, learner.batch_size) == (
        0.01,
        0.2,
        0.05,
        128,
    )
    assert wf.declaration("age").op == F.Bucketize("age", [25, 35.5, 50])
    assert wf.declaration("capital_loss").op == F.Numeric("capital_loss")
    assert wf.declaration("workclass").op == F.Vocabulary("workclass")
    assert wf.declaration("education_x_occupation").op.buckets == 500
    features = [r.name for r in wf.declaration("examples").refs["features"]]
    assert features[-3:] == ["capital_loss", "workclass", "education_x_occupation"]


def test_none_is_no_edit_and_edits_change_only_what_they_name(tiny_census_config: Path) -> None:
    plain = history.describe(tiny_census_config)
    same = history.describe(
        tiny_census_config, params={"add:capital_loss": None, "model:learner": "Linear"}
    )
    assert plain.digest == same.digest
    changes = history.logical_diff(tiny_census_config, {"add:capital_loss": "numeric"})
    assert {(c["name"], c["change"]) for c in changes} >= {
        ("capital_loss", "added"),
        ("examples", "changed"),
    }
    assert not any(c["name"] in ("age", "education", "rows") for c in changes)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("add:age", "numeric", "already has a node 'age'"),
        ("add:capital_loss", "float", "add a column as one of numeric, vocabulary"),
        ("bucketize:education", "1,2", "only a Numeric feature is bucketized"),
        ("bucketize:age", "30,20", "strictly increasing"),
        ("cross:education*nosuch", 10, "no node 'nosuch'"),
        ("cross:education", 10, "name two feature nodes"),
        ("cross:education*occupation", "many", "number of hash buckets"),
        ("model:learner", "Forest", "one of Linear, DNN, WideDeep"),
        ("model:examples", "DNN", "node 'examples' \\(examples\\) is not a train node"),
        ("modle:learner", "DNN", "unknown edit 'modle'.*did you mean 'model'"),
    ],
)
def test_bad_edits_name_the_key_and_the_fix(
    tiny_census_config: Path, key: str, value: object, match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load_config(tiny_census_config, {key: value})
    assert f"-p {key}" in str(info.value)
