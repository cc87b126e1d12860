"""Deterministic hashing of operator parameters and of Python code (UDFs).

Two kinds of identity feed a node's fingerprint (DESIGN.md §3):

* :func:`canonical_json` and :func:`stable_hash` turn parameter values into a
  deterministic text and its SHA-256: independent of dict order, of tuple/list
  spelling and of the process (no ``id()``, no hash randomisation).
* :func:`code_fingerprint` hashes a callable by its *normalised* source (the AST
  without comments, docstrings, formatting or local names) **plus** everything
  it reads that can change its result: module constants, closure values, default
  arguments and, recursively, the helper functions and classes of the user's own
  modules. Library code is identified by module, name and package version.

A stale result is the worst bug this module can cause, so every doubt resolves
towards "changed": source that cannot be found, or that no longer matches the
loaded code, falls back to hashing the bytecode, and values whose state cannot
be hashed are reported in ``notes``, logged, and mark the result not analysable.

Digests are stable within one Python minor version (the AST dump format may
differ between versions). This module never imports TensorFlow, Keras or Beam;
numpy and pandas are imported only when a value is a numpy or pandas object.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import datetime as dt
import decimal
import dis
import enum
import fractions
import functools
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import linecache
import logging
import math
import os
import pathlib
import re
import reprlib
import site
import sys
import sysconfig
import types
import uuid
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CodeFingerprint", "canonical_json", "code_fingerprint", "stable_hash"]

logger = logging.getLogger(__name__)

#: Identities already warned about: each unanalysable callable is logged once per process.
_WARNED: set[str] = set()
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}")
_PYTHON = f"python-{sys.version_info.major}.{sys.version_info.minor}"
_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)
_COMPREHENSIONS = {
    ast.ListComp: "<listcomp>",
    ast.SetComp: "<setcomp>",
    ast.DictComp: "<dictcomp>",
    ast.GeneratorExp: "<genexpr>",
}
_DEFS = ast.FunctionDef | ast.AsyncFunctionDef
_CODE = object()  # marks a value to be hashed as code
_Form = Any  # a JSON-able canonical form: dict with str keys, list, str, int, float, bool, None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CodeFingerprint:
    """The identity of a callable's behaviour.

    Attributes
    ----------
    digest : str
        32 hex characters; equal digests mean equal normalised code and equal
        values of everything the code reads.
    analysable : bool
        False when some code could not be analysed from source (builtins, C
        extensions, code without source) or some value read could not be hashed;
        such parts are identified by name, version or bytecode only.
    notes : tuple of str
        Human-readable notes, e.g. ``"reads module constant SCALE = 2"``,
        ``"calls helper normalise()"``; a helper's notes are prefixed with its name.
    reads : tuple of str
        Sorted names of the globals, closure variables, module attributes and
        helpers the code depends on; a helper's own reads appear as
        ``"helper/NAME"``.
    """

    digest: str
    analysable: bool
    notes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()


def canonical_json(value: object) -> str:
    """Return a deterministic JSON text for a parameter value.

    Parameters
    ----------
    value : object
        Plain data (None, bool, int, float, str, bytes, lists, tuples, dicts,
        sets), enums, paths, dates, numpy scalars and arrays, pandas objects,
        dataclass instances, operator specs (objects with ``params()``) and
        callables (hashed by :func:`code_fingerprint`).

    Returns
    -------
    str
        Compact JSON with sorted keys. Tuples and lists are equal; sets are
        sorted; floats keep their ``repr`` (``0.1`` stays ``0.1``); ``nan``,
        ``inf`` and ``-0.0`` are tagged explicitly.

    Raises
    ------
    TypeError
        For an object with no known canonical form whose ``repr`` is based on
        its memory address, or for a self-referencing container.

    Examples
    --------
    >>> canonical_json({"b": (1, 2.5), "a": {3}})
    '{"a":{"__set__":[3]},"b":[1,2.5]}'
    """
    return _dumps(_Canon(_standalone_code_form)(value))


def stable_hash(value: object, *, length: int = 32) -> str:
    """Return the SHA-256 hex digest of :func:`canonical_json`, truncated.

    Parameters
    ----------
    value : object
        Anything :func:`canonical_json` accepts.
    length : int
        Number of hex characters to keep, 1 to 64.

    Examples
    --------
    >>> stable_hash({"b": 2, "a": 1}) == stable_hash({"a": 1, "b": 2})
    True
    """
    if not 1 <= length <= 64:
        raise ValueError(f"1 <= length <= 64 must hold, but got length={length}")
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def code_fingerprint(fn: Callable[..., object]) -> CodeFingerprint:
    """Fingerprint a callable: its normalised code and everything it reads.

    Parameters
    ----------
    fn : callable
        A function, lambda, class, bound method, ``functools.partial``,
        decorated function (``__wrapped__``) or callable instance.

    Returns
    -------
    CodeFingerprint
        Renaming locals, reformatting, comments and docstrings leave the digest
        unchanged; editing the body, a helper (at any depth), a constant, a
        closure value or a default argument changes it.

    Notes
    -----
    User code (modules outside the Python installation and site-packages) is
    analysed from source; library code is identified by module, qualified name
    and package version. A callable that cannot be analysed is logged once per
    identity and has ``analysable=False``.
    """
    if not callable(fn):
        raise TypeError(f"code_fingerprint expects a callable, but got {_type_name(type(fn))}")
    return _Fingerprinter(warn_library=True).fingerprint(fn)


# --------------------------------------------------------------------------- canonical values


def _dumps(form: _Form) -> str:
    return json.dumps(
        form, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def _digest(form: _Form) -> str:
    return hashlib.sha256(_dumps(form).encode("utf-8")).hexdigest()[:32]


def _standalone_code_form(obj: object) -> _Form:
    return {"__code__": _Fingerprinter(warn_library=False).fingerprint(obj).digest}


def _float_form(x: float) -> _Form:
    if math.isnan(x):
        return {"__float__": "nan"}
    if math.isinf(x):
        return {"__float__": "inf" if x > 0 else "-inf"}
    if x == 0.0 and math.copysign(1.0, x) < 0:
        return {"__float__": "-0.0"}
    return x


class _Canon:
    """Converts a value to its canonical form; ``code_form`` handles callables."""

    def __init__(self, code_form: Callable[[object], _Form]) -> None:
        self._code_form = code_form
        self._active: set[int] = set()

    def __call__(self, v: object) -> _Form:
        if v is None or isinstance(v, bool):
            return v
        if v is Ellipsis:
            return {"__ellipsis__": True}
        if isinstance(v, enum.Enum):
            return {"__enum__": _type_name(type(v)), "name": v.name, "value": self(v.value)}
        module = type(v).__module__
        if module.startswith("numpy"):
            form = self._numpy(v)
            if form is not None:
                return form
        if module.startswith("pandas"):
            form = self._pandas(v)
            if form is not None:
                return form
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return _float_form(float(v))
        if isinstance(v, str):
            return str(v)
        if isinstance(v, bytes | bytearray | memoryview):
            return {"__bytes__": bytes(v).hex()}
        if isinstance(v, complex):
            return {"__complex__": [_float_form(v.real), _float_form(v.imag)]}
        if isinstance(v, decimal.Decimal):
            return {"__decimal__": str(v)}
        if isinstance(v, fractions.Fraction):
            return {"__fraction__": [v.numerator, v.denominator]}
        if isinstance(v, dt.date | dt.time):
            return {"__time__": v.isoformat()}
        if isinstance(v, dt.timedelta):
            return {"__timedelta__": [v.days, v.seconds, v.microseconds]}
        if isinstance(v, uuid.UUID):
            return {"__uuid__": str(v)}
        if isinstance(v, range):
            return {"__range__": [v.start, v.stop, v.step]}
        if isinstance(v, pathlib.PurePath):
            return str(v)
        with self._guard(v):
            form = self._compound(v)
        # Code is fingerprinted outside the guard: the fingerprinter has its own cycle guard.
        return self._code_form(v) if form is _CODE else form

    def _compound(self, v: object) -> _Form:
        if isinstance(v, Mapping):
            return self._mapping(v)
        if isinstance(v, list | tuple):
            return [self(x) for x in v]
        if isinstance(v, set | frozenset):
            return {"__set__": [json.loads(s) for s in sorted(_dumps(self(x)) for x in v)]}
        if isinstance(v, types.SimpleNamespace):
            return {"__namespace__": self._mapping(vars(v))}
        if not isinstance(v, type):
            params = getattr(v, "params", None)
            if callable(params):
                form = {"__op__": type(v).__name__, "params": self(params())}
                if _is_user_type(type(v)):  # an operator written in the user's own code
                    form["code"] = self._code_form(type(v))
                return form
            if dataclasses.is_dataclass(v):
                cls = type(v)
                fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
                form = {"__class__": _type_name(cls), "fields": self(fields)}
                if _is_user_type(cls):
                    form["code"] = self._code_form(cls)
                return form
        if callable(v):
            return _CODE
        if _is_user_type(type(v)):
            return {"__instance__": self._code_form(type(v)), "state": self(_state(v))}
        text = repr(v)
        if type(v).__repr__ is object.__repr__ or _ADDRESS.search(text):
            raise TypeError(
                f"cannot hash an object of type {_type_name(type(v))}: its repr {text[:80]!r} "
                "depends on its memory address; pass plain values, a dataclass or an object "
                "with a params() method instead"
            )
        return {"__object__": _type_name(type(v)), "repr": text}

    def _guard(self, v: object) -> _ActiveGuard:
        return _ActiveGuard(self._active, v)

    def _mapping(self, v: Mapping[Any, Any]) -> _Form:
        items = list(v.items())
        if all(type(k) is str and not k.startswith("__") for k, _ in items):
            return {k: self(x) for k, x in items}
        pairs = [[self(k), self(x)] for k, x in items]
        return {"__dict__": sorted(pairs, key=lambda p: _dumps(p[0]))}

    def _numpy(self, v: object) -> _Form | None:
        import numpy as np

        if isinstance(v, np.ndarray):
            form: dict[str, _Form] = {"shape": list(v.shape)}
            if type(v) is not np.ndarray:
                form["class"] = _type_name(type(v))
            if isinstance(v, np.ma.MaskedArray):
                form["mask"] = self(np.ma.getmaskarray(v))
                v = np.ma.getdata(v)
            if v.dtype.hasobject:
                form["__ndarray__"] = "object"
                with self._guard(v):
                    form["data"] = self(v.tolist())
                return form
            arr = np.ascontiguousarray(v)
            if not arr.dtype.isnative:
                arr = arr.astype(arr.dtype.newbyteorder("="))
            form["__ndarray__"] = str(arr.dtype)
            form["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
            return form
        if isinstance(v, np.generic):
            wide = v.dtype.kind in "fc" and v.dtype.itemsize > (8 if v.dtype.kind == "f" else 16)
            value = repr(v) if wide else self(v.item())
            return {"__np_scalar__": str(v.dtype), "value": value}
        if isinstance(v, np.dtype):
            return {"__np_dtype__": str(v)}
        return None

    def _pandas(self, v: object) -> _Form | None:
        import pandas as pd

        def rows(obj: Any) -> str:
            hashes = pd.util.hash_pandas_object(obj, index=False)
            return hashlib.sha256(hashes.to_numpy().tobytes()).hexdigest()

        if isinstance(v, pd.DataFrame):
            return {
                "__pandas__": "DataFrame",
                "columns": self(list(v.columns)),
                "dtypes": [str(t) for t in v.dtypes],
                "index": self(v.index),
                "rows": rows(v),
            }
        if isinstance(v, pd.Series):
            return {
                "__pandas__": "Series",
                "name": self(v.name),
                "dtype": str(v.dtype),
                "index": self(v.index),
                "rows": rows(v),
            }
        if isinstance(v, pd.Index):
            return {
                "__pandas__": type(v).__name__,
                "names": self(list(v.names)),
                "dtype": str(v.dtype),
                "rows": rows(v),
            }
        if isinstance(v, pd.Timestamp | pd.Timedelta | pd.Period | pd.Interval):
            return {"__pandas__": type(v).__name__, "value": str(v)}
        return None


class _ActiveGuard:
    """Rejects self-referencing values (a list that contains itself)."""

    def __init__(self, active: set[int], value: object) -> None:
        self._active = active
        self._key = id(value)

    def __enter__(self) -> None:
        if self._key in self._active:
            raise TypeError("cannot hash a value that contains itself")
        self._active.add(self._key)

    def __exit__(self, *exc: object) -> None:
        self._active.discard(self._key)


def _state(obj: object) -> dict[str, object]:
    """An instance's attributes: its slots (across the MRO) and its ``__dict__``."""
    state: dict[str, object] = {}
    for cls in reversed(type(obj).__mro__):
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            private = slot.startswith("__") and not slot.endswith("__")
            attr = f"_{cls.__name__.lstrip('_')}{slot}" if private else slot
            try:
                state[slot] = getattr(obj, attr)
            except AttributeError:
                continue
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        state.update(attrs)
    return state


