"""Sets used in their iteration order: one holding text iterates in an order drawn from
the process's string-hash seed, so a result computed from that order is not what a fresh
process computes (QA pass 10). Split from :mod:`._effects`, which calls
:func:`unordered_sets` on every function it scans."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._effects import _Scan

__all__ = ["unordered_sets"]


def unordered_sets(scan: _Scan, tree: ast.AST) -> None:
    """A set whose iteration order differs between processes (one holding text: Python
    seeds string hashes at random per process) used in that order: iterated, listed,
    joined, enumerated; not a membership test, a size, ``sorted``/``min``/``max``, a set
    operation whose result is used so, or a set returned. A set known at compile time (a module's or
    closure's ``CUTS``) or written in the code (``{"a", x}``)."""
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Set):
            unordered = any(
                isinstance(e, ast.Constant) and not _order_stable(e.value) for e in node.elts
            )
        elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            value = scan.value(node)
            unordered = isinstance(value, set | frozenset) and not all(map(_order_stable, value))
        else:
            continue
        if unordered and _used_in_order(node, parents, scan):
            scan.found.unordered.append((scan.text(node), node.lineno))


#: Calls whose result does not depend on the order of the set given them.
_ORDER_FREE_CALLS = (sorted, len, min, max, any, all, set, frozenset, bool)
#: Set methods answering a question (order-free), and those giving a set (used as it is).
_SET_QUESTIONS = frozenset({"issubset", "issuperset", "isdisjoint", "__contains__"})
_SET_RESULTS = frozenset({"union", "intersection", "difference", "symmetric_difference", "copy"})
_SET_OPERATORS = (ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor)


def _used_in_order(node: ast.AST, parents: dict[int, ast.AST], scan: _Scan) -> bool:
    """Whether the set ``node`` gives is used in its iteration order (conservatively:
    anything but the order-free uses, e.g. bound to a local name, is)."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Compare) and node in parent.comparators:
        return not isinstance(parent.ops[parent.comparators.index(node)], ast.In | ast.NotIn)
    if isinstance(parent, ast.Call) and node in parent.args:
        method = parent.func.attr if isinstance(parent.func, ast.Attribute) else ""
        if method in _SET_QUESTIONS | _SET_RESULTS:  # A.union(CUTS): as the receiver
            return method in _SET_RESULTS and _used_in_order(parent, parents, scan)
        fn = scan.value(parent.func)
        return not any(fn is f for f in _ORDER_FREE_CALLS)
    if isinstance(parent, ast.Attribute) and parent.value is node:
        call = parents.get(id(parent))
        if not (isinstance(call, ast.Call) and call.func is parent):
            return True
        if parent.attr in _SET_QUESTIONS:
            return False
        return parent.attr not in _SET_RESULTS or _used_in_order(call, parents, scan)
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, _SET_OPERATORS):
        return _used_in_order(parent, parents, scan)
    if isinstance(parent, ast.IfExp) and node is not parent.test:
        return _used_in_order(parent, parents, scan)
    # Returned, the caller gets the set itself: helix_tf's protocol methods
    # (``inert_params``) are read order-free; a caller that iterates it goes unfollowed,
    # as a set built at run time does.
    return not isinstance(parent, ast.Return)


def _order_stable(value: object) -> bool:
    """Whether a set of such values iterates in the same order in every process: numbers,
    booleans and None hash by value (tuples of them too); text is hashed with a seed
    drawn per process, other objects mostly by address."""
    if isinstance(value, tuple):
        return all(map(_order_stable, value))
    return value is None or isinstance(value, int | float | complex)
