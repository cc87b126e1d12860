"""Seeds left unset (QA pass 12), beside :mod:`._effects`, which calls these on every call
it scans.

* A library call whose seed parameter (``random_state``, ``seed``, ``rng``) is None, by
  its default or as passed: pandas' ``df.sample(frac=0.5)``, scikit-learn's ``shuffle(X)``
  or ``KMeans(3)``, SciPy's ``rvs()``. Such a call draws from numpy's generator for the
  whole process (or from fresh entropy), so what it draws depends on every draw before it.
  The method of a value known only when the code runs (``batch.sample(...)`` on the batch
  a UDF is given) is looked up by its name in :data:`RUN_TIME_METHODS`.
* A seed that is a parameter of the function defaulting to None and never set in it
  (``def udf(row, seed=None): ... default_rng(seed)``, :func:`none_parameters`) is the
  function's *seed parameter*: its callers decide. A call of it that leaves the parameter
  out or None draws without a seed (:func:`helper_seeds`), as does handing the function
  on (:func:`passed_on_seeds`); the function helix_tf calls (a UDF, with its row or batch
  only) is refused by :func:`~._code.code_fingerprint` when it has one.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import (
    _effects,  # the scan's other rules (a cycle: read when a call is judged)
    _generators as g,
)
from ._origin import _is_user_callable

if TYPE_CHECKING:
    from ._effects import _Scan

__all__ = [
    "RUN_TIME_METHODS",
    "SEED_PARAMETERS",
    "helper_seeds",
    "judge_seeds",
    "none_parameters",
    "passed_on_seeds",
    "seed_parameter_use",
    "unset_seed",
]

#: Parameters through which libraries take the seed of their draws.
SEED_PARAMETERS = ("random_state", "seed", "rng")
#: Methods with a seed of the values a UDF is given (a pandas batch, a column, a group),
#: by name: their parameters up to the seed, as pandas' ``DataFrame``, ``Series``,
#: ``DataFrameGroupBy`` and ``SeriesGroupBy`` spell them (a test checks them against
#: pandas); the seed defaults to None.
RUN_TIME_METHODS = {"sample": ("self", "n", "frac", "replace", "weights", "random_state")}


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
    """The signature of pandas' method called ``name`` that takes a seed (``sample``), from
    :data:`RUN_TIME_METHODS`: pandas may not be imported when a config compiles (nothing
    is imported here), yet the batch a UDF is given is a DataFrame."""
    names = RUN_TIME_METHODS.get(name)
    if names is None:
        return []
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return [inspect.Signature([inspect.Parameter(n, kind, default=None) for n in names])]


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


def seed_parameter_use(scan: _Scan, node: ast.Call) -> None:
    """A call seeded by a parameter of the function that is None unless a caller passes
    it: recorded as the function's seed parameter (its callers are judged), else, where
    no such parameter is named, a draw without a seed."""
    shown = (scan.text(node), node.lineno)
    names = [
        arg.id
        for arg in [*node.args, *(k.value for k in node.keywords)]
        if isinstance(arg, ast.Name) and _is_parameter(scan, arg)
    ]
    for name in dict.fromkeys(names):
        scan.found.seed_parameters.append((*shown, name))
    if not names:
        scan.found.unseeded.append(shown)


def helper_seeds(scan: _Scan, fn: object, node: ast.Call) -> None:
    """A call of a user function whose seed parameters (``seed=None``, used as a seed)
    the call must pass: left out or None, it draws without a seed; passed the caller's
    own such parameter, the caller's callers decide."""
    seeds = scan.seeds_of(fn)
    signature = _signature(fn) if seeds else None
    for name in seeds:
        if signature is None or name not in signature.parameters:
            if isinstance(fn, type):  # a method's: where its calls are is not followed
                scan.found.unseeded.append(
                    (f"{scan.text(node)}, whose methods take {name}=None", node.lineno)
                )
            continue
        given = _given(signature, node, name, 0)
        if given is _HIDDEN:
            continue
        if isinstance(given, ast.Name) and _is_parameter(scan, given):
            scan.found.seed_parameters.append((scan.text(node), node.lineno, given.id))
        elif given is _MISSING or (isinstance(given, ast.AST) and _none(scan, given)):
            scan.found.unseeded.append((f"{scan.text(node)} with {name}=None", node.lineno))


def passed_on_seeds(scan: _Scan, tree: ast.AST) -> None:
    """A user function with seed parameters named other than in a call (``map(noise,
    xs)``, ``key=noise``): whoever calls it is not seen, so its seed is taken as None."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name | ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        parent = scan.parents.get(id(node))
        if isinstance(parent, ast.Call) and parent.func is node:
            continue
        value = scan.value(node)
        seeds = scan.seeds_of(value) if callable(value) else ()
        if seeds:
            text = f"{scan.text(node)} handed on, its {seeds[0]} None unless its caller passes one"
            scan.found.unseeded.append((text, node.lineno))


def _is_parameter(scan: _Scan, node: ast.Name) -> bool:
    """A parameter of an enclosing function that is None unless a caller passes it."""
    return scan.seed_value(node) is None and scan.value(node) is not None


def _none(scan: _Scan, node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None
    return scan.value(node) is None


def judge_seeds(scan: _Scan, fn: object, node: ast.Call) -> None:
    """Seeds a call leaves None, for a call :mod:`._effects` found no unseeded draw in: a
    library call's ``random_state``, a helper's seed parameter, or a seed that is None
    only because it is a parameter of the function defaulting to None (its callers
    decide: ``seed_parameters``)."""
    e = _effects
    numpy_random = sys.modules.get("numpy.random")
    global_state = getattr(getattr(numpy_random, "mtrand", None), "_rand", None)

    def none(value: Callable[[ast.AST], object]) -> Callable[[ast.AST], bool]:
        def is_none(arg: ast.AST) -> bool:  # numpy's own generator is no seed either
            found = value(arg)
            return g._is_none(arg, value) or any(found is g for g in (numpy_random, global_state))

        return is_none

    known = fn is not e._UNKNOWN
    param = unset_seed(fn, node, none(scan.value), known=known, skip=_judged_elsewhere)
    if param is not None:
        scan.found.unset_seeds.append((scan.text(node), node.lineno, param))
    elif (
        g._draws_shared_state(fn, node, scan.seed_value)
        or g._is_unseeded(fn, node, scan.seed_value)
        or unset_seed(fn, node, none(scan.seed_value), known=known, skip=_judged_elsewhere)
    ):
        seed_parameter_use(scan, node)
    else:
        helper_seeds(scan, fn, node)


def _judged_elsewhere(fn: object) -> bool:
    """Calls whose draws other rules judge: generators' constructors, seeding, the
    ``random`` module and numpy's global draws, a kept generator's methods."""
    name = getattr(fn, "__name__", "")
    module = getattr(fn, "__module__", None) or ""
    owner = getattr(fn, "__self__", None)
    return (
        name in g._RANDOM_CTORS
        or name in g._STATE_CALLS
        or module.split(".")[0] == "random"
        or module.startswith("numpy.random")
        or g._is_global_draw(fn)
        or (owner is not None and g.kept_generator(owner))
    )
