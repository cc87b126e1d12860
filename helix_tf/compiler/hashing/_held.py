"""What a value holds, looked at without running code: the walk under
:func:`~._generators.generators_in` (a random generator reachable from a value) and
:func:`~._state.object_keys` (the objects a write into one of them reaches)."""

from __future__ import annotations

import collections
import functools
import types

from ._canonical import _library_family, _state

#: Values that hold nothing and that no code changes in place.
LEAVES = frozenset({str, bytes, int, float, bool, complex, type(None)})


def held_parts(item: object, path: str) -> list[tuple[object, str]]:
    """The values ``item`` holds, with their paths, for :func:`~._generators.generators_in`."""
    if isinstance(item, dict):
        return [(v, f"{path}[{k!r}]") for k, v in item.items() if type(v) not in LEAVES]
    if isinstance(item, list | tuple | set | frozenset | collections.deque):
        return [(v, f"{path}[{i}]") for i, v in enumerate(item) if type(v) not in LEAVES]
    if isinstance(item, functools.partial):
        parts = [(v, f"{path}.args[{i}]") for i, v in enumerate(item.args)]
        return parts + [(v, f"{path}.keywords[{k!r}]") for k, v in item.keywords.items()]
    if isinstance(item, types.MethodType):
        return [(item.__self__, f"{path}.__self__")]
    if isinstance(item, type | types.FunctionType | types.BuiltinFunctionType):
        return []
    if _library_family(type(item)) is not None:
        return []
    try:
        state = _state(item)
    except Exception:  # an attribute that cannot be read: nothing known to hold
        return []
    return [(v, f"{path}.{k}") for k, v in state.items()]
