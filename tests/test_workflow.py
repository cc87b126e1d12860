"""The declaration API: what ``Workflow`` methods record and return."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helix_tf import NodeRef, Workflow, features as F, learners, metrics, sources
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import compile_workflow
from helix_tf.errors import ConfigError
from helix_tf.sample_data import CENSUS_CSV_OPTIONS


def _line() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def _census(wf: Workflow, census_like: tuple[Path, Path]) -> NodeRef:
    train, test = census_like
    return wf.source("rows", sources.Csv(train=str(train), test=str(test), **CENSUS_CSV_OPTIONS))


def _census_predictions(wf: Workflow, census_like: tuple[Path, Path], **predict: Any) -> NodeRef:
    """Source, one feature, examples, a linear model and its predictions."""
    _census(wf, census_like)
    age = wf.feature("age", F.Numeric("age"))
    ex = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", ex, learners.Linear(epochs=1))
    return wf.predict("predictions", model, ex, **predict)


def test_declarations_return_refs_and_record_where(census_like: tuple[Path, Path]) -> None:
    wf = Workflow("w")
    rows = _census(wf, census_like)
    line = _line() + 1
    age = wf.feature("age", F.Numeric("age"))
    assert rows == NodeRef("rows", "w") and age == NodeRef("age", "w")
    decl = wf.declaration("age")
    assert decl.role == "feature" and isinstance(decl.op, F.Numeric)
    assert decl.file == __file__ and decl.line == line
    assert decl.where == f"{__file__}:{line}"
    with pytest.raises(KeyError):
        wf.declaration("nope")


def test_noderefs_compare_by_name_and_workflow() -> None:
    assert NodeRef("a", "w") == NodeRef("a", "w")
    assert NodeRef("a", "w") != NodeRef("a", "v")
    assert repr(NodeRef("a", "w")) == "NodeRef('a')"


def test_udf_decorator_declares_a_feature(census_like: tuple[Path, Path]) -> None:
    wf = Workflow("w")
    _census(wf, census_like)

    @wf.udf("hours_bucket", output="categorical", size=8)
    def hours_bucket(row):  # type: ignore[no-untyped-def]
        return min(int(row["hours_per_week"]) // 10, 7)

    @wf.udf("log_gain", batched=True)
    def log_gain(batch):  # type: ignore[no-untyped-def]
        return np.log1p(batch["capital_gain"])

    assert hours_bucket == NodeRef("hours_bucket", "w")
    op = wf.declaration("hours_bucket").op
    assert isinstance(op, F.Udf) and (op.output, op.size, op.batched) == ("categorical", 8, False)
    assert wf.declaration("log_gain").op.batched is True  # type: ignore[union-attr]


def test_evaluate_flattens_metric_lists_and_output_deduplicates(
    census_like: tuple[Path, Path],
) -> None:
    wf = Workflow("w")
    preds = _census_predictions(wf, census_like, split="train")
    ev = wf.evaluate("evaluation", preds, [metrics.Accuracy(), metrics.AUC()], metrics.LogLoss())
    wf.output(ev)
    wf.output(ev, preds)
    assert [type(m).__name__ for m in wf.declaration("evaluation").refs["metrics"]] == [
        "Accuracy",
        "AUC",
        "LogLoss",
    ]
    assert wf.outputs == ["evaluation", "predictions"]
    assert wf.declaration("predictions").refs["split"] == "train"
    compiled = compile_workflow(wf, hasher=ContentHasher())
    assert compiled.outputs == ("evaluation", "predictions")
    assert compiled.node("predictions").extra["split"] == "train"


def test_without_output_calls_every_evaluate_is_an_output(census_like: tuple[Path, Path]) -> None:
    wf = Workflow("w")
    _census(wf, census_like)
    age = wf.feature("age", F.Numeric("age"))
    ex = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))
    preds = wf.predict("predictions", wf.train("learner", ex, learners.Linear()), ex)
    wf.evaluate("one", preds, metrics.Accuracy())
    wf.evaluate("two", preds, metrics.AUC())
    assert compile_workflow(wf, hasher=ContentHasher()).outputs == ("one", "two")


def test_override_replaces_one_parameter(census_like: tuple[Path, Path]) -> None:
    wf = Workflow("w")
    _census(wf, census_like)
    wf.feature("edu", F.Vocabulary("education", min_count=1))
    wf.override("edu", "min_count", 3)
    assert wf.declaration("edu").op.min_count == 3  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"no node 'eud' \(did you mean 'edu'\?\)"):
        wf.override("eud", "min_count", 3)
    with pytest.raises(ConfigError, match=r"min_count must be an integer >= 1"):
        wf.override("edu", "min_count", 0)


def test_invalid_operator_parameters_fail_at_declaration() -> None:
    with pytest.raises(ConfigError, match="Vocabulary: min_count"):
        F.Vocabulary("x", min_count=0)


def test_a_misspelt_workflow_method_says_which_one_was_meant() -> None:
    """Before: "'Workflow' object has no attribute 'trian'", with no hint."""
    wf = Workflow("w")
    with pytest.raises(AttributeError, match=r"no attribute 'trian' \(did you mean 'train'\?\)"):
        wf.trian  # noqa: B018
    with pytest.raises(AttributeError, match=r"'nmae' \(did you mean 'name'\?\)"):
        wf.nmae  # noqa: B018
    assert not hasattr(wf, "__deepcopy_hook__") and wf.name == "w"
    import copy
    import pickle

    assert copy.deepcopy(wf).name == pickle.loads(pickle.dumps(wf)).name == "w"


def test_a_metric_class_not_called_is_named_with_the_call_to_write(
    census_like: tuple[Path, Path],
) -> None:
    wf = Workflow("w")
    preds = _census_predictions(wf, census_like)
    wf.evaluate("evaluation", preds, metrics.AUC)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"got the class metrics\.AUC; call it: metrics\.AUC\(\)"):
        compile_workflow(wf, hasher=ContentHasher())


def _declare_with(wf: Workflow, census_like: tuple[Path, Path], slot: str, value: Any) -> None:
    """Source, feature, examples, learner, predictions and evaluation, with ``value`` in
    ``slot`` instead of the operator (or the list) due there."""
    train, test = census_like
    given = {
        "source": sources.Csv(train=str(train), test=str(test), **CENSUS_CSV_OPTIONS),
        "feature": F.Numeric("age"),
        "label": F.Label("income", positive=">50K"),
        "learner": learners.Linear(epochs=1),
        "metric": metrics.AUC(),
    }
    given[slot] = value
    wf.source("rows", given["source"])
    age = wf.feature("age", given["feature"])
    features = age if slot == "features" else [age]
    ex = wf.examples("examples", features, label=given["label"])
    preds = wf.predict("predictions", wf.train("learner", ex, given["learner"]), ex)
    wf.output(wf.evaluate("evaluation", preds, given["metric"]))
    wf.output(wf.explain("explanation", NodeRef("learner", "w"), ex))


@pytest.mark.parametrize(
    ("slot", "value", "message"),
    [
        ("learner", learners.Linear, r"'learner': .*got the class learners\.Linear; call it"),
        ("learner", "Linear", r"'learner': wf.train needs a learners\.\* operator, got 'Linear'"),
        ("learner", F.Numeric("age"), r"wf.train needs a learners\.\* operator, got Numeric"),
        ("label", "income", r"'examples': label must be features.Label, .*got 'income'"),
        ("label", F.Label, r"'examples': .*got the class features\.Label; call it"),
        ("label", F.Numeric("age"), r"'examples': label must be features.Label"),
        ("feature", F.Numeric, r"'age': .*got the class features\.Numeric; call it"),
        ("feature", "age", r"'age': wf.feature needs a features\.\* operator, got 'age'"),
        ("source", sources.Csv, r"'rows': .*got the class sources\.Csv; call it"),
        ("source", None, r"'rows': wf.source needs a sources\.\* operator, got None"),
        ("metric", metrics.AUC, r"got the class metrics\.AUC; call it: metrics\.AUC\(\)"),
        ("features", "age", r"'examples': features must be a list of feature nodes"),
    ],
)
def test_a_wrong_operator_in_any_declaration_is_a_config_error_naming_the_node(
    census_like: tuple[Path, Path], slot: str, value: Any, message: str
) -> None:
    """``label="price"`` crashed compiling with AttributeError ("'str' object has no
    attribute 'column'"), ``wf.train(..., learners.Linear)`` with TypeError from the
    fingerprint: each slot of a declaration refuses what it cannot use, by the node."""
    wf = Workflow("w")
    _declare_with(wf, census_like, slot, value)
    with pytest.raises(ConfigError, match=message):
        compile_workflow(wf, hasher=ContentHasher())


def test_a_source_whose_schema_cannot_be_read_is_reported_once(tmp_path: Path) -> None:
    """A damaged Parquet file was reported once per node reading the source (three times
    for two features and the examples)."""
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not a parquet file")
    wf = Workflow("w")
    wf.source("rows", sources.Parquet(train=str(damaged), test_fraction=0.2))
    a = wf.feature("a", F.Numeric("a"))
    b = wf.feature("b", F.Numeric("b"))
    ex = wf.examples("examples", [a, b], label=F.NumericLabel("y"))
    preds = wf.predict("predictions", wf.train("learner", ex, learners.Linear()), ex)
    wf.output(wf.evaluate("evaluation", preds, metrics.R2()))
    with pytest.raises(ConfigError) as info:
        compile_workflow(wf, hasher=ContentHasher())
    assert str(info.value).count("is not a readable Parquet file") == 1, str(info.value)
    assert "cannot read the schema" not in str(info.value)
    assert "damaged.parquet" in str(info.value)
