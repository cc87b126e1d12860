"""Operators and metrics written in the user's own code are identified by their code
too, like a UDF: editing ``transform`` recomputes, even when the author forgets to bump
``VERSION``. Classes built on an ABC and type aliases (``str | NodeRef``) hash by state
(they were refusals: see ``test_hashing_reads.py``)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import compile_workflow
from helix_tf.config import load_config
from helix_tf.sample_data import write_census_like

OPERATOR = """
import dataclasses
from typing import ClassVar

import numpy as np

from helix_tf.components.features import Feature, Input
from helix_tf.types import NUMERIC

OFFSET = {offset}


@dataclasses.dataclass(frozen=True)
class Shifted(Feature):
    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input

    def inputs(self):
        return (self.column,)

    def output_kind(self, input_kinds):
        return NUMERIC

    def transform(self, values, state, n):
        return (np.asarray(values[0], dtype=np.float64) + OFFSET).astype(np.float32){tail}
"""

CONFIG = """
from qa_user_ops import Shifted

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import CENSUS_COLUMNS


def workflow(params):
    wf = Workflow("ops")
    wf.source("rows", sources.Csv(train={train!r}, test={test!r}, columns=CENSUS_COLUMNS,
                                  skip_lines={{"test": 1}}))
    age = wf.feature("age", Shifted("age"))
    ex = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", ex, learners.Linear(epochs=1))
    wf.output(wf.evaluate("evaluation", wf.predict("p", model, ex), metrics.AUC()))
    return wf
"""


def _fingerprints(folder: Path, *, offset: int = 0, tail: str = "") -> dict[str, str]:
    (folder / "qa_user_ops.py").write_text(OPERATOR.format(offset=offset, tail=tail))
    loaded = load_config(folder / "cfg.py")
    compiled = compile_workflow(loaded.workflow, hasher=ContentHasher())
    assert not any(n.facts.get("volatile") for n in compiled.nodes), "refused"
    return {n.name: n.fingerprint for n in compiled.nodes}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    train, test = write_census_like(tmp_path / "data", train_rows=20, test_rows=5, seed=1)
    (tmp_path / "cfg.py").write_text(
        textwrap.dedent(CONFIG.format(train=str(train), test=str(test)))
    )
    return tmp_path


@pytest.mark.parametrize("edit", [{"offset": 5}, {"tail": " * 2"}], ids=["constant", "body"])
def test_editing_a_user_operator_recomputes_it(folder: Path, edit: dict[str, object]) -> None:
    before = _fingerprints(folder)
    again = _fingerprints(folder)
    after = _fingerprints(folder, **edit)  # type: ignore[arg-type]
    assert before == again
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"age", "examples", "learner", "p", "evaluation"}


SOURCE = """
import dataclasses

import pandas as pd

from helix_tf.components.sources import Csv


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mine(Csv):
    def read(self, split, **kwargs):
        yield pd.read_csv(self.train[0] if split == "train" else self.test[0], header=None)
"""


def test_a_source_of_ones_own_reading_its_own_files_is_reused(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its ``train``/``test`` files are hashed by content, so code reading one of them (a
    path known only when it runs) is no reason to recompute it every run: it was refused
    unless the files were under ``files``."""
    (folder / "qa_user_source.py").write_text(SOURCE)
    config = folder / "cfg.py"
    config.write_text(
        config.read_text()
        .replace("from qa_user_ops import Shifted", "from qa_user_source import Mine")
        .replace("sources.Csv(", "Mine(")
        .replace('Shifted("age")', 'F.Numeric("age")')
    )
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("qa_user_source", None)
    assert _fingerprints(folder) == _fingerprints(folder)


def test_an_operator_of_ones_own_holding_a_random_generator_is_never_reused(
    folder: Path,
) -> None:
    """Its methods can draw from it through ``self`` (a source's or feature's noise): what
    they draw depends on the draws before them, so a stored result would not be a fresh
    run's. The compiler cannot see ``self``'s attributes in the methods' source."""
    tail = """

    def validate(self):
        object.__setattr__(self, "noise", {"rng": np.random.default_rng(0)})
        return []
"""
    # a module of its own: the other tests' qa_user_ops may still be imported
    (folder / "qa_user_ops_rng.py").write_text(OPERATOR.format(offset=0, tail=tail))
    config = (folder / "cfg.py").read_text().replace("qa_user_ops", "qa_user_ops_rng")
    (folder / "cfg.py").write_text(config)
    loaded = load_config(folder / "cfg.py")
    compiled = compile_workflow(loaded.workflow, hasher=ContentHasher())
    (why,) = compiled.node("age").facts["volatile"]
    assert "Shifted keeps a random generator in self.noise['rng']" in why
