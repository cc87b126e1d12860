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
import time
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
    "feature_listed_twice": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace("[age]", "[age, age]").replace(
            'positive=">50K"))\n', 'positive=">50K"))  # <-\n', 1
        ),
        [r"node 'examples': the feature list names 'age' more than once; list each feature once"],
    ),
    "wide_part_names_no_feature": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace(
            "learners.Linear(epochs=1)",
            'learners.WideDeep(wide=("agee",), deep=("age",), epochs=1)',
        ).replace("learners.WideDeep(", "learners.WideDeep(  # <-\n    ", 1),
        [
            r"wide= names 'agee', which is not a feature of examples 'examples' \(did you mean "
            r"'age'\?\); its features are: age"
        ],
    ),
    "two_metrics_of_one_name": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace(
            "metrics.Accuracy()))",
            'metrics.Accuracy(), metrics.Custom(name="accuracy", fn=len)))  # <-',
        ),
        [
            r"node 'evaluation': metrics Accuracy\(\) and Custom\(name='accuracy'.*both produce "
            r"the key 'accuracy'"
        ],
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
        [
            r"Numeric accepts numeric inputs, but column 'education' is string: declare "
            r"'education' as 'int' or 'float' in the source's columns .*F\.Vocabulary"
        ],
    ),
    "vocabulary_on_number_column": (  # QA pass 25: the fix was not named
        SOURCE + 'age = wf.feature("age", F.Vocabulary("age"))  # <-\n' + TAIL,
        [r"column 'age' is numeric: declare 'age' as 'string' .*F\.Numeric or F\.Bucketize"],
    ),
    "tfidf_on_text": (
        SOURCE + 'age = wf.feature("age", F.TfIdf("occupation"))  # <-\n' + TAIL,
        [r"column 'occupation' is string: split the text into tokens with F\.Tokenize"],
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
    # QA pass 23: it said only "but got Udf(fn=...)", no word of what to do
    "operator_where_a_feature_input_is_due": (
        SOURCE + 'age = wf.feature("age", F.Numeric(F.Bucketize("age", [30.0])))  # <-\n' + TAIL,
        [
            r"node 'age': input must be a node returned by the workflow, but got Bucketize",
            r"an operator is not a node: declare it first as a feature node, e\.g\. inner = "
            r'wf\.feature\("inner", Bucketize\(\.\.\.\)\), and pass inner',
        ],
    ),
    "function_where_a_feature_input_is_due": (
        SOURCE
        + "def hours(batch):\n    return batch['hours_per_week']\n\n\n"
        + 'age = wf.feature("age", F.Numeric(hours))  # <-\n'
        + TAIL,
        [
            r"node 'age': input must be a node returned by the workflow, but got function hours",
            r'declare it with @wf.udf\("name"\) above its def',
        ],
    ),
    "udf_decorator_not_applied": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + 'hours = wf.udf("hours")\n'
        + TAIL.replace("[age]", "[age, hours]").replace(
            'positive=">50K"))\n', 'positive=">50K"))  # <-\n', 1
        ),
        [r"but got function Workflow\.udf\.<locals>\.decorate; wf\.udf\(\.\.\.\) is a decorator"],
    ),
    "column_name_where_a_feature_is_due": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace("[age]", '[age, "hours_per_week"]').replace(
            'positive=">50K"))\n', 'positive=">50K"))  # <-\n', 1
        ),
        [r"but got 'hours_per_week'; a raw column becomes a model input through a feature"],
    ),
    "node_name_where_its_reference_is_due": (
        SOURCE
        + 'age = wf.feature("age", F.Numeric("age"))\n'
        + TAIL.replace('wf.train("learner", examples', 'wf.train("learner", "examples"').replace(
            "learners.Linear(epochs=1))\n", "learners.Linear(epochs=1))  # <-\n", 1
        ),
        [r"but got 'examples'; pass the reference its wf\.examples\(\.\.\.\) returned"],
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


@pytest.mark.parametrize(
    "content",
    [b"", b"PAR1" + b"x" * 500, b"age,income\n40,>50K\n"],
    ids=["empty", "garbage", "csv"],
)
def test_an_unreadable_parquet_file_is_one_problem_with_its_fix(
    tmp_path: Path, content: bytes
) -> None:
    """Before: two problems for one file (the source's check, then "cannot read the
    schema: Parquet: …" with the same words), and neither said what to do."""
    data = tmp_path / "rows.parquet"
    data.write_bytes(content)
    body = (
        f'wf = Workflow("checks")\nwf.source("rows", sources.Parquet(train=r"{data}", '
        "test_fraction=0.2))  # <-\n" + 'age = wf.feature("age", F.Numeric("age"))  # <-\n' + TAIL
    )
    path = write_config(tmp_path, body)
    with pytest.raises(CompileError) as info:
        _compile(path)
    source, age = _marked_lines(path)
    (problem,) = [p for p in info.value.problems if f"{path}:{source}:" in p]
    assert f"train file {str(data)!r} is not a readable Parquet file" in problem
    assert "write it again" in problem and "sources.Csv" in problem
    assert all(f"{path}:{age}:" not in p for p in info.value.problems)  # its column: unknown


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


def test_a_file_pattern_is_named_with_the_fix(tmp_path: Path) -> None:
    pattern = str(tmp_path / "parts" / "*.csv")
    path = write_config(tmp_path, VALID, train=pattern, test=pattern)
    with pytest.raises(CompileError, match=r"patterns are not expanded") as info:
        _compile(path)
    assert f"train=sorted(glob.glob({pattern!r}))" in str(info.value)


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


def test_data_content_changes_the_source_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte of a data file changed in place: same path, same size, mtime set back.

    The content-hash memo is saved between the two compilations (as between two runs),
    so a memo keyed on path, size and mtime alone would give the old fingerprint.
    """
    import time

    from helix_tf.compiler import content
    from helix_tf.sample_data import write_census_like

    monkeypatch.setattr(content, "RACY_SECONDS", 0.0)  # memoise the fresh file at once
    train, test = write_census_like(tmp_path / "data", train_rows=50, test_rows=20, seed=0)
    config = write_config(tmp_path, VALID, train=train, test=test)
    memo = tmp_path / "memo.json"

    def fingerprints() -> dict[str, str]:
        loaded = load_config(config)
        hasher = ContentHasher(memo)
        compiled = compile_workflow(loaded.workflow, config_path=str(config), hasher=hasher)
        return {n.name: n.fingerprint for n in compiled.nodes}

    before = fingerprints()
    data = bytearray(train.read_bytes())
    first_digit = next(i for i, b in enumerate(data) if chr(b).isdigit())
    data[first_digit] = ord("1") if data[first_digit] != ord("1") else ord("2")
    st = train.stat()
    time.sleep(0.05)
    train.write_bytes(bytes(data))
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (train.stat().st_size, train.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = fingerprints()
    assert all(before[n] != after[n] for n in before)


def test_the_same_bytes_under_another_folder_are_the_same_source(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    """Identity is content: --data-dir pointing at a copy reuses every node."""
    import shutil

    copy = tmp_path / "copy"
    copy.mkdir()
    train = Path(shutil.copy(census_like[0], copy / "elsewhere.data"))
    test = Path(shutil.copy(census_like[1], copy / "elsewhere.test"))
    original = _fingerprints(
        write_config(tmp_path, VALID, name="a.py", train=census_like[0], test=census_like[1])
    )
    copied = _fingerprints(write_config(tmp_path, VALID, name="b.py", train=train, test=test))
    assert original == copied
    # ...but which file feeds which split is part of the identity.
    swapped = _fingerprints(
        write_config(tmp_path, VALID, name="c.py", train=census_like[1], test=census_like[0])
    )
    assert swapped["rows"] != original["rows"]


def test_the_compression_a_file_name_implies_is_part_of_the_identity(tmp_path: Path) -> None:
    from helix_tf.components.sources import Csv

    plain = tmp_path / "rows.csv"
    plain.write_text("1\n")
    gz = tmp_path / "rows.csv.gz"
    gz.write_bytes(plain.read_bytes())
    a = Csv(train=str(plain), columns={"x": "int"})
    b = Csv(train=str(gz), columns={"x": "int"})
    assert a.content_files()["train"][0][0] != b.content_files()["train"][0][0]


@pytest.mark.parametrize(
    ("source", "edit", "matters"),
    [
        ('test=r"$test"', "rows.split_seed=7", False),  # explicit test files: no split
        ("test_fraction=0.3", "rows.split_seed=7", True),
        ('test=r"$test"', "rows.max_bad_rows=5", False),  # bad rows fail the read anyway
        ('test=r"$test", on_bad_row="skip"', "rows.max_bad_rows=5", True),
    ],
)
def test_parameters_that_cannot_change_the_rows_stay_out_of_the_fingerprint(
    tmp_path: Path, census_like: tuple[Path, Path], source: str, edit: str, matters: bool
) -> None:
    body = VALID.replace('test=r"$test"', source)
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    before, after = _fingerprints(path), _fingerprints(path, (edit,))
    assert (before["rows"] != after["rows"]) is matters
    assert (before["evaluation"] != after["evaluation"]) is matters


def test_fingerprints_ignore_the_config_file_location(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    one = write_config(tmp_path / "one", VALID, train=census_like[0], test=census_like[1])
    two = write_config(tmp_path / "two", "\n\n" + VALID, train=census_like[0], test=census_like[1])
    assert _fingerprints(one) == _fingerprints(two)


# --------------------------------------------------------------------------- what UDFs read

UDF_HEAD = """\
import functools
import json
import os
import pathlib
import threading

import numpy as np

LOOKUP = r"$lookup"
GUARD = threading.Lock()


@functools.lru_cache
def table():
    with open(LOOKUP) as f:
        return json.load(f)

"""


def _udf_config(tmp_path: Path, census_like: tuple[Path, Path], udf: str) -> tuple[Path, Path]:
    lookup = tmp_path / "lookup.json"
    lookup.write_text('{"k": 2}')
    body = SOURCE + UDF_HEAD + udf + 'age = wf.feature("age", F.Numeric(looked))\n' + TAIL
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1], lookup=lookup)
    return path, lookup


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    from helix_tf.compiler import _identity

    monkeypatch.setattr(_identity, "_WARNED", set())


def test_a_declared_file_joins_the_fingerprint_by_content(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None, caplog
) -> None:
    udf = """\
@wf.udf("looked", batched=True, files=[LOOKUP])
def looked(batch):
    name = "lookup" + ".json"  # a local: the file is named only when it runs
    text = pathlib.Path(__file__).with_name(name).read_text()
    return batch["age"] * json.loads(text)["k"]

"""
    path, lookup = _udf_config(tmp_path, census_like, udf)
    with caplog.at_level(logging.WARNING):
        before = _fingerprints(path)
        assert before == _fingerprints(path)  # reusable: the declaration covers the read
    lookup.write_text('{"k": 3}')
    after = _fingerprints(path)
    assert before["looked"] != after["looked"] and before["evaluation"] != after["evaluation"]
    assert before["rows"] == after["rows"]
    assert not [r for r in caplog.records if "looked" in r.getMessage()]


def test_an_undeclared_file_named_at_run_time_is_never_reused(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None, caplog
) -> None:
    udf = """\
@wf.udf("looked", batched=True)
def looked(batch):
    name = "lookup" + ".json"  # a local: the file is named only when it runs
    text = pathlib.Path(__file__).with_name(name).read_text()
    return batch["age"] * json.loads(text)["k"]

"""
    path, _ = _udf_config(tmp_path, census_like, udf)
    with caplog.at_level(logging.WARNING):
        one, two = _fingerprints(path), _fingerprints(path)
    assert one["looked"] != two["looked"] and one["evaluation"] != two["evaluation"]
    assert one["rows"] == two["rows"]
    (message,) = [r.getMessage() for r in caplog.records if "never reused" in r.getMessage()]
    assert "node 'looked'" in message and "looked" in message and "files=[...]" in message
    assert "with_name(name).read_text()" in message


def test_an_undeclared_file_with_a_known_name_is_hashed_and_warned_about(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None, caplog
) -> None:
    udf = """\
@wf.udf("looked", batched=True)
def looked(batch):
    return batch["age"] * table()["k"]

"""
    path, lookup = _udf_config(tmp_path, census_like, udf)
    with caplog.at_level(logging.WARNING):
        before = _fingerprints(path)
        assert before == _fingerprints(path)
    (message,) = [r.getMessage() for r in caplog.records if "without declaring" in r.getMessage()]
    assert str(lookup) in message and "open(LOOKUP)" in message and "node 'looked'" in message
    lookup.write_text('{"k": 5}')
    assert _fingerprints(path)["looked"] != before["looked"]


def test_files_the_data_and_the_code_read_are_watched_for_changes_during_a_run(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None
) -> None:
    """A run stores nothing more once a file whose content joined a fingerprint changed:
    the data files and the files a UDF opens under a known name alike."""
    udf = """\
@wf.udf("looked", batched=True)
def looked(batch):
    return batch["age"] * table()["k"]

"""
    path, lookup = _udf_config(tmp_path, census_like, udf)
    loaded = load_config(path)
    hasher = ContentHasher()
    compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=hasher)
    assert hasher.changed_files() == []
    time.sleep(0.05)  # past the coarse timestamp tick: the ctime moves
    lookup.write_text('{"k": 5}')
    assert hasher.changed_files() == [str(lookup)]


def test_a_file_edited_in_a_folder_the_code_lists_is_watched_during_a_run(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None
) -> None:
    """A folder of shards a UDF lists (QA pass 7: hashed by its files): one of them saved
    while the run reads it stops the run storing more, as a data file does."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "a.txt").write_text("1")
    udf = f"""\
@wf.udf("looked", batched=True)
def looked(batch):
    return batch["age"] * len(os.listdir({str(shards)!r}))

"""
    path, _ = _udf_config(tmp_path, census_like, udf)
    loaded = load_config(path)
    hasher = ContentHasher()
    compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=hasher)
    assert hasher.changed_files() == []
    time.sleep(0.05)  # past the coarse timestamp tick: the ctime moves
    (shards / "a.txt").write_text("2")
    assert hasher.changed_files() == [str(shards / "a.txt")]


