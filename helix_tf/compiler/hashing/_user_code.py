"""User functions and classes, analysed from their source (or, failing that, their bytecode)."""

from __future__ import annotations

import ast
import copy
import dataclasses
import os
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._canonical import _digest, _Form
from ._effects import _UNKNOWN, StateHooks, scan_effects
from ._files import sha256_file, sha256_files
from ._generators import generators_in
from ._listing_order import listing_order
from ._locate import _SourceFinder
from ._machine_facts import MACHINE_FACTS
from ._origin import _is_user_function, _warn_once
from ._reads import _class_attrs, _class_functions, _imported, _Namespace
from ._resolver import _ReadResolver
from ._result import FileRead, _Collector
from ._source import _code_globals, _Normaliser
from ._state import written_only

if TYPE_CHECKING:
    from ._code import _Fingerprinter

_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


def _is_user_code(fn: object) -> bool:
    """A function of the user's own, analysed from its source."""
    return isinstance(fn, types.FunctionType) and _is_user_function(fn)


def _record_state(found: Any, base: str, qualname: str, c: _Collector) -> None:
    """The writes into state outside the call and the parameters changed in place, shown
    with ``file:line`` and the function (``_state``)."""
    for keys, call, line, derived in found.writes:  # line 0: a callee's write, shown
        shown = f"{call} ({base}:{line}, in {qualname})" if line else call
        c.state_writes.append((shown, derived, keys))
    for name, derived, call, line in found.mutated:
        c.mutated_parameters.append((name, derived, f"{call} ({base}:{line}, in {qualname})"))


def _owner_class(fn: types.FunctionType) -> type | None:
    """The class a method ``fn`` is defined in, found by its qualified name in its module
    (None for a function, or a class defined inside a function)."""
    path = fn.__qualname__.split(".")[:-1]
    if not path or "<locals>" in path:
        return None
    value: Any = sys.modules.get(fn.__module__)
    for name in path:
        value = getattr(value, name, None)
    return value if isinstance(value, type) else None


def _fact(name: str, c: _Collector) -> _Form:
    """The value of a machine fact a UDF reads (``MACHINE_FACTS``), as a part of its own."""
    try:
        value: _Form = MACHINE_FACTS[name]()
    except Exception as exc:  # e.g. getpass.getuser() without a user name
        value = {"__unreadable__": type(exc).__name__}
    shown = name if " " in name else name + "()"  # a call, or a fact named in words
    c.part(shown, _digest(value))
    c.note(f"reads {shown} = {value!r}")
    return value


