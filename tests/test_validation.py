"""Validation runs: Holdout splits a source's training rows; the test split is never read."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.components.sources import Holdout, read_all, train_only
from helix_tf.errors import ConfigError
from helix_tf.validation import Validation, holdout_workflow, is_validation_dag

COLUMNS = {"x": "int", "y": "string"}


def _csv(tmp_path: Path, rows: int = 500) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("".join(f"{i},{'a' if i % 2 else 'b'}\n" for i in range(rows)))
    return path


def test_holdout_partitions_the_train_rows_and_never_reads_test_files(tmp_path: Path) -> None:
    train = _csv(tmp_path)
    missing = tmp_path / "no-such-test.csv"  # reading it would fail
    inner = sources.Csv(train=str(train), test=str(missing), columns=COLUMNS)
    held = Holdout(of=train_only(inner), fraction=0.2, seed=3)
    assert held.files() == (str(train),)
    assert held.check() == []
    fit, val = read_all(held, "train"), read_all(held, "test")
    all_rows = read_all(inner, "train")
    assert sorted([*fit["__row"], *val["__row"]]) == sorted(all_rows["__row"])
    assert not set(fit["__row"]) & set(val["__row"])
    assert 0.12 < len(val) / len(all_rows) < 0.28
    again = read_all(Holdout(of=train_only(inner), fraction=0.2, seed=3), "test")
    assert list(again["__row"]) == list(val["__row"])
    other = read_all(Holdout(of=train_only(inner), fraction=0.2, seed=4), "test")
    assert list(other["__row"]) != list(val["__row"])


def test_holdout_of_a_fraction_split_source_is_not_empty(tmp_path: Path) -> None:
    # Same seed as the source's own test_fraction: the validation rows must still exist.
    inner = sources.Csv(train=str(_csv(tmp_path)), columns=COLUMNS, test_fraction=0.2)
    held = Holdout(of=inner, fraction=0.2, seed=0)
    val = read_all(held, "test")
    assert len(val) > 40
    assert not set(val["__row"]) & set(read_all(inner, "test")["__row"])


def test_holdout_keeps_every_copy_of_a_replicated_row_on_one_side(tmp_path: Path) -> None:
    """Validation rows are rows the model never trained on, also when ``replicate``
    makes copies of each row (each copy has its own row id)."""
    from helix_tf.components.sources._base import COPY_STRIDE

    inner = sources.Csv(train=str(_csv(tmp_path, rows=200)), columns=COLUMNS, replicate=3)
    held = Holdout(of=inner, fraction=0.3, seed=1)
    fit, val = read_all(held, "train"), read_all(held, "test")
    assert len(fit) + len(val) == 600
    fit_rows = {r % COPY_STRIDE for r in fit["__row"]}
    val_rows = {r % COPY_STRIDE for r in val["__row"]}
    assert val_rows and not fit_rows & val_rows
    assert len(val) == 3 * len(val_rows)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"fraction": 0}, "fraction"), ({"fraction": 1.5}, "fraction"), ({"seed": "a"}, "seed")],
)
def test_validation_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Validation(**kwargs)


def test_holdout_workflow_changes_every_source_fingerprint_downstream(tmp_path: Path) -> None:
    from helix_tf.compiler.graph import compile_workflow

    wf = Workflow("w")
    wf.source(
        "rows", sources.Csv(train=str(_csv(tmp_path)), test=str(_csv(tmp_path)), columns=COLUMNS)
    )
    x = wf.feature("x", F.Numeric("x"))
    ex = wf.examples("examples", [x], label=F.Label("y", positive="a"))
    model = wf.train("learner", ex, learners.Linear(epochs=1))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, ex), metrics.AUC()))
    exact = compile_workflow(wf)
    held = compile_workflow(holdout_workflow(wf, Validation()))
    assert wf.declaration("rows").op.op_name == "Csv"  # the original is untouched
    for a, b in zip(exact.nodes, held.nodes, strict=True):
        assert a.fingerprint != b.fingerprint, a.name
    assert is_validation_dag(held.to_dict()) and not is_validation_dag(exact.to_dict())
    again = compile_workflow(holdout_workflow(wf, Validation()))
    assert [n.fingerprint for n in again.nodes] == [n.fingerprint for n in held.nodes]
    seed1 = compile_workflow(holdout_workflow(wf, Validation(seed=1)))
    assert seed1.node("rows").fingerprint != held.node("rows").fingerprint


def test_holdout_is_identified_by_its_data_content(tmp_path: Path) -> None:
    """A validation run's source once hashed no data: after the train file changed, the
    agent's validation runs reused results computed from the old rows."""
    from helix_tf.compiler.content import ContentHasher
    from helix_tf.compiler.graph import compile_workflow

    train = _csv(tmp_path)
    wf = Workflow("w")
    wf.source("rows", sources.Csv(train=str(train), test_fraction=0.2, columns=COLUMNS))
    wf.output(wf.feature("x", F.Numeric("x")))

    def fingerprint() -> str:
        held = holdout_workflow(wf, Validation())
        return compile_workflow(held, hasher=ContentHasher()).node("x").fingerprint

    before = fingerprint()
    train.write_text(train.read_text().replace("7,a", "8,a", 1))  # one value, same size
    after = fingerprint()
    assert after != before
    moved = tmp_path / "elsewhere" / "train.csv"  # the same bytes in another folder
    moved.parent.mkdir()
    moved.write_bytes(train.read_bytes())
    wf.override("rows", "train", str(moved))
    assert fingerprint() == after
    wf.override("rows", "skip_lines", 1)  # a parameter of the wrapped source
    assert fingerprint() != after
