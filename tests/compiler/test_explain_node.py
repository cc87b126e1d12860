"""The explain node in the compiled DAG: its inputs, its fingerprint, its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.config import load_config
from helix_tf.errors import CompileError
from tests.conftest import TINY_CENSUS, write_config

EXPLAINED = TINY_CENSUS.replace(
    "    return wf\n",
    '    wf.output(wf.explain("explanation", model, examples$how))\n    return wf\n',
)


def compiled(
    folder: Path, census: tuple[Path, Path], how: str = "", params: tuple[str, ...] = ()
) -> CompiledWorkflow:
    train, test = census
    name = f"cfg_{len(how)}_{len(params)}_{abs(hash((how, params)))}.py"
    path = write_config(folder, EXPLAINED, name=name, train=train, test=test, how=how)
    loaded = load_config(path, params)
    return compile_workflow(loaded.workflow, config_path=str(path), hasher=ContentHasher())


def test_explain_reads_the_model_and_the_examples(tmp_path: Path, census_like) -> None:
    c = compiled(tmp_path, census_like)
    node = c.node("explanation")
    assert node.role == "explain" and node.kind == "explain"
    assert node.inputs == ("learner", "examples")
    assert node.output_type == "explanation" and node.output
    assert node.extra == {"split": "test"}
    assert node.params == {
        "repeats": 2,
        "max_rows": 5000,
        "seed": 0,
        "scoring": ["auc", "log_loss"],
        "top": 10,
    }


def test_its_fingerprint_follows_the_model_split_and_parameters(
    tmp_path: Path, census_like
) -> None:
    base = compiled(tmp_path, census_like).node("explanation").fingerprint
    changed = {
        "split": compiled(tmp_path, census_like, how=', split="train"'),
        "repeats": compiled(tmp_path, census_like, how=", repeats=5"),
        "override": compiled(tmp_path, census_like, params=("explanation.max_rows=100",)),
        "model": compiled(tmp_path, census_like, params=("learner.l2=0.5",)),
    }
    for what, c in changed.items():
        assert c.node("explanation").fingerprint != base, what
    assert compiled(tmp_path, census_like).node("explanation").fingerprint == base  # stable


def test_an_evaluation_edit_keeps_the_explanation(tmp_path: Path, census_like) -> None:
    train, test = census_like
    body = EXPLAINED.replace("metrics.Accuracy(), metrics.AUC()", "metrics.AUC()")
    path = write_config(tmp_path, body, name="eval_edit.py", train=train, test=test, how="")
    loaded = load_config(path, ())
    edited = compile_workflow(loaded.workflow, config_path=str(path), hasher=ContentHasher())
    base = compiled(tmp_path, census_like)
    assert edited.node("evaluation").fingerprint != base.node("evaluation").fingerprint
    assert edited.node("explanation").fingerprint == base.node("explanation").fingerprint


def test_explain_needs_a_model(tmp_path: Path, census_like) -> None:
    train, test = census_like
    body = TINY_CENSUS.replace(
        "    return wf\n",
        '    wf.output(wf.explain("explanation", predictions, examples))\n    return wf\n',
    )
    path = write_config(tmp_path, body, name="bad.py", train=train, test=test)
    loaded = load_config(path, ())
    with pytest.raises(CompileError, match="node 'explanation': model 'predictions' is"):
        compile_workflow(loaded.workflow, config_path=str(path), hasher=ContentHasher())


def test_a_binary_explain_node_keeps_the_fingerprint_it_had_before_scorings_followed_labels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Explanations stored before the scorings became label-dependent are still reused
    (under the scheme of that time: scheme 3 only added the libraries' versions)."""
    from helix_tf.compiler import _identity
    from helix_tf.compiler._identity import FactContext, fingerprint

    monkeypatch.setattr(_identity, "FINGERPRINT_SCHEME", 2)
    monkeypatch.setattr(_identity, "runtime_identity", lambda stage, settings=None: {})
    from helix_tf.components.explain import Explain
    from helix_tf.components.features import Label
    from helix_tf.workflow import Declaration

    op, problems = Explain().for_label(Label("income", positive=">50K"))
    assert problems == [] and op.scoring == ("auc", "log_loss")
    d = Declaration(name="e", role="explain", op=op, refs={"split": "test"}, file=None, line=None)
    ctx = FactContext(approx=None, sources={}, label_of_examples=lambda ref: None)
    fps = {"learner": "a" * 32, "examples": "b" * 32}
    # Pinned: the fingerprint of wf.explain(...) of a binary label before multiclass and
    # regression got their own scorings (computed with that code, fingerprint scheme of
    # issue 12). A change of the scheme re-pins it; a change of Explain must not.
    fp = fingerprint(ctx, d, ["learner", "examples"], fps, hasher=ContentHasher(), volatile=False)
    assert fp == "a955d13903ed18048d554147b4537bf6"
