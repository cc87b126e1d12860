"""The explain node and the model views end to end: a tiny census run, its reruns, its report.

Real Beam and Keras (slow); one bounded set also runs in CI.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from helix_tf import api, views
from helix_tf.errors import StoreError
from helix_tf.report import render_report
from helix_tf.results import RunResult
from helix_tf.reuse.metadata import MetadataStore
from helix_tf.views._stored import RunReader
from tests.conftest import TINY_CENSUS, write_config

pytestmark = [pytest.mark.slow, pytest.mark.ci]

VIEWED = TINY_CENSUS.replace(
    "metrics.Accuracy(), metrics.AUC()", 'metrics.Accuracy(slice_by="sex"), metrics.AUC()'
).replace(
    "    return wf\n", '    wf.output(wf.explain("explanation", model, examples))\n    return wf\n'
)
VIEWS = ("roc", "precision_recall", "calibration", "confusion", "slices", "importance", "weights")


@dataclasses.dataclass
class Runs:
    config: Path
    store: str
    first: RunResult
    again: RunResult
    evaluation_edit: RunResult
    learner_edit: RunResult


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]) -> Runs:
    folder = tmp_path_factory.mktemp("explain_runs")
    train, test = census_like
    config = write_config(folder, VIEWED, train=train, test=test)
    store = str(folder / "store")
    # The same workflow with one metric less: only the evaluation changes.
    edited = write_config(
        folder,
        VIEWED.replace(", metrics.AUC()", ""),
        name="evaluation_edit.py",
        train=train,
        test=test,
    )

    def run(path: Path, *params: str) -> RunResult:
        return api.run(path, store=store, materialize="all", params=list(params))

    return Runs(
        config=config,
        store=store,
        first=run(config),
        again=run(config),
        evaluation_edit=run(edited),
        learner_edit=run(config, "learner.learning_rate=0.2"),
    )


def state(result: RunResult, name: str) -> str:
    return next(n.state for n in result.nodes if n.name == name)


def test_the_explanation_is_computed_once_and_loaded_after(runs: Runs) -> None:
    assert state(runs.first, "explanation") == "compute"
    assert state(runs.again, "explanation") == "load"
    assert state(runs.evaluation_edit, "evaluation") == "compute"
    assert state(runs.evaluation_edit, "explanation") == "load"  # same model, same split
    assert state(runs.learner_edit, "explanation") == "compute"  # a new model
    assert runs.again.explanation() == runs.first.explanation()
    found = runs.first.explanation()
    assert set(found["features"]) == {"age", "hours", "education", "occupation"}
    assert found["rows"] == 300 and found["split"] == "test"
    linear = found["linear"]
    named = {label for _, label, _ in linear["positive"] + linear["negative"]}
    assert named - {"age", "hours"} and not any(n.startswith("#") for n in named)  # vocabulary


def test_the_run_hands_over_predictions_and_model(runs: Runs) -> None:
    table = runs.first.predictions()
    assert table.column_names == ["__row", "__label", "__score"] and table.num_rows == 300
    frame = runs.again.predictions(pandas=True)  # pruned in that run: read from the store
    assert np.allclose(frame["__score"].to_numpy(), table.column("__score").to_numpy())
    model = runs.again.model()  # from the store (the learner was pruned)
    assert runs.first.model() is not model and len(model.inputs) == 4
    with pytest.raises(Exception, match="no predict node 'nope'"):
        runs.first.predictions("nope")


def test_a_result_the_store_lacks_says_how_to_keep_it(runs: Runs) -> None:
    gone = dataclasses.replace(runs.again, reader=RunReader(str(Path(runs.store).parent / "empty")))
    with pytest.raises(StoreError, match=r"not in the store .* --materialize all"):
        gone.predictions()
    rebuilt = dataclasses.replace(runs.again, reader=None)  # e.g. from --json output
    with pytest.raises(StoreError, match="carries no reader of its stored results"):
        rebuilt.model()


def test_python_views_read_the_run(runs: Runs) -> None:
    curve = views.roc_curve_of(runs.first)
    assert curve.auc == pytest.approx(runs.first.metrics["auc"])
    fig = views.figure(runs.again, "weights")
    assert fig.axes and fig.axes[0].get_title() == "Linear weights: top positive and negative"
    with pytest.raises(ValueError, match="no view 'nope' for a binary run; views are: roc"):
        views.figure(runs.first, "nope")


def test_the_report_of_a_small_census_run_has_every_view(runs: Runs) -> None:
    with MetadataStore(f"sqlite:///{runs.store}/metadata.db") as meta:
        page = render_report("tiny_census", meta)
    keys = re.findall(r'<figure[^>]*data-view="([a-z_]+)"', page)
    assert tuple(keys) == VIEWS
    for title in ("ROC curve", "Precision and recall", "Calibration (reliability)"):
        assert f'<img alt="{title}" src="data:image/png;base64,' in page


def test_an_approximate_run_scores_its_model_traced_and_an_exact_one_eagerly(
    tmp_path: Path, census_like: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predict and explain nodes of an approximate run score the model with one traced
    function (issue 9: Keras' eager call costs ~15–25 ms whatever the rows); an exact run
    keeps the eager call, bit for bit what it computed before."""
    import helix_tf
    from helix_tf.components import _model_use, keras_models

    real = _model_use.predict_scores
    traced: list[bool] = []

    def recorded(model: object, x: dict, task: str = "binary", **kw: bool) -> object:
        traced.append(bool(kw.get("traced")))
        return real(model, x, task, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_model_use, "predict_scores", recorded)
    monkeypatch.setattr(keras_models, "predict_scores", recorded)
    train, test = census_like
    config = write_config(tmp_path, VIEWED, train=train, test=test)
    approx = helix_tf.Approx(sample=0.5, min_saving_seconds=0)
    result = api.run(config, store=str(tmp_path / "approx"), approx=approx)
    assert result.approx and traced and all(traced)  # predictions, then every scoring
    traced.clear()
    result = api.run(config, store=str(tmp_path / "exact"))
    assert not result.approx and traced and not any(traced)
