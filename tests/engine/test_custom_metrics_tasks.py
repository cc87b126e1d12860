"""``metrics.Custom`` evaluates labels of every task: a user's function gets what the
built-in metrics get (class indices and one probability column per class; a regression
target and predictions on the original scale), so it reproduces their values."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf import api
from helix_tf.sample_data import write_diamonds_like
from tests.conftest import write_config

DIAMONDS = """\
import numpy as np

from helix_tf.sample_data import DIAMONDS_COLUMNS, DIAMONDS_CUTS


def mean_absolute(y, p, frame):
    return float(np.abs(y - p).mean())


def top_one(y, s, frame):
    return {"hit": float((s.argmax(axis=1) == y).mean()), "classes": float(s.shape[1])}


def workflow(params):
    wf = Workflow("diamonds_custom")
    wf.source("diamonds", sources.Csv(train=r"$path", columns=DIAMONDS_COLUMNS, header=True,
                                      test_fraction=0.2, split_seed=0))
    features = [wf.feature("carat", F.Numeric("carat")), wf.feature("color", F.Vocabulary("color"))]
    label = ($label)
    examples = wf.examples("examples", features, label=label)
    model = wf.train("learner", examples, learners.Linear(epochs=2, batch_size=64))
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, $metrics))
    return wf
"""

TASKS = {
    "regression": (
        'F.NumericLabel("price", transform="log")',
        'metrics.MAE(), metrics.Custom(name="my_mae", fn=mean_absolute)',
    ),
    "multiclass": (
        'F.MulticlassLabel("cut", classes=DIAMONDS_CUTS)',
        'metrics.MulticlassAccuracy(), metrics.Custom(name="top", fn=top_one)',
    ),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_custom_metric_matches_the_built_in_one_for_every_task(tmp_path: Path, task: str) -> None:
    data = write_diamonds_like(tmp_path / "data", rows=500, seed=2)
    label, metric_list = TASKS[task]
    config = write_config(tmp_path, DIAMONDS, path=data, label=label, metrics=metric_list)
    metrics = api.run(config, store=str(tmp_path / "store")).metrics
    if task == "regression":  # in dollars: the label's log transform undone, as MAE's
        assert metrics["my_mae"] == pytest.approx(metrics["mae"], rel=1e-9)
        assert metrics["mae"] > 1.0
    else:
        assert metrics["top/hit"] == pytest.approx(metrics["accuracy"], rel=1e-9)
        assert metrics["top/classes"] == 5.0