#: A UDF reading an object whose state cannot be read (a lock): recomputed every run.
GUARDED_UDF = """\
@wf.udf("looked", batched=True)
def looked(batch):
    with GUARD:
        return batch["age"] * 2

"""


def test_an_object_whose_state_cannot_be_read_is_recomputed_every_run(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None, caplog
) -> None:
    udf = GUARDED_UDF
    path, _ = _udf_config(tmp_path, census_like, udf)
    with caplog.at_level(logging.WARNING):
        one, two = _compile(path), _compile(path)
    assert one.node("looked").fingerprint != two.node("looked").fingerprint
    assert any("GUARD" in r for r in one.node("looked").extra["volatile"])
    # ...and so is everything downstream (materializing any of it would be wasted).
    assert one.node("examples").extra["volatile"] == ["reads 'age', which is recomputed every run"]
    assert "volatile" not in one.node("rows").extra
    (message,) = [r.getMessage() for r in caplog.records if "never reused" in r.getMessage()]
    assert "GUARD" in message and "node 'looked'" in message and ".looked" in message
    from helix_tf import api

    plan = {d.name: d for d in api.plan(path, store=str(tmp_path / "store")).nodes}
    assert plan["looked"].reason.startswith("never reused, recomputed every run: node 'looked'")


def test_a_node_recomputed_every_run_keeps_its_configs_version(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None
) -> None:
    """Its fingerprint (and those downstream) holds a nonce, never reused; the version's
    digest is what the config declares: the same config is one version in every load
    (the agent saw every load as an edited config, and history a new version a run), and
    an edit of the volatile node's code is still a new version."""
    udf = GUARDED_UDF
    path, _ = _udf_config(tmp_path, census_like, udf)
    one, two = _compile(path), _compile(path)
    assert one.node("looked").fingerprint != two.node("looked").fingerprint
    assert one.node("examples").fingerprint != two.node("examples").fingerprint
    assert one.digest == two.digest
    path.write_text(path.read_text().replace('batch["age"] * 2', 'batch["age"] * 3'))
    assert _compile(path).digest != one.digest


