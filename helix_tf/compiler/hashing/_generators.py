"""Random generators code reaches (the correctness pass, QA passes 9 and 12), beside
:mod:`._effects`, which calls these on every call and every function it scans.

* :func:`kept_generator` and :func:`generators_in`: a generator object other than the
  process's own, and where one can be reached from a value without running code.
* :func:`_draws_shared_state` and :func:`_is_unseeded`: a call that draws from a generator
  the whole process shares, or builds one without a seed (or reads fresh entropy).
* :func:`_kept_draws`: a use of a generator known at compile time that can draw from it
  (``RNG.normal()``, ``frame.sample(random_state=RNG)``, ``helper(CFG)``).
"""

from __future__ import annotations

import ast
import copy
import inspect
import os
import random
import sys
import types
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _effects  # the scan's values (a cycle: read when a function is scanned)
from ._held import LEAVES, held_parts
from ._origin import _is_user_module

if TYPE_CHECKING:
    from ._effects import _Scan

#: Calls on a generator that set or read its state without drawing.
_STATE_CALLS = frozenset({"seed", "getstate", "setstate", "get_state", "set_state"})
#: Random constructors that draw fresh OS entropy when called without a seed.
_RANDOM_CTORS = frozenset(
    {
        "default_rng",
        "RandomState",
        "Random",
        "SeedSequence",
        "PCG64",
        "PCG64DXSM",
        "MT19937",
        "Philox",
        "SFC64",
        "SystemRandom",
        "SeedGenerator",
    }
)


def kept_generator(value: object) -> bool:
    """A random generator object (``random.Random``, numpy's ``Generator``,
    ``RandomState`` or bit generator, TensorFlow's ``tf.random.Generator``, Keras'
    ``SeedGenerator``) other than the ones the ``random`` module and numpy keep for the
    process (their draws are :func:`_is_global_draw`). Only libraries already imported
    are looked at: nothing is imported here."""
    numpy_random = sys.modules.get("numpy.random")
    kinds: list[type] = [random.Random]
    if numpy_random is not None:
        kinds += [numpy_random.Generator, numpy_random.RandomState, numpy_random.BitGenerator]
    for module, name in _OTHER_GENERATORS:
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type):
            kinds.append(kind)
    if not isinstance(value, tuple(kinds)) or isinstance(value, random.SystemRandom):
        return False
    global_state = getattr(getattr(numpy_random, "mtrand", None), "_rand", None)
    return value is not getattr(random, "_inst", None) and value is not global_state


#: Generator classes of libraries other than numpy, by module and name.
_OTHER_GENERATORS = (
    ("tensorflow.python.ops.stateful_random_ops", "Generator"),
    ("keras.src.random.seed_generator", "SeedGenerator"),
)


def generators_in(value: object) -> list[str]:
    """Where a random generator (:func:`kept_generator`) can be reached from ``value``
    without running code: ``""`` for ``value`` itself, else the path to it
    (``.rng``, ``["noise"]``, ``[0].rng``), sorted. Looks through containers, the
    attributes of objects (their ``__dict__`` and slots), a partial's arguments, a bound
    method's object, and a user module's names when ``value`` is one; not into code
    (functions and classes are fingerprinted as code, which finds their own) nor into
    numpy, pandas or Arrow data."""
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if type(item) in LEAVES or id(item) in seen:
            continue
        seen.add(id(item))
        if kept_generator(item):
            found.append(path)
        elif isinstance(item, types.ModuleType):
            if item is value and _is_user_module(item):
                names = vars(item).items()
                stack += [(v, f".{k}") for k, v in names if not k.startswith("__")]
        else:
            stack += held_parts(item, path)
    return sorted(found)


def _is_global_draw(fn: object) -> bool:
    """A draw from the generator the ``random`` module or numpy's global state keeps."""
    owner = getattr(fn, "__self__", None)
    numpy_random = sys.modules.get("numpy.random")
    global_state = getattr(getattr(numpy_random, "mtrand", None), "_rand", None)
    return owner is not None and (owner is getattr(random, "_inst", None) or owner is global_state)


