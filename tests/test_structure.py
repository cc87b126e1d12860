"""The code's shape stays what docs/ARCHITECTURE.md promises a newcomer.

No function over 80 lines, no class with more than 15 methods, no class body that
re-declares members under ``TYPE_CHECKING`` (the sign of a mixin standing in for a
collaborator), and no role, state or stage compared as a string literal (use
:class:`~helix_tf.roles.Role`, :class:`~helix_tf.roles.NodeState`,
:class:`~helix_tf.roles.Stage`), anywhere in ``helix_tf/``. Generated tables are
exempt by name.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from helix_tf.roles import NodeState, Role, Stage

PACKAGE = Path(__file__).resolve().parents[1] / "helix_tf"
MAX_FUNCTION_LINES = 80
MAX_METHODS = 15
#: Modules that are data, not logic (tables written out by hand or by a generator).
GENERATED: frozenset[str] = frozenset()


def _modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).as_posix() not in GENERATED
    )


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
            methods = [
                b for b in node.body if isinstance(b, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
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
                out.append(
                    f"{_where(path, stmt)} {node.name} re-declares members under TYPE_CHECKING"
                )
    return out


#: The words the vocabulary enums stand for, by the name of what holds them.
_VOCABULARY: dict[str, frozenset[str]] = {
    "role": frozenset(Role),
    "state": frozenset(NodeState),
    "kind": frozenset(Stage),
}


def _named(node: ast.expr) -> str | None:
    """``role``/``state``/``kind`` when ``node`` holds one: ``x.role``, ``role``, ``x.get("role")``, ``x["role"]``."""
    if isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Name):
        name = node.id
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        name = node.args[0].value
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        name = node.slice.value
    else:
        return None
    return name if name in _VOCABULARY else None


def _literals(node: ast.expr) -> list[str]:
    """The string constants ``node`` is or holds (a tuple, list or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for e in node.elts for s in _literals(e)]
    return []


def _string_vocabulary(path: Path) -> list[str]:
    out = []
    for node in ast.walk(_tree(path)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, right in itertools.pairwise(operands):
            for held, literal in ((left, right), (right, left)):
                name = _named(held)
                words = [w for w in _literals(literal) if name and w in _VOCABULARY[name]]
                if words:
                    out.append(f"{_where(path, node)} compares {name} with the string(s) {words}")
    return out


@pytest.mark.parametrize(
    "check",
    [_long_functions, _big_classes, _redeclaring_bases, _string_vocabulary],
    ids=[
        "functions-at-most-80-lines",
        "classes-at-most-15-methods",
        "no-redeclaring-mixins",
        "roles-and-states-as-enums",
    ],
)
def test_helix_tf_keeps_its_shape(check) -> None:
    found = [line for path in _modules() for line in check(path)]
    assert not found, "split these into smaller functions or cooperating objects:\n" + "\n".join(
        found
    )


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "sample.py"
    methods = "\n".join(f"    def m{i}(self):\n        pass" for i in range(MAX_METHODS + 1))
    sample.write_text(
        f"from typing import TYPE_CHECKING\ndef long():\n{body}\n"
        f"class Big:\n{methods}\n"
        "class Mixin:\n    if TYPE_CHECKING:\n        def other(self): ...\n"
        "def f(node, role):\n    return node.state == 'compute' or role in ('train', 'x')\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert _long_functions(sample) and _big_classes(sample) and _redeclaring_bases(sample)
        assert len(_string_vocabulary(sample)) == 2
    finally:
        PACKAGE = saved


@pytest.mark.parametrize(
    "source",
    [
        "node.role == Role.TRAIN",
        "node.state != NodeState.COMPUTE",
        "split == 'train'",  # a split name, not a role
        "node.name == 'train'",
        "d.get('role') is None",
    ],
)
def test_enum_comparisons_and_other_words_pass(tmp_path: Path, source: str) -> None:
    sample = tmp_path / "ok.py"
    sample.write_text(f"x = {source}\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert _string_vocabulary(sample) == []
    finally:
        PACKAGE = saved