# --------------------------------------------------------------------------- user or library


def _type_name(cls: type) -> str:
    """``qualname`` for user classes (no module: moving a file must not matter), else dotted."""
    if _is_user_type(cls):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.lru_cache(maxsize=1)
def _install_dirs() -> tuple[str, ...]:
    dirs: set[str] = set()
    bases = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    for paths in (sysconfig.get_paths(), sysconfig.get_paths(vars=bases)):
        dirs.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - an old virtualenv's site module
        pass
    return tuple(sorted({os.path.realpath(d) for d in dirs if d}))


def _real_file(filename: str | None) -> str | None:
    if not filename or (filename.startswith("<") and filename.endswith(">")):
        return None
    return os.path.realpath(filename)


def _under_install(path: str) -> bool:
    if {"site-packages", "dist-packages"} & set(pathlib.PurePath(path).parts):
        return True
    return any(path == d or path.startswith(d + os.sep) for d in _install_dirs())


@functools.lru_cache(maxsize=4096)
def _is_user_location(modname: str | None, filename: str | None) -> bool:
    """True for the user's own code: not helix_tf, not the stdlib, not site-packages."""
    top = (modname or "").split(".")[0]
    if top == "helix_tf":
        return False
    real = _real_file(filename)
    if real is not None and _under_install(real):
        return False
    stdlib = top in sys.stdlib_module_names or top in sys.builtin_module_names
    # A standard-library name with a file outside the installation is a user module shadowing it.
    return not (stdlib and real is None)


