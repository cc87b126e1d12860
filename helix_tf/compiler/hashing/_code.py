"""Fingerprints of code: :func:`code_fingerprint` and the pass that computes one."""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import linecache
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from ._canonical import _Canon, _digest, _Form, _state
from ._effects import _UNKNOWN, scan_effects
from ._files import sha256_file
from ._origin import (
    _identity,
    _is_user_function,
    _is_user_location,
    _is_user_module,
    _is_user_type,
    _package_version,
    _type_name,
    _warn_once,
)
from ._reads import (
    _class_attrs,
    _class_functions,
    _describe,
    _find_spec,
    _imported,
    _is_special,
    _Namespace,
)
from ._result import CodeFingerprint, FileRead, _Collector
from ._source import (
    _DEFS,
    _code_globals,
    _contains,
    _ModuleSource,
    _Normaliser,
    _parse_source,
    _start_line,
    _tree_digest,
)

_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


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
            refusals=tuple(collector.refusals),
            files=tuple(collector.files),
            unseeded=tuple(collector.unseeded),
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
        """A library callable instance's state: what pickle would save, never its repr."""
        self._labels.append(ident)
        try:
            return self._canon._reduced(obj)
        except Exception as exc:
            c.analysable = False
            c.note(f"the state of {ident} cannot be hashed; only its type is tracked")
            c.refuse(f"cannot read the state of {ident} ({exc})")
            return None
        finally:
            self._labels.pop()

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
        form = {
            "kind": "function",
            "code": norm.dump(self_names),
            "free": free,
            "imports": self._resolve_imports(norm, fn.__globals__, c),
            "defaults": self._value(fn.__defaults__, "default arguments", c),
            "kwdefaults": self._value(fn.__kwdefaults__, "keyword defaults", c),
        }
        src = self._source(code.co_filename, fn.__globals__)
        text = src.text if src is not None else ""
        where = (code.co_filename, fn.__qualname__)
        form.update(self._effects(located, norm, namespace, fn.__globals__, text, where, c))
        return form

    def _effects(
        self,
        tree: ast.AST,
        norm: _Normaliser,
        namespace: _Namespace,
        module_globals: Mapping[str, Any],
        text: str,
        where: tuple[str, str],
        c: _Collector,
    ) -> dict[str, _Form]:
        """Environment variables, files and random generators the code reads (DESIGN §3).

        The value of each environment variable read by name and the content of each
        file opened by a path known at compile time join the form; what cannot be
        resolved is a refusal (its results are never reused). Keys are added only when
        something is found, so code without such reads keeps its digest.
        """
        package = module_globals.get("__package__") or ""
        local_imports = {
            key[2]: _imported(node, alias, package) for node, alias, key in norm.imports
        }

        def resolve(name: str) -> object:
            if name in norm.free:
                value, origin = namespace.get(name)
                return _UNKNOWN if origin in ("missing", "empty") else value
            value = local_imports.get(name, _UNKNOWN)
            return _UNKNOWN if isinstance(value, str) else value

        filename, qualname = where
        found = scan_effects(tree, resolve, text)
        form: dict[str, _Form] = {}
        if found.env:
            form["env"] = {k: os.environ.get(k) for k in found.env}
            for k in found.env:
                c.read(f"${k}")
                c.note(f"reads environment variable {k} = {os.environ.get(k)!r}")
        for use in found.env_unresolved:
            c.refuse(f"{qualname} reads the environment by a name known only when it runs: {use}")
        files: list[_Form] = []
        for call, line, path in found.files:
            c.files.append(
                FileRead(call=call, where=f"{filename}:{line}", function=qualname, path=path)
            )
            if path is not None:
                files.append([path, self._file_state(path, qualname, c)])
        if files:
            form["files"] = files
        for call, line in found.unseeded:
            c.unseeded.append(f"{call} ({os.path.basename(filename)}:{line}, in {qualname})")
        return form

    @staticmethod
    def _file_state(path: str, qualname: str, c: _Collector) -> _Form:
        c.note(f"reads file {path}")
        if os.path.isfile(path):
            return sha256_file(path)
        if os.path.isdir(path):
            c.refuse(f"{qualname} reads folder {path}, whose content is not hashed")
            return "folder"
        return "missing"

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
        form = {
            "kind": "class",
            "code": norm.dump(self_names),
            "free": free,
            "imports": self._resolve_imports(norm, namespace.globals, c),
            "attrs": attrs,
            "fields": fields,
        }
        filename = getattr(module, "__file__", None) or ""
        src = self._source(filename, vars(module) if module else None) if filename else None
        where = (filename, cls.__qualname__)
        text = src.text if src is not None else ""
        form.update(self._effects(located, norm, namespace, namespace.globals, text, where, c))
        return form

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
            c.refuse(f"cannot read the state of {label} (type {ident}): {exc}")
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
            c.refuse(f"cannot read the source of module {mod.__name__}, used as a whole")
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
        c.refuse(f"imports {absname}, which is not loaded yet (import it at module level instead)")
        return {"__unresolved_import__": absname}
