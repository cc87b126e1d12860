"""Labels and metrics must fit together: a mismatch is a compile-time error naming both,
reported with the config's file and line, with every other problem of the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.config import load_config
from helix_tf.errors import CompileError
from helix_tf.sample_data import write_diamonds_like
from tests.conftest import write_config

BODY = """\
from helix_tf.sample_data import DIAMONDS_COLUMNS

wf = Workflow("checks")
wf.source("rows", sources.Csv(train=r"$data", columns=DIAMONDS_COLUMNS, header=True,
                              test_fraction=0.2))
carat = wf.feature("carat", F.Numeric("carat"))
examples = wf.examples("examples", [carat], label=$label)
model = wf.train("learner", examples, learners.$learner(epochs=1))
predictions = wf.predict("predictions", model, examples)
wf.output(wf.evaluate("evaluation", predictions, $metrics))  # <-
workflow = wf
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_diamonds_like(tmp_path_factory.mktemp("diamonds"), rows=50)


def _compile(folder: Path, data: Path, label: str, metrics: str, learner: str = "Linear") -> Any:
    path = write_config(folder, BODY, data=data, label=label, metrics=metrics, learner=learner)
    loaded = load_config(path, ())
    return compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=ContentHasher())


@pytest.mark.parametrize(
    ("label", "metrics", "expected"),
    [
        (
            'F.NumericLabel("price")',
            "metrics.AUC(), metrics.RMSE()",
            [
                "metric AUC() fits binary labels, but label NumericLabel('price') makes a "
                "regression task; use metrics.RMSE, metrics.R2"
            ],
        ),
        (
            'F.MulticlassLabel("cut")',
            "metrics.Accuracy(), metrics.LogLoss(), metrics.MulticlassAccuracy()",
            [
                "metric Accuracy() fits binary labels, but label MulticlassLabel('cut') makes a "
                "multiclass task; use metrics.MulticlassAccuracy instead",
                "metric LogLoss() fits binary labels, but label MulticlassLabel('cut') makes a "
                "multiclass task; use metrics.MulticlassLogLoss instead",
            ],
        ),
        (
            'F.Label("cut", positive="Ideal")',
            "metrics.OneVsRestAUC(), metrics.MAE(slice_by='color')",
            [
                "metric OneVsRestAUC() fits multiclass labels, but label Label('cut') makes a "
                "binary task; use metrics.AUC instead",
                "metric MAE(slice_by='color') fits regression labels, but label Label('cut')",
            ],
        ),
        (
            'F.NumericLabel("price")',
            'metrics.R2(scale="log")',
            [
                "metric R2(scale='log') asks for scale='log', but label NumericLabel('price') has "
                "no transform; use scale='original'"
            ],
        ),
    ],
)
def test_a_metric_that_does_not_fit_the_label_is_a_compile_error(
    tmp_path: Path, data: Path, label: str, metrics: str, expected: list[str]
) -> None:
    with pytest.raises(CompileError) as info:
        _compile(tmp_path, data, label, metrics)
    message = str(info.value)
    for text in expected:
        assert text in message, message
    assert message.count("fits ") + message.count("asks for") == len(expected)
    lines = (tmp_path / "cfg.py").read_text().splitlines()
    marked = next(i for i, line in enumerate(lines, 1) if "# <-" in line)
    assert f"cfg.py:{marked}: node 'evaluation': metric" in message  # where it was declared


@pytest.mark.parametrize("learner", ["Linear", "DNN", "WideDeep"])
@pytest.mark.parametrize(
    ("label", "metrics"),
    [
        (
            'F.NumericLabel("price", transform="log", loss="huber")',
            'metrics.R2(scale="log"), metrics.RMSE(), metrics.Residuals()',
        ),
        (
            'F.MulticlassLabel("cut", unseen="other")',
            "metrics.MulticlassAccuracy(), metrics.OneVsRestAUC(), metrics.TopKAccuracy(k=3)",
        ),
        ('F.Label("cut", positive="Ideal")', "metrics.Accuracy(), metrics.AUC()"),
    ],
)
def test_fitting_labels_and_metrics_compile_for_every_learner(
    tmp_path: Path, data: Path, label: str, metrics: str, learner: str
) -> None:
    compiled: CompiledWorkflow = _compile(tmp_path, data, label, metrics, learner)
    assert compiled.node("evaluation").role == "evaluate"


