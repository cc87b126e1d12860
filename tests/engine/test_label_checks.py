"""Checks of a binary label's ``positive=`` value after preprocessing (QA pass 9).

Before this pass the check ran after the examples were stored: a run that failed it
left the examples in the store, and the next run of the same config loaded them
unchecked and trained on labels that were all 0 (accuracy 1.0, AUC n/a) where a fresh
run fails. And only the training split was checked: a test file whose labels are
spelled otherwise (the real census test file's ``>50K.``, without the source's
``replace=``) counted every test row as negative, and the run reported accuracy 1.0
without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helix_tf import api, features as F
from helix_tf.engine.batch_compute import label_problem
from helix_tf.errors import DataError
from helix_tf.reuse.store import ArtifactStore

CONFIG = """\
PARAMS = {"train": r"$train", "test": r"$test", "replace": True}


def workflow(params):
    wf = Workflow("labels")
    options = dict(CENSUS_CSV_OPTIONS)
    if not params.replace:
        del options["replace"]  # the test file's labels keep their full stop: '>50K.'
    wf.source("rows", sources.Csv(train=params.train, test=params.test, **options))
    age = wf.feature("age", F.Numeric("age"))
    examples = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=128))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, examples),
                          metrics.Accuracy()))
    return wf
"""


@pytest.fixture
def config(make_config, census_like: tuple[Path, Path]) -> Path:
    return make_config(CONFIG, train=census_like[0], test=census_like[1])


def test_a_run_that_fails_the_label_check_stores_no_examples_and_its_rerun_fails_too(
    config: Path, store: str
) -> None:
    for _ in range(2):  # the second run found the examples stored, loaded them and trained
        with pytest.raises(DataError, match="no row of the training split") as info:
            api.run(config, store=store, params=["examples.positive='>50k'"], materialize="all")
        assert info.value.node == "examples"
    assert "examples" not in {m.kind for m in ArtifactStore(store).entries()}


def test_a_test_split_whose_labels_are_spelled_otherwise_fails_naming_the_line_and_the_fix(
    config: Path, store: str
) -> None:
    for _ in range(2):  # the second run found nothing stored to load
        with pytest.raises(DataError) as info:  # a value training lacks, by file and line
            api.run(config, store=store, params=["replace=False"], materialize="all")
        message = str(info.value)
        assert info.value.node == "examples"
        assert "line 2 of " in message and "adult.test has label '<=50K.'" in message, message
        assert "not a value of the training split" in message
        assert "replace={'income': {'<=50K.': '<=50K'}})" in message  # the value it spells


def test_a_test_split_without_positive_rows_but_with_the_training_values_runs(
    make_config, census_like: tuple[Path, Path], tmp_path: Path, store: str
) -> None:
    """A small test split may hold no positive row: only other spellings are an error."""
    train, test = census_like
    lines = test.read_text(encoding="utf-8").split("\n")
    negative = tmp_path / "negative.test"
    negative.write_text(
        "\n".join([lines[0], *[x for x in lines[1:] if x.endswith("<=50K.")]]) + "\n",
        encoding="utf-8",
    )
    path = make_config(CONFIG, name="negative.py", train=train, test=negative)
    result = api.run(path, store=store, materialize="all")
    assert result.metrics["accuracy"] >= 0.0


MULTICLASS = """\
PARAMS = {"train": r"$train", "test": r"$test"}


def workflow(params):
    wf = Workflow("one_class")
    wf.source("rows", sources.Csv(train=params.train, test=params.test, **CENSUS_CSV_OPTIONS))
    age = wf.feature("age", F.Numeric("age"))
    examples = wf.examples("examples", [age], label=F.MulticlassLabel("sex"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=128))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, examples),
                          metrics.MulticlassAccuracy()))
    return wf
