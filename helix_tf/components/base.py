"""The base of every operator spec: frozen parameters, validation, overrides.

An operator *spec* is pure data (a frozen dataclass): the compiler reads its
parameters, fingerprints them and checks them without importing TensorFlow or
Beam. The code that runs an operator (its executor) lives beside it and imports
heavy libraries lazily, inside functions.

A spec is a plain dataclass: its fields are its parameters, the first ones
positional and the rest keyword-only (``dataclasses.KW_ONLY``); a value that
needs normalising (a list into a tuple) says so with :func:`normalized`; problems are
returned by :meth:`Operator.validate`. The generated ``__init__`` then always
normalises and validates: a spec may not write its own ``__init__`` or
``__post_init__`` (:meth:`Operator.__init_subclass__` refuses one), so no spec
can skip its checks.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import functools
import numbers
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar

from helix_tf.errors import ConfigError, did_you_mean

__all__ = ["Operator", "did_you_mean", "list_as_tuple", "normalized", "plain_numbers"]

_NORMALIZE = "helix_tf.normalize"


def normalized(normalize: Callable[[Any], Any], default: Any = dataclasses.MISSING) -> Any:
    """A spec field whose value ``normalize`` turns into its stored form before validation.

    ``normalize`` maps what a user may write to what the spec keeps (a list of paths
    to a tuple, a dict to pairs); the generated ``__init__`` applies it, then
    :meth:`Operator.validate` runs. A value it cannot convert (``TypeError`` or
    ``ValueError``) is kept as given, for ``validate`` to name.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Scale(Operator):
    ...     columns: tuple[str, ...] = normalized(tuple)
    ...     _: dataclasses.KW_ONLY
    ...     factor: float = 1.0
    ...     def validate(self) -> list[str]:
    ...         return [] if self.factor > 0 else [f"factor must be > 0, but got {self.factor}"]
    >>> Scale(["a", "b"], factor=2.0).params()
    {'columns': ('a', 'b'), 'factor': 2.0}
    >>> Scale(["a"], factor=0)
    Traceback (most recent call last):
    ...
    helix_tf.errors.ConfigError: Scale: factor must be > 0, but got 0.0
    """
    return dataclasses.field(default=default, metadata={_NORMALIZE: normalize})


def plain_numbers(value: Any) -> Any:
    """numpy scalars as the Python numbers they hold (``np.float64(0.1)`` is ``0.1``;
    ``np.float32(0.1)`` is ``0.10000000149011612``), also inside lists, tuples and dicts;
    any other value unchanged (the same object when nothing changed).

    Every operator keeps its parameters so: the executor then computes with what a
    Python number would give (numpy 2 promotes ``float32_array >= np.float64(t)`` to
    float64, but ``>= t`` stays float32), and a parameter hashes as the number it is,
    whichever type spelled it, so a result is reused exactly when it is the same.

    >>> import numpy as np
    >>> plain_numbers((np.int64(3), np.float64(0.5), "a"))
    (3, 0.5, 'a')
    """
    cls = type(value)
    if cls.__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()  # a numpy scalar (or a 0-d array), read without importing numpy
    if cls in (list, tuple):
        items = [plain_numbers(v) for v in value]
        changed = any(a is not b for a, b in zip(items, value, strict=True))
        return cls(items) if changed else value
    if cls is dict:
        pairs = {k: plain_numbers(v) for k, v in value.items()}
        return pairs if any(pairs[k] is not value[k] for k in value) else value
    return value


def list_as_tuple(value: Any) -> Any:
    """A list as a tuple (hashable); any other value unchanged (for :func:`normalized`)."""
    return tuple(value) if isinstance(value, list) else value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Operator:
    """Base class of operator specs.

    Subclasses are frozen dataclasses whose fields are the operator's
    parameters. ``VERSION`` is the implementation version: bump it whenever the
    executor's output for the same parameters changes, so stored results of the
    old implementation are never reused.
    """

    KIND: ClassVar[str] = "operator"
    VERSION: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        written = [m for m in ("__init__", "__post_init__") if m in cls.__dict__]
        if written:
            raise TypeError(
                f"operator spec {cls.__qualname__} defines {' and '.join(written)}: a spec is "
                "a plain dataclass (fields are its parameters; KW_ONLY separates the positional "
                "ones); normalise values with helix_tf.components.base.normalized(...) "
                "and report problems from validate(), so that no spec skips its checks"
            )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            plain = plain_numbers(value)
            if plain is not value:
                object.__setattr__(self, f.name, plain)
            normalize = f.metadata.get(_NORMALIZE)
            if normalize is not None:
                with contextlib.suppress(TypeError, ValueError):  # validate() names the value
                    object.__setattr__(self, f.name, normalize(getattr(self, f.name)))
        # A number parameter given an integer (l1=0, -p learner.learning_rate=1) holds the
        # float it means: the same computation, so the same parameters and fingerprint.
        for name in _number_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        # A value of the wrong type for a plain annotation that validate() lets through
        # (standardize="no", which is true; seed="1") is refused as in a -p override.
        values = {f.name: getattr(self, f.name) for f in _init_fields(self)}
        try:
            problems = self.validate() or _wrong_types(self, values)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            # validate() could not read a value of another shape (hidden=64 where a
            # tuple of integers is due): name the parameter, not the traceback.
            problems = _unreadable(self, values, exc)
        if problems:
            raise ConfigError([f"{type(self).__name__}: {p}" for p in problems])

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        return []

    @property
    def op_name(self) -> str:
        """The operator's type name as users write it, e.g. ``Vocabulary``."""
        return type(self).__name__

    def params(self) -> dict[str, Any]:
        """The parameters as a plain dict, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def content_files(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """Files the operator reads, by the parameter that names them: ``(label, path)`` pairs.

        Identity is content, not place: the compiler hashes each file's bytes (with
        ``label``, what of the name still matters, e.g. a ``.gz`` suffix) and these
        parameters leave :meth:`fingerprint_params`, so the same bytes under another
        folder are the same input. Default: none.
        """
        return {}

    def inert_params(self) -> set[str]:
        """Parameters that cannot change the output given the others' values. Default: none."""
        return set()

    def fingerprint_params(self) -> dict[str, Any]:
        """The parameters that identify the output: :meth:`params` without the file
        parameters (:meth:`content_files`) and the :meth:`inert_params`."""
        drop = set(self.content_files()) | self.inert_params()
        return {k: v for k, v in self.params().items() if k not in drop}

    def with_params(self, **overrides: Any) -> Operator:
        """Return a copy with some parameters replaced; unknown names are errors."""
        known = set(self.params())
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise ConfigError(
                [
                    f"{self.op_name} has no parameter {k!r}{did_you_mean(k, known)}; "
                    f"its parameters are: {', '.join(sorted(known))}"
                    for k in unknown
                ]
            )
        wrong = _wrong_types(self, overrides)
        if wrong:
            raise ConfigError([f"{self.op_name} {w}" for w in wrong])
        return dataclasses.replace(self, **overrides)


