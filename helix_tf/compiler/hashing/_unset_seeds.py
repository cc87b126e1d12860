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
import textwrap
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
            if isinstance(fn, type) and not _method_calls_pass(scan, fn, node, name):
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


def _method_calls_pass(scan: _Scan, cls: type, node: ast.Call, name: str) -> bool:
    """Whether every call of the methods of ``cls`` that take seed ``name`` on the object
    ``node`` makes is seen, and judged here (QA pass 14): the object is used only through
    its attributes or called (``C().draw(x, seed=S)``, ``C()(x, S)``, or bound to a local
    name: ``c = C()``), and no
    method of the class calls a seeded one itself (``self.draw(x)``: not followed). A
    call passing the seed is reusable; one leaving it out or None draws without one; one
    passing the caller's own seed parameter hands the question to its callers."""
    methods = _seeded_methods(scan, cls, name)
    if not methods or _called_inside(cls, set(methods)):
        return False
    uses = _uses_of_object(scan, node)
    if uses is None:
        return False
    for use in uses:
        parent = scan.parents.get(id(use))
        call: ast.AST | None
        if isinstance(parent, ast.Call) and parent.func is use:  # the object called
            method, call = "__call__", parent
        elif isinstance(parent, ast.Attribute) and parent.value is use:
            method, call = parent.attr, scan.parents.get(id(parent))
            if method in methods and not (isinstance(call, ast.Call) and call.func is parent):
                return False  # the bound method handed on
        else:
            return False  # handed on: its calls are not seen
        if method not in methods or not isinstance(call, ast.Call):
            continue
        signature = _signature(methods[method])
        given = _given(signature, call, name, 1) if signature is not None else _HIDDEN
        if isinstance(given, ast.Name) and _is_parameter(scan, given):
            scan.found.seed_parameters.append((scan.text(call), call.lineno, given.id))
        elif given is _MISSING or (isinstance(given, ast.AST) and _none(scan, given)):
            scan.found.unseeded.append((f"{scan.text(call)} with {name}=None", call.lineno))
    return True


def _seeded_methods(scan: _Scan, cls: type, name: str) -> dict[str, object]:
    """The methods of ``cls`` (its own and inherited) that take seed parameter ``name``."""
    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            function = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if not _is_user_callable(function):
                found.pop(attr, None)  # overridden by something else
            elif name in scan.seeds_of(function):
                found[attr] = function
            else:
                found.pop(attr, None)
    return found


def _called_inside(cls: type, methods: set[str]) -> bool:
    """Whether the code of ``cls`` (or a user class it is built on) names one of
    ``methods`` as an attribute (``self.draw(...)``): such calls are not followed."""
    for klass in cls.__mro__:
        if not _is_user_callable(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            return True
        if any(isinstance(n, ast.Attribute) and n.attr in methods for n in ast.walk(tree)):
            return True
    return False


def _uses_of_object(scan: _Scan, node: ast.Call) -> list[ast.AST] | None:
    """The expressions through which the object ``node`` makes is used: ``node`` itself,
    or every read of the local name it is bound to; None when it goes elsewhere."""
    parent = scan.parents.get(id(node))
    if isinstance(parent, ast.Attribute) or (isinstance(parent, ast.Call) and parent.func is node):
        return [node]
    if not (
        isinstance(parent, ast.Assign)
        and len(parent.targets) == 1
        and isinstance(parent.targets[0], ast.Name)
    ):
        return None
    bound = parent.targets[0].id
    root: ast.AST = parent
    while id(root) in scan.parents:
        root = scan.parents[id(root)]
    stores: list[ast.AST] = [
        n
        for n in ast.walk(root)
        if isinstance(n, ast.Name) and n.id == bound and n is not parent.targets[0]
    ]
    if any(not isinstance(getattr(n, "ctx", None), ast.Load) for n in stores):
        return None  # bound again: not followed
    return stores


def passed_on_seeds(scan: _Scan, tree: ast.AST) -> None:
    """A user function with seed parameters named other than in a call (``map(noise,
    xs)``, ``key=noise``): whoever calls it is not seen, so its seed is taken as None."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name | ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        parent = scan.parents.get(id(node))
        if isinstance(parent, ast.Call) and parent.func is node:
            continue
        if isinstance(parent, ast.ClassDef) and node in parent.bases:
            continue  # a base class: its methods are the subclass's, judged where it is made
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
