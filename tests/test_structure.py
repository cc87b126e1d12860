"""The code's shape stays what docs/ARCHITECTURE.md promises a newcomer.

No function over 80 lines, no class with more than 15 methods, and no class body that
re-declares members under ``TYPE_CHECKING`` (the sign of a mixin standing in for a
collaborator), anywhere in ``helix_tf/``. Generated tables are exempt by name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "helix_tf"
MAX_FUNCTION_LINES = 80
MAX_METHODS = 15
#: Modules that are data, not logic (tables written out by hand or by a generator).
GENERATED: frozenset[str] = frozenset()


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() not in GENERATED)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"


def _long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                out.append(f"{_where(path, node)} {node.name}: {lines} lines")
    return out


def _big_classes(path: Path) -> list[str]:
    out = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ClassDef):
            methods = [b for b in node.body if isinstance(b, ast.FunctionDef | ast.AsyncFunctionDef)]
            if len(methods) > MAX_METHODS:
                out.append(f"{_where(path, node)} {node.name}: {len(methods)} methods")
    return out


def _redeclaring_bases(path: Path) -> list[str]:
    out = []
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                out.append(f"{_where(path, stmt)} {node.name} re-declares members under TYPE_CHECKING")
    return out


@pytest.mark.parametrize(
    "check",
    [_long_functions, _big_classes, _redeclaring_bases],
    ids=["functions-at-most-80-lines", "classes-at-most-15-methods", "no-redeclaring-mixins"],
)
def test_helix_tf_keeps_its_shape(check) -> None:
    found = [line for path in _modules() for line in check(path)]
    assert not found, "split these into smaller functions or cooperating objects:\n" + "\n".join(found)


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "sample.py"
    methods = "\n".join(f"    def m{i}(self):\n        pass" for i in range(MAX_METHODS + 1))
    sample.write_text(
        f"from typing import TYPE_CHECKING\ndef long():\n{body}\n"
        f"class Big:\n{methods}\n"
        "class Mixin:\n    if TYPE_CHECKING:\n        def other(self): ...\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert _long_functions(sample) and _big_classes(sample) and _redeclaring_bases(sample)
    finally:
        PACKAGE = saved