#: TensorFlow modules whose functions draw from state the process keeps: the op-seed
#: counter (``tf.random.normal(shape, seed=1)`` gives another value at every call) or
#: the global generator. ``tf.random.stateless_*`` live elsewhere and are deterministic.
_TF_STATEFUL = frozenset(
    {"tensorflow.python.ops.random_ops", "tensorflow.python.ops.candidate_sampling_ops"}
)
#: TensorFlow functions of other modules that draw so, by module and name prefix.
_TF_STATEFUL_NAMES = (
    ("tensorflow.python.ops.nn_ops", "dropout"),
    ("tensorflow.python.ops.image_ops_impl", "random_"),
    ("tensorflow.python.ops.stateful_random_ops", "get_global_generator"),
)
#: Keras' random functions: with ``seed=None`` they draw from its global SeedGenerator;
#: with an integer seed they are stateless (the same values at every call).
_KERAS_RANDOM = "keras.src.random.random"


def _draws_shared_state(fn: object, node: ast.Call, value: Callable[[ast.AST], object]) -> bool:
    """A call that draws from a generator the whole process shares: the ``random``
    module's, numpy's global ``RandomState``, TensorFlow's stateful random ops and
    global generator, Keras' random functions without a seed. What it draws depends on
    every draw before it, seeded or not."""
    name = getattr(fn, "__name__", "")
    if _is_global_draw(fn):
        return name not in _STATE_CALLS  # seeding or saving the state draws nothing
    module = getattr(fn, "__module__", None) or ""
    if module in _TF_STATEFUL or any(
        module == m and name.startswith(p) for m, p in _TF_STATEFUL_NAMES
    ):
        return True
    if module == _KERAS_RANDOM and callable(fn):
        seed = _argument(fn, node, "seed")
        return seed is None or _is_none(seed, value)
    return False


def _argument(fn: Callable[..., object], node: ast.Call, name: str) -> ast.AST | None:
    """The expression a call passes for parameter ``name`` of ``fn``, or None."""
    for k in node.keywords:
        if k.arg == name:
            return k.value
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    index = params.index(name) if name in params else len(node.args)
    if index < len(node.args) and not any(isinstance(a, ast.Starred) for a in node.args):
        return node.args[index]
    return None


def _is_none(node: ast.AST, value: Callable[[ast.AST], object]) -> bool:
    """Whether an expression is ``None`` as written or by its value known at compile
    time (a module's ``SEED = None``)."""
    if isinstance(node, ast.Constant):
        return node.value is None
    return value(node) is None


#: Functions that return fresh entropy from the operating system on every call.
_ENTROPY = (os.urandom, uuid.uuid1, uuid.uuid4)


def _is_unseeded(fn: object, node: ast.Call, value: Callable[[ast.AST], object]) -> bool:
    """A call that reads fresh entropy or builds a generator without a seed (a seed
    that is ``None``, as written or by its value known at compile time, is none)."""
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", "")
    if name in _STATE_CALLS:
        return False  # seeding or saving the state draws nothing
    if (
        any(fn is f for f in _ENTROPY)
        or getattr(fn, "__module__", None) == "secrets"
        or isinstance(owner, random.SystemRandom)
    ):
        return True  # os.urandom(), uuid.uuid4(), secrets.choice(): fresh OS entropy
    module = (getattr(fn, "__module__", None) or "").split(".")[0]
    if name == "from_non_deterministic_state" and module == "tensorflow":
        return True  # tf.random.Generator.from_non_deterministic_state()
    if name in _RANDOM_CTORS and module in {"random", "numpy", "keras"}:
        if name == "SystemRandom":
            return True
        seed = node.args[0] if node.args else None
        if seed is None:
            keyword = next((k for k in node.keywords if k.arg in _SEED_KEYWORDS), None)
            seed = keyword.value if keyword is not None else None
        return seed is None or _is_none(seed, value)
    return False


#: The keyword under which a generator's constructor takes its seed.
_SEED_KEYWORDS = frozenset({"seed", "x", "entropy"})


