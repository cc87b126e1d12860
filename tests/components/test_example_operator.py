"""The worked example of docs/ARCHITECTURE.md ("Writing an operator"): a new feature
operator in one file, and its test with :mod:`helix_tf.testing`.

In a project the operator would be its own module (``my_features.py``) that a config
imports; here it sits at the top of its test so the example is one file that runs, and a
config imports it from here for a real run (compile, Beam preprocessing, training,
reuse): nothing outside this file is edited to add it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.compiler.graph import compile_workflow
from helix_tf.components.features import Analyzer, Feature, Input
from helix_tf.errors import ConfigError
from helix_tf.testing import check_fingerprints, check_spec_round_trip, transform_table
from helix_tf.types import NUMERIC
from tests.conftest import write_config

# --------------------------------------------------------------------- the operator


class _Range(Analyzer):
    """The smallest and largest value of the training split (missing values ignored)."""

    def create(self) -> list[float]:
        return [np.inf, -np.inf]

    def add(self, acc: list[float], values: list[Any]) -> list[float]:
        x = np.asarray(values[0], dtype=np.float64)
        x = x[~np.isnan(x)]
        return [
            min(acc[0], float(x.min(initial=np.inf))),
            max(acc[1], float(x.max(initial=-np.inf))),
        ]

    def merge(self, accs: Sequence[list[float]]) -> list[float]:
        return [min(a[0] for a in accs), max(a[1] for a in accs)]

    def finalize(self, acc: list[float]) -> dict[str, float]:
        low, high = acc
        return {"low": low, "high": high} if low <= high else {"low": 0.0, "high": 1.0}


@dataclasses.dataclass(frozen=True)
class MinMax(Feature):
    """A numeric column scaled to [0, 1] by the training split's range.

    Values outside the range are clipped when ``clip`` is true; missing values are 0.
    """

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    _: dataclasses.KW_ONLY
    clip: bool = True

    def validate(self) -> list[str]:
        if not isinstance(self.column, str) or not self.column:
            return [f"column must be a column name, but got {self.column!r}"]
        return []

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return NUMERIC

    def analyzer(self) -> Analyzer | None:
        return _Range()

    def transform(self, values: list[Any], state: Any, n: int) -> np.ndarray:
        x = np.asarray(values[0], dtype=np.float64)
        span = (state["high"] - state["low"]) or 1.0
        scaled = (x - state["low"]) / span
        if self.clip:
            scaled = np.clip(scaled, 0.0, 1.0)
        return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


# --------------------------------------------------------------------- its test


def make_minmax() -> MinMax:
    """Module level, so that check_fingerprints can build it in a fresh process too."""
    return MinMax("age")


def test_spec_round_trips() -> None:
    assert check_spec_round_trip(MinMax("age", clip=False)) == MinMax("age", clip=False)


def test_fingerprint_is_stable_and_every_parameter_changes_it() -> None:
    columns = {"age": "int", "hours": "int"}
    check_fingerprints(make_minmax, columns, changes={"column": "hours", "clip": False})


def test_transform_scales_by_the_training_range() -> None:
    train = pd.DataFrame({"age": [20, 30, None, 60]})
    table = pd.DataFrame({"age": [20, 40, 80, None]})
    out = transform_table(MinMax("age"), table, train=train)
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0, 0.0])
    unclipped = transform_table(MinMax("age", clip=False), table, train=train)
    np.testing.assert_allclose(unclipped, [0.0, 0.5, 1.5, 0.0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MinMax(""), "column must be a column name"),
        (lambda: MinMax(3), "but got 3"),
    ],
)
def test_bad_parameters_are_config_errors(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_it_compiles_in_a_workflow(tmp_path: Any) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("25,yes\n61,no\n")
    wf = Workflow("example")
    wf.source("rows", sources.Csv(train=str(data), columns={"age": "int", "y": "string"}))
    age = wf.feature("age_scaled", MinMax("age"))
    examples = wf.examples("examples", [age], label=F.Label("y", positive="yes"))
    model = wf.train("model", examples, learners.Linear(epochs=1))
    predictions = wf.predict("predictions", model, examples, split="train")
    wf.evaluate("quality", predictions, metrics.Accuracy())
    node = compile_workflow(wf).node("age_scaled")
    assert node.output_type == "feature:numeric" and node.params == {"column": "age", "clip": True}


#: A config that uses the operator like any built-in feature (imported from its module).
_CONFIG = """\
from tests.components.test_example_operator import MinMax

PARAMS = {"clip": True}


def workflow(params):
    wf = Workflow("minmax_census")
    wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))
    age = wf.feature("age01", MinMax("age", clip=params.clip))
    hours = wf.feature("hours", F.Numeric("hours_per_week"))
    examples = wf.examples("examples", [age, hours], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=128))
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, metrics.Accuracy()))
    return wf
"""


@pytest.mark.slow
@pytest.mark.ci  # the promise of docs/ARCHITECTURE.md, checked by a real run in CI
def test_it_runs_and_is_reused_like_a_built_in(tmp_path: Any, census_like: Any) -> None:
    from helix_tf import api

    train, test = census_like
    config = write_config(tmp_path, _CONFIG, train=train, test=test)
    first = api.run(config)
    states = {n.name: n.state for n in first.nodes}
    assert states["age01"] == "compute" and 0.0 <= first.metrics["accuracy"] <= 1.0

    again = api.run(config)
    assert {n.name: n.state for n in again.nodes}["age01"] != "compute"
    assert again.metrics == first.metrics

    changed = api.run(config, params=["clip=False"])  # a parameter of the new operator
    assert {n.name: n.state for n in changed.nodes}["age01"] == "compute"
