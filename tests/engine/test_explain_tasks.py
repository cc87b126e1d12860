"""The explain node and the report's task views for multiclass and regression, end to end.

A few hundred real diamonds (a strided cut of the shared copy; generated look-alike rows
where it is absent), one epoch of a linear model: the explanation is computed with the
label's scorings and per-class weights, stored, loaded on the rerun, and the report
(``helix-tf report``, one path for every task) draws the task's views beside it.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import numpy as np
import pytest

from helix_tf import api
from helix_tf.cli import run_cli
from helix_tf.results import RunResult
from helix_tf.sample_data import write_diamonds_like
from helix_tf.views._stored import read_explanation
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.slow

CONFIG = textwrap.dedent(
    """
    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import DIAMONDS_COLUMNS

    PARAMS = {"task": "cut", "train": ""}


    def workflow(params):
        wf = Workflow("explained_" + params.task)
        wf.source("rows", sources.Csv(train=params.train, columns=DIAMONDS_COLUMNS, header=True,
                                      test_fraction=0.3, split_seed=0))
        feats = [wf.feature(c, F.Vocabulary(c)) for c in ("color", "clarity")]
        feats += [wf.feature(c, F.Numeric(c)) for c in ("carat", "depth")]
        feats.append(wf.feature("depth_band", F.Bucketize("depth", [60, 62.5])))
        if params.task == "price":
            label = F.NumericLabel("price", transform="log")
            chosen = [metrics.RMSE(), metrics.R2()]
        else:
            label = F.MulticlassLabel("cut")  # classes learned from the training split
            chosen = [metrics.MulticlassAccuracy()]
        ex = wf.examples("examples", feats, label=label)
        model = wf.train("learner", ex, learners.Linear(epochs=1, batch_size=64,
                                                        learning_rate=0.05, optimizer="adam"))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate("evaluation", preds, *chosen))
        wf.output(wf.explain("explanation", model, ex, repeats=2))
        return wf
    """
)
FEATURES = {"color", "clarity", "carat", "depth", "depth_band"}
#: Per task: the scorings that follow the label, and the views its report must draw.
TASKS = {
    "cut": (["multiclass_accuracy", "multiclass_log_loss"], ["confusion"]),
    "price": (["rmse", "r2"], ["predicted_vs_actual", "residuals"]),
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("explain_tasks")
    shared = SHARED_DATA / "diamonds" / "diamonds.csv"
    data = root / "diamonds.csv"
    if shared.exists():  # every 135th row: ~400 rows over the whole (price-sorted) table
        lines = shared.read_text(encoding="utf-8").splitlines()
        data.write_text("\n".join([lines[0], *lines[1::135]]) + "\n", encoding="utf-8")
    else:
        data = write_diamonds_like(root / "generated", rows=400, seed=2)
    config = root / "explained.py"
    config.write_text(CONFIG)
    return {"root": root, "config": str(config), "data": str(data)}


def _run(setup: dict[str, Any], task: str) -> RunResult:
    store = str(setup["root"] / f"store-{task}")
    return api.run(setup["config"], params={"train": setup["data"], "task": task}, store=store)


def _check_task(
    setup: dict[str, Any], task: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], RunResult]:
    monkeypatch.setenv("HELIX_TF_SERVER", "off")
    scoring, task_views = TASKS[task]
    first = _run(setup, task)
    states = {n.name: n.state for n in first.nodes}
    assert states["explanation"] == "compute"
    explained = first.explanation("explanation")
    assert explained["scoring"] == scoring and explained["task"] == {"cut": "multiclass"}.get(
        task, "regression"
    )
    assert set(explained["features"]) == FEATURES
    for name in scoring:
        assert np.isfinite(explained["baseline"][name])
        assert all(np.isfinite(f[name]) for f in explained["features"].values())
    # Stored: the store's copy is the result the run held.
    fp = {n.name: n.fingerprint for n in first.nodes}["explanation"]
    assert read_explanation(first.store_url, fp, "explanation") == json.loads(json.dumps(explained))
    linear = explained["linear"]
    assert set(linear["features"]) == FEATURES
    # Reloaded on the rerun, not recomputed.
    again = _run(setup, task)
    assert {n.name: n.state for n in again.nodes}["explanation"] == "load"
    assert again.explanation("explanation") == json.loads(json.dumps(explained))
    # The report, through the CLI: the task's views, the importance and the weights.
    page = setup["root"] / f"{task}.html"
    argv = ["report", setup["config"], "--store", first.store_url, "--html", str(page)]
    assert run_cli([*argv, "-p", f"train={setup['data']}", "-p", f"task={task}"]) == 0
    html = page.read_text()
    shown = [part.split('"')[0] for part in html.split('data-view="')[1:]]
    assert shown == [*task_views, "importance", "weights"], shown
    return explained, first


def test_multiclass_explanation_end_to_end(setup: dict[str, Any], monkeypatch) -> None:
    explained, _ = _check_task(setup, "cut", monkeypatch)
    classes = set(explained["linear"]["classes"])
    assert classes == {"Fair", "Good", "Very Good", "Premium", "Ideal"}  # learned, named
    clarity = explained["linear"]["features"]["clarity"]
    assert set(clarity["classes"]) == classes
    assert all(" → " in label for _, label, _ in explained["linear"]["positive"])


@pytest.mark.ci
def test_regression_explanation_end_to_end(setup: dict[str, Any], monkeypatch) -> None:
    explained, result = _check_task(setup, "price", monkeypatch)
    assert explained["linear"]["transform"] == "log" and "classes" not in explained["linear"]
    # Carat drives a diamond's price: shuffling it raises the RMSE most (in dollars).
    assert next(iter(explained["features"])) == "carat"
    assert explained["features"]["carat"]["rmse"] > 0 and explained["baseline"]["rmse"] > 10
    # Weights in log-price units: the model trains on the standardised target.
    model = result.model("learner")
    raw = float(np.asarray(model.get_layer("w_carat").weights[0]).ravel()[0])
    std = model.get_layer("rescale").std
    assert std != 1.0
    carat = explained["linear"]["features"]["carat"]
    (shown,) = [w for _, w in carat["positive"] + carat["negative"]]
    assert shown == pytest.approx(raw * std)
    # A feature with no training statistics names its values too (QA 28: "#0".."#3").
    band = explained["linear"]["features"]["depth_band"]
    named = {name for name, _ in band["positive"] + band["negative"]}
    assert named <= {"< 60", "[60, 62.5)", ">= 62.5", "<missing>"} and len(named) >= 3, named
