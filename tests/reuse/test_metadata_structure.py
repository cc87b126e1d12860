"""The metadata package is small cooperating objects (issue 11): no mixins, small classes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import helix_tf.reuse.metadata as metadata

PACKAGE = Path(metadata.__file__).parent
FILES = sorted(PACKAGE.glob("*.py"))


def _classes() -> list[tuple[str, ast.ClassDef]]:
    return [
        (path.name, node)
        for path in FILES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    ]


@pytest.mark.parametrize(("file", "cls"), _classes(), ids=lambda v: getattr(v, "name", v))
def test_each_class_has_at_most_15_methods(file: str, cls: ast.ClassDef) -> None:
    methods = [n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert len(methods) <= 15, f"{file}: {cls.name} has {len(methods)} methods: {methods}"


def test_no_class_re_declares_members_for_the_type_checker() -> None:
    # The old mixins declared their subclass's attributes under ``if TYPE_CHECKING:``
    # inside the class body; a part now receives what it uses in ``__init__``.
    for file, cls in _classes():
        for stmt in cls.body:
            assert not (isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)), (
                f"{file}: {cls.name}"
            )


def test_the_store_is_composed_not_inherited() -> None:
    bases = {cls.name: [ast.unparse(b) for b in cls.bases] for _, cls in _classes()}
    # Only the ``with`` protocol is inherited; the logs are attributes.
    assert bases["MetadataStore"] == ["_Closing"]
    for part in ("Database", "VersionLog", "RunLog", "NodeLog"):
        assert bases[part] == []


def test_no_function_over_80_lines() -> None:
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length < 80, f"{path.name}: {node.name} has {length} lines"