def test_environment_variables_read_by_a_udf_join_its_fingerprint(
    tmp_path: Path, census_like: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    udf = """\
@wf.udf("looked", batched=True)
def looked(batch):
    return batch["age"] * float(os.environ.get("HELIX_TEST_SCALE", "1"))

"""
    path, _ = _udf_config(tmp_path, census_like, udf)
    monkeypatch.setenv("HELIX_TEST_SCALE", "1")
    before = _fingerprints(path)
    monkeypatch.setenv("HELIX_TEST_SCALE", "2")
    after = _fingerprints(path)
    assert before["looked"] != after["looked"] and before["rows"] == after["rows"]


def test_unseeded_random_calls_are_never_reused_and_warn_once_per_udf(
    tmp_path: Path, census_like: tuple[Path, Path], fresh_warnings: None, caplog
) -> None:
    """A generator made without a seed draws other numbers in every run: like a draw from
    numpy's global generator (issue 12's QA), its node is recomputed every run. Before,
    it was only warned about, and its stored result was reused."""
    udf = """\
@wf.udf("looked", batched=True)
def looked(batch):
    return batch["age"] + np.random.normal(size=len(batch)) + np.random.default_rng().normal()

"""
    path, _ = _udf_config(tmp_path, census_like, udf)
    with caplog.at_level(logging.WARNING):
        one = _compile(path)
        _compile(path)
    messages = [r.getMessage() for r in caplog.records if "recomputed every run" in r.getMessage()]
    shared, unseeded = sorted(messages, key=lambda m: "no seed fixes" in m)
    assert "np.random.normal(size=len(batch))" in shared and "node 'looked'" in shared
    assert "np.random.default_rng()" in unseeded and "cfg.py:" in unseeded
    assert "np.random.default_rng(SEED)" in unseeded  # how to fix it
    assert len(one.node("looked").extra["volatile"]) == 2
