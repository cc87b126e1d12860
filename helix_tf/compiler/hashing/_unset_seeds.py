"""Seeds left unset (QA pass 12), beside :mod:`._effects`, which calls these on every call
it scans.

* A library call whose seed parameter (``random_state``, ``seed``, ``rng``) is None, by
  its default or as passed: pandas' ``df.sample(frac=0.5)``, scikit-learn's ``shuffle(X)``
  or ``KMeans(3)``, SciPy's ``rvs()``. Such a call draws from numpy's generator for the
  whole process (or from fresh entropy), so what it draws depends on every draw before it.
  The method of a value known only when the code runs (``batch.sample(...)`` on the batch
  a UDF is given) is looked up on pandas' own classes by its name.
* A seed that is a parameter of the function defaulting to None and never set in it
  (``def udf(row, seed=None): ... default_rng(seed)``): helix_tf calls a UDF with its row
  or batch only, so the default is the seed. :func:`none_parameters` finds them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from collections.abc import Callable

from ._origin import _is_user_callable

__all__ = ["SEED_PARAMETERS", "none_parameters", "unset_seed"]

#: Parameters through which libraries take the seed of their draws.
SEED_PARAMETERS = ("random_state", "seed", "rng")
#: pandas classes whose methods a UDF calls on values it is given (a row, a batch, a group).
_PANDAS_CLASSES = (
    ("pandas", "DataFrame"),
    ("pandas", "Series"),
    ("pandas.core.groupby", "DataFrameGroupBy"),
    ("pandas.core.groupby", "SeriesGroupBy"),
)


def unset_seed(
    fn: object,
    node: ast.Call,
    is_none: Callable[[ast.AST], bool],
    *,
    known: bool,
    skip: Callable[[object], bool],
) -> str | None:
    """The seed parameter a library call leaves None (``"random_state"``), else None.

    ``fn`` is what the call calls when ``known``; otherwise its method name is looked up
    on pandas' classes. ``is_none`` tells whether an argument is None at compile time;
    ``skip`` names functions another rule of the scan judges (generators' constructors,
    seeding)."""
    if known:
        if not callable(fn) or skip(fn) or _is_user_callable(fn):
            return None
        signatures = [s for s in [_signature(fn)] if s is not None]
        offset = 0
    elif isinstance(node.func, ast.Attribute):
        signatures = _pandas_methods(node.func.attr)
        offset = 1  # called on the value: ``self`` is not among the call's arguments
    else:
        return None
    for signature in signatures:
        for name in SEED_PARAMETERS:
            parameter = signature.parameters.get(name)
            if parameter is None or parameter.default is not None:
                continue
            given = _given(signature, node, name, offset)
            if given is _MISSING or (isinstance(given, ast.AST) and is_none(given)):
                return name
    return None


_MISSING = object()  # the call leaves the parameter to its default
_HIDDEN = object()  # passed through ``*args`` or ``**kwargs``: not known


def _given(signature: inspect.Signature, node: ast.Call, name: str, offset: int) -> object:
    """The expression a call passes for parameter ``name``, :data:`_MISSING`, or
    :data:`_HIDDEN`."""
    for keyword in node.keywords:
        if keyword.arg == name:
            return keyword.value
        if keyword.arg is None:
            return _HIDDEN
    parameter = signature.parameters[name]
    if parameter.kind in (parameter.KEYWORD_ONLY, parameter.VAR_KEYWORD):
        return _MISSING
    index = list(signature.parameters).index(name) - offset
    for i, arg in enumerate(node.args):
        if isinstance(arg, ast.Starred):
            return _HIDDEN
        if i == index:
            return arg
    return _MISSING


def _signature(fn: object) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin without a signature
        return None


def _pandas_methods(name: str) -> list[inspect.Signature]:
    """The signatures of pandas' methods called ``name`` that take a seed (``sample``),
    when pandas is already imported (nothing is imported here)."""
    return _pandas_seeded_methods(name) if "pandas" in sys.modules else []


@functools.cache
def _pandas_seeded_methods(name: str) -> list[inspect.Signature]:
    found = []
    for module, cls in _PANDAS_CLASSES:
        method = getattr(getattr(sys.modules.get(module), cls, None), name, None)
        signature = _signature(method) if callable(method) else None
        if signature is not None and any(p in signature.parameters for p in SEED_PARAMETERS):
            found.append(signature)
    return found


def none_parameters(function: ast.AST) -> frozenset[str]:
    """The parameters of a function (or lambda) whose default is None and that its body
    never sets: their value is None when a caller leaves them out, as helix_tf does with a
    UDF's parameters past its row or batch."""
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        return frozenset()
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(
        zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    )
    pairs += [
        (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
    ]
    names = {a.arg for a, d in pairs if isinstance(d, ast.Constant) and d.value is None}
    body = function.body if isinstance(function.body, list) else [function.body]
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
                names.discard(node.id)
            elif isinstance(node, ast.Nonlocal | ast.Global):
                names.difference_update(node.names)
    return frozenset(names)
