"""What code reads: free names and local imports resolved, the members of a class."""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Mapping
from typing import Any

from ._origin import _identity, _is_user_callable, _is_user_type, _package_version, _short_repr


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


def _import_binding(
    node: ast.Import | ast.ImportFrom, alias: ast.alias, package: str
) -> str | None:
    """The module name a local ``from m import X`` reads when it runs (``"m.X"``)."""
    if isinstance(node, ast.Import):
        return None
    try:
        base = "." * node.level + (node.module or "")
        modname = importlib.util.resolve_name(base, package) if node.level else base
    except (ImportError, ValueError):
        return None
    return f"{modname}.{alias.name}"


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


#: Class attributes Python itself keeps, not the class's state: ``abc``'s registry and
#: caches (unpicklable; a subclass of an ABC was once refused for it).
_MACHINERY = frozenset({"_abc_impl"})


def _class_attrs(cls: type) -> dict[str, object]:
    """Class attributes whose values are not in the class source: data and foreign code."""
    out: dict[str, object] = {}
    for name, value in sorted(cls.__dict__.items()):
        if (
            name in _MACHINERY
            or _is_special(name)
            or isinstance(value, types.MemberDescriptorType | types.GetSetDescriptorType)
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
