"""Target leakage (QA pass 9): a feature computed from the label's own column is a
compile error naming the column, the feature, the config line and the fix.

Before this pass, ``F.Vocabulary("income")`` beside ``label=F.Label("income", ...)``
compiled and trained: the model was handed the answer on the test split too, and the
metrics (AUC 1.0) described a model that cannot exist at prediction time.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from helix_tf.compiler._leakage import literal_column_reads
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.config import load_config
from helix_tf.errors import CompileError
from tests.conftest import write_config

SOURCE = """\
wf = Workflow("leak")
rows = wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))
age = wf.feature("age", F.Numeric("age"))
"""


def _tail(features: str, label: str = 'F.Label("income", positive=">50K")') -> str:
    return (
        f"examples = wf.examples('examples', [{features}], label={label})  # <-\n"
        "model = wf.train('learner', examples, learners.Linear(epochs=1))\n"
        "predictions = wf.predict('predictions', model, examples)\n"
        "wf.output(wf.evaluate('evaluation', predictions, metrics.Accuracy()))\n"
        "workflow = wf\n"
    )


def _compile(path: Path) -> CompiledWorkflow:
    loaded = load_config(path, ())
    return compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=ContentHasher())


#: Ways a feature reads the label column, and the feature the message must name.
LEAKS = {
    "vocabulary-of-the-label": (
        'leak = wf.feature("leak", F.Vocabulary("income"))\n',
        "age, leak",
        'F.Label("income", positive=">50K")',
        r"feature 'leak' reads column 'income'",
    ),
    "through-a-cross": (
        'inc = wf.feature("inc", F.Vocabulary("income"))\n'
        'edu = wf.feature("edu", F.Vocabulary("education"))\n'
        'cross = wf.feature("cross", F.Cross([inc, edu], buckets=16))\n',
        "age, cross",
        'F.Label("income", positive=">50K")',
        r"feature 'cross' \(through feature 'inc'\) reads column 'income'",
    ),
    "numeric-label-as-numeric-feature": (
        'hours = wf.feature("hours", F.Numeric("hours_per_week"))\n',
        "age, hours",
        'F.NumericLabel("hours_per_week")',
        r"feature 'hours' reads column 'hours_per_week'",
    ),
    "row-udf": (
        '@wf.udf("rich")\ndef rich(row):\n    return float(row["income"] == ">50K")\n',
        "age, rich",
        'F.Label("income", positive=">50K")',
        r"feature 'rich' reads column 'income' from its rows \(.*cfg\.py:\d+\)",
    ),
    "batched-udf-attribute": (
        '@wf.udf("rich", batched=True)\n'
        "def rich(batch):\n"
        '    return (batch.income == ">50K").astype(float)\n',
        "age, rich",
        'F.Label("income", positive=">50K")',
        r"feature 'rich' reads column 'income' from its rows",
    ),
    "dataset-udf-apply": (
        "rich = wf.feature('rich', F.DatasetUdf(\n"
        "    fit=lambda frame: 0.0,\n"
        "    apply=lambda batch, state: batch.get('income').eq('>50K').astype(float),\n"
        "    columns=['age']))\n",
        "age, rich",
        'F.Label("income", positive=">50K")',
        r"feature 'rich' reads column 'income' from its rows",
    ),
}


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_a_feature_reading_the_label_column_is_a_compile_error(
    tmp_path: Path, census_like: tuple[Path, Path], case: str
) -> None:
    features, listed, label, pattern = LEAKS[case]
    body = SOURCE + features + _tail(listed, label)
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    with pytest.raises(CompileError) as info:
        _compile(path)
    message = str(info.value)
    assert re.search(pattern, message), message
    assert "target leakage" in message and "Remove" in message
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "# <-" in t)
    assert f"{path}:{line}: node 'examples'" in message  # the examples' declaration


#: Uses of the label column that are not leakage: they must still compile.
ALLOWED = {
    # a target encoding: fit sees the training split's labels only; apply does not read it
    "dataset-udf-fit-reads-the-label": (
        "rate = wf.feature('rate', F.DatasetUdf(\n"
        "    fit=lambda frame: float((frame['income'] == '>50K').mean()),\n"
        "    apply=lambda batch, state: batch['age'] * 0 + state,\n"
        "    columns=['age', 'income']))\n",
        "age, rate",
    ),
    # declared but not an input of the examples: no model reads it
    "feature-outside-the-examples": (
        'leak = wf.feature("leak", F.Vocabulary("income"))\nwf.output(leak)\n',
        "age",
    ),
    # another column whose name contains the label's
    "similar-name": ('@wf.udf("r")\ndef r(row):\n    return len(row["income_x"] or "")\n', "age"),
}


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_uses_of_the_label_column_that_are_not_leakage_compile(
    tmp_path: Path, census_like: tuple[Path, Path], case: str
) -> None:
    features, listed = ALLOWED[case]
    body = SOURCE + features + _tail(listed)
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    _compile(path)


def test_literal_column_reads_sees_only_literal_reads_of_the_first_argument() -> None:
    def reads(row, other):
        a = other["label"]  # another argument: not the row
        key = "label"
        b = row[key]  # a computed name: not known for certain
        return a, b, row["label"], row.get("label"), row[["x", "label"]]

    found = list(literal_column_reads(reads, "label"))
    assert len(found) == 3
    assert all(w.startswith(__file__) for w in found)
    assert not list(literal_column_reads(len, "label"))  # no source: nothing claimed


def _passed_through(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)

    return wrapper


@_passed_through
def _decorated(row):
    return row["label"]


PAIR = (lambda r: r["label"], lambda r: r["other"])  # two lambdas on one line


def test_literal_column_reads_finds_the_function_among_others_on_its_line() -> None:
    assert len(list(literal_column_reads(_decorated, "label"))) == 1  # through wraps
    assert len(list(literal_column_reads(PAIR[0], "label"))) == 1
    assert not list(literal_column_reads(PAIR[1], "label"))