"""


@pytest.fixture
def women(census_like: tuple[Path, Path], tmp_path: Path) -> list[Path]:
    """The census-like train and test files with the rows of women only."""
    train, test = census_like
    women = []
    for kept, skipped in ((train, 0), (test, 1)):  # the test file's first line is junk
        lines = kept.read_text(encoding="utf-8").split("\n")
        women.append(tmp_path / kept.name)
        women[-1].write_text(
            "\n".join([*lines[:skipped], *[x for x in lines if ", Female," in x]]) + "\n",
            encoding="utf-8",
        )
    return women


def test_classes_learned_from_a_training_split_of_one_class_fail_before_storing(
    make_config, women: list[Path], store: str
) -> None:
    """``MulticlassLabel(column)`` learns its classes from the training split; with one
    class there, the run trained a one-output softmax and failed in evaluation ("y_score
    must hold one probability per class ... shape (173, 1)"), after storing examples and
    model. Declared classes must be at least 2 already: learned ones are held to it too,
    before anything is stored."""
    path = make_config(MULTICLASS, train=women[0], test=women[1])
    for _ in range(2):  # nothing stored that a rerun could load
        with pytest.raises(DataError) as info:
            api.run(path, store=store, materialize="all")
        assert info.value.node == "examples"
        message = str(info.value)
        assert "the training split's label column 'sex' holds one class: 'Female' (" in message
        assert "classes=[...]" in message and "F.Label" in message, message
    assert not {"examples", "model"} & {m.kind for m in ArtifactStore(store).entries()}


BINARY = """\
PARAMS = {"train": r"$train", "test": r"$test", "positive": "Female"}


def workflow(params):
    wf = Workflow("one_value")
    options = dict(CENSUS_CSV_OPTIONS, replace={"sex": {"Female": "1", "Male": "0"}})
    wf.source("rows", sources.Csv(train=params.train, test=params.test, **options))
    age = wf.feature("age", F.Numeric("age"))
    positive = None if params.positive == "none" else params.positive
    examples = wf.examples("examples", [age], label=F.Label("sex", positive=positive))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=128))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, examples),
                          metrics.Accuracy()))
    return wf
"""


@pytest.mark.parametrize(
    ("positive", "message"),
    [
        ("1", "every row of the training split has label column 'sex' equal to positive='1'"),
        ("none", r"the training split's label column 'sex' holds only 1 \("),
    ],
)
def test_a_binary_label_of_one_value_in_the_training_split_fails_before_storing(
    make_config, women: list[Path], store: str, positive: str, message: str
) -> None:
    """Every training row positive (or a 0/1 column of ones) trained a model that
    predicts one class and reported accuracy 1.0 and AUC n/a; all negative was refused
    since QA pass 9, all positive was not."""
    path = make_config(BINARY, train=women[0], test=women[1])
    for _ in range(2):
        with pytest.raises(DataError, match=message) as info:
            api.run(path, store=store, params=[f"positive={positive}"], materialize="all")
        assert info.value.node == "examples"
    assert not {"examples", "model"} & {m.kind for m in ArtifactStore(store).entries()}


@pytest.mark.parametrize(
    ("label", "value", "said"),
    [
        (
            F.NumericLabel("price"),
            np.float64("nan"),
            "line 7 of d.csv has no label in column 'price'",
        ),
        (
            F.Label("income", positive=">50K"),
            None,
            "line 7 of d.csv has no label in column 'income'",
        ),
        (F.Label("label", positive="spam"), " ", "line 7 of d.csv has no label in column 'label'"),
        (F.MulticlassLabel("cut"), np.str_("Okay"), "has label 'Okay' in column 'cut'"),
        (
            F.MulticlassLabel("cut"),
            "NaN",
            "has label 'NaN' (read as missing) in column 'cut'; labels must not be missing",
        ),
    ],
)
def test_a_bad_label_is_said_as_the_user_wrote_it(label: Any, value: Any, said: str) -> None:
    """A missing regression label read ``has label np.float64(nan) in column 'price'``."""
    message = label_problem(label, "line 7 of d.csv", value, 1)
    assert said in message and "np." not in message and "Fix or drop those rows" in message


def test_a_nan_text_label_fails_naming_the_line_and_replace_keeps_it_as_a_value(
    make_config, census_like: tuple[Path, Path], tmp_path: Path, store: str
) -> None:
    """The text ``NaN`` in the label column counted as a negative row of
    ``Label(positive=">50K")`` and trained silently (QA pass 20); it is a missing label,
    as in a numeric column, named by file and line, and ``replace=`` names it otherwise."""
    train, test = census_like
    lines = train.read_text(encoding="utf-8").split("\n")
    at = next(i for i, line in enumerate(lines) if line.endswith("<=50K"))
    lines[at] = lines[at][: -len("<=50K")] + "NaN"
    edited = tmp_path / "nan.data"
    edited.write_text("\n".join(lines), encoding="utf-8")
    path = make_config(CONFIG, name="nan.py", train=edited, test=test)
    with pytest.raises(DataError) as info:
        api.run(path, store=store, materialize="all")
    message = str(info.value)
    assert f"line {at + 1} of {edited} has label 'NaN' (read as missing)" in message, message
    assert "replace={'income': {'NaN': <a name>}}" in message
    renamed = path.read_text(encoding="utf-8").replace(
        '    wf.source("rows"',
        '    options["replace"] = {"income": {**options["replace"]["income"], "NaN": "<=50K"}}\n'
        '    wf.source("rows"',
    )
    path.write_text(renamed, encoding="utf-8")
    assert api.run(path, store=store, materialize="all").metrics["accuracy"] >= 0.0
