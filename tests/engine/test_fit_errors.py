"""A user's ``fit`` that fails while learning from the training split (QA pass 18).

``DatasetUdf(fit=...)`` raising (a library refusing too few rows, a bug) escaped the
run as a bare traceback in process, and as "the Beam pipeline failed: ValueError: ..."
in Beam: no node, no line of the user's code. It now fails its node naming the error,
the line of the fit and the fix, as a transform's error does. In an approximate run
whose sample at the source is too small for the fit, the sample is drawn at training
instead, where the fit sees every row as in the exact run.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

import helix_tf
from helix_tf.errors import ExecutionError
from tests.conftest import write_config

CONFIG = """\
PARAMS = {"least": 100}


def fit(frame):
    if len(frame) < LEAST[0]:
        raise ValueError(f"n_samples={len(frame)} should be >= {LEAST[0]}")
    return {"mean": float(frame["x"].mean())}


def apply(batch, state):
    return batch["x"] - state["mean"]


LEAST = [100]


def workflow(params):
    LEAST[0] = params.least
    wf = Workflow("fitted")
    columns = {"x": "float", "y": "string"}
    wf.source("rows", sources.Csv(train=r"$train", header=True, columns=columns, test_fraction=0.2))
    centred = F.DatasetUdf(fit=fit, apply=apply, columns=["x"])
    ex = wf.examples("examples", [wf.feature("x", centred)], label=F.Label("y", positive="yes"))
    model = wf.train("learner", ex, learners.Linear(epochs=1, batch_size=64))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, ex), metrics.Accuracy()))
    return wf
"""


@pytest.fixture
def fitted(tmp_path: Path) -> Path:
    rng = random.Random(1)
    rows = [(rng.random(), rng.random()) for _ in range(300)]
    data = tmp_path / "rows.csv"
    body = "".join(f"{x:.4f},{'yes' if x + e / 3 > 0.6 else 'no'}\n" for x, e in rows)
    data.write_text("x,y\n" + body, encoding="utf-8")
    return write_config(tmp_path, CONFIG, train=data)


def test_a_failing_fit_names_its_node_and_line(fitted: Path, store: str) -> None:
    with pytest.raises(ExecutionError) as caught:
        helix_tf.run(fitted, store=store, params={"least": 1000})
    assert caught.value.node == "x"
    message = str(caught.value)
    assert re.search(r"ValueError: n_samples=\d+ should be >= 1000", message)
    assert re.search(re.escape(str(fitted)) + r":\d+, in fit", message)
    assert "training split" in message


def test_a_sample_too_small_for_the_fit_is_drawn_at_training(fitted: Path, store: str) -> None:
    approx = helix_tf.Approx(sample=0.1, seed=0, min_saving_seconds=0)
    result = helix_tf.run(fitted, store=store, approx=approx)
    assert result.approx
    assert any("should be >= 100" in n and "at training" in n for n in result.notes)