class _UserCode:
    """The forms of user functions and classes: normalised code plus everything it reads."""

    def __init__(self, fp: _Fingerprinter, sources: _SourceFinder, reads: _ReadResolver) -> None:
        self._fp = fp
        self._sources = sources
        self._reads = reads

    def function_form(self, fn: types.FunctionType, c: _Collector) -> _Form:
        located = self._sources.locate_function(fn)
        if isinstance(located, str):
            return self._bytecode_function(fn, located, c)
        norm = _Normaliser(copy.deepcopy(located))
        code = fn.__code__
        closure = dict(zip(code.co_freevars, fn.__closure__ or (), strict=True))
        names = list(norm.free)
        extra = [n for n in [*_code_globals(code), *code.co_freevars] if n not in norm.free]
        namespace = _Namespace(closure=closure, globals=fn.__globals__)
        self_names = {n for n in [*names, *extra] if namespace.get(n)[0] is fn}
        written = written_only(located)
        free = self._reads.names(names, extra, namespace, norm.chains, self_names, c, written)
        form = {
            "kind": "function",
            "code": norm.dump(self_names),
            "free": free,
            "imports": self._reads.imports(norm, fn.__globals__, c),
            "defaults": self._fp.value(fn.__defaults__, "default arguments", c),
            "kwdefaults": self._fp.value(fn.__kwdefaults__, "keyword defaults", c),
        }
        c.part("<code>", _digest([form["code"], form["defaults"], form["kwdefaults"]]))
        _refuse_default_generators(fn, c)
        src = self._sources.source(code.co_filename, fn.__globals__)
        text = src.text if src is not None else ""
        where = (code.co_filename, fn.__qualname__)
        owner = _owner_class(fn)
        form.update(self._effects(located, norm, namespace, fn.__globals__, text, where, c, owner))
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
        owner: type | None = None,
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

        def binding_of(name: str) -> str | None:
            if name in namespace.closure:
                return f"cell:{id(namespace.closure[name])}"
            module = module_globals.get("__name__")
            return f"{module}.{name}" if module else None

        filename, qualname = where
        hooks = StateHooks(binding_of, self._fp.mutates_of, _is_user_code, owner)
        found = scan_effects(tree, resolve, text, self._fp.seeds_of, hooks)
        _record_state(found, os.path.basename(filename), qualname, c)
        form: dict[str, _Form] = {}
        if found.env or found.env_unresolved:  # another node's code may set it (_state)
            c.state_reads.add(f"object:{id(os.environ)}")
        if found.env:
            form["env"] = {k: os.environ.get(k) for k in found.env}
            for k in found.env:
                c.part(f"${k}", _digest(os.environ.get(k)))
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
                c.part(f"file {path}", _digest(files[-1]))
        if files:
            form["files"] = files
        if found.listings:  # the order the file system lists them in, where it counts
            form["listing_order"] = [[p, listing_order(p)] for p in found.listings]
            for path, order in form["listing_order"]:
                c.part(f"order of {path}", _digest(order))
                c.note(f"uses the names in {path} in the order the file system lists them")
        for call, line in found.unseeded:
            c.unseeded.append(f"{call} ({os.path.basename(filename)}:{line}, in {qualname})")
        for call, line, name in found.seed_parameters:
            shown = f"{call} ({os.path.basename(filename)}:{line}, in {qualname})"
            c.seed_parameters.append((name, shown))
        _refuse_effects(found, os.path.basename(filename), qualname, c)
        if found.facts:
            form["facts"] = {name: _fact(name, c) for name in found.facts}
        if found.imports:
            form["dynamic_imports"] = {
                name: self._reads.module_by_name(name, c) for name in found.imports
            }
        return form

    @staticmethod
    def _file_state(path: str, qualname: str, c: _Collector) -> _Form:
        c.note(f"reads file {path}")
        if os.path.isfile(path):
            return sha256_file(path)
        listed = sha256_files(path)  # a folder or a glob pattern: by the files in it
        return "missing" if listed is None else {"files": listed}

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
        for name in names:  # no source to tell a draw from a copy: any generator reached
            value, origin = namespace.get(name)
            if origin in ("global", "closure") and not isinstance(value, types.ModuleType):
                refuse_held_generators(value, name, fn.__qualname__, c)
        _refuse_default_generators(fn, c)
        return {
            "kind": "bytecode",
            "qualname": fn.__qualname__,
            "code": self._code_object(code),
            "free": self._reads.names([], names, namespace, {}, self_names, c),
            "defaults": self._fp.value(fn.__defaults__, "default arguments", c),
            "kwdefaults": self._fp.value(fn.__kwdefaults__, "keyword defaults", c),
        }

    def _code_object(self, code: types.CodeType) -> _Form:
        return {
            "bytecode": code.co_code.hex(),
            "consts": [
                self._code_object(k) if isinstance(k, types.CodeType) else self._fp.canon(k)
                for k in code.co_consts
            ],
            "names": list(code.co_names),
            "varnames": list(code.co_varnames),
            "freevars": list(code.co_freevars),
            "cellvars": list(code.co_cellvars),
            "args": [code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount],
            "flags": code.co_flags,
        }

    def class_form(self, cls: type, c: _Collector) -> _Form:
        methods = _class_functions(cls)
        located = self._sources.locate_class(cls, methods)
        attrs = {
            name: self._fp.value(value, f"{cls.__qualname__}.{name}", c)
            for name, value in _class_attrs(cls).items()
        }
        if methods:  # its methods can draw from a class attribute through self or cls
            for name, value in _class_attrs(cls).items():
                refuse_held_generators(value, f"{cls.__qualname__}.{name}", cls.__qualname__, c)
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
                "methods": {n: self._fp.sub(f, n, c) for n, f in sorted(methods.items())},
                "bases": [self._fp.value(b, "base class", c) for b in cls.__bases__],
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
        written = written_only(located)
        free = self._reads.names(names, extra, namespace, norm.chains, self_names, c, written)
        form = {
            "kind": "class",
            "code": norm.dump(self_names),
            "free": free,
            "imports": self._reads.imports(norm, namespace.globals, c),
            "attrs": attrs,
            "fields": fields,
        }
        c.part("<code>", _digest([form["code"], attrs, fields]))
        filename = getattr(module, "__file__", None) or ""
        src = self._sources.source(filename, vars(module) if module else None) if filename else None
        where = (filename, cls.__qualname__)
        text = src.text if src is not None else ""
        form.update(self._effects(located, norm, namespace, namespace.globals, text, where, c, cls))
        return form


