"""What code reads, resolved: free names, module attributes and imports, to canonical forms."""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._canonical import _digest, _Form
from ._locate import _SourceFinder
from ._origin import (
    _is_own_code,
    _is_user_location,
    _is_user_module,
    _package_release,
    _package_version,
)
from ._reads import (
    _describe,
    _find_spec,
    _import_binding,
    _imported,
    _is_special,
    _Namespace,
)
from ._result import _Collector
from ._source import _Normaliser, _tree_digest

if TYPE_CHECKING:
    from ._code import _Fingerprinter


class _ReadResolver:
    """Resolves the names a piece of user code reads, for one fingerprinting pass."""

    def __init__(self, fp: _Fingerprinter, sources: _SourceFinder) -> None:
        self._fp = fp
        self._sources = sources
        self._whole: set[str] = set()  # user modules being hashed as a whole

    def names(
        self,
        names: list[str],
        extra: list[str],
        namespace: _Namespace,
        chains: Mapping[object, set[tuple[str, ...]]],
        self_names: set[str],
        c: _Collector,
        written: frozenset[str] = frozenset(),
    ) -> dict[str, _Form]:
        """Resolve free names (``names``: missing ones are noted) and ``extra`` ones;
        ``written``: names the code only writes into (no state read through them)."""
        out: dict[str, _Form] = {}
        for name in [*names, *extra]:
            if name in self_names or name in out:
                continue
            value, origin = namespace.get(name)
            if name in written:
                pass
            elif origin == "closure":
                c.state_reads.add(f"cell:{id(namespace.closure[name])}")
            elif origin in ("global", "missing"):  # a name a write may bind later
                c.state_reads.add(f"{namespace.globals.get('__name__')}.{name}")
            if origin == "missing":
                if name in names:
                    c.note(f"name {name} is not defined when the code is fingerprinted")
                    out[name] = {"__unresolved__": name}
                continue
            chain = chains.get(("free", name), set())
            out[name] = self.resolve(name, value, origin, chain, c, track=name not in written)
            if origin != "builtin":
                c.part(name, _digest(out[name]))
        return out

    def resolve(
        self,
        label: str,
        value: object,
        origin: str,
        chains: set[tuple[str, ...]],
        c: _Collector,
        *,
        track: bool = True,
    ) -> _Form:
        if isinstance(value, types.ModuleType):
            return self._module(value, label, chains, c)
        if origin == "empty":
            c.note(f"closure variable {label} is not assigned yet")
            return {"__empty_cell__": True}
        if origin != "builtin" and not _is_special(label):  # e.g. the __class__ cell of super()
            c.read(label)
            c.note(_describe(label, value, origin))
        return self._fp.value(value, label, c, track=track)

    def _module(
        self, mod: types.ModuleType, label: str, chains: set[tuple[str, ...]], c: _Collector
    ) -> _Form:
        c.read(label)
        if not _is_user_module(mod):
            version = _package_version(mod.__name__)
            c.note(f"uses library module {mod.__name__} ({version})")
            form: dict[str, _Form] = {
                "__library_module__": mod.__name__,
                "version": _package_release(mod.__name__),
            }
            replaced = self._replaced(mod, label, chains, c)
            if replaced:  # only then: a library used as installed keeps its form
                form["replaced"] = replaced
            return form
        entries: dict[str, _Form] = {}
        for chain in sorted(chains or {()}):
            obj: object = mod
            path: list[str] = []
            missing = False
            for attr in chain:
                if not (isinstance(obj, types.ModuleType) and _is_user_module(obj)):
                    break
                c.state_reads.add(f"{obj.__name__}.{attr}")
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
                entries[key] = self.resolve(name, obj, "attribute", set(), c)
            else:
                entries[key] = self._module_source(mod, name, c)
        return {"__user_module__": entries}

    def _replaced(
        self, mod: types.ModuleType, label: str, chains: set[tuple[str, ...]], c: _Collector
    ) -> dict[str, _Form]:
        """What the code reads of a library module that is the user's code now: a function
        or class a config or helper put in its place (``np.log1p = patched``,
        ``pd.Series.clip = mine``), found along the chains read without running the
        library's lazy ``__getattr__``. Before (QA pass 17), the module was named with its
        version only, so an edit of the replacement kept the fingerprint."""
        out: dict[str, _Form] = {}
        for chain in sorted(chains):
            obj: object = mod
            for i, attr in enumerate(chain):
                try:
                    obj = inspect.getattr_static(obj, attr)
                except AttributeError:
                    break
                if isinstance(obj, staticmethod | classmethod):
                    obj = obj.__func__
                if isinstance(obj, types.ModuleType):
                    if _is_user_module(obj):
                        break  # read whole where the code names it
                    continue
                if callable(obj) and _is_own_code(obj):
                    key = ".".join(chain[: i + 1])
                    out[key] = self.resolve(f"{label}.{key}", obj, "attribute", set(), c)
                    break
        return out

    def _module_source(self, mod: types.ModuleType, label: str, c: _Collector) -> _Form:
        """A user module used as a whole (passed on, ``getattr(m, name)``, ``vars(m)``): its
        source and every name it holds now, since code may reach any of them. The source
        alone missed what the module imports (``from helper2 import K``), values set on it
        by other modules, and data it loaded from files when imported."""
        c.note(f"uses user module {label} as a whole: its entire source and names are hashed")
        filename = getattr(mod, "__file__", None)
        src = self._sources.source(filename, vars(mod)) if filename else None
        if src is None:
            c.analysable = False
            c.refuse(f"cannot read the source of module {mod.__name__}, used as a whole")
            return {"__module_without_source__": True}
        if mod.__name__ in self._whole:  # modules importing each other: hashed once
            return {"__module_cycle__": mod.__name__}
        self._whole.add(mod.__name__)
        try:
            c.state_reads.update(f"{mod.__name__}.{name}" for name in vars(mod))
            names = {
                name: self._module(value, f"{label}.{name}", {()}, c)
                if isinstance(value, types.ModuleType)
                else self._fp.value(value, f"{label}.{name}", c)
                for name, value in sorted(vars(mod).items())
                if not (name.startswith("__") and name.endswith("__"))
            }
        finally:
            self._whole.discard(mod.__name__)
        return {"__module_source__": _tree_digest(src.tree), "names": names}

    def imports(
        self, norm: _Normaliser, module_globals: Mapping[str, Any], c: _Collector
    ) -> list[_Form]:
        out: list[_Form] = []
        package = module_globals.get("__package__") or ""
        for node, alias, key in norm.imports:
            label = key[2]
            value = _imported(node, alias, package)
            binding = _import_binding(node, alias, package)
            if binding is not None:  # ``from m import X`` reads m.X when it runs
                c.state_reads.add(binding)
            if isinstance(value, str):  # not loaded: identify without importing it
                out.append({"bind": label, "value": self._unloaded(value, label, c)})
                continue
            chains = norm.chains.get(key, set())
            form = self.resolve(label, value, "import", chains, c)
            c.part(label, _digest(form))
            out.append({"bind": label, "value": form})
        return out

    def module_by_name(self, absname: str, c: _Collector) -> _Form:
        """A module imported by name when the code runs (``importlib.import_module``): a
        user module's whole source, a library's version."""
        module = sys.modules.get(absname)
        if module is None:
            return self._unloaded(absname, absname, c)
        return self.resolve(absname, module, "import", set(), c)

    def _unloaded(self, absname: str, label: str, c: _Collector) -> _Form:
        """Identify a module a UDF imports locally but nobody has imported yet."""
        spec, exact = _find_spec(absname)
        origin = spec.origin if spec is not None and spec.has_location else None
        if spec is not None and not _is_user_location(absname, origin):
            return {"__library_module__": absname, "version": _package_release(absname)}
        src = self._sources.source(origin, None) if exact and origin else None
        if src is not None:
            c.note(f"imports user module {absname}, not loaded yet: its entire source is hashed")
            return {"__module_source__": _tree_digest(src.tree)}
        c.analysable = False
        c.note(f"imports {absname}, which is not loaded; changes to it are not tracked")
        c.refuse(f"imports {absname}, which is not loaded yet (import it at module level instead)")
        return {"__unresolved_import__": absname}
