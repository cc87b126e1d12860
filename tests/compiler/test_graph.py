"""compile_workflow: the checks a user meets first, dead operators, determinism, fingerprints.

Each bad config is a small real config module (loaded through ``load_config`` so messages
carry the config's own file and line). The line a message must name is marked in the
config with a ``# <-`` comment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.config import load_config
from helix_tf.errors import CompileError, ConfigError
from tests.conftest import ROOT, write_config

# The head of every config in this module: one census source on the generated data.
SOURCE = """\
from helix_tf import NodeRef

wf = Workflow("checks")
rows = wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))
"""

# A valid tail: label, model, predictions, evaluation.
TAIL = """\
examples = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))
model = wf.train("learner", examples, learners.Linear(epochs=1))
predictions = wf.predict("predictions", model, examples)
wf.output(wf.evaluate("evaluation", predictions, metrics.Accuracy()))
workflow = wf
"""

VALID = SOURCE + 'age = wf.feature("age", F.Numeric("age"))\n' + TAIL


def _compile(path: Path, overrides: tuple[str, ...] = ()) -> CompiledWorkflow:
    loaded = load_config(path, overrides)
    return compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=ContentHasher())


def _marked_lines(path: Path) -> list[int]:
    """Line numbers of the ``# <-`` markers, in order."""
    lines = path.read_text().splitlines()
    return [i for i, line in enumerate(lines, 1) if "# <-" in line]


# --------------------------------------------------------------------------- bad configs

BAD_CONFIGS = {
    "model_fed_as_feature": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL
        + 'wf.examples("more", [age, model], label=F.Label("income", positive=">50K"))  # <-\n',
        [r"node 'more'", r"'learner' is a model \(train node\)", r"must be a feature node"],
    ),
    "unknown_column_did_you_mean": (
        SOURCE + 'age = wf.feature("age", F.Numeric("agee"))  # <-\n' + TAIL,
        [r"node 'age': Numeric reads column 'agee'", r"did you mean 'age'\?"],
    ),
    "unknown_label_column": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace('F.Label("income"', 'F.Label("incme"').replace(
            'positive=">50K"))\n', 'positive=">50K"))  # <-\n', 1
        ),
        [r"label column 'incme' is not a column of source 'rows'", r"did you mean 'income'\?"],
    ),
    "string_feature_without_vocabulary": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'job = wf.feature("job", F.Udf(lambda row: row["occupation"], output="string"))\n'
        + TAIL.replace("[age]", "[age, job]").replace(
            'positive=">50K"))\n', 'positive=">50K"))  # <-\n', 1
        ),
        [r"feature 'job' is string, which a model cannot read", r"features\.Vocabulary"],
    ),
    "tokens_without_encoding": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'words = wf.feature("words", F.Tokenize("occupation"))\n'
        + TAIL.replace("[age]", "[age, words]").replace(
            'positive=">50K"))\n', 'positive=">50K"))  # <-\n', 1
        ),
        [r"feature 'words' is tokens, which a model cannot read", r"TfIdf"],
    ),
    "numeric_op_on_string_column": (
        SOURCE + 'age = wf.feature("age", F.Numeric("education"))  # <-\n' + TAIL,
        [r"Numeric accepts numeric inputs, but column 'education' is string"],
    ),
    "evaluate_fed_a_model": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL
        + 'wf.output(wf.evaluate("bad_eval", model, metrics.Accuracy()))  # <-\n',
        [r"node 'bad_eval'", r"'learner' is a model \(train node\)", r"must be a predict node"],
    ),
    "evaluate_fed_examples": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL
        + 'wf.evaluate("bad_eval", examples, metrics.Accuracy())  # <-\n',
        [r"node 'bad_eval'", r"'examples' is an examples \(examples node\)", r"predict node"],
    ),
    "predict_arguments_swapped": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL
        + 'wf.predict("swapped", examples, model)  # <-\n',
        [r"node 'swapped': model 'examples' is an examples", r"predict model must be a train node"],
    ),
    "undeclared_reference_did_you_mean": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'wf.feature("bucket", F.Bucketize(NodeRef("agee"), [30, 40]))  # <-\n'
        + TAIL,
        [r"node 'bucket': input 'agee' is not declared", r"did you mean 'age'\?"],
    ),
    "no_test_split_to_predict_on": (
        SOURCE.replace(', test=r"$test"', "")
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace(
            'predictions = wf.predict("predictions", model, examples)\n',
            'predictions = wf.predict("predictions", model, examples)  # <-\n',
        ),
        [
            r"node 'predictions': predicts on split 'test' of examples 'examples', but source "
            r"'rows' \(Csv\) has only the split\(s\) 'train'",
            r"test=<file\(s\)>, or test_fraction=0\.2",
            r"split='train'",
        ],
    ),
    "unknown_output": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL
        + 'wf.output(NodeRef("evaluatoin"))\n',
        [r"output 'evaluatoin' is not declared", r"did you mean 'evaluation'\?"],
    ),
    "cycle": (
        SOURCE
        + 'a = wf.feature("a", F.Bucketize(NodeRef("b"), [0.0]))\n'
        + 'b = wf.feature("b", F.Numeric(a))\n'
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL,
        [r"cycle: '(a|b)' -> '(a|b)'"],
    ),
    "several_sources_need_source": (
        SOURCE
        + 'wf.source("more_rows", sources.Csv(train=r"$train", **CENSUS_CSV_OPTIONS))\n'
        + 'age = wf.feature("age", F.Numeric("age"))  # <-\n'
        + TAIL,
        [r"several sources \(rows, more_rows\): pass source=\.\.\. to say which one"],
    ),
}