def test_what_only_training_reads_is_the_train_nodes_fingerprint(
    tmp_path: Path, data: Path
) -> None:
    """A regression label's transform and loss change the model, not the examples."""
    compiled = {
        label: _compile(tmp_path, data, label, "metrics.RMSE()")
        for label in (
            'F.NumericLabel("price")',
            'F.NumericLabel("price", transform="log")',
            'F.NumericLabel("price", loss="huber")',
            'F.NumericLabel("price", loss="huber", huber_delta=2.0)',
        )
    }
    examples = {c.node("examples").fingerprint for c in compiled.values()}
    learners = {c.node("learner").fingerprint for c in compiled.values()}
    assert len(examples) == 1 and len(learners) == 4
    other = _compile(tmp_path, data, 'F.NumericLabel("depth")', "metrics.RMSE()")
    assert other.node("examples").fingerprint not in examples  # the column is the examples'


def test_every_multiclass_label_parameter_changes_the_examples(tmp_path: Path, data: Path) -> None:
    fps = {
        _compile(tmp_path, data, label, "metrics.MulticlassAccuracy()").node("examples").fingerprint
        for label in (
            'F.MulticlassLabel("cut")',
            'F.MulticlassLabel("cut", unseen="other")',
            'F.MulticlassLabel("cut", classes=("Fair", "Good", "Very Good", "Premium", "Ideal"))',
        )
    }
    assert len(fps) == 3


EXPLAINED = BODY.replace(
    "workflow = wf\n",
    'wf.output(wf.explain("explanation", model, examples$how))  # <-\nworkflow = wf\n',
)


def _explained(folder: Path, data: Path, label: str, how: str = "") -> CompiledWorkflow:
    name = f"explained_{abs(hash((label, how)))}.py"
    metric = {"F.Label": "AUC", "F.Multi": "MulticlassAccuracy", "F.Numer": "RMSE"}[label[:7]]
    path = write_config(
        folder,
        EXPLAINED,
        name=name,
        data=data,
        label=label,
        metrics=f"metrics.{metric}()",
        learner="Linear",
        how=how,
    )
    loaded = load_config(path, ())
    return compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=ContentHasher())


@pytest.mark.parametrize(
    ("label", "scoring"),
    [
        ('F.Label("cut", positive="Ideal")', ("auc", "log_loss")),
        ('F.MulticlassLabel("cut")', ("multiclass_accuracy", "multiclass_log_loss")),
        ('F.NumericLabel("price", transform="log")', ("rmse", "r2")),
    ],
)
def test_the_explain_scorings_follow_the_label(
    tmp_path: Path, data: Path, label: str, scoring: tuple[str, ...]
) -> None:
    node = _explained(tmp_path, data, label).node("explanation")
    assert tuple(node.params["scoring"]) == scoring
    assert node.op.scoring == scoring  # what the engine runs is what the fingerprint says
    # Naming the defaults is the same node as leaving them out.
    spelled = _explained(tmp_path, data, label, how=f", scoring={list(scoring)!r}")
    assert spelled.node("explanation").fingerprint == node.fingerprint


def test_a_scoring_that_does_not_fit_the_label_is_a_compile_error(
    tmp_path: Path, data: Path
) -> None:
    with pytest.raises(CompileError) as caught:
        _explained(tmp_path, data, 'F.MulticlassLabel("cut")', how=', scoring=("auc", "rmse")')
    text = str(caught.value)
    valid = "'multiclass_accuracy', 'multiclass_log_loss'"
    assert (
        "node 'explanation': scoring 'auc' fits binary labels, but label MulticlassLabel('cut') "
        f"makes a multiclass task; the scorings for a multiclass label are: {valid}"
    ) in text
    assert "scoring 'rmse' fits regression labels" in text
    with pytest.raises(
        CompileError,
        match="scoring 'log_loss' fits binary labels, but label "
        r"NumericLabel\('price'\) makes a regression task; the scorings for a "
        "regression label are: 'rmse', 'mae', 'r2'",
    ):
        _explained(tmp_path, data, 'F.NumericLabel("price")', how=', scoring="log_loss"')
