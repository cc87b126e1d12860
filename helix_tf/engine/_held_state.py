"""The state user code holds, copied before its first call in a process so that state the
first call fixes is seen (:mod:`helix_tf.engine._user_calls`).

Held state is what the code reaches without being given it: the mutable containers
(dict, list, set, bytearray, their subclasses) and the attributes of the objects of the
user's own classes (and of ``types.SimpleNamespace``) that its globals, closure cells,
default arguments, a ``functools.partial``'s arguments, a bound method's object or a
callable object name; the same for the user functions and classes' methods it calls,
and for what those objects' attributes hold (a few levels down). Each is copied
shallowly: an object's attributes are its ``__dict__`` (a class's too), so
``self.n = self.n or len(batch)``, ``STATE.seen = len(batch)`` and ``Sizes.first = ...``
are seen like ``CACHE.setdefault("n", len(batch))``. A library's objects are left alone:
putting their insides back is not this module's to do (a lazily built Keras layer, a
file handle), and state behind a library's API stays unseen.

A change is not an error: a memo cache (``CACHE[k] = ...``, ``self._cache[k] = ...``, a
``functools.cached_property``, a model loaded on the first call) changes the state too.
The caller puts the state back and computes once more as another first batch; values
that then differ are the error.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Iterator
from typing import Any

from helix_tf.compiler.hashing import is_user_function, is_user_type
from helix_tf.components.base import Operator

__all__ = ["StateSnapshot"]

_MUTABLE = (dict, list, set, bytearray)

#: How many objects' attributes down from the code the state is followed, and how many
#: functions are read at most.
_DEPTH = 3
_MAX_FUNCTIONS = 50


@dataclasses.dataclass(frozen=True)
class _Attributes:
    """The attributes of an object or a class, as a container to copy and put back."""

    owner: Any

    def copy(self) -> dict[str, Any]:
        return dict(vars(self.owner))

    def now(self) -> dict[str, Any]:
        return dict(vars(self.owner))

    def restore(self, then: dict[str, Any]) -> None:
        """Put the attributes back, past the class' own ``__setattr__`` (a frozen
        dataclass, an Enum's metaclass): in the instance's ``__dict__``, or by
        ``type.__setattr__`` on a class."""
        if not isinstance(self.owner, type):
            attributes = vars(self.owner)
            attributes.clear()
            attributes.update(then)
            return
        now = self.now()
        for name in now.keys() - then.keys():
            type.__delattr__(self.owner, name)
        for name, value in then.items():
            if now.get(name, _ABSENT) is not value:
                type.__setattr__(self.owner, name, value)


_ABSENT = object()


@dataclasses.dataclass
class StateSnapshot:
    """Shallow copies of the state user code holds (see the module's docstring)."""

    held: list[tuple[Any, Any]]

    @classmethod
    def of(cls, op: Operator) -> StateSnapshot:
        walk = _Walk()
        values = [getattr(op, f.name) for f in dataclasses.fields(op)]
        if is_user_type(type(op)):  # an operator class of the user's own
            walk.attributes(op, 0)
            walk.class_methods(type(op))
        for v in values:
            walk.value(v, 0)
        return cls([(c, c.copy()) for c in walk.found.values()])

    def changed(self) -> bool:
        """Whether a container holds other entries (or other objects) than when copied."""
        return any(_differs(now, then) for now, then in self.held)

    def restore(self) -> None:
        """Put every container back as it was copied, in place (the code holds it)."""
        for now, then in self.held:
            if isinstance(now, _Attributes):
                now.restore(then)
            elif isinstance(now, dict | set):
                now.clear()
                now.update(then)
            else:
                now[:] = then


def _differs(now: Any, then: Any) -> bool:
    if isinstance(now, _Attributes):
        now = now.now()
    if isinstance(now, dict):
        return now.keys() != then.keys() or any(now[k] is not then[k] for k in then)
    if isinstance(now, set | bytearray):
        return bool(now != then)
    return len(now) != len(then) or any(a is not b for a, b in zip(now, then, strict=True))


class _Walk:
    """What user code holds, from the values it names (see the module's docstring)."""

    def __init__(self) -> None:
        self.found: dict[int, Any] = {}
        self._seen: set[int] = set()
        self._functions = 0

    def value(self, v: Any, depth: int) -> None:
        """A value the code names: a container, a function, an object, a class."""
        if depth > _DEPTH or id(v) in self._seen:
            return
        self._seen.add(id(v))
        if isinstance(v, _MUTABLE):  # defaultdict, OrderedDict, Counter too
            self.found[id(v)] = v
        elif isinstance(v, staticmethod | classmethod):
            self.value(v.__func__, depth)
        elif isinstance(v, functools.partial):
            for part in (v.func, *v.args, *v.keywords.values()):
                self.value(part, depth)
        elif isinstance(v, types.MethodType):
            self.value(v.__func__, depth)
            self.value(v.__self__, depth)
        elif isinstance(v, types.FunctionType):
            wrapped = getattr(v, "__wrapped__", None)  # functools.wraps
            if wrapped is not None:
                self.value(wrapped, depth)
            if is_user_function(v):
                self.function(v, depth)
        elif isinstance(v, type):
            if is_user_type(v):
                self.attributes(v, depth)
                self.class_methods(v)
        elif isinstance(v, types.SimpleNamespace) or (
            is_user_type(type(v)) and hasattr(v, "__dict__")
        ):
            self.attributes(v, depth)
            self.class_methods(type(v))

    def attributes(self, owner: Any, depth: int) -> None:
        """An object's (a class's) attributes, and what they hold."""
        holder = _Attributes(owner)
        self.found[id(owner)] = holder
        for name, v in holder.now().items():
            if not (name.startswith("__") and name.endswith("__")):
                self.value(v, depth + 1)

    def class_methods(self, cls: type) -> None:
        """The functions of a class of the user's own and of its user bases."""
        for klass in cls.__mro__:
            if klass is not object and is_user_type(klass):
                for v in vars(klass).values():
                    if isinstance(v, types.FunctionType | staticmethod | classmethod):
                        self.value(v, 0)

    def function(self, fn: types.FunctionType, depth: int) -> None:
        """The globals a function names, its closure cells and default arguments."""
        self._functions += 1
        if self._functions > _MAX_FUNCTIONS:
            return
        values = [
            fn.__globals__[name]
            for code in _codes(fn.__code__)
            for name in code.co_names
            if name in fn.__globals__
        ]
        values += [cell.cell_contents for cell in fn.__closure__ or () if _filled(cell)]
        values += [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]
        for v in values:
            if not isinstance(v, types.ModuleType):
                self.value(v, depth)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True
