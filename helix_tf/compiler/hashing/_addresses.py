"""Memory addresses read as values (QA pass 12), beside :mod:`._effects`, which calls
:func:`address_reads` on every function it scans.

``id(x)`` is an object's address, and the text of an object whose class keeps
``object``'s ``repr`` holds it (``<Thing object at 0x7f...>``): the operating system
places memory at random in every process, so ``sorted(rows, key=id)``, ``id(row) % 7`` or
``str(THING)`` give a fresh run other values under one fingerprint. Comparing two
addresses (``id(a) == id(b)``) reads no value and stays reusable.
"""

from __future__ import annotations

import ast
import builtins
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._effects import _Scan

__all__ = ["ADDRESS_WHY", "address_reads"]

ADDRESS_WHY = (
    "gives a memory address, which the operating system places at random in every "
    "process: a stored result is not what a fresh run computes; use a stable key (a name, "
    "an index, a column's value) instead"
)
#: Calls that give an object's text.
_TEXT_CALLS = (builtins.str, builtins.repr, builtins.format, builtins.ascii)


def address_reads(scan: _Scan, tree: ast.AST) -> None:
    """``id`` called or passed on (``key=id``) other than to compare two addresses, and
    the text of an object known at compile time whose ``repr`` is ``object``'s (in
    ``str(...)``, ``repr(...)``, an f-string)."""
    parents = scan.parents
    own = {  # a class's own __hash__ / __eq__: lookups, not values computed
        id(n)
        for d in ast.walk(tree)
        if isinstance(d, ast.FunctionDef) and d.name in ("__hash__", "__eq__")
        for n in ast.walk(d)
    }
    for node in ast.walk(tree):
        if id(node) in own:
            continue
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if scan.value(node) is builtins.id and _reads_address(node, parents):
                shown = parents.get(id(node)) if _called(node, parents) else node
                _found(scan, shown or node)
        elif isinstance(node, ast.Call) and node.args:
            fn = scan.value(node.func)
            if any(fn is f for f in _TEXT_CALLS) and _default_text(scan.value(node.args[0])):
                _found(scan, node)
        elif isinstance(node, ast.FormattedValue) and _default_text(scan.value(node.value)):
            _found(scan, node.value)


def _found(scan: _Scan, node: ast.AST) -> None:
    scan.found.varying.append((scan.text(node), getattr(node, "lineno", 0), ADDRESS_WHY))


def _called(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    parent = parents.get(id(node))
    return isinstance(parent, ast.Call) and parent.func is node


def _reads_address(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Whether the ``id`` named by ``node`` gives a value used as one: not when its call
    is only compared with another (``id(a) == id(b)``, ``id(a) in seen``)."""
    if not _called(node, parents):
        return True  # passed on: key=id, map(id, ...)
    use = parents.get(id(parents[id(node)]))
    if isinstance(use, ast.Set | ast.Tuple | ast.List):  # id(a) in {id(b), id(c)}
        use = parents.get(id(use))
    return not isinstance(use, ast.Compare)


def _default_text(value: object) -> bool:
    """Whether ``str(value)`` holds its address: an instance of a class (not a module,
    class or function, whose text names them) that keeps ``object``'s ``repr`` and
    ``str``."""
    kind = type(value)
    if kind.__module__ == "builtins" or isinstance(value, type):
        return False
    return kind.__repr__ is object.__repr__ and kind.__str__ is object.__str__
