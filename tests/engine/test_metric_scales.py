"""A regression metric on its label's transformed scale (``RMSE(scale="log")``), end to end.

QA pass 28: a test row whose label is outside the transform's domain (a price of 0 under
``scale="log"``; training's own check sees only the training split) failed "y_true must
be finite numbers, but got -inf at row 28": a position in the predictions, the
transformed value, and no fix. It names the test file's line and the fix now.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf import api
from helix_tf.errors import ExecutionError
from helix_tf.sample_data import write_diamonds_like
from tests.conftest import write_config

DIAMONDS = """\
from helix_tf.sample_data import DIAMONDS_COLUMNS


def workflow(params):
    wf = Workflow("diamonds_scales")
    wf.source("diamonds", sources.Csv(train=r"$train", test=r"$test", columns=DIAMONDS_COLUMNS,
                                      header=True))
    features = [wf.feature("carat", F.Numeric("carat"))]
    examples = wf.examples("examples", features, label=F.NumericLabel("price", transform="log"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=64))
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, metrics.RMSE(), metrics.R2(scale="log")))
    return wf
"""


def test_a_test_label_outside_a_metric_scale_names_its_line_and_the_fix(tmp_path: Path) -> None:
    lines = write_diamonds_like(tmp_path / "data", rows=300, seed=2).read_text().splitlines()
    header, rows = lines[0], lines[1:]
    price = header.split(",").index("price")
    test_rows = [r.split(",") for r in rows[200:]]
    test_rows[3][price] = "0"  # line 5 of the test file (after the header)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("\n".join([header, *rows[:200]]) + "\n")
    test.write_text("\n".join([header, *(",".join(r) for r in test_rows)]) + "\n")
    config = write_config(tmp_path, DIAMONDS, train=train, test=test)
    with pytest.raises(ExecutionError) as raised:  # the evaluation failed, naming why
        api.run(config, store=str(tmp_path / "store"))
    message = str(raised.value)
    assert f"R2(scale='log'): line 5 of {test} has label 0.0" in message, message
    assert "scale='log' needs values > 0" in message and "use scale='original'" in message
