"""An operator nested in another's parameters is identified like a node's own operator:
by name, VERSION, identifying parameters, code (when the user wrote it) and the content
of its files. Before, a nested built-in was hashed by its class name and raw parameters
only: bumping its VERSION, or editing a file it names, reused the outer node's results."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from helix_tf import Workflow, features as F, sources
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import compile_workflow
from helix_tf.compiler.hashing import canonical_json
from helix_tf.components.base import Operator
from helix_tf.components.features import Feature, Input
from helix_tf.types import NUMERIC

COLUMNS = {"age": "int", "education": "string"}


@dataclasses.dataclass(frozen=True)
class Wrapped(Feature):
    """A feature whose parameters hold other operators (directly and in a list)."""

    ACCEPTS: ClassVar[tuple[str, ...]] = (NUMERIC,)
    column: Input
    inner: Operator
    more: tuple[Any, ...] = ()

    def inputs(self) -> tuple[Input, ...]:
        return (self.column,)

    def output_kind(self, input_kinds: Sequence[str]) -> str:
        return NUMERIC

    def transform(self, values: Any, state: Any, n: int) -> Any:
        return np.asarray(values[0], dtype=np.float32)


def _csv(folder: Path, name: str, text: str) -> sources.Csv:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return sources.Csv(train=str(path), test=str(path), columns=COLUMNS)


def _fingerprints(folder: Path, inner: Operator, more: tuple[Any, ...] = ()) -> dict[str, str]:
    wf = Workflow("nested")
    wf.source("rows", _csv(folder, "rows.csv", "20,a\n30,b\n"))
    wf.output(wf.feature("wrapped", Wrapped("age", inner=inner, more=more)))
    compiled = compile_workflow(wf, hasher=ContentHasher())
    return {n.name: n.fingerprint for n in compiled.nodes}


@pytest.mark.parametrize("where", ["direct", "in_a_list"])
def test_a_version_bump_of_a_nested_builtin_operator_changes_the_outer_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    def fps() -> dict[str, str]:
        if where == "direct":
            return _fingerprints(tmp_path, F.Vocabulary("education"))
        return _fingerprints(tmp_path, F.Numeric("age"), more=(1, [F.Vocabulary("education")]))

    before = fps()
    monkeypatch.setattr(F.Vocabulary, "VERSION", F.Vocabulary.VERSION + 1)
    after = fps()
    assert after["wrapped"] != before["wrapped"]
    assert after["rows"] == before["rows"]  # nothing else holds a Vocabulary


def test_editing_a_file_a_nested_source_names_changes_the_outer_node(tmp_path: Path) -> None:
    inner = _csv(tmp_path, "inner.csv", "1,a\n")
    before = _fingerprints(tmp_path, inner)
    (tmp_path / "inner.csv").write_text("2,a\n", encoding="utf-8")
    after = _fingerprints(tmp_path, inner)
    assert after["wrapped"] != before["wrapped"]


def test_a_nested_source_is_identified_by_content_not_place(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    at_a = _fingerprints(tmp_path, _csv(tmp_path / "a", "inner.csv", "1,a\n"))
    at_b = _fingerprints(tmp_path, _csv(tmp_path / "b", "inner.csv", "1,a\n"))
    assert at_a["wrapped"] == at_b["wrapped"]


def test_canonical_form_of_an_operator_includes_its_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the compiler does not reach (inside a set, a dataclass), the canonical
    form still carries the VERSION."""
    before = canonical_json({frozenset({F.Vocabulary("education")})})
    monkeypatch.setattr(F.Vocabulary, "VERSION", F.Vocabulary.VERSION + 1)
    assert canonical_json({frozenset({F.Vocabulary("education")})}) != before


USER_SOURCE = """
import dataclasses

from helix_tf.components.sources import Csv


@dataclasses.dataclass(frozen=True, kw_only=True)
class Doubled(Csv):
    def read(self, split, **kwargs):
        for frame in super().read(split, **kwargs):
            yield frame.assign(age=frame["age"] * {factor})
"""


def test_a_holdout_of_a_user_written_source_is_identified_by_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holdout hashed the source it wraps by name, VERSION and parameters only: editing
    the code of a source class of your own reused the validation run's results."""
    import importlib
    import sys

    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = tmp_path / "rows.csv"
    data.write_text("20,a\n30,b\n", encoding="utf-8")

    def fingerprint(factor: int) -> str:
        (tmp_path / "qa_nested_source.py").write_text(USER_SOURCE.format(factor=factor))
        sys.modules.pop("qa_nested_source", None)
        module = importlib.import_module("qa_nested_source")
        wf = Workflow("held")
        of = module.Doubled(train=str(data), test_fraction=0.5, columns=COLUMNS)
        wf.source("rows", sources.Holdout(of=of))
        wf.output(wf.feature("age", F.Numeric("age")))
        return compile_workflow(wf, hasher=ContentHasher()).node("rows").fingerprint

    try:
        assert fingerprint(2) == fingerprint(2)
        assert fingerprint(3) != fingerprint(2)
    finally:
        sys.modules.pop("qa_nested_source", None)


def test_canonical_form_of_an_operator_includes_its_files_content(tmp_path: Path) -> None:
    """Where the compiler does not reach, an edited file of a nested source still
    changes the canonical form (the path alone did not)."""
    source = _csv(tmp_path, "inner.csv", "1,a\n")
    before = canonical_json({frozenset({source})})
    (tmp_path / "inner.csv").write_text("2,a\n", encoding="utf-8")
    assert canonical_json({frozenset({source})}) != before


USER_READER = """
import dataclasses

from helix_tf.components.base import Operator


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reader(Operator):
    stem: str = "notes"

    def load(self):
        with open(self.stem + ".txt") as f:
            return f.read()
"""


def test_the_code_of_a_nested_user_operator_is_checked_like_the_nodes_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nested operator class of the user's own that opens a file named only at run
    time makes the node unreusable, as it does when it is the node's operator."""
    import importlib
    import sys

    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "qa_nested_reader.py").write_text(USER_READER)
    sys.modules.pop("qa_nested_reader", None)
    try:
        reader = importlib.import_module("qa_nested_reader").Reader()
        wf = Workflow("nested")
        wf.source("rows", _csv(tmp_path, "rows.csv", "20,a\n30,b\n"))
        wf.output(wf.feature("wrapped", Wrapped("age", inner=F.Numeric("age"), more=(reader,))))
        compiled = compile_workflow(wf, hasher=ContentHasher())
    finally:
        sys.modules.pop("qa_nested_reader", None)
    assert compiled.node("wrapped").facts.get("volatile"), compiled.node("wrapped").facts