def _init_fields(op: Operator) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(op) if f.init]


@functools.lru_cache(maxsize=256)
def _scalar_hints(cls: type) -> dict[str, Any]:
    """The fields of ``cls`` annotated with numbers, booleans, strings and None only."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved: leave it to validate()
        return {}
    return {k: h for k, h in hints.items() if _scalar(h)}


@functools.lru_cache(maxsize=256)
def _number_fields(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` annotated ``float`` (or ``float | None``): not ``int``, which
    may be counted with, nor ``int | float``, which says both are meant."""
    number = {float, type(None), None}
    return tuple(
        name
        for name, hint in _scalar_hints(cls).items()
        if float in _alternatives(hint) and set(_alternatives(hint)) <= number
    )


def _alternatives(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _wrong_types(op: Operator, values: dict[str, Any]) -> list[str]:
    """``parameter 'x' expects a number, but got 'a' (a str)`` for each value of ``values``
    that does not fit its field's plain annotation."""
    hints = _scalar_hints(type(op))
    return [
        f"parameter {k!r} expects {_expected(hints[k])}, but got {v!r} (a {type(v).__name__})"
        for k, v in values.items()
        if k in hints and not _matches(v, hints[k])
    ]


_NAMES = {bool: "a boolean (True/False)", int: "an integer", float: "a number", str: "a string"}


def _scalar(hint: Any) -> bool:
    """An annotation made of numbers, booleans, strings and None only: checked before
    ``__post_init__`` (containers are left to the operator, which may normalise a single
    value into a tuple)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(_scalar(h) for h in typing.get_args(hint))
    return hint in (bool, int, float, str, None, type(None)) or (
        typing.get_origin(hint) is typing.Literal
    )


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a :func:`_scalar` annotation."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is None or hint is type(None):
        return value is None
    if typing.get_origin(hint) is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, str)


def _unreadable(op: Operator, values: dict[str, Any], exc: Exception) -> list[str]:
    """The parameters whose values do not fit their annotations (containers and their
    items too), for a validate() that raised ``exc`` reading one of them."""
    hints = _hints(type(op))
    wrong = [
        f"parameter {k!r} expects {_spelled(hints[k])}, but got {v!r} (a {type(v).__name__})"
        for k, v in values.items()
        if k in hints and not _fits(v, hints[k])
    ]
    return wrong or [
        f"its parameters could not be checked ({type(exc).__name__}: {exc}); check the "
        "values given: " + ", ".join(f"{k}={v!r}" for k, v in values.items())
    ]


@functools.lru_cache(maxsize=256)
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved: nothing to check by
        return {}


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits ``hint``: scalars as :func:`_matches`, tuples, lists,
    sequences and dicts by their kind and items; any other annotation (a class of
    helix_tf's, a callable, ``Any``) is taken as fitting."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in args)
    if _scalar(hint):
        return _matches(value, hint)
    if origin is dict or origin is collections.abc.Mapping:
        if not isinstance(value, dict):
            return False
        return not args or all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    return True


def _spelled(hint: Any) -> str:
    """An annotation as written in code (``tuple[int, ...]``), scalars in words."""
    if _scalar(hint):
        return _expected(hint)
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def _expected(hint: Any) -> str:
    """A :func:`_scalar` annotation in words: ``float | None`` -> "a number or None"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_expected(h) for h in typing.get_args(hint)))
    if hint is None or hint is type(None):
        return "None"
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return _NAMES[hint]
