"""Writing -p overrides into a config module (``helix-tf run ... --save``)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from helix_tf.config import load_config
from helix_tf.config_edit import render_literal, save_overrides
from helix_tf.errors import ConfigError

CONFIG = """\
from helix_tf import Workflow, features as F, learners, metrics, sources

PARAMS = {"scale": 1, "epochs": 5}
SHARED = learners.Linear(l2=0.1)


def workflow(params):
    wf = Workflow("edit")
    wf.source("rows", sources.Csv(train="a.csv", test="b.csv", columns={"a": "int", "y": "string"}))
    a = wf.feature("a", F.Numeric("a"))
    b = wf.feature("b", F.Bucketize(a, [1.0, 2.0]))
    ex = wf.examples(
        "examples",
        [a, b],
        label=F.Label("y", positive="yes"),
    )
    model = wf.train(
        "learner",
        ex,
        learners.Linear(
            epochs=params.epochs,
            learning_rate=0.01,
        ),
    )
    other = wf.train("other", ex, SHARED)
    for i in range(2):
        wf.feature(f"copy{i}", F.Numeric("a"))
    wf.output(wf.evaluate("evaluation", wf.predict("p", model, ex), metrics.AUC()))
    wf.output(wf.evaluate("evaluation2", wf.predict("p2", other, ex), metrics.AUC()))
    return wf
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.py"
    path.write_text(CONFIG)
    return path


def _op(path: Path, node: str) -> object:
    return load_config(path).workflow.declaration(node).op


@pytest.mark.parametrize(
    ("key", "value", "node", "param", "expected_line"),
    [
        ("learner.learning_rate", "0.05", "learner", "learning_rate", "learning_rate=0.05,"),
        ("learner.l1", "0.001", "learner", "l1", "            l1=0.001,"),
        ("b.boundaries", "[1.0, 3.0]", "b", "boundaries", "F.Bucketize(a, [1.0, 3.0]))"),
        ("a.column", "y", "a", "column", 'F.Numeric("y"))'),
        ("examples.positive", "no", "examples", "positive", 'F.Label("y", positive="no")'),
        ("p.threshold", "0.3", None, None, None),  # predict nodes have no operator: refused
    ],
    ids=["replace", "add_on_own_line", "positional_list", "positional_str", "label", "no_op"],
)
def test_override_is_written_at_its_declaration(
    config: Path, key: str, value: str, node: str | None, param: str | None, expected_line: str
) -> None:
    before = config.read_text()
    if node is None:
        with pytest.raises(ConfigError):
            save_overrides(config, [f"{key}={value}"])
        assert config.read_text() == before
        return
    saved = save_overrides(config, [f"{key}={value}"])
    after = config.read_text()
    assert expected_line in after, after
    changed = [
        line
        for line in saved.diff.splitlines()
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert 1 <= len(changed) <= 2, saved.diff
    want = getattr(load_config(config, [f"{key}={value}"]).workflow.declaration(node).op, param)
    assert getattr(_op(config, node), param) == want


def test_params_entry_is_written(config: Path) -> None:
    save_overrides(config, ["scale=10"])
    assert 'PARAMS = {"scale": 10, "epochs": 5}' in config.read_text()
    assert load_config(config).params["scale"] == 10


@pytest.mark.parametrize(
    ("key", "match"),
    [
        ("other.l2=0.5", r"not written inside the declaring call"),
        ("learner.epochs=2", r"set by an expression \(params\.epochs\).*-p epochs=\.\.\. --save"),
        ("copy0.column=y", r"declared in a loop"),
    ],
    ids=["operator_in_a_variable", "expression", "loop"],
)
def test_unsafe_edits_are_refused_and_nothing_is_written(
    config: Path, key: str, match: str
) -> None:
    before = config.read_text()
    with pytest.raises(ConfigError, match=match) as info:
        save_overrides(config, [key, "learner.l1=0.5"])
    assert "nothing was written" in str(info.value)
    assert config.read_text() == before


def test_render_literal_round_trips() -> None:
    for value in ("ftrl", 'say "hi"', 0.001, 3, (64, 32), [1.0, 2.0], None, True):
        text = render_literal(value)
        assert ast.literal_eval(text) == value
    with pytest.raises(ConfigError, match="not a Python literal"):
        render_literal(object())


def test_a_single_line_call_gets_the_keyword_appended(tmp_path: Path) -> None:
    path = tmp_path / "one.py"
    path.write_text(textwrap.dedent(CONFIG.replace("SHARED)", "learners.Linear())")))
    save_overrides(path, ["other.optimizer=ftrl"])
    assert 'wf.train("other", ex, learners.Linear(optimizer="ftrl"))' in path.read_text()


@pytest.mark.parametrize(
    "overrides",
    [
        ["other.optimizer=ftrl", "other.learning_rate=0.005", "other.batch_size=512"],
        ["other.l2=0.0001", "other.epochs=12", "other.seed=7", "other.learning_rate=0.3"],
        ["rows.separator=;", "rows.skip_lines=1", "rows.header=True"],
    ],
)
def test_a_saved_edit_never_leaves_a_line_over_the_limit(
    tmp_path: Path, overrides: list[str]
) -> None:
    """A one-line call the saved keywords would take past 100 characters is written one
    argument per line (each override on one call, all of them together), and the
    config gives exactly the overridden values."""
    from helix_tf.config_edit import LINE_LIMIT

    path = tmp_path / "one.py"
    path.write_text(CONFIG.replace("SHARED)", "learners.Linear(l2=0.1, epochs=3))"))
    saved = save_overrides(path, overrides)
    text = path.read_text()
    assert max(map(len, text.splitlines())) <= LINE_LIMIT, text
    compile(text, str(path), "exec")
    for item in overrides:
        key, value = item.split("=")
        node, param = key.split(".")
        got = getattr(_op(path, node), param)
        assert str(got).lower() == value.lower() or got == float(value), (key, got)
    assert saved.saved == tuple(i.split("=")[0] for i in overrides)
    if overrides[0] == "other.optimizer=ftrl":  # past the limit on one line: exploded
        assert "learners.Linear(\n" in text and "        l2=0.1,\n" in text


EXPLAIN_CONFIG = """\
from helix_tf import Workflow, features as F, learners, metrics, sources


def workflow(params):
    wf = Workflow("edit")
    wf.source("rows", sources.Csv(train="a.csv", test="b.csv", columns={"a": "int", "y": "string"}))
    ex = wf.examples("examples", [wf.feature("a", F.Numeric("a"))], label=F.Label("y", positive="yes"))
    model = wf.train("learner", ex, learners.Linear())
    wf.output(wf.explain("why", model, ex, repeats=2))
    wf.output(wf.explain("how", model, ex))
    return wf
"""


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("why.repeats=3", 'wf.explain("why", model, ex, repeats=3)'),
        ("how.seed=7", 'wf.explain("how", model, ex, seed=7)'),
    ],
    ids=["replace", "add"],
)
def test_an_explain_nodes_parameters_are_its_declaring_calls_keywords(
    tmp_path: Path, key: str, expected: str
) -> None:
    """Every role's declaring method is found (explain was missing from a list of its own)."""
    path = tmp_path / "cfg.py"
    path.write_text(EXPLAIN_CONFIG)
    save_overrides(path, [key])
    assert expected in path.read_text()
    node, _, rest = key.partition(".")
    param, _, value = rest.partition("=")
    assert getattr(_op(path, node), param) == int(value)
