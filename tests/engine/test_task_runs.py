"""Multiclass classification and regression end to end, through ``helix_tf.api.run``.

One small diamonds workflow (generated data) per task: every learner trains for every
task, metrics are on the right scale, an evaluation-only edit loads everything up to the
evaluation, approximate runs carry intervals, unseen classes are an error or a class,
and FTRL zero weights of a multiclass model are zero for every class.
"""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import helix_tf
from helix_tf import api
from helix_tf.cli import run_cli
from helix_tf.errors import DataError
from helix_tf.results import RunResult
from helix_tf.reuse.store import ArtifactStore
from helix_tf.sample_data import write_diamonds_like

CONFIG = textwrap.dedent(
    """
    import numpy as np
    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import DIAMONDS_COLUMNS

    PARAMS = {"task": "price", "learner": "linear", "epochs": 2, "few": False, "noise": False,
              "optimizer": "adam", "l1": 0.0, "lr": 0.05, "classes": True, "unseen": "error",
              "loss": "squared", "transform": "log", "train": "", "test": ""}

    LEARNERS = {"linear": learners.Linear, "dnn": learners.DNN, "widedeep": learners.WideDeep}


    def workflow(params):
        wf = Workflow("diamonds_" + params.task)
        split = {"test": params.test} if params.test else {"test_fraction": 0.25, "split_seed": 1}
        wf.source("rows", sources.Csv(train=params.train, columns=DIAMONDS_COLUMNS, header=True,
                                      **split))
        feats = [wf.feature(c, F.Vocabulary(c)) for c in ("color", "clarity")]
        feats.append(wf.feature("carat", F.Numeric("carat")))
        if params.task == "price":
            feats.append(wf.feature("cut", F.Vocabulary("cut")))
            label = F.NumericLabel("price", transform=params.transform or None, loss=params.loss)
            chosen = [metrics.R2(scale=params.transform or "original"), metrics.RMSE()]
            if not params.few:
                chosen += [metrics.MAE(), metrics.MAPE(), metrics.Residuals(), metrics.R2()]
        else:
            feats += [wf.feature(c, F.Numeric(c)) for c in ("depth", "table")]
            classes = ("Fair", "Good", "Very Good", "Premium", "Ideal") if params.classes else None
            label = F.MulticlassLabel("cut", classes=classes, unseen=params.unseen)
            chosen = [metrics.MulticlassAccuracy(), metrics.MulticlassLogLoss()]
            if not params.few:
                chosen += [metrics.TopKAccuracy(k=2), metrics.MulticlassPrecisionRecallF1(),
                           metrics.OneVsRestAUC(), metrics.MulticlassConfusionMatrix()]
        if params.noise:
            @wf.udf("noise", batched=True, output="categorical", size=300)
            def noise(batch):
                # by row id, not position in the batch: a value may depend on its row only
                return (batch["__row"].to_numpy() * 7919 + batch["x"].to_numpy() * 1000).astype(
                    np.int64) % 300
            feats.append(noise)
        ex = wf.examples("examples", feats, label=label)
        model = wf.train("learner", ex, LEARNERS[params.learner](
            epochs=params.epochs, batch_size=128, learning_rate=params.lr,
            optimizer=params.optimizer, l1=params.l1))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate("evaluation", preds, *chosen))
        return wf
    """
)

