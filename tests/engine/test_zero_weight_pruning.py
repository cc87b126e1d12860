"""Zero-weight feature pruning (DESIGN §9): features whose learned weights are all
exactly zero are neither read nor fed at inference, and predictions do not change."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helix_tf import api
from helix_tf.results import RunResult
from helix_tf.reuse.store import ArtifactStore
from helix_tf.sample_data import write_census_like

CONFIG = textwrap.dedent(
    """
    import numpy as np
    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import CENSUS_COLUMNS

    PARAMS = {"train": "", "test": ""}


    def workflow(params):
        wf = Workflow("sparse")
        wf.source("rows", sources.Csv(
            train=params.train, test=params.test, columns=CENSUS_COLUMNS,
            skip_lines={"test": 1}, replace={"income": {">50K.": ">50K", "<=50K.": "<=50K"}}))

        @wf.udf("noise_code", batched=True, output="categorical", size=500)
        def noise_code(batch):
            # A pure-noise categorical feature: L1 drives every one of its weights to 0.
            return (batch["fnlwgt"].fillna(0).to_numpy().astype(np.int64) * 7919) % 500

        feats = [
            wf.feature("education", F.Vocabulary("education")),
            wf.feature("age", F.Numeric("age")),
            noise_code,
        ]
        ex = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
        model = wf.train("learner", ex, learners.Linear(
            optimizer="ftrl", l1=0.05, learning_rate=0.5, epochs=2, batch_size=256))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate("evaluation", preds, metrics.Accuracy(), metrics.LogLoss()))
        return wf
    """
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sparse")
    train, test = write_census_like(root / "data", train_rows=1500, test_rows=500, seed=5)
    config = root / "sparse.py"
    config.write_text(CONFIG)
    return {"root": str(root), "config": str(config), "train": str(train), "test": str(test)}


@dataclasses.dataclass(frozen=True)
class Plain:
    """One run of the config with the defaults (pruning at inference, no retraining),
    everything kept; tests that build on it work on copies of its store."""

    store: Path
    result: RunResult

    def copy(self, name: str) -> str:
        target = self.store.with_name(name)
        shutil.copytree(self.store, target)
        return str(target)


@pytest.fixture(scope="module")
def plain(setup: dict[str, str]) -> Plain:
    params = {"train": setup["train"], "test": setup["test"]}
    store = Path(setup["root"]) / "store-plain"
    result = api.run(setup["config"], params=params, store=str(store), materialize="all")
    return Plain(store=store, result=result)


def _predictions(store: str, fingerprint: str) -> list[float]:
    s = ArtifactStore(store)
    m = s.lookup(fingerprint)
    assert m is not None
    local = s.open_local(m)
    assert local is not None
    return pq.read_table(Path(local) / "test" / "000000.parquet").column("__score").to_pylist()


@pytest.mark.slow
@pytest.mark.ci
def test_zero_weight_features_are_pruned_and_predictions_do_not_change(
    setup: dict[str, str], plain: Plain
) -> None:
    params = {"train": setup["train"], "test": setup["test"]}
    store_p, pruned = str(plain.store), plain.result  # pruning is the default
    store_f = str(Path(setup["root"]) / "store-no-pruning")
    full = api.run(
        setup["config"], params=params, store=store_f, materialize="all", prune_zero_weight=False
    )
    predict_p = next(n for n in pruned.nodes if n.name == "predictions")
    predict_f = next(n for n in full.nodes if n.name == "predictions")
    # The noise feature's 500 weights are exactly zero, so inference does not read it ...
    assert "pruned from inference: all 500 weights of noise_code are 0" in predict_p.reason
    assert "pruned from inference" not in predict_f.reason
    assert any("noise_code" in note for note in pruned.notes)
    # ... and the predictions are identical to the last bit.
    assert pruned.metrics == full.metrics
    assert _predictions(store_p, predict_p.fingerprint) == _predictions(
        store_f, predict_f.fingerprint
    )


@pytest.mark.slow
@pytest.mark.ci
def test_plan_explains_pruning_from_a_stored_model(setup: dict[str, str], plain: Plain) -> None:
    params = {"train": setup["train"], "test": setup["test"]}
    store = plain.copy("store-plan")
    # Drop the stored predictions so the next plan recomputes them from the stored model.
    s = ArtifactStore(store)
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config

    compiled = compile_workflow(load_config(setup["config"], params).workflow)
    for name in ("predictions", "evaluation"):
        s.delete(compiled.node(name).fingerprint)
    plan = api.plan(setup["config"], params=params, store=store)
    predict = next(d for d in plan.nodes if d.name == "predictions")
    assert predict.state == "compute"
    assert "all 500 weights of noise_code are 0 in model" in predict.reason


@pytest.mark.slow
@pytest.mark.ci
def test_retrain_without_zero_weight_features_equals_a_fresh_run_without_them(
    setup: dict[str, str],
) -> None:
    params = {"train": setup["train"], "test": setup["test"]}
    store = str(Path(setup["root"]) / "store-retrain")
    result = api.run(
        setup["config"], params=params, store=store, materialize="all", retrain_without_zero=True
    )
    info = result.retrained
    assert info is not None
    assert info["dropped"] == {"examples": {"noise_code": 500}}
    assert info["difference"] == {
        k: result.metrics[k] - info["full_metrics"][k] for k in ("accuracy", "log_loss")
    }
    assert info["full_run_id"] < result.run_id
    # The retrained model is exactly what a config without the feature trains from scratch.
    without = Path(setup["root"]) / "sparse_without.py"
    without.write_text(CONFIG.replace("noise_code,\n", ""))
    fresh = api.run(str(without), params=params, store=str(Path(setup["root"]) / "store-without"))
    assert fresh.metrics == result.metrics
    # Asking again reuses both runs' results: nothing is computed.
    again = api.run(
        setup["config"], params=params, store=store, materialize="all", retrain_without_zero=True
    )
    assert {n.state for n in again.nodes} <= {"load", "prune"}
    assert again.metrics == result.metrics
    assert again.retrained is not None
    assert again.retrained["dropped"] == info["dropped"]
    assert again.retrained["full_metrics"] == info["full_metrics"]


@pytest.mark.slow
@pytest.mark.ci
def test_without_the_opt_in_training_always_sees_every_feature(
    setup: dict[str, str], plain: Plain
) -> None:
    params = {"train": setup["train"], "test": setup["test"]}
    store = plain.copy("store-default")
    again = api.run(setup["config"], params=params, store=store, materialize="all")
    for result in (plain.result, again):
        assert result.retrained is None
        assert "retrained" not in result.to_dict()
    s = ArtifactStore(store)
    train = next(n for n in again.nodes if n.name == "learner")
    manifest = s.lookup(train.fingerprint)
    assert manifest is not None
    assert "noise_code" in [f["name"] for f in manifest.meta["features"]]


@pytest.mark.slow
@pytest.mark.ci
def test_retraining_after_an_exact_answer_to_an_approximate_request_stays_exact(
    setup: dict[str, str], plain: Plain
) -> None:
    import helix_tf

    params = {"train": setup["train"], "test": setup["test"]}
    store = plain.copy("store-approx-retrain")
    exact = plain.result
    result = api.run(
        setup["config"],
        params=params,
        store=store,
        approx=helix_tf.Approx(sample=0.5),
        retrain_without_zero=True,
    )
    assert result.retrained is not None
    assert result.retrained["full_metrics"] == exact.metrics
    # Both sides of the comparison are exact: the retrained run is not approximate.
    assert result.approx is False and not result.intervals
