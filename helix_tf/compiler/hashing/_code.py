"""Fingerprints of code: :func:`code_fingerprint` and the pass that computes one.

The pass (:class:`_Fingerprinter`) dispatches on the kind of callable, memoises
per object and guards against cycles; it hands user functions and classes to
:class:`~._user_code._UserCode` (analysis from source), which finds their
definitions with :class:`~._locate._SourceFinder` and resolves the names they
read with :class:`~._resolver._ReadResolver`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import types
import weakref
from collections.abc import Callable

from ._canonical import _Canon, _digest, _Form, _native_bases, _state
from ._locate import _SourceFinder
from ._origin import (
    _identity,
    _is_user_function,
    _is_user_type,
    _package_release,
    _package_version,
    _type_name,
    _user_binary,
    _warn_once,
)
from ._resolver import _ReadResolver
from ._result import CodeFingerprint, _Collector
from ._state import object_keys
from ._user_code import _BUILTIN_CALLABLES, _UserCode, refuse_held_generators


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
    fingerprinter = _Fingerprinter(warn_library=True)
    result = fingerprinter.fingerprint(fn)
    unset = fingerprinter.entry_seeds(fn)
    if not unset:
        return result
    refusals = [
        f"{_identity(fn)[1]} draws numbers no seed fixes: {where} is seeded by its parameter "
        f"{name}, which defaults to None, and helix_tf calls a function with its row or "
        f"batch only, so two runs draw different numbers; give {name} a number as its "
        "default (or use a module constant)"
        for name, where in unset
    ]
    return dataclasses.replace(result, refusals=(*result.refusals, *refusals))


class _Fingerprinter:
    """One fingerprinting pass: memoises per object and guards against cycles."""

    def __init__(self, *, warn_library: bool) -> None:
        self._warn_library = warn_library
        self._memo: dict[int, tuple[object, CodeFingerprint]] = {}
        self._stack: list[int] = []
        self._collectors: list[_Collector] = []
        self._labels: list[str] = []
        # Values code reads: a dict's key order is what iterating it gives (list(CATS)).
        self.canon = _Canon(self._nested_code_form, ordered=True)
        sources = _SourceFinder()
        self._user = _UserCode(self, sources, _ReadResolver(self, sources))

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
            refusals=tuple(collector.refusals),
            files=tuple(collector.files),
            unseeded=tuple(collector.unseeded),
            seed_parameters=tuple(collector.seed_parameters),
            parts=tuple(sorted(collector.parts.items())),
            state_reads=tuple(sorted(collector.state_reads)),
            state_writes=tuple(collector.state_writes),
            mutated_parameters=tuple(dict.fromkeys(collector.mutated_parameters)),
        )
        self._memo[key] = (obj, result)
        return result

    def entry_seeds(self, obj: object) -> list[tuple[str, str]]:
        """The seed parameters ``obj`` leaves None when helix_tf calls it (with a row or a
        batch): a function's, a method's, a callable object's class's, a wrapped
        function's; a partial's minus those its arguments give."""
        if isinstance(obj, functools.partial):
            given = {k for k, v in obj.keywords.items() if v is not None}
            return [s for s in self.entry_seeds(obj.func) if s[0] not in given]
        target = obj.__func__ if isinstance(obj, types.MethodType) else obj
        if not isinstance(target, types.FunctionType | type) and _is_user_type(type(target)):
            target = type(target)
        found = list(self.fingerprint(target).seed_parameters)
        wrapped = getattr(target, "__wrapped__", None)
        if wrapped is not None and wrapped is not target and not isinstance(target, type):
            found += self.entry_seeds(wrapped)
        return list(dict.fromkeys(found))

    def seeds_of(self, fn: object) -> tuple[str, ...]:
        """The seed parameters of a user function a call must pass, or of a user class's
        methods, its own and those it inherits from user classes (``_unset_seeds``)."""
        target = fn.__func__ if isinstance(fn, types.MethodType) else fn
        classes: list[object]
        if isinstance(target, type) and _is_user_type(target):
            classes = [k for k in target.__mro__ if _is_user_type(k)]
        elif isinstance(target, types.FunctionType) and _is_user_function(target):
            classes = [target]
        else:
            return ()
        found = (name for k in classes for name, _ in self.fingerprint(k).seed_parameters)
        return tuple(dict.fromkeys(found))

    def mutates_of(self, fn: object) -> tuple[tuple[str, bool, str], ...]:
        """The parameters a user function changes in place (``_state``)."""
        if not (isinstance(fn, types.FunctionType) and _is_user_function(fn)):
            return ()
        return self.fingerprint(fn).mutated_parameters

    def _nested_code_form(self, obj: object) -> _Form:
        fp = self.fingerprint(obj)
        label = self._labels[-1] if self._labels else _identity(obj)[1]
        if self._collectors:
            self._collectors[-1].merge(fp, label)
        return {"__code__": fp.digest}

    def sub(self, obj: object, label: str, c: _Collector) -> str:
        fp = self.fingerprint(obj)
        c.merge(fp, label)
        return fp.digest

    def _form(self, obj: object, c: _Collector) -> _Form:
        wrapped = vars(obj).get("__wrapped__") if hasattr(obj, "__dict__") else None
        if wrapped is not None and wrapped is not obj and not isinstance(obj, type):
            inner = self.sub(wrapped, _identity(wrapped)[1], c)
            return {"__wrapper__": self._unwrapped_form(obj, c), "wrapped": inner}
        return self._unwrapped_form(obj, c)

    def _unwrapped_form(self, obj: object, c: _Collector) -> _Form:
        if isinstance(obj, functools.partial):
            refuse_held_generators(obj, "partial", _identity(obj.func)[1], c)
            return {
                "__partial__": self.sub(obj.func, _identity(obj.func)[1], c),
                "args": self.value(obj.args, "partial arguments", c),
                "keywords": self.value(obj.keywords, "partial keywords", c),
            }
        if isinstance(obj, types.MethodType):
            _refuse_kept_generators(obj.__self__, type(obj.__self__).__qualname__, c)
            return {
                "__method__": self.sub(obj.__func__, obj.__func__.__name__, c),
                "self": self.value(obj.__self__, "self", c),
            }
        if isinstance(obj, staticmethod | classmethod):
            return {"__descriptor__": self.sub(obj.__func__, obj.__func__.__name__, c)}
        if isinstance(obj, types.FunctionType):
            if _is_user_function(obj):
                return self._user.function_form(obj, c)
            return self._library(obj, c)
        if isinstance(obj, type):
            return self._user.class_form(obj, c) if _is_user_type(obj) else self._library(obj, c)
        if not isinstance(obj, _BUILTIN_CALLABLES) and callable(obj) and _is_user_type(type(obj)):
            _refuse_kept_generators(obj, type(obj).__qualname__, c)
            form = {
                "__instance__": self.sub(type(obj), type(obj).__qualname__, c),
                "state": self.value(_state(obj), "state", c),
            }
            if _native_bases(type(obj)):
                form["native"] = self._library_state(obj, type(obj).__qualname__, c)
            return form
        if callable(obj):
            return self._library(obj, c)
        raise TypeError(f"code_fingerprint expects a callable, but got {_type_name(type(obj))}")

    def _library(self, obj: object, c: _Collector) -> _Form:
        module, qualname = _identity(obj)
        version = _package_version(module)
        form: dict[str, _Form] = {
            "__library__": f"{module}.{qualname}",
            "version": _package_release(module),
        }
        binary = _user_binary(module)
        if binary is not None:  # a compiled module of one's own: by its bytes
            form["binary"] = binary
        if isinstance(obj, types.FunctionType):
            cells = zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True)
            closure = {name: self._library_cell(cell, name, c) for name, cell in cells}
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or (), strict=True):
                with contextlib.suppress(ValueError):  # an empty cell holds nothing
                    refuse_held_generators(cell.cell_contents, name, qualname, c)
            if closure:
                form["closure"] = closure
        elif isinstance(obj, _BUILTIN_CALLABLES):
            bound = getattr(obj, "__self__", None)
            if bound is not None and not isinstance(bound, types.ModuleType | type):
                form["self"] = self.value(bound, f"{qualname}.__self__", c)
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
        """A library callable instance's state: what pickle would save, never its repr."""
        self._labels.append(ident)
        try:
            return self.canon._reduced(obj)
        except Exception as exc:
            c.analysable = False
            c.note(f"the state of {ident} cannot be hashed; only its type is tracked")
            c.refuse(f"cannot read the state of {ident} ({exc})")
            return None
        finally:
            self._labels.pop()

    def value(self, value: object, label: str, c: _Collector, *, track: bool = True) -> _Form:
        """Canonical form of a value read by code; unhashable state is noted, not fatal.
        ``track``: what it holds is state the code reads (not for a name only written)."""
        self._labels.append(label)
        if track:
            c.state_reads.update(object_keys(value))
        try:
            return self.canon(value)
        except Exception as exc:
            ident = f"{type(value).__module__}.{type(value).__qualname__}"
            c.analysable = False
            c.note(f"cannot hash {label} (type {ident}): {exc}; only its type is tracked")
            c.refuse(f"cannot read the state of {label} (type {ident}): {exc}")
            return {"__unhashable__": ident}
        finally:
            self._labels.pop()

    def _library_cell(self, cell: types.CellType, label: str, c: _Collector) -> _Form:
        """A library function's closure cell; a weak-reference container there is a cache
        (``functools.singledispatch``'s dispatch cache, filled by its calls): what it holds
        follows from the rest of the closure (the registry) and from what is alive, so it
        is named by its type. Hashing it gave a UDF calling such a function another
        fingerprint after it ran (a recompute in the next compile of the process)."""
        with contextlib.suppress(ValueError):  # an empty cell: as _cell says
            if isinstance(cell.cell_contents, _WEAK_CACHES):
                return {"__weak_cache__": _type_name(type(cell.cell_contents))}
        return self._cell(cell, label, c)

    def _cell(self, cell: types.CellType, label: str, c: _Collector) -> _Form:
        try:
            value = cell.cell_contents
        except ValueError:
            return {"__empty_cell__": True}
        return self.value(value, label, c)


#: Containers holding weak references: what they hold is whatever is still alive.
_WEAK_CACHES = (weakref.WeakKeyDictionary, weakref.WeakValueDictionary, weakref.WeakSet)


def _refuse_kept_generators(instance: object, who: str, c: _Collector) -> None:
    """A callable object (or a bound method's object) holding a random generator among its
    attributes, at any depth: its calls draw from it (``self.rng.normal()``,
    ``self.cfg.rng``), so what one draws depends on the calls before it, as for a
    module-level generator (:func:`~._generators.kept_generator`)."""
    refuse_held_generators(instance, "self", who, c)