MULTICLASS_KEYS = {
    "accuracy",
    "log_loss",
    "top2_accuracy",
    "precision/macro",
    "f1/weighted",
    "f1/Ideal",
    "recall/Very Good",
    "auc_ovr/macro",
    "auc_ovr/Fair",
    "confusion/Ideal/Premium",
}
REGRESSION_KEYS = {"r2@log", "rmse", "mae", "mape", "r2", "residual/p50", "residual/std"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tasks")
    data = write_diamonds_like(root / "data", rows=800, seed=4)
    config = root / "diamonds.py"
    config.write_text(CONFIG)
    return {"root": root, "config": str(config), "data": str(data), "n": 0}


def _run(
    setup: dict[str, Any], store: str | None = None, materialize: str = "helix", **params: Any
) -> RunResult:
    if store is None:
        setup["n"] += 1
        store = str(setup["root"] / f"store-{setup['n']}")
    return api.run(
        setup["config"],
        params={"train": setup["data"], **params},
        store=store,
        materialize=materialize,
    )


def _states(result: RunResult) -> dict[str, str]:
    return {n.name: n.state for n in result.nodes}


def _read(store: str, result: RunResult, node: str) -> pd.DataFrame:
    fp = {n.name: n.fingerprint for n in result.nodes}[node]
    s = ArtifactStore(store)
    manifest = s.lookup(fp)
    assert manifest is not None
    local = s.open_local(manifest)
    assert local is not None
    return pq.read_table(Path(local) / "test").to_pandas()


@pytest.mark.slow
@pytest.mark.ci
def test_regression_end_to_end_on_the_original_scale(setup: dict[str, Any]) -> None:
    store = str(setup["root"] / "price")
    result = _run(setup, store, task="price", epochs=5)
    assert set(result.metrics) >= REGRESSION_KEYS
    m = result.metrics
    assert m["r2@log"] > 0.6  # learned: a constant prediction has R² 0
    assert m["rmse"] > 50 and m["mae"] > 10  # dollars, not log dollars
    assert m["residual/std"] > 50
    preds = _read(store, result, "predictions")
    assert preds["__score"].min() > 100 and preds["__label"].min() >= 326  # both in dollars
    assert set(_states(result).values()) == {"compute"}
    # The report draws predicted vs actual and the residuals from the stored predictions.
    page = setup["root"] / "price.html"
    argv = ["report", setup["config"], "--store", store, "--html", str(page)]
    argv += ["-p", f"train={setup['data']}", "-p", "task=price", "-p", "epochs=5"]
    assert run_cli(argv) == 0
    html = page.read_text()
    assert 'data-view="predicted_vs_actual"' in html and 'data-view="residuals"' in html
    assert 'data-view="confusion"' not in html and 'data-view="roc"' not in html


@pytest.mark.slow
@pytest.mark.ci
def test_multiclass_end_to_end_with_learned_classes(setup: dict[str, Any]) -> None:
    store = str(setup["root"] / "cut")
    result = _run(setup, store, task="cut", learner="dnn", epochs=5, classes=False, lr=0.01)
    assert set(result.metrics) >= MULTICLASS_KEYS
    m = result.metrics
    assert m["accuracy"] > 0.45  # above the majority class (~0.40) on 600 training rows
    assert m["top2_accuracy"] >= m["accuracy"]
    confusion = sum(v for k, v in m.items() if k.startswith("confusion/"))
    assert confusion == {n.name: n.rows for n in result.nodes}["predictions"]
    preds = _read(store, result, "predictions")
    scores = preds["__score"].to_list()
    assert len(scores[0]) == 5 and abs(sum(scores[0]) - 1) < 1e-6
    # The CLI shows the confusion matrix as a grid, not as 25 rows of metrics.
    argv = ["run", setup["config"], "--store", store, "-p", f"train={setup['data']}"]
    argv += ["-p", "task=cut", "-p", "learner=dnn", "-p", "epochs=5", "-p", "classes=False"]
    argv += ["-p", "lr=0.01"]
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        assert run_cli(argv) == 0
    text = shown.getvalue()
    assert "confusion matrix (rows: true class" in text and "confusion/" not in text
    assert "f1/macro" in text and "auc_ovr/Ideal" in text
    history = ["history", setup["config"], "--store", store, *argv[4:]]
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        assert run_cli(history) == 0
    text = shown.getvalue()
    assert "25 confusion" in text and "confusion/Fair" not in text and "accuracy" in text


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("task", ["price", "cut"])
def test_an_evaluation_only_edit_loads_everything_up_to_the_evaluation(
    setup: dict[str, Any], task: str
) -> None:
    store = str(setup["root"] / f"eval-edit-{task}")
    first = _run(setup, store, task=task, few=True)
    edited = _run(setup, store, task=task, few=False)
    states = _states(edited)
    assert states["evaluation"] == "compute"
    assert states["predictions"] == "load"
    assert all(s in ("load", "prune") for n, s in states.items() if n != "evaluation"), states
    for key, value in first.metrics.items():
        assert edited.metrics[key] == value, key
    again = _run(setup, store, task=task, few=False)
    assert again.metrics == edited.metrics and _states(again)["evaluation"] == "load"


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("task", ["price", "cut"])
def test_approximate_runs_are_marked_with_an_interval_per_metric(
    setup: dict[str, Any], task: str
) -> None:
    setup["n"] += 1
    store = str(setup["root"] / f"approx-{task}")
    result = api.run(
        setup["config"],
        params={"train": setup["data"], "task": task},
        store=store,
        approx=helix_tf.Approx(sample=0.5),
    )
    assert result.approx is True
    assert set(result.intervals) == set(result.metrics)
    for key, (low, high) in result.intervals.items():
        assert low <= result.metrics[key] <= high, key


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["linear", "dnn", "widedeep"])
@pytest.mark.parametrize("task", ["price", "cut"])
def test_every_learner_for_every_task(setup: dict[str, Any], learner: str, task: str) -> None:
    result = _run(setup, task=task, learner=learner, epochs=1, few=True)
    if task == "price":
        assert result.metrics["r2@log"] > -1 and result.metrics["rmse"] > 0
    else:
        assert 0 <= result.metrics["accuracy"] <= 1 and result.metrics["log_loss"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["absolute", "huber"])
