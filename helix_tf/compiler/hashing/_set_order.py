"""Sets used in their iteration order: one holding text iterates in an order drawn from
the process's string-hash seed, so a result computed from that order is not what a fresh
process computes (QA pass 10). Split from :mod:`._effects`, which calls
:func:`unordered_sets` on every function it scans."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
import types
from typing import TYPE_CHECKING

from ._origin import _is_user_callable

if TYPE_CHECKING:
    from ._effects import _Scan

__all__ = ["unordered_sets"]


def unordered_sets(scan: _Scan, tree: ast.AST) -> None:
    """A set whose iteration order differs between processes (one holding text: Python
    seeds string hashes at random per process) used in that order: iterated, listed,
    joined, enumerated; not a membership test, a size, ``sorted``/``min``/``max``, a set
    operation whose result is used so, or a set returned. A set known at compile time (a module's or
    closure's ``CUTS``), written in the code (``{"a", x}``), or built when the code runs
    (``set(words)``, ``{w for w in words}``, a helper of the user's that returns one: its
    elements are not known, so they may be text); one bound to a local name is judged by
    that name's uses (QA pass 12)."""
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    loads: dict[str, list[ast.Name]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads.setdefault(node.id, []).append(node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            value = scan.value(node)
            unordered = isinstance(value, set | frozenset) and not all(map(_order_stable, value))
        else:
            unordered = _built_unordered(scan, node)
        if unordered and _used_in_order(node, parents, scan, loads):
            scan.found.unordered.append((scan.text(node), getattr(node, "lineno", 0)))


def _built_unordered(scan: _Scan, node: ast.AST) -> bool:
    """A set made by the code whose elements may iterate in another order in another
    process: a literal holding text or values not known at compile time, a set
    comprehension or ``set(...)``/``frozenset(...)`` of what is not known to be numbers
    (written so as to give numbers: :func:`_gives_numbers`; QA pass 14), a call of a user
    function that returns such a set."""
    if isinstance(node, ast.Set):
        return not all(
            _order_stable(_element(scan, e)) or _gives_numbers(scan, e, frozenset())
            for e in node.elts
        )
    if isinstance(node, ast.SetComp):
        return not _gives_numbers(scan, node.elt, _number_targets(scan, node))
    if not isinstance(node, ast.Call):
        return False
    fn = scan.value(node.func)
    if fn is set or fn is frozenset:
        if not node.args:
            return False  # set(): empty, filled by calls judged at their own uses
        if _items_are_numbers(scan, node.args[0]):
            return False  # {len(w) for w in words}, set(range(n)), set(map(len, words))
        items = scan.value(node.args[0])
        if not isinstance(items, list | tuple | set | frozenset | range | dict):
            return True  # not known at compile time: text as likely as numbers
        return not all(map(_order_stable, items))
    return _returns_a_set(fn)


#: Builtins whose result is an int whatever they are given (or that fail). Not ``float``:
#: a NaN hashes by its address (Python 3.10+), so a set holding several iterates in
#: another order in every process.
_NUMBER_CALLS = (len, int, ord, bool)


def _gives_numbers(scan: _Scan, node: ast.AST, numbers: frozenset[str]) -> bool:
    """Whether an expression gives a number that hashes by its value (alike in every
    process) by how it is written: a number literal, a call of ``len``, ``int``, ``ord``,
    ``bool`` or of ``round`` with one argument, a comparison, ``not``, arithmetic of such
    (no NaN comes of it), a number known at compile time, or a name in ``numbers`` (a
    comprehension's variable over ``range``)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float)  # bool is an int; a literal is no NaN
    if isinstance(node, ast.Name) and node.id in numbers:
        return True
    if isinstance(node, ast.Compare) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return True
    if isinstance(node, ast.UnaryOp):
        return _gives_numbers(scan, node.operand, numbers)
    if isinstance(node, ast.BinOp):
        return _gives_numbers(scan, node.left, numbers) and _gives_numbers(
            scan, node.right, numbers
        )
    if isinstance(node, ast.IfExp):
        return _gives_numbers(scan, node.body, numbers) and _gives_numbers(
            scan, node.orelse, numbers
        )
    if isinstance(node, ast.Call):
        fn = scan.value(node.func)
        if fn is round:
            return len(node.args) == 1 and not node.keywords
        return any(fn is f for f in _NUMBER_CALLS)
    value = scan.value(node)
    return isinstance(value, int) or (isinstance(value, float) and value == value)


def _number_targets(scan: _Scan, node: ast.AST) -> frozenset[str]:
    """The names a comprehension binds to numbers: ``i`` in ``for i in range(n)``, or an
    ``enumerate``'s index."""
    names: set[str] = set()
    for generator in getattr(node, "generators", []):
        it, target = generator.iter, generator.target
        called = scan.value(it.func) if isinstance(it, ast.Call) else None
        if called is range and isinstance(target, ast.Name):
            names.add(target.id)
        elif called is enumerate and isinstance(target, ast.Tuple) and target.elts:
            first = target.elts[0]
            if isinstance(first, ast.Name):
                names.add(first.id)
    return frozenset(names)


def _items_are_numbers(scan: _Scan, node: ast.AST) -> bool:
    """Whether what ``set(...)`` is given yields numbers: ``range(...)``, a generator or
    list comprehension of numbers, ``map`` of a number builtin."""
    if isinstance(node, ast.GeneratorExp | ast.ListComp):
        return _gives_numbers(scan, node.elt, _number_targets(scan, node))
    if not isinstance(node, ast.Call):
        return False
    fn = scan.value(node.func)
    if fn is range:
        return True
    if fn is map and node.args:
        mapped = scan.value(node.args[0])
        return any(mapped is f for f in _NUMBER_CALLS)
    return False


def _element(scan: _Scan, node: ast.AST) -> object:
    """An element as written or known at compile time (the scan's marker of a value not
    known is no number: it counts as unstable)."""
    return node.value if isinstance(node, ast.Constant) else scan.value(node)


def _returns_a_set(fn: object) -> bool:
    """Whether a function of the user's own returns a set it builds (``return
    set(words)``): its caller iterates what the function's own scan let pass."""
    function = getattr(fn, "__func__", fn)
    if not isinstance(function, types.FunctionType) or not _is_user_callable(function):
        return False
    return _code_returns_a_set(function.__code__)


@functools.lru_cache(maxsize=1024)
def _code_returns_a_set(code: types.CodeType) -> bool:
    try:
        lines, _ = inspect.getsourcelines(code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return False
    function = tree.body[0] if tree.body else None
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    nested = {
        id(n)
        for d in ast.walk(function)
        if d is not function and isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for n in ast.walk(d)
    }
    own = [n for n in ast.walk(function) if id(n) not in nested]
    sets = {  # local names bound to a set: ``found = set(); ...; return found``
        n.targets[0].id
        for n in own
        if isinstance(n, ast.Assign)
        and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name)
        and _is_set_expression(n.value)
    }
    return any(
        isinstance(node, ast.Return)
        and node.value is not None
        and (
            _is_set_expression(node.value)
            or (isinstance(node.value, ast.Name) and node.value.id in sets)
        )
        for node in own
    )


def _is_set_expression(node: ast.AST) -> bool:
    """Written so as to give a set: a literal, a comprehension, ``set(...)``,
    ``frozenset(...)``, a set operation of those."""
    if isinstance(node, ast.Set | ast.SetComp):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in {"set", "frozenset"}
    if isinstance(node, ast.BinOp) and isinstance(node.op, _SET_OPERATORS):
        return _is_set_expression(node.left) or _is_set_expression(node.right)
    if isinstance(node, ast.IfExp):
        return _is_set_expression(node.body) or _is_set_expression(node.orelse)
    return False


#: Calls whose result does not depend on the order of the set given them.
_ORDER_FREE_CALLS = (sorted, len, min, max, any, all, set, frozenset, bool)
#: Set methods answering a question (order-free), and those giving a set (used as it is).
_SET_QUESTIONS = frozenset({"issubset", "issuperset", "isdisjoint", "__contains__"})
_SET_RESULTS = frozenset({"union", "intersection", "difference", "symmetric_difference", "copy"})
_SET_OPERATORS = (ast.BitOr, ast.BitAnd, ast.Sub, ast.BitXor)
#: Set methods that change it in place and give nothing (``pop`` gives an element: in order).
_SET_CHANGES = frozenset(
    {"add", "discard", "remove", "update", "clear", "difference_update"}
    | {"intersection_update", "symmetric_difference_update"}
)


def _used_in_order(
    node: ast.AST,
    parents: dict[int, ast.AST],
    scan: _Scan,
    loads: dict[str, list[ast.Name]],
    following: frozenset[str] = frozenset(),
) -> bool:
    """Whether the set ``node`` gives is used in its iteration order (conservatively:
    anything but the order-free uses is; bound to a local name, any use of the name in
    order is)."""
    parent = parents.get(id(node))
    if isinstance(parent, ast.Assign | ast.AnnAssign) and parent.value is node:
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        if len(targets) != 1 or not isinstance(targets[0], ast.Name):
            return True
        name = targets[0].id
        if name in following:
            return False  # ``s = s | t``: the name's uses are being looked at already
        uses = loads.get(name, [])
        return any(_used_in_order(u, parents, scan, loads, following | {name}) for u in uses)
    if isinstance(parent, ast.Compare):
        return False  # membership, equality, subset: a truth value, whatever the order
    if isinstance(parent, ast.If | ast.While | ast.IfExp | ast.Assert) and node is parent.test:
        return False  # its truth value: empty or not
    if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
        return False
    if isinstance(parent, ast.Call) and node in parent.args:
        method = parent.func.attr if isinstance(parent.func, ast.Attribute) else ""
        if method in _SET_QUESTIONS | _SET_RESULTS:  # A.union(CUTS): as the receiver
            return method in _SET_RESULTS and _used_in_order(
                parent, parents, scan, loads, following
            )
        fn = scan.value(parent.func)
        return not any(fn is f for f in _ORDER_FREE_CALLS)
    if isinstance(parent, ast.Attribute) and parent.value is node:
        call = parents.get(id(parent))
        if not (isinstance(call, ast.Call) and call.func is parent):
            return True
        if parent.attr in _SET_QUESTIONS or parent.attr in _SET_CHANGES:
            return False
        return parent.attr not in _SET_RESULTS or _used_in_order(
            call, parents, scan, loads, following
        )
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, _SET_OPERATORS):
        return _used_in_order(parent, parents, scan, loads, following)
    if isinstance(parent, ast.IfExp) and node is not parent.test:
        return _used_in_order(parent, parents, scan, loads, following)
    if isinstance(parent, ast.comprehension) and node is parent.iter:
        return _comprehension_in_order(parents.get(id(parent)), parents, scan)
    # Returned, the caller gets the set itself: helix_tf's protocol methods
    # (``inert_params``) are read order-free; a caller that iterates it goes unfollowed,
    # as a set built at run time does.
    return not isinstance(parent, ast.Return)


def _comprehension_in_order(
    comprehension: ast.AST | None, parents: dict[int, ast.AST], scan: _Scan
) -> bool:
    """Whether a comprehension over a set keeps the set's order in what it gives: a set
    comprehension gives a set (judged where it goes, as any set built at run time is); a
    generator or list handed straight to an order-free call (``any(w in SPAM for w in
    S)``, ``sorted(w.lower() for w in S)``) gives what no order changes."""
    if isinstance(comprehension, ast.SetComp):
        return False
    call = parents.get(id(comprehension)) if comprehension is not None else None
    if not isinstance(comprehension, ast.GeneratorExp | ast.ListComp):
        return True
    if not isinstance(call, ast.Call) or comprehension not in call.args:
        return True
    fn = scan.value(call.func)
    return not any(fn is f for f in _ORDER_FREE_CALLS)


def _order_stable(value: object) -> bool:
    """Whether a set of such values iterates in the same order in every process: numbers,
    booleans and None hash by value (tuples of them too); text is hashed with a seed
    drawn per process, other objects mostly by address."""
    if isinstance(value, tuple):
        return all(map(_order_stable, value))
    return value is None or isinstance(value, int | float | complex)