def _is_user_module(mod: types.ModuleType) -> bool:
    return _is_user_location(mod.__name__, getattr(mod, "__file__", None))


def _is_user_type(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    return _is_user_location(cls.__module__, getattr(module, "__file__", None))


def _is_user_function(fn: types.FunctionType) -> bool:
    return _is_user_location(fn.__globals__.get("__name__"), fn.__code__.co_filename)


def _is_user_callable(v: object) -> bool:
    if isinstance(v, types.FunctionType):
        return _is_user_function(v)
    if isinstance(v, types.MethodType | staticmethod | classmethod):
        return _is_user_callable(v.__func__)
    if isinstance(v, functools.partial):
        return _is_user_callable(v.func)
    if isinstance(v, type):
        return _is_user_type(v)
    return _is_user_type(type(v))


def _identity(obj: object) -> tuple[str, str]:
    """(module, qualname) of a library callable."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        owner = getattr(obj, "__objclass__", None)
        bound = getattr(obj, "__self__", None)
        if owner is not None:
            module = owner.__module__
        elif isinstance(bound, types.ModuleType):
            module = bound.__name__
        else:
            module = type(bound if bound is not None else obj).__module__
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(qualname, str):
        qualname = type(obj).__qualname__
    return module, qualname


@functools.lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.lru_cache(maxsize=1024)
def _package_version(module: str) -> str:
    """The version of the package a module belongs to (never imports it)."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return _PYTHON
    version = getattr(sys.modules.get(top), "__version__", None)
    if isinstance(version, str):
        return version
    for dist in _distributions().get(top, [top]):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _warn_once(identity: str, message: str) -> None:
    if identity in _WARNED:
        return
    _WARNED.add(identity)
    logger.warning(message)


def _short_repr(value: object) -> str:
    try:
        return reprlib.repr(value)
    except Exception:  # a broken __repr__ must not break fingerprinting
        return f"<{type(value).__qualname__}>"


# --------------------------------------------------------------------------- source and AST


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _ModuleSource:
    """A parsed source file: its definitions by qualname and its compiled code objects."""

    tree: ast.Module
    defs: tuple[tuple[str, ast.AST], ...]
    code: dict[tuple[str, int], list[types.CodeType]] | None

    def matches(self, code: types.CodeType) -> bool:
        """True when the file still compiles to the loaded code object."""
        if self.code is None:
            return False
        key = (code.co_qualname, code.co_firstlineno)
        return any(_same_code(code, other) for other in self.code.get(key, ()))


@functools.lru_cache(maxsize=64)
def _parse_source(filename: str, text: str) -> _ModuleSource | None:
    try:
        tree = ast.parse(text, filename=filename)
    except (SyntaxError, ValueError):
        return None
    try:
        compiled: types.CodeType | None = compile(text, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        compiled = None
    index: dict[tuple[str, int], list[types.CodeType]] | None = None
    if compiled is not None:
        index = {}
        stack = [compiled]
        while stack:
            co = stack.pop()
            index.setdefault((co.co_qualname, co.co_firstlineno), []).append(co)
            stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return _ModuleSource(tree=tree, defs=tuple(_qualified_defs(tree)), code=index)


def _qualified_defs(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Every def, class and lambda with the ``__qualname__`` CPython gives it."""
    out: list[tuple[str, ast.AST]] = []

    def visit(node: ast.AST, unit: str, kind: str) -> None:
        if isinstance(node, _DEFS | ast.ClassDef | ast.Lambda):
            name = "<lambda>" if isinstance(node, ast.Lambda) else node.name
            qualname = _child_qualname(unit, kind, name)
            out.append((qualname, node))
            outer: list[ast.AST] = []
            inner: list[ast.AST] = []
            if isinstance(node, ast.ClassDef):
                outer = [*node.decorator_list, *node.bases, *node.keywords]
                inner = list(node.body)
            else:
                args = node.args
                outer = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
                if isinstance(node, ast.Lambda):
                    inner = [node.body]
                else:
                    outer += node.decorator_list
                    inner = list(node.body)
            for child in outer:
                visit(child, unit, kind)
            child_kind = "class" if isinstance(node, ast.ClassDef) else "function"
            for child in inner:
                visit(child, qualname, child_kind)
            return
        if type(node) in _COMPREHENSIONS:
            qualname = _child_qualname(unit, kind, _COMPREHENSIONS[type(node)])
            generators = node.generators  # type: ignore[attr-defined]
            visit(generators[0].iter, unit, kind)
            rest = [c for c in ast.iter_child_nodes(node) if c is not generators[0].iter]
            for child in rest:
                if isinstance(child, ast.comprehension):
                    for part in ast.iter_child_nodes(child):
                        if part is not generators[0].iter:
                            visit(part, qualname, "comprehension")
                else:
                    visit(child, qualname, "comprehension")
            return
        for child in ast.iter_child_nodes(node):
            visit(child, unit, kind)

    for stmt in tree.body:
        visit(stmt, "", "module")
    return out


def _child_qualname(unit: str, kind: str, name: str) -> str:
    if kind == "module":
        return name
    if kind == "function":
        return f"{unit}.<locals>.{name}"
    return f"{unit}.{name}"


def _start_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    return decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined]


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    if (a.co_code, a.co_names, a.co_varnames, a.co_freevars, a.co_cellvars) != (
        b.co_code,
        b.co_names,
        b.co_varnames,
        b.co_freevars,
        b.co_cellvars,
    ) or len(a.co_consts) != len(b.co_consts):
        return False
    return all(_same_const(x, y) for x, y in zip(a.co_consts, b.co_consts, strict=True))


def _same_const(x: object, y: object) -> bool:
    """Constants compare by type and repr (so 0.0 != -0.0); frozensets ignore their order,
    which depends on the hash seed of the process that wrote a ``.pyc``."""
    if type(x) is not type(y):
        return False
    if isinstance(x, types.CodeType):
        return _same_code(x, y)  # type: ignore[arg-type]
    if isinstance(x, frozenset):
        return sorted(map(repr, x)) == sorted(map(repr, y))  # type: ignore[call-overload]
    if isinstance(x, tuple):
        return len(x) == len(y) and all(map(_same_const, x, y))  # type: ignore[arg-type]
    return repr(x) == repr(y)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _DEFS | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _code_globals(code: types.CodeType) -> list[str]:
    """Names the code (and its nested code) loads as globals, in order of appearance."""
    names: dict[str, None] = {}
    stack = [code]
    while stack:
        co = stack.pop(0)
        for ins in dis.get_instructions(co):
            if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"):
                names[str(ins.argval)] = None
        stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return list(names)


class _Scope:
    __slots__ = ("bound", "declared_global", "declared_nonlocal", "imports", "kind", "parent")

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind  # "function", "class" or "comprehension"
        self.parent = parent
        self.bound: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.imports: set[str] = set()


_Key = tuple[str, int, str]  # (kind, id(scope), name); kind "local", "import" or "class"


class _Normaliser:
    """Normalises one def, lambda or class and finds the names it reads from outside.

    Docstrings and annotations inside functions go, the top definition's name (and
    a top function's decorators) go, and local names are renamed ``$0``, ``$1``...
    in order of first appearance. ``free`` lists the names read from the defining
    environment, ``imports`` the local imports, ``chains`` the attribute chains
    used on each outside name (``helpers.normalise`` -> ``("normalise",)``).
    """

    def __init__(self, node: ast.AST) -> None:
        self.tree = node
        self._refs: list[tuple[ast.AST, str, int | None, _Scope | None, str]] = []
        self.imports: list[tuple[ast.Import | ast.ImportFrom, ast.alias, _Key]] = []
        _strip_docstrings(node)
        if isinstance(node, _DEFS):
            self._function(node, None, top=True)
        elif isinstance(node, ast.ClassDef):
            self._class(node, None, top=True)
        else:
            self._visit(node, None)
        parents = {id(c): p for p in ast.walk(node) for c in ast.iter_child_nodes(p)}
        self.free: dict[str, None] = {}
        self.chains: dict[object, set[tuple[str, ...]]] = {}
        self._resolved: list[tuple[ast.AST, str, int | None, _Key | None, str]] = []
        for holder, field, index, scope, name in self._refs:
            key = self._lookup(scope, name)
            self._resolved.append((holder, field, index, key, name))
            if key is None:
                self.free.setdefault(name, None)
            if (key is None or key[0] == "import") and isinstance(holder, ast.Name):
                chain: list[str] = []
                child, parent = holder, parents.get(id(holder))
                while isinstance(parent, ast.Attribute) and parent.value is child:
                    chain.append(parent.attr)
                    child, parent = parent, parents.get(id(parent))
                self.chains.setdefault(key or ("free", name), set()).add(tuple(chain))
        for imported in self.imports:
            self.chains.setdefault(imported[2], set())

    def dump(self, self_names: set[str]) -> str:
        """Rename locals canonically (and self-references to ``$self``) and dump the AST."""
        names: dict[_Key, str] = {}
        for holder, field, index, key, name in self._resolved:
            if key is None:
                new = "$self" if name in self_names else name
            elif key[0] == "local":
                new = names.setdefault(key, f"${len(names)}")
            else:
                continue
            if index is None:
                setattr(holder, field, new)
            else:
                getattr(holder, field)[index] = new
        return ast.dump(self.tree, annotate_fields=True, include_attributes=False)

    # -- pass 1: scopes, bindings and references
    def _ref(self, holder: ast.AST, field: str, index: int | None, scope: _Scope | None) -> None:
        name = getattr(holder, field) if index is None else getattr(holder, field)[index]
        self._refs.append((holder, field, index, scope, name))

    def _bind(self, holder: ast.AST, field: str, scope: _Scope | None) -> None:
        if scope is not None:
            scope.bound.add(getattr(holder, field))
        self._ref(holder, field, None, scope)

    def _visit(self, node: ast.AST, scope: _Scope | None) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self._ref(node, "id", None, scope)
            else:
                self._bind(node, "id", scope)
        elif isinstance(node, _DEFS):
            self._function(node, scope, top=False)
        elif isinstance(node, ast.ClassDef):
            self._class(node, scope, top=False)
        elif isinstance(node, ast.Lambda):
            self._defaults(node.args, scope)
            inner = _Scope("function", scope)
            self._arguments(node.args, inner)
            self._visit(node.body, inner)
        elif type(node) in _COMPREHENSIONS:
            self._comprehension(node, scope)
        elif isinstance(node, ast.NamedExpr):
            self._visit(node.value, scope)
            target = scope
            while target is not None and target.kind == "comprehension":
                target = target.parent
            self._bind(node.target, "id", target)
        elif isinstance(node, ast.Global) and scope is not None:
            scope.declared_global.update(node.names)
        elif isinstance(node, ast.Nonlocal) and scope is not None:
            scope.declared_nonlocal.update(node.names)
            for i in range(len(node.names)):
                self._ref(node, "names", i, scope)
        elif isinstance(node, ast.ExceptHandler):
            if node.type is not None:
                self._visit(node.type, scope)
            if node.name:
                self._bind(node, "name", scope)
            for stmt in node.body:
                self._visit(stmt, scope)
        elif isinstance(node, ast.MatchAs | ast.MatchStar | ast.MatchMapping):
            self._children(node, scope)
            field = "rest" if isinstance(node, ast.MatchMapping) else "name"
            if getattr(node, field):
                self._bind(node, field, scope)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if scope is not None:
                    scope.bound.add(bound)
                    scope.imports.add(bound)
                    self.imports.append((node, alias, ("import", id(scope), bound)))
        elif isinstance(node, ast.AnnAssign) and scope is not None and scope.kind != "class":
            node.annotation = ast.Constant(value=None)
            self._visit(node.target, scope)
            if node.value is not None:
                self._visit(node.value, scope)
        else:
            self._children(node, scope)

    def _children(self, node: ast.AST, scope: _Scope | None) -> None:
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope | None, *, top: bool
    ) -> None:
        if top:
            node.decorator_list = []
            node.name = ""
        for decorator in node.decorator_list:
            self._visit(decorator, scope)
        self._defaults(node.args, scope)
        if not top:
            self._bind(node, "name", scope)
        node.returns = None
        inner = _Scope("function", scope)
        self._arguments(node.args, inner)
        for stmt in node.body:
            self._visit(stmt, inner)

    def _class(self, node: ast.ClassDef, scope: _Scope | None, *, top: bool) -> None:
        for child in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self._visit(child, scope)
        if top:
            node.name = ""
        else:
            self._bind(node, "name", scope)
        inner = _Scope("class", scope)
        for stmt in node.body:
            self._visit(stmt, inner)

    def _defaults(self, args: ast.arguments, scope: _Scope | None) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self._visit(default, scope)

    def _arguments(self, args: ast.arguments, inner: _Scope) -> None:
        every = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
        for arg in every:
            if arg is not None:
                arg.annotation = None
                self._bind(arg, "arg", inner)

    def _comprehension(self, node: ast.AST, scope: _Scope | None) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self._visit(generators[0].iter, scope)
        inner = _Scope("comprehension", scope)
        for i, generator in enumerate(generators):
            self._visit(generator.target, inner)
            if i:
                self._visit(generator.iter, inner)
            for condition in generator.ifs:
                self._visit(condition, inner)
        if isinstance(node, ast.DictComp):
            self._visit(node.key, inner)
            self._visit(node.value, inner)
        else:
            self._visit(node.elt, inner)  # type: ignore[attr-defined]

    # -- pass 2: which binding each reference means
    @staticmethod
    def _lookup(scope: _Scope | None, name: str) -> _Key | None:
        first = True
        while scope is not None:
            if name in scope.declared_global:
                return None
            if scope.kind == "class":
                if first and name in scope.bound:
                    return ("class", id(scope), name)
            elif name not in scope.declared_nonlocal and name in scope.bound:
                kind = "import" if name in scope.imports else "local"
                return (kind, id(scope), name)
            scope, first = scope.parent, False
        return None


# --------------------------------------------------------------------------- fingerprinting


@dataclasses.dataclass(slots=True)
class _Collector:
    notes: list[str] = dataclasses.field(default_factory=list)
    reads: list[str] = dataclasses.field(default_factory=list)
    analysable: bool = True

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def read(self, name: str) -> None:
        if name not in self.reads:
            self.reads.append(name)

    def merge(self, fp: CodeFingerprint, label: str) -> None:
        self.analysable = self.analysable and fp.analysable
        for note in fp.notes:
            self.note(f"{label}: {note}")
        for name in fp.reads:
            self.read(f"{label}/{name}")


class _Fingerprinter:
    """One fingerprinting pass: memoises per object and guards against cycles."""

    def __init__(self, *, warn_library: bool) -> None:
        self._warn_library = warn_library
        self._memo: dict[int, tuple[object, CodeFingerprint]] = {}
        self._stack: list[int] = []
        self._collectors: list[_Collector] = []
        self._labels: list[str] = []
        self._sources: dict[str, _ModuleSource | None] = {}
        self._canon = _Canon(self._nested_code_form)

    def fingerprint(self, obj: object) -> CodeFingerprint:
        key = id(obj)
        if key in self._memo:
            return self._memo[key][1]
        if key in self._stack:  # recursion: refer to the frame by its distance
            depth = len(self._stack) - self._stack.index(key)
            return CodeFingerprint(digest=_digest({"__cycle__": depth}), analysable=True)
        collector = _Collector()
        self._stack.append(key)
        self._collectors.append(collector)
        try:
            form = self._form(obj, collector)
        finally:
            self._stack.pop()
            self._collectors.pop()
        result = CodeFingerprint(
            digest=_digest(form),
            analysable=collector.analysable,
            notes=tuple(collector.notes),
            reads=tuple(sorted(collector.reads)),
        )
        self._memo[key] = (obj, result)
        return result

    def _nested_code_form(self, obj: object) -> _Form:
        fp = self.fingerprint(obj)
        label = self._labels[-1] if self._labels else _identity(obj)[1]
        if self._collectors:
            self._collectors[-1].merge(fp, label)
        return {"__code__": fp.digest}

    def _sub(self, obj: object, label: str, c: _Collector) -> str:
        fp = self.fingerprint(obj)
        c.merge(fp, label)
        return fp.digest

    # -- dispatch
    def _form(self, obj: object, c: _Collector) -> _Form:
        wrapped = vars(obj).get("__wrapped__") if hasattr(obj, "__dict__") else None
        if wrapped is not None and wrapped is not obj and not isinstance(obj, type):
            inner = self._sub(wrapped, _identity(wrapped)[1], c)
            return {"__wrapper__": self._unwrapped_form(obj, c), "wrapped": inner}
        return self._unwrapped_form(obj, c)

    def _unwrapped_form(self, obj: object, c: _Collector) -> _Form:
        if isinstance(obj, functools.partial):
            return {
                "__partial__": self._sub(obj.func, _identity(obj.func)[1], c),
                "args": self._value(obj.args, "partial arguments", c),
                "keywords": self._value(obj.keywords, "partial keywords", c),
            }
        if isinstance(obj, types.MethodType):
            return {
                "__method__": self._sub(obj.__func__, obj.__func__.__name__, c),
                "self": self._value(obj.__self__, "self", c),
            }
        if isinstance(obj, staticmethod | classmethod):
            return {"__descriptor__": self._sub(obj.__func__, obj.__func__.__name__, c)}
        if isinstance(obj, types.FunctionType):
            if _is_user_function(obj):
                return self._user_function(obj, c)
            return self._library(obj, c)
        if isinstance(obj, type):
            return self._user_class(obj, c) if _is_user_type(obj) else self._library(obj, c)
        if not isinstance(obj, _BUILTIN_CALLABLES) and callable(obj) and _is_user_type(type(obj)):
            return {
                "__instance__": self._sub(type(obj), type(obj).__qualname__, c),
                "state": self._value(_state(obj), "state", c),
            }
        if callable(obj):
            return self._library(obj, c)
        raise TypeError(f"code_fingerprint expects a callable, but got {_type_name(type(obj))}")

    def _library(self, obj: object, c: _Collector) -> _Form:
        module, qualname = _identity(obj)
        version = _package_version(module)
        form: dict[str, _Form] = {"__library__": f"{module}.{qualname}", "version": version}
        if isinstance(obj, types.FunctionType):
            cells = zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True)
            closure = {name: self._cell(cell, name, c) for name, cell in cells}
            if closure:
                form["closure"] = closure
        elif isinstance(obj, _BUILTIN_CALLABLES):
            bound = getattr(obj, "__self__", None)
            if bound is not None and not isinstance(bound, types.ModuleType | type):
                form["self"] = self._value(bound, f"{qualname}.__self__", c)
        elif not isinstance(obj, type):  # a library callable instance: its state or repr
            form["state"] = self._library_state(obj, f"{module}.{qualname}", c)
        if len(self._stack) == 1:  # the callable itself is library code: not analysed
            c.analysable = False
            c.note(f"library code {module}.{qualname} ({version}) is identified by name only")
            if self._warn_library:
                _warn_once(
                    f"{module}.{qualname}",
                    f"cannot analyse the code of {module}.{qualname} (library, builtin or C "
                    f"extension); results depending on it are treated as changed only when its "
                    f"identity (module, name, package version {version}) changes",
                )
        return form

    def _library_state(self, obj: object, ident: str, c: _Collector) -> _Form:
        state = _state(obj)
        if state:
            try:
                return self._canon(state)
            except Exception:
                pass
        try:
            text = repr(obj)
        except Exception:
            text = ""
        if text and type(obj).__repr__ is not object.__repr__ and not _ADDRESS.search(text):
            return {"repr": text}
        c.analysable = False
        c.note(f"the state of {ident} cannot be hashed; only its type is tracked")
        _warn_once(ident, f"cannot hash the state of {ident}; changes to it are not detected")
        return None

    # -- user functions
    def _user_function(self, fn: types.FunctionType, c: _Collector) -> _Form:
        located = self._locate_function(fn)
        if isinstance(located, str):
            return self._bytecode_function(fn, located, c)
        norm = _Normaliser(copy.deepcopy(located))
        code = fn.__code__
        closure = dict(zip(code.co_freevars, fn.__closure__ or (), strict=True))
        names = list(norm.free)
        extra = [n for n in [*_code_globals(code), *code.co_freevars] if n not in norm.free]
        namespace = _Namespace(closure=closure, globals=fn.__globals__)
        self_names = {n for n in [*names, *extra] if namespace.get(n)[0] is fn}
        free = self._resolve_names(names, extra, namespace, norm.chains, self_names, c)
        return {
            "kind": "function",
            "code": norm.dump(self_names),
            "free": free,
            "imports": self._resolve_imports(norm, fn.__globals__, c),
            "defaults": self._value(fn.__defaults__, "default arguments", c),
            "kwdefaults": self._value(fn.__kwdefaults__, "keyword defaults", c),
        }

    def _locate_function(self, fn: types.FunctionType) -> ast.AST | str:
        code = fn.__code__
        src = self._source(code.co_filename, fn.__globals__)
        if src is None:
            return "its source is not available"
        lam = code.co_name == "<lambda>"
        kinds = ast.Lambda if lam else _DEFS
        candidates = [
            node
            for _, node in src.defs
            if isinstance(node, kinds)
            and (lam or node.name == code.co_name)  # type: ignore[attr-defined]
            and _start_line(node) == code.co_firstlineno
        ]
        if len(candidates) > 1:
            qualnames = dict((id(n), q) for q, n in src.defs)
            candidates = [n for n in candidates if qualnames[id(n)] == code.co_qualname]
        if len(candidates) > 1 and lam:
            spans = [
                (a, c, b, d)
                for a, b, c, d in code.co_positions()
                if None not in (a, b, c, d) and (b, d) > (a, c)  # type: ignore[operator]
            ]
            candidates = [n for n in candidates if all(_contains(n, s) for s in spans)]
        if len(candidates) != 1:
            state = "ambiguous" if candidates else "not found"
            return f"its definition in {code.co_filename} is {state}"
        if not src.matches(code):
            return (
                f"the loaded code differs from {code.co_filename} (edited since it was "
                "imported, or rewritten on import, e.g. by pytest's assert rewriting)"
            )
        return candidates[0]

    def _source(
        self, filename: str, module_globals: Mapping[str, Any] | None
    ) -> _ModuleSource | None:
        if filename not in self._sources:
            linecache.checkcache(filename)
            namespace = module_globals if isinstance(module_globals, dict) else None
            lines = linecache.getlines(filename, namespace)
            self._sources[filename] = _parse_source(filename, "".join(lines)) if lines else None
        return self._sources[filename]

    def _bytecode_function(self, fn: types.FunctionType, reason: str, c: _Collector) -> _Form:
        ident = f"{fn.__module__}.{fn.__qualname__}"
        c.analysable = False
        c.note(f"cannot analyse the source of {fn.__qualname__}: {reason}; its bytecode is hashed")
        _warn_once(
            ident,
            f"cannot analyse the source of {ident} ({reason}); results depending on it are "
            "treated as changed only when its identity or bytecode changes",
        )
        code = fn.__code__
        closure = dict(zip(code.co_freevars, fn.__closure__ or (), strict=True))
        namespace = _Namespace(closure=closure, globals=fn.__globals__)
        names = [*_code_globals(code), *code.co_freevars]
        self_names = {n for n in names if namespace.get(n)[0] is fn}
        return {
            "kind": "bytecode",
            "qualname": fn.__qualname__,
            "code": self._code_object(code),
            "free": self._resolve_names([], names, namespace, {}, self_names, c),
            "defaults": self._value(fn.__defaults__, "default arguments", c),
            "kwdefaults": self._value(fn.__kwdefaults__, "keyword defaults", c),
        }

    def _code_object(self, code: types.CodeType) -> _Form:
        return {
            "bytecode": code.co_code.hex(),
            "consts": [
                self._code_object(k) if isinstance(k, types.CodeType) else self._canon(k)
                for k in code.co_consts
            ],
            "names": list(code.co_names),
            "varnames": list(code.co_varnames),
            "freevars": list(code.co_freevars),
            "cellvars": list(code.co_cellvars),
            "args": [code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount],
            "flags": code.co_flags,
        }

    # -- user classes
    def _user_class(self, cls: type, c: _Collector) -> _Form:
        methods = _class_functions(cls)
        located = self._locate_class(cls, methods)
        attrs = {
            name: self._value(value, f"{cls.__qualname__}.{name}", c)
            for name, value in _class_attrs(cls).items()
        }
        fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        if isinstance(located, str):
            ident = f"{cls.__module__}.{cls.__qualname__}"
            c.analysable = False
            c.note(f"cannot analyse the source of class {cls.__qualname__}: {located}")
            _warn_once(
                ident,
                f"cannot analyse the source of {ident} ({located}); results depending on it are "
                "treated as changed only when its methods' bytecode or attributes change",
            )
            return {
                "kind": "class-bytecode",
                "methods": {n: self._sub(f, n, c) for n, f in sorted(methods.items())},
                "bases": [self._value(b, "base class", c) for b in cls.__bases__],
                "attrs": attrs,
                "fields": fields,
            }
        norm = _Normaliser(copy.deepcopy(located))
        closure: dict[str, types.CellType] = {}
        extra: list[str] = []
        for method in methods.values():
            code = method.__code__
            cells = zip(code.co_freevars, method.__closure__ or (), strict=True)
            closure.update((n, cell) for n, cell in cells if n != "__class__")
            extra += [n for n in _code_globals(code) if n not in norm.free and n not in extra]
        module = sys.modules.get(cls.__module__)
        namespace = _Namespace(closure=closure, globals=vars(module) if module else {})
        names = list(norm.free)
        self_names = {n for n in [*names, *extra] if namespace.get(n)[0] is cls}
        free = self._resolve_names(names, extra, namespace, norm.chains, self_names, c)
        return {
            "kind": "class",
            "code": norm.dump(self_names),
            "free": free,
            "imports": self._resolve_imports(norm, namespace.globals, c),
            "attrs": attrs,
            "fields": fields,
        }

    def _locate_class(self, cls: type, methods: dict[str, types.FunctionType]) -> ast.AST | str:
        module = sys.modules.get(cls.__module__)
        filename = getattr(module, "__file__", None)
        own = list(methods.values())
        if own:
            filename = own[0].__code__.co_filename
        if not filename:
            return "its source is not available"
        src = self._source(filename, vars(module) if module else None)
        if src is None:
            return "its source is not available"
        candidates = [
            n for q, n in src.defs if isinstance(n, ast.ClassDef) and q == cls.__qualname__
        ]
        if len(candidates) > 1 and own:
            candidates = [
                n
                for n in candidates
                if all(
                    n.lineno <= f.__code__.co_firstlineno <= (n.end_lineno or n.lineno) for f in own
                )
            ]
        if len(candidates) != 1:
            state = "ambiguous" if candidates else "not found"
            return f"its definition in {filename} is {state}"
        if not all(src.matches(f.__code__) for f in own):
            return f"the loaded code differs from {filename} (edited since it was imported?)"
        return candidates[0]

    # -- resolving what code reads
    def _resolve_names(
        self,
        names: list[str],
        extra: list[str],
        namespace: _Namespace,
        chains: Mapping[object, set[tuple[str, ...]]],
        self_names: set[str],
        c: _Collector,
    ) -> dict[str, _Form]:
        """Resolve free names (``names``: missing ones are noted) and ``extra`` ones."""
        out: dict[str, _Form] = {}
        for name in [*names, *extra]:
            if name in self_names or name in out:
                continue
            value, origin = namespace.get(name)
            if origin == "missing":
                if name in names:
                    c.note(f"name {name} is not defined when the code is fingerprinted")
                    out[name] = {"__unresolved__": name}
                continue
            out[name] = self._resolve(name, value, origin, chains.get(("free", name), set()), c)
        return out

    def _resolve(
        self, label: str, value: object, origin: str, chains: set[tuple[str, ...]], c: _Collector
    ) -> _Form:
        if isinstance(value, types.ModuleType):
            return self._module(value, label, chains, c)
        if origin == "empty":
            c.note(f"closure variable {label} is not assigned yet")
            return {"__empty_cell__": True}
        if origin != "builtin" and not _is_special(label):  # e.g. the __class__ cell of super()
            c.read(label)
            c.note(_describe(label, value, origin))
        return self._value(value, label, c)

    def _value(self, value: object, label: str, c: _Collector) -> _Form:
        """Canonical form of a value read by code; unhashable state is noted, not fatal."""
        self._labels.append(label)
        try:
            return self._canon(value)
        except Exception as exc:
            ident = f"{type(value).__module__}.{type(value).__qualname__}"
            c.analysable = False
            c.note(f"cannot hash {label} (type {ident}): {exc}; only its type is tracked")
            _warn_once(
                f"{label}:{ident}",
                f"cannot hash {label} (type {ident}): {exc}; changes to its value are not "
                "detected - use plain values, a dataclass or an object with params()",
            )
            return {"__unhashable__": ident}
        finally:
            self._labels.pop()

    def _cell(self, cell: types.CellType, label: str, c: _Collector) -> _Form:
        try:
            value = cell.cell_contents
        except ValueError:
            return {"__empty_cell__": True}
        return self._value(value, label, c)

    def _module(
        self, mod: types.ModuleType, label: str, chains: set[tuple[str, ...]], c: _Collector
    ) -> _Form:
        c.read(label)
        if not _is_user_module(mod):
            version = _package_version(mod.__name__)
            c.note(f"uses library module {mod.__name__} ({version})")
            return {"__library_module__": mod.__name__, "version": version}
        entries: dict[str, _Form] = {}
        for chain in sorted(chains or {()}):
            obj: object = mod
            path: list[str] = []
            missing = False
            for attr in chain:
                if not (isinstance(obj, types.ModuleType) and _is_user_module(obj)):
                    break
                if not hasattr(obj, attr):
                    missing = True
                    path.append(attr)
                    break
                obj = getattr(obj, attr)
                path.append(attr)
            key = ".".join(path)
            if key in entries:
                continue
            name = f"{label}.{key}" if key else label
            if missing:
                c.note(f"{name} is not defined when the code is fingerprinted")
                entries[key] = {"__unresolved__": key}
            elif key and isinstance(obj, types.ModuleType):
                entries[key] = self._module(obj, name, {()}, c)
            elif key:
                entries[key] = self._resolve(name, obj, "attribute", set(), c)
            else:
                entries[key] = self._module_source(mod, name, c)
        return {"__user_module__": entries}

    def _module_source(self, mod: types.ModuleType, label: str, c: _Collector) -> _Form:
        c.note(f"uses user module {label} as a whole: its entire source is hashed")
        filename = getattr(mod, "__file__", None)
        src = self._source(filename, vars(mod)) if filename else None
        if src is None:
            c.analysable = False
            _warn_once(
                f"module:{mod.__name__}",
                f"cannot read the source of module {mod.__name__}, used as a whole by a UDF; "
                "changes to it are not detected",
            )
            return {"__module_without_source__": True}
        return {"__module_source__": _tree_digest(src.tree)}

    def _resolve_imports(
        self, norm: _Normaliser, module_globals: Mapping[str, Any], c: _Collector
    ) -> list[_Form]:
        out: list[_Form] = []
        package = module_globals.get("__package__") or ""
        for node, alias, key in norm.imports:
            label = key[2]
            value = _imported(node, alias, package)
            if isinstance(value, str):  # not loaded: identify without importing it
                out.append({"bind": label, "value": self._unloaded(value, label, c)})
                continue
            chains = norm.chains.get(key, set())
            out.append({"bind": label, "value": self._resolve(label, value, "import", chains, c)})
        return out

    def _unloaded(self, absname: str, label: str, c: _Collector) -> _Form:
        """Identify a module a UDF imports locally but nobody has imported yet."""
        spec, exact = _find_spec(absname)
        origin = spec.origin if spec is not None and spec.has_location else None
        if spec is not None and not _is_user_location(absname, origin):
            return {"__library_module__": absname, "version": _package_version(absname)}
        src = self._source(origin, None) if exact and origin else None
        if src is not None:
            c.note(f"imports user module {absname}, not loaded yet: its entire source is hashed")
            return {"__module_source__": _tree_digest(src.tree)}
        c.analysable = False
        c.note(f"imports {absname}, which is not loaded; changes to it are not tracked")
        _warn_once(
            f"import:{absname}",
            f"a UDF imports {absname}, which is not loaded yet; changes to it are not detected - "
            "import it at module level instead",
        )
        return {"__unresolved_import__": absname}


def _find_spec(absname: str) -> tuple[importlib.machinery.ModuleSpec | None, bool]:
    """Find a module's spec without importing anything new.

    ``exact`` is False when only its top-level package was looked up, because
    finding a submodule would import its parent.
    """
    parent = absname.rpartition(".")[0]
    exact = not parent or parent in sys.modules
    try:
        return importlib.util.find_spec(absname if exact else absname.split(".")[0]), exact
    except (ImportError, ValueError):
        return None, exact


def _tree_digest(tree: ast.Module) -> str:
    """Digest of a whole module's source without comments, docstrings and formatting."""
    tree = copy.deepcopy(tree)
    _strip_docstrings(tree)
    return _digest(ast.dump(tree, include_attributes=False))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Namespace:
    """Where a free name's value comes from: closure cells, module globals, builtins."""

    closure: Mapping[str, types.CellType]
    globals: Mapping[str, Any]

    def get(self, name: str) -> tuple[object, str]:
        if name in self.closure:
            try:
                return self.closure[name].cell_contents, "closure"
            except ValueError:
                return None, "empty"
        if name in self.globals:
            return self.globals[name], "global"
        builtins = self.globals.get("__builtins__", __builtins__)
        namespace = builtins if isinstance(builtins, dict) else vars(builtins)
        if name in namespace:
            return namespace[name], "builtin"
        return None, "missing"


def _imported(node: ast.Import | ast.ImportFrom, alias: ast.alias, package: str) -> object:
    """The object a local import binds, or the absolute module name when it is not loaded."""
    if isinstance(node, ast.Import):
        target = alias.name if alias.asname else alias.name.split(".")[0]
        return sys.modules.get(target, target)
    try:
        base = "." * node.level + (node.module or "")
        modname = importlib.util.resolve_name(base, package) if node.level else base
    except (ImportError, ValueError):
        return f"{'.' * node.level}{node.module or ''}"
    module = sys.modules.get(modname)
    if module is None:
        return modname
    if hasattr(module, alias.name):
        return getattr(module, alias.name)
    return sys.modules.get(f"{modname}.{alias.name}", f"{modname}.{alias.name}")


def _describe(label: str, value: object, origin: str) -> str:
    """A note on what a name read by code is, for ``diff`` explanations."""
    if callable(value):
        if isinstance(value, type) and _is_user_type(value):
            return f"uses class {label}"
        if _is_user_callable(value):
            return f"calls helper {label}()"
        module, qualname = _identity(value)
        return f"uses {module}.{qualname} ({_package_version(module)})"
    where = {
        "global": "module constant",
        "closure": "closure variable",
        "attribute": "user-module attribute",
    }.get(origin, "imported value")
    return f"reads {where} {label} = {_short_repr(value)}"


def _contains(node: ast.AST, span: tuple[int, int, int, int]) -> bool:
    line, col, end_line, end_col = span
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return start <= (line, col) and (end_line, end_col) <= end


def _is_special(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    sunder = len(name) > 2 and name[0] == name[-1] == "_" and name[1] != "_"
    return dunder or sunder


def _descriptor_functions(value: object) -> list[object] | None:
    """The functions inside a class attribute that holds code, else None."""
    if isinstance(value, staticmethod | classmethod):
        return [value.__func__]
    if isinstance(value, property):
        return [value.fget, value.fset, value.fdel]
    if isinstance(value, functools.cached_property):
        return [value.func]
    if isinstance(value, functools.partialmethod):
        return [value.func]
    if isinstance(value, types.FunctionType):
        return [value]
    return None


def _is_own(cls: type, fn: object) -> bool:
    """True for a function written in the body of ``cls`` (hence in its source)."""
    return isinstance(fn, types.FunctionType) and fn.__code__.co_qualname.startswith(
        f"{cls.__qualname__}."
    )


def _class_functions(cls: type) -> dict[str, types.FunctionType]:
    """The functions written in a class body (methods, static/class methods, properties)."""
    out: dict[str, types.FunctionType] = {}
    for name, value in cls.__dict__.items():
        for i, fn in enumerate(_descriptor_functions(value) or ()):
            if _is_own(cls, fn):
                out[f"{name}#{i}" if i else name] = fn  # type: ignore[assignment]
    return out


def _class_attrs(cls: type) -> dict[str, object]:
    """Class attributes whose values are not in the class source: data and foreign code."""
    out: dict[str, object] = {}
    for name, value in sorted(cls.__dict__.items()):
        if _is_special(name) or isinstance(
            value, types.MemberDescriptorType | types.GetSetDescriptorType
        ):
            continue
        if isinstance(value, type) and value.__qualname__.startswith(f"{cls.__qualname__}."):
            continue  # a nested class: in the source
        functions = _descriptor_functions(value)
        if isinstance(value, functools.partialmethod):  # its arguments are not in the source
            out[name] = [value.func, value.args, value.keywords]
        elif functions is None:
            out[name] = value
        else:
            foreign = [f for f in functions if f is not None and not _is_own(cls, f)]
            if foreign:
                out[name] = foreign
    return out