def _kept_draws(scan: _Scan, tree: ast.AST) -> None:
    """A use of a generator object known at compile time (a module's or closure's
    ``RNG``, an attribute or item of an object the code reads: ``CFG.rng``,
    ``PARAMS["rng"]``, ``helpers.RNG``) that can draw from it: a method
    (``RNG.normal()``), an argument (``frame.sample(random_state=RNG)``), an alias
    (``rng = RNG``); not a copy (``copy.deepcopy(RNG)``) nor reading or setting its state
    (``RNG.get_state()``, ``RNG.bit_generator.state``). An object holding a generator
    used as a whole (``helper(CFG)``, ``CFG.draw()``: code that is handed it can draw
    from what it holds) is such a use too."""
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    once = _evaluated_once(tree)
    held_by: dict[int, tuple[object, list[str]]] = {}  # by the id of a value read
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
            continue
        if not isinstance(node.ctx, ast.Load) or id(node) in once:
            continue
        value = scan.value(node)
        if value is _effects._UNKNOWN:
            continue
        parent = parents.get(id(node))
        grand = parents.get(id(parent)) if parent is not None else None
        if kept_generator(value):
            shown = _drawing_use(scan.value, node, parent, grand)
            if shown is not None:
                scan.found.kept_draws.append((scan.text(shown), node.lineno))
        elif not _narrowed(scan, node, parent) and not _of_generator(scan, node):
            if id(value) not in held_by:  # the value is kept: its id is not reused
                held_by[id(value)] = (value, generators_in(value))
            held = held_by[id(value)][1]
            if held:
                name = scan.text(node)
                where = ", ".join(name + p for p in held[:3])
                use = scan.text(_use_of(node, parent, grand))
                text = f"{use} ({name} holds a random generator: {where})"
                scan.found.kept_draws.append((text, node.lineno))


def _evaluated_once(tree: ast.AST) -> set[int]:
    """The nodes of a function's default arguments and decorators: evaluated once, when
    the function is defined (their values are hashed as the function's defaults)."""
    if not isinstance(tree, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        return set()
    roots = [*tree.args.defaults, *(d for d in tree.args.kw_defaults if d is not None)]
    roots += getattr(tree, "decorator_list", [])
    return {id(n) for root in roots for n in ast.walk(root)}


def _use_of(node: ast.AST, parent: ast.AST | None, grand: ast.AST | None) -> ast.AST:
    """The call ``node`` is an argument of, to show it (``_noise(CFG)``), else ``node``."""
    if isinstance(parent, ast.keyword) and isinstance(grand, ast.Call):
        return grand
    if isinstance(parent, ast.Call) and node is not parent.func:
        return parent
    return node


def _of_generator(scan: _Scan, node: ast.AST) -> bool:
    """An attribute of a generator (``RNG.normal``): its use is the generator's, looked at
    on its own."""
    base = getattr(node, "value", None)
    return isinstance(base, ast.AST) and kept_generator(scan.value(base))


def _narrowed(scan: _Scan, node: ast.AST, parent: ast.AST | None) -> bool:
    """Whether ``node`` is only the base of an attribute or item that resolves at compile
    time (``CFG`` in ``CFG.scale``): that one is looked at instead."""
    if not isinstance(parent, ast.Attribute | ast.Subscript) or parent.value is not node:
        return False
    return scan.value(parent) is not _effects._UNKNOWN


def _drawing_use(
    value: Callable[[ast.AST], object], node: ast.AST, parent: ast.AST | None, grand: ast.AST | None
) -> ast.AST | None:
    """The expression through which ``node`` (a generator) may be drawn from, or None."""
    if isinstance(parent, ast.keyword) and isinstance(grand, ast.Call):
        parent, grand = grand, None  # a keyword argument: as a positional one
    if isinstance(parent, ast.Call) and node is not parent.func:
        fn = value(parent.func)
        return None if fn is copy.copy or fn is copy.deepcopy else parent
    if isinstance(parent, ast.Attribute) and parent.value is node:
        if parent.attr in _STATE_CALLS:
            return None
        if parent.attr == "bit_generator" and getattr(grand, "attr", None) == "state":
            return None
        return grand if isinstance(grand, ast.Call) and grand.func is parent else parent
    if parent is None or isinstance(parent, _INERT_USES):
        return None
    # Handed on (an alias, returned, yielded, packed in a container, a conditional's
    # value): where it goes is not followed, and whatever gets it can draw.
    return parent


#: Uses of a generator that cannot draw from it: a comparison (``RNG is None``), its
#: truth value, a statement of it alone, its text in an f-string.
_INERT_USES = (
    ast.Compare,
    ast.Expr,
    ast.If,
    ast.While,
    ast.Assert,
    ast.UnaryOp,
    ast.FormattedValue,
)