def test_regression_losses(setup: dict[str, Any], loss: str) -> None:
    result = _run(setup, task="price", epochs=5, loss=loss, few=True)
    assert result.metrics["r2@log"] > 0.5


def _split_without(setup: dict[str, Any], cls: str) -> tuple[str, str]:
    frame = pd.read_csv(setup["data"])
    train = frame[frame["cut"] != cls].iloc[:500]
    test = pd.concat([frame[frame["cut"] != cls].iloc[500:600], frame[frame["cut"] == cls][:3]])
    root = setup["root"] / f"without-{cls}"
    root.mkdir(exist_ok=True)
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    return str(root / "train.csv"), str(root / "test.csv")


@pytest.mark.slow
@pytest.mark.ci
def test_a_class_unseen_in_training_is_an_error_or_a_class_of_its_own(
    setup: dict[str, Any],
) -> None:
    train, test = _split_without(setup, "Fair")
    params = {"task": "cut", "classes": False, "few": True, "epochs": 1, "test": test}
    with pytest.raises(DataError, match=r"'Fair'.*not one of the classes seen in the training"):
        api.run(setup["config"], params={**params, "train": train}, store=str(setup["root"] / "u1"))
    result = api.run(
        setup["config"],
        params={**params, "train": train, "unseen": "other", "few": False},
        store=str(setup["root"] / "u2"),
    )
    assert "f1/<other>" in result.metrics and "confusion/<other>/Ideal" in result.metrics
    assert "f1/Fair" not in result.metrics  # learned classes: only what training saw
    assert sum(v for k, v in result.metrics.items() if k.startswith("confusion/<other>/")) == 3


@pytest.mark.slow
@pytest.mark.ci
def test_multiclass_zero_weights_are_zero_for_every_class_and_pruned(
    setup: dict[str, Any],
) -> None:
    params = dict(task="cut", noise=True, optimizer="ftrl", l1=0.2, lr=0.5, epochs=3, few=True)
    runs = {}
    for prune in (True, False):
        store = str(setup["root"] / f"zero-{prune}")
        result = api.run(
            setup["config"],
            params={"train": setup["data"], **params},
            store=store,
            materialize="all",
            prune_zero_weight=prune,
        )
        runs[prune] = (result, _read(store, result, "predictions"))
    (pruned, p_preds), (full, f_preds) = runs[True], runs[False]
    predict_p = next(n for n in pruned.nodes if n.name == "predictions")
    predict_f = next(n for n in full.nodes if n.name == "predictions")
    # 300 indices x 5 classes: every weight of the noise feature, for every class, is zero.
    assert "all 1,500 weights of noise are 0" in predict_p.reason
    assert "of clarity" not in predict_p.reason  # a real feature keeps weights
    assert "pruned from inference" not in predict_f.reason
    assert pruned.metrics == full.metrics
    assert np.array_equal(np.stack(p_preds["__score"]), np.stack(f_preds["__score"]))


@pytest.mark.slow
@pytest.mark.ci
def test_a_loss_edit_retrains_on_the_stored_examples_and_equals_a_fresh_run(
    setup: dict[str, Any],
) -> None:
    store = str(setup["root"] / "loss-edit")
    # The examples stored: the helix policy may not store a tiny run's preprocessing.
    _run(setup, store, "all", task="price", few=True)
    edited = _run(setup, store, task="price", few=True, loss="huber")
    states = _states(edited)
    assert states["examples"] in ("load", "prune") and states["rows"] in ("load", "prune")
    assert states["learner"] == "compute"
    assert edited.metrics == _run(setup, task="price", few=True, loss="huber").metrics


@pytest.mark.slow
def test_a_label_outside_the_transform_domain_fails_training_naming_the_row(
    setup: dict[str, Any],
) -> None:
    frame = pd.read_csv(setup["data"])
    frame.loc[5, "price"] = 0
    path = setup["root"] / "zero-price.csv"
    frame.to_csv(path, index=False)
    params = {"train": str(path), "task": "price", "few": True, "epochs": 1}
    store = str(setup["root"] / "zero-price")
    result = api.run(setup["config"], params={**params, "transform": ""}, store=store)
    assert result.metrics  # the examples hold the zero; without a transform it trains
    expected = (
        rf"line 7 of {re.escape(str(path))} has label 0\.0 in column 'price', but transform='log'"
    )
    with pytest.raises(DataError, match=expected):  # the file too (was "row 7 (line number…)")
        # log price cannot learn a zero price: the stored examples are reused, training says so
        api.run(setup["config"], params=params, store=store)
