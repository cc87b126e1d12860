"""Search spaces: declared SEARCH (checked like -p) or derived from the workflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helix_tf import search
from helix_tf.errors import ConfigError
from tests.conftest import TINY_CENSUS

DECLARED = TINY_CENSUS.replace(
    'PARAMS = {"epochs": 1}',
    "from helix_tf import search\n"
    'PARAMS = {"epochs": 1}\n'
    'SEARCH = {"learner.l2": search.Float(1e-6, 1e-2, log=True), "epochs": search.Int(1, 3),\n'
    '          "education.min_count": search.Choice(1, 5)$extra}',
)


def _config(make_config: Callable[..., Path], census_like: tuple[Path, Path], extra: str) -> Path:
    train, test = census_like
    return make_config(DECLARED, train=train, test=test, extra=extra)


def test_declared_space_is_used_with_current_values(make_config, census_like) -> None:
    space = search.search_space(_config(make_config, census_like, ""))
    assert space.declared
    assert list(space.dimensions) == ["learner.l2", "epochs", "education.min_count"]
    assert space.current == {"learner.l2": 0.0, "epochs": 1, "education.min_count": 1}
    assert space.to_dict()["dimensions"]["learner.l2"] == {
        "type": "float",
        "low": 1e-6,
        "high": 1e-2,
        "log": True,
        "current": 0.0,
    }


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (', "learner.l9": search.Float(0.1, 1)', "no parameter 'l9'"),
        (', "nosuch.l1": search.Float(0.1, 1)', "no node 'nosuch'"),
        (', "epochz": search.Int(1, 2)', "not a parameter of this config"),
        (', "learner.l1": 0.5', "expected search.Float"),
    ],
)
def test_declared_space_keys_are_checked_like_p(make_config, census_like, extra, match) -> None:
    with pytest.raises(ConfigError, match=match):
        search.search_space(_config(make_config, census_like, extra))


# Every value a trial may take is checked, not only the first: a Choice's later values and
# a range's upper bound (QA 27: SEARCH with Choice("adam", "nadam") was accepted and
# every trial drawing "nadam" failed).
@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (', "learner.optimizer": search.Choice("adam", "nadam")', "but got 'nadam'"),
        (', "model:learner": search.Choice("Linear", "Forest")', r"model:learner='Forest'"),
        (', "learner.l2": search.Choice(0.0, 1e-3, -1.0)', "l2 must be >= 0"),
    ],
)
def test_every_value_of_a_declared_dimension_is_checked_like_p(
    make_config, census_like, extra, match
) -> None:
    with pytest.raises(ConfigError, match=match) as raised:
        search.search_space(_config(make_config, census_like, extra))
    assert all(p.startswith("SEARCH: ") for p in raised.value.problems)


def test_every_bad_value_is_reported_together(make_config, census_like) -> None:
    extra = (
        ', "learner.optimizer": search.Choice("adam", "nadam"),'
        ' "model:learner": search.Choice("Linear", "Forest")'
    )
    with pytest.raises(ConfigError) as raised:
        search.search_space(_config(make_config, census_like, extra))
    assert len(raised.value.problems) == 2


def test_derived_space_covers_learner_and_vocabularies(tiny_census_config: Path) -> None:
    space = search.search_space(tiny_census_config)
    assert not space.declared
    dims = space.dimensions
    assert dims["learner.learning_rate"] == search.Float(0.005, 0.5, log=True)  # around 0.05
    assert {
        "learner.l1",
        "learner.l2",
        "learner.epochs",
        "education.min_count",
        "occupation.min_count",
    } <= set(dims)
    assert not any(k.startswith(("rows.", "examples.")) for k in dims)  # never the label


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: search.Float(1, 0), "low < high"),
        (lambda: search.Float(0, 1, log=True), "low > 0"),
        (lambda: search.Int(1.5, 3), "integer bounds"),
        (lambda: search.Choice("a"), "at least two"),
        (lambda: search.Choice([1], [2]), "numbers, strings"),
    ],
)
def test_dimensions_reject_bad_bounds(make, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_derived_space_holds_the_structural_edits_and_every_one_loads(
    tiny_census_config: Path,
) -> None:
    from helix_tf.config import load_config
    from helix_tf.sample_data import CENSUS_COLUMNS

    space = search.search_space(tiny_census_config)
    dims = space.dimensions
    assert dims["model:learner"] == search.Choice("Linear", "DNN", "WideDeep")
    added = {k.removeprefix("add:") for k in dims if k.startswith("add:")}
    used = {"age", "hours_per_week", "education", "occupation", "income"}
    assert added == set(dict(CENSUS_COLUMNS)) - used  # every unused column, never the label
    assert dims["add:capital_loss"] == search.Choice(None, "numeric")
    assert dims["add:workclass"] == search.Choice(None, "vocabulary")
    cuts = [float(c) for c in dims["bucketize:age"].values[1].split(",")]
    assert cuts == sorted(cuts) and len(cuts) >= 3  # deciles of the training rows
    assert "bucketize:hours" in dims
    assert dims["cross:education*occupation"] == search.Choice(None, search.CROSS_BUCKETS)
    assert all(space.current[k] is None for k in dims if k.startswith(("add:", "bucket", "cross")))
    # Every edit at once is a valid -p set: a proposal is always a reproducible change.
    every = {k: d.values[-1] for k, d in dims.items() if isinstance(d, search.Choice)}
    wf = load_config(tiny_census_config, every).workflow
    assert len(wf.declaration("examples").refs["features"]) == 4 + len(added) + 1


def test_declared_structural_edits_are_checked_like_p(make_config, census_like) -> None:
    good = ', "model:learner": search.Choice("Linear", "DNN"), "add:race": search.Choice(None, "vocabulary")'
    space = search.search_space(_config(make_config, census_like, good))
    assert space.current["model:learner"] == "Linear" and space.current["add:race"] is None
    bad = ', "add:age": search.Choice(None, "numeric")'
    with pytest.raises(ConfigError, match="already has a node 'age'"):
        search.search_space(_config(make_config, census_like, bad))


def test_a_dnn_is_swapped_only_for_dnn_kinds_its_searched_parameters_fit(
    tiny_census_config: Path,
) -> None:
    from helix_tf.config import load_config

    text = tiny_census_config.read_text().replace("learners.Linear(", "learners.DNN(dropout=0.1, ")
    tiny_census_config.write_text(text)
    space = search.search_space(tiny_census_config)
    assert space.dimensions["model:learner"] == search.Choice("DNN", "WideDeep")
    assert "learner.dropout" in space.dimensions
    load_config(tiny_census_config, {"model:learner": "WideDeep", "learner.dropout": 0.3})