_HELD_WHY = (
    "every call can draw from it, so what a call draws depends on the calls before it "
    "and a stored result would not be what a fresh run computes; make the generator "
    "inside the call from a seed parameter (np.random.default_rng(seed))"
)


def held_generators(value: object, who: str, label: str = "self") -> list[str]:
    """Why code that reaches ``value`` (read as ``label``) cannot be reused when a random
    generator can be reached through it without the reads being seen in source (an
    object's attributes its methods use through ``self``, a default argument, a
    partial's argument, a class attribute): what it draws depends on every earlier draw
    from the generator in the process. Empty when none can be."""
    paths = generators_in(value)
    if not paths:
        return []
    shown = ", ".join(label + p for p in paths[:3])
    return [f"{who} keeps a random generator in {shown}: {_HELD_WHY}"]


def refuse_held_generators(value: object, label: str, who: str, c: _Collector) -> None:
    """:func:`held_generators` as refusals of the code being fingerprinted."""
    for text in held_generators(value, who, label):
        c.refuse(text)


def _refuse_default_generators(fn: types.FunctionType, c: _Collector) -> None:
    """A generator among a function's default arguments: made once, when the function was
    defined, and drawn from by every call."""
    code = fn.__code__
    positional = code.co_varnames[: code.co_argcount]
    given = fn.__defaults__ or ()
    defaults = dict(zip(positional[len(positional) - len(given) :], given, strict=True))
    defaults.update(fn.__kwdefaults__ or {})
    for name, value in defaults.items():
        paths = generators_in(value)
        if paths:
            c.refuse(
                f"{fn.__qualname__} has a random generator as a default argument "
                f"({', '.join(name + p for p in paths[:3])}): it is made once and {_HELD_WHY}"
            )


def _refuse_effects(found: Any, base: str, qualname: str, c: _Collector) -> None:
    """Refuse what no rerun can reproduce: shared, kept or unseeded random draws, calls
    whose result varies, names resolved only at run time (``base``: the file's name)."""
    for call, line in found.global_draws:
        c.refuse(
            f"{qualname} draws from a random generator the whole process shares: {call} "
            f"({base}:{line}); what it draws depends on every draw "
            "before it (other nodes, earlier runs), so no rerun can reproduce it; use "
            "np.random.default_rng(seed) with the seed a parameter"
        )
    shared = set(found.global_draws)
    for call, line in found.unseeded:
        if (call, line) not in shared:
            c.refuse(
                f"{qualname} draws numbers no seed fixes: {call} ({base}:{line}) makes a "
                "random generator without a seed or reads fresh entropy from the operating "
                "system, so two runs draw different numbers and a stored result would not "
                "be what a fresh run computes; pass a seed that is a parameter with a number "
                "as its default (helix_tf calls a UDF with its row or batch only, so a seed "
                "parameter defaulting to None is None) or a module constant "
                "(np.random.default_rng(SEED), random.Random(SEED))"
            )
    for call, line, param in found.unset_seeds:
        c.refuse(
            f"{qualname} calls {call} ({base}:{line}) with its {param} left None: it then "
            "draws from numpy's generator for the whole process (or from fresh entropy), so "
            "what it draws depends on every draw before it and no rerun can reproduce it; "
            f"pass {param}=SEED (a seed parameter with a number as its default, or a "
            "module constant)"
        )
    for call, line in found.kept_draws:
        c.refuse(
            f"{qualname} draws from a random generator kept outside the call: {call} "
            f"({base}:{line}); what it draws depends on every earlier "
            "draw from it in the process (other functions, the batch sizes, which nodes "
            "were loaded), so a stored result would not be what a fresh run computes; "
            "make the generator inside the function from a seed parameter "
            "(np.random.default_rng(seed))"
        )
    for call, line, why in found.varying:
        c.refuse(f"{qualname} calls {call} ({base}:{line}), which {why}")
    for shown, line in found.unordered:
        c.refuse(
            f"{qualname} uses the set {shown} in its iteration order ({base}:{line}), which "
            "Python draws from a string-hash seed chosen at random in every process: a "
            f"stored result is not what a fresh run computes; iterate sorted({shown}) instead"
        )
    for call, line in found.dynamic:
        c.refuse(
            f"{qualname} reads names known only when it runs: {call} "
            f"({base}:{line}); read the values it needs by name "
            "(a module constant, a closure variable or an import at module level)"
        )