@pytest.mark.parametrize(("body", "patterns"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_is_a_compile_error_naming_file_and_line(
    tmp_path: Path, census_like: tuple[Path, Path], body: str, patterns: list[str]
) -> None:
    train, test = census_like
    path = write_config(tmp_path, body, train=train, test=test)
    with pytest.raises(CompileError) as info:
        _compile(path)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in:\n{message}"
    assert str(path) in message  # the config file
    for line in _marked_lines(path):  # the declaration's line, as file:line
        assert f"{path}:{line}" in message, message


def test_duplicate_name_names_the_earlier_line(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))  # <-\n'
        + 'wf.feature("age", F.Numeric("hours_per_week"))  # <-\n'
        + TAIL
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    first, second = _marked_lines(path)
    with pytest.raises(CompileError, match="duplicate name") as info:
        _compile(path)
    assert (
        f"{path}:{second}: node 'age': duplicate name: already declared at {path}:{first}"
        in str(info.value)
    )


def test_several_problems_are_reported_together(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("agee"))  # <-\n'
        + 'hours = wf.feature("hours", F.Numeric("hours_per_wek"))  # <-\n'
        + TAIL.replace('F.Label("income"', 'F.Label("incme"')
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    with pytest.raises(CompileError) as info:
        _compile(path)
    message = str(info.value)
    assert message.startswith(f"3 errors in {path}:"), message
    assert len(info.value.problems) == 3
    assert "'agee'" in message and "'hours_per_wek'" in message and "'incme'" in message
    for line in _marked_lines(path):
        assert f"{path}:{line}" in message


def test_problems_of_different_kinds_are_reported_together(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'words = wf.feature("words", F.Tokenize("occupation"))\n'
        + TAIL.replace("[age]", "[age, words]")
        + 'wf.evaluate("bad_eval", model, metrics.Accuracy())\n'
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    with pytest.raises(CompileError) as info:
        _compile(path)
    # Both an evaluate fed a model and a tokens feature fed to examples are wrong.
    assert len(info.value.problems) == 2, str(info.value)


def test_compile_error_is_a_config_error(tmp_path: Path, census_like: tuple[Path, Path]) -> None:
    body = SOURCE + 'age = wf.feature("age", F.Numeric("agee"))\n' + TAIL
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    with pytest.raises(ConfigError, match="agee"):
        _compile(path)


def test_workflow_without_outputs_is_an_error(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'examples = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))\n'
        + "workflow = wf\n"
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    with pytest.raises(CompileError, match=r"has no outputs: call wf\.output"):
        _compile(path)


def test_missing_data_file_is_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "adult.data"
    path = write_config(tmp_path, VALID, train=missing, test=missing)
    with pytest.raises(CompileError) as info:
        _compile(path)
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message
    assert "Csv(train=...)" in message


# --------------------------------------------------------------------------- dead operators


def test_dead_operator_is_a_warning_not_an_error(
    tmp_path: Path, census_like: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'unused = wf.feature("unused", F.Numeric("hours_per_week"))  # <-\n'
        + TAIL
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    (line,) = _marked_lines(path)
    with caplog.at_level(logging.WARNING, logger="helix_tf.compiler.graph"):
        compiled = _compile(path)
    assert "unused" in compiled.by_name
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "'unused'" in w and "reaches no output" in w and f"{path}:{line}" in w for w in warnings
    ), warnings
    assert not any("'age'" in w for w in warnings)


# --------------------------------------------------------------------------- the DAG


def test_compiled_dag_types_order_and_kinds(tmp_path: Path, census_like: tuple[Path, Path]) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'bucket = wf.feature("bucket", F.Bucketize(age, [-1.0, 0.0, 1.0]))\n'
        + 'edu = wf.feature("edu", F.Vocabulary("education"))\n'
        + 'words = wf.feature("words", F.Tokenize("occupation"))\n'
        + 'bag = wf.feature("bag", F.TfIdf(words))\n'
        + 'cross = wf.feature("cross", F.Cross([bucket, edu], buckets=50))\n'
        + TAIL.replace("[age]", "[age, bucket, edu, bag, cross]")
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    compiled = _compile(path)
    types = {n.name: n.output_type for n in compiled.nodes}
    assert types == {
        "rows": "table",
        "age": "feature:numeric",
        "bucket": "feature:categorical",
        "edu": "feature:categorical",
        "words": "feature:tokens",
        "bag": "feature:bag",
        "cross": "feature:categorical",
        "examples": "examples",
        "learner": "model",
        "predictions": "predictions",
        "evaluation": "metrics",
    }
    order = [n.name for n in compiled.nodes]
    for node in compiled.nodes:  # topological: every input comes first
        assert all(order.index(i) < order.index(node.name) for i in node.inputs)
    assert compiled.node("bucket").inputs == ("age",)
    assert compiled.node("learner").inputs == ("examples",)
    assert compiled.node("predictions").inputs == ("learner", "examples")
    assert compiled.outputs == ("evaluation",)
    kinds = {n.name: n.kind for n in compiled.nodes}
    assert kinds["rows"] == "source" and kinds["cross"] == "preprocess"
    assert kinds["learner"] == "train" and kinds["predictions"] == "predict"
    assert kinds["evaluation"] == "evaluate"


# --------------------------------------------------------------------------- determinism


def test_compiling_twice_is_byte_equal(tmp_path: Path, census_like: tuple[Path, Path]) -> None:
    path = write_config(tmp_path, VALID, train=census_like[0], test=census_like[1])
    assert _compile(path).to_json() == _compile(path).to_json()


def test_compilation_is_byte_equal_across_processes(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    path = write_config(tmp_path, VALID, train=census_like[0], test=census_like[1])
    script = (
        "import sys\n"
        "from helix_tf.compiler.content import ContentHasher\n"
        "from helix_tf.compiler.graph import compile_workflow\n"
        "from helix_tf.config import load_config\n"
        "c = load_config(sys.argv[1])\n"
        "sys.stdout.write(compile_workflow(c.workflow, config_path=str(c.path),"
        " hasher=ContentHasher()).to_json())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    ).stdout
    assert out == _compile(path).to_json()
    assert json.loads(out)["workflow"] == "checks"


def _fingerprints(path: Path, overrides: tuple[str, ...] = ()) -> dict[str, str]:
    return {n.name: n.fingerprint for n in _compile(path, overrides).nodes}


def test_parameter_change_changes_the_node_and_downstream_only(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    path = write_config(tmp_path, VALID, train=census_like[0], test=census_like[1])
    before = _fingerprints(path)
    after = _fingerprints(path, ("learner.l1=0.001",))
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"learner", "predictions", "evaluation"}


def test_feature_parameter_change_leaves_siblings_alone(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    body = (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'edu = wf.feature("edu", F.Vocabulary("education"))\n'
        + TAIL.replace("[age]", "[age, edu]")
    )
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    before = _fingerprints(path)
    after = _fingerprints(path, ("edu.min_count=5",))
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"edu", "examples", "learner", "predictions", "evaluation"}


def test_renaming_unrelated_nodes_keeps_the_model_fingerprint(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    path = write_config(tmp_path, VALID, train=census_like[0], test=census_like[1])
    renamed = write_config(
        tmp_path,
        VALID.replace('"evaluation"', '"checked"').replace('"rows"', '"census_rows"'),
        name="renamed.py",
        train=census_like[0],
        test=census_like[1],
    )
    before, after = _fingerprints(path), _fingerprints(renamed)
    for name in ("age", "examples", "learner", "predictions"):
        assert before[name] == after[name], name
    assert before["rows"] == after["census_rows"]
    assert before["evaluation"] == after["checked"]


def test_data_content_changes_the_source_fingerprint(tmp_path: Path) -> None:
    from helix_tf.sample_data import write_census_like

    a = write_census_like(tmp_path / "a", train_rows=50, test_rows=20, seed=0)
    b = write_census_like(tmp_path / "b", train_rows=50, test_rows=20, seed=1)
    fa = _fingerprints(write_config(tmp_path, VALID, name="a.py", train=a[0], test=a[1]))
    fb = _fingerprints(write_config(tmp_path, VALID, name="b.py", train=b[0], test=b[1]))
    assert all(fa[n] != fb[n] for n in fa)


def test_fingerprints_ignore_the_config_file_location(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    one = write_config(tmp_path / "one", VALID, train=census_like[0], test=census_like[1])
    two = write_config(tmp_path / "two", "\n\n" + VALID, train=census_like[0], test=census_like[1])
    assert _fingerprints(one) == _fingerprints(two)
