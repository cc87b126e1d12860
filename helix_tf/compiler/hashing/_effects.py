"""What code reads from outside Python values: environment variables, files, random state.

A UDF's result can depend on more than its code and the values it reads: on
``os.environ``, on files it opens, on a global random generator. :func:`scan_effects`
finds these in a function's source (the AST as written) and resolves what it can
at compile time; :mod:`._code` folds the values found (the variable's value, the
file's content) into the fingerprint and records what it cannot resolve.
"""

from __future__ import annotations

import ast
import builtins
import codecs
import dataclasses
import glob
import importlib
import importlib.resources
import inspect
import io
import ntpath
import os
import pathlib
import pkgutil
import posixpath
import re
import sys
import types
from collections.abc import Callable
from typing import NamedTuple

from ._addresses import address_reads
from ._generators import _draws_shared_state, _is_unseeded, _kept_draws
from ._listing_order import note_listing
from ._machine_facts import (
    HASH_WHY,
    LOCAL_ZONE,
    LOCALE_TEXT,
    MACHINE_FACTS,
    decodes_by_locale,
    reads_local_zone,
    varying,
)
from ._path_calls import (
    PATH_FUNCTIONS,
    PURE_PATH,
    computes_path,
    is_reader,
    names_file,
    package_folder,
    path_of_value,
    writes_its_file,
)
from ._set_order import unordered_sets
from ._state import note_writes
from ._unset_seeds import judge_seeds, none_parameters, passed_on_seeds

_UNKNOWN = object()
_ENVIRON_GET = object()  # marks ``os.environ.get``
_MODULES_GET = object()  # marks ``sys.modules.get``
#: The environment as text and, where the platform has it, as bytes (``os.environb``).
_ENVIRONS: tuple[object, ...] = tuple(
    e for e in (os.environ, getattr(os, "environb", None)) if e is not None
)
#: Functions that read one environment variable named by their first argument.
_GETENVS: tuple[object, ...] = tuple(
    f for f in (os.getenv, getattr(os, "getenvb", None)) if f is not None
)
#: Functions that read the environment variables a text names (``$HOME/x``, ``${DATA}``).
_EXPANDERS = (os.path.expandvars, posixpath.expandvars, ntpath.expandvars)
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")
#: Functions that open the file named by their first argument.
_OPENERS = (builtins.open, io.open, codecs.open, os.open)
#: Path methods that open or read the path they are called on.
_PATH_READS = frozenset({"open", "read_text", "read_bytes"})
#: Functions that list the folder (or the files matching the pattern) they are given.
_LISTERS = (os.listdir, os.scandir, os.walk, glob.glob, glob.iglob)
#: Path methods that list the folder they are called on.
_PATH_LISTS = frozenset({"iterdir", "glob", "rglob", "walk"})
#: Builtins that read a module's names by a value known only when they run.
_DYNAMIC_READS = (builtins.globals, builtins.eval, builtins.exec)
#: Functions that import the module named by their first argument.
_IMPORTERS = (builtins.__import__, importlib.import_module)


@dataclasses.dataclass(slots=True)
class Effects:
    """What :func:`scan_effects` found in one function."""

    #: Environment variables read by literal name.
    env: list[str] = dataclasses.field(default_factory=list)
    #: Uses of the environment that cannot be resolved (computed names, the whole mapping).
    env_unresolved: list[str] = dataclasses.field(default_factory=list)
    #: Calls that open or read files: (call text, line, resolved path or None).
    files: list[tuple[str, int, str | None]] = dataclasses.field(default_factory=list)
    #: Calls that draw from a global or unseeded random generator: (call text, line).
    unseeded: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Of those, draws from a generator shared by the process (``random.random()``,
    #: ``np.random.rand()``): what they draw depends on every draw before them.
    global_draws: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Draws from a generator object kept outside the call (``RNG.normal()``,
    #: ``df.sample(random_state=RNG)`` for a module-level ``RNG``): what they draw
    #: depends on every earlier draw from it in the process.
    kept_draws: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Reads of names known only when the code runs (``globals()``, ``eval``,
    #: ``importlib.import_module(name)``): (call text, line).
    dynamic: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Modules imported by a call with a literal name (``importlib.import_module("m")``).
    imports: list[str] = dataclasses.field(default_factory=list)
    #: Reads of what differs from run to run with the same code and data: the clock, the
    #: process's string-hash seed (``hash()``): (call text, line, why and the fix).
    varying: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
    #: Sets of text (or of other values hashed by the process's string-hash seed or by
    #: address) used in their iteration order, which differs between processes:
    #: (the set's text, line).
    unordered: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Seeds that are None unless the function's caller passes them: a parameter
    #: defaulting to None used as a seed (``default_rng(seed)``): (call text, line, the
    #: parameter). Refused where no caller passes one (:func:`code_fingerprint`'s entry).
    seed_parameters: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
    #: Folders (or glob patterns) listed by a call whose names are used in the order the
    #: file system gives them (``for name in os.listdir(P)``; not ``sorted(...)``).
    listings: list[str] = dataclasses.field(default_factory=list)
    #: Library calls that leave their seed parameter None (``df.sample(frac=0.5)``,
    #: ``shuffle(X)``): they draw from numpy's generator for the whole process or from
    #: fresh entropy: (call text, line, the parameter).
    unset_seeds: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
    #: Facts of the machine, user or working folder read by a call (``MACHINE_FACTS``
    #: names): their values join the fingerprint, as an environment variable's does.
    facts: list[str] = dataclasses.field(default_factory=list)
    #: Writes into state outside the call (a module's names, objects code outside reads):
    #: (the keys of what is changed, the write's text, line, whether what it writes comes
    #: from the function's parameters): :mod:`._state`.
    writes: list[tuple[tuple[str, ...], str, int, bool]] = dataclasses.field(default_factory=list)
    #: Parameters the function changes in place (its callers are judged where they pass
    #: them): (the parameter, whether the write comes from the other parameters, the
    #: write's text, line).
    mutated: list[tuple[str, bool, str, int]] = dataclasses.field(default_factory=list)


def scan_effects(
    tree: ast.AST,
    resolve: Callable[[str], object],
    source: str,
    seeds_of: Callable[[object], tuple[str, ...]] = lambda fn: (),
    state: StateHooks | None = None,
) -> Effects:
    """Find environment reads, file reads and unseeded random calls in ``tree``.

    Parameters
    ----------
    tree
        A function's AST, as written (not normalised).
    resolve
        The value a free name (or a name bound by a local import) has, or
        :data:`_UNKNOWN` for local variables and names it cannot see.
    source
        The text of the file ``tree`` comes from (for showing calls).
    seeds_of
        The seed parameters of a user function (its ``seed_parameters``) that its
        callers must pass.
    state
        How to name the state code writes (:class:`StateHooks`); writes are not looked
        for without it.
    """
    scan = _Scan(resolve, source)
    scan.seeds_of = seeds_of
    scan.parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    scan.visit(tree)
    scan.leftover_environ(tree)
    _kept_draws(scan, tree)
    unordered_sets(scan, tree)
    address_reads(scan, tree)
    passed_on_seeds(scan, tree)
    if state is not None:
        scan.binding_of, scan.mutates_of, scan.is_user_code, scan.owner = state
        note_writes(scan, tree)
    return scan.found


class StateHooks(NamedTuple):
    """What :func:`scan_effects` asks about the state code writes (:mod:`._state`)."""

    #: The key of a free name bound anew (``global X``/``nonlocal X``): ``"module.X"`` or
    #: ``"cell:<id>"``; None when it names nothing outside.
    binding_of: Callable[[str], str | None]
    #: The parameters a user function changes in place.
    mutates_of: Callable[[object], tuple[tuple[str, bool, str], ...]]
    #: Whether a callable is user code (analysed from source).
    is_user_code: Callable[[object], bool]
    #: The class whose code is scanned (a class, or a method's class): what ``type(self)``
    #: and ``self.__class__`` name in its methods.
    owner: type | None = None


class _Scan(ast.NodeVisitor):
    def __init__(self, resolve: Callable[[str], object], source: str) -> None:
        self.resolve = resolve
        self.source = source
        self.found = Effects()
        self.consumed: set[int] = set()  # environ expressions accounted for
        self.parents: dict[int, ast.AST] = {}  # each node's parent in the scanned tree
        self.seeds_of: Callable[[object], tuple[str, ...]] = lambda fn: ()
        self.binding_of: Callable[[str], str | None] = lambda name: None
        self.mutates_of: Callable[[object], tuple[tuple[str, bool, str], ...]] = lambda fn: ()
        self.is_user_code: Callable[[object], bool] = lambda fn: False
        self.owner: type | None = None
        self.functions: list[str] = []  # the defs the visit is inside, innermost last
        #: Per def or lambda the visit is inside: its parameters, and those of them that
        #: are None unless a caller passes them (:func:`none_parameters`).
        self.parameters: list[tuple[frozenset[str], frozenset[str]]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.functions.append(getattr(node, "name", "<lambda>"))
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        names = frozenset(a.arg for a in every if a is not None)
        self.parameters.append((names, none_parameters(node)))
        self.generic_visit(node)
        self.parameters.pop()
        self.functions.pop()

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def seed_value(self, node: ast.AST) -> object:
        """:meth:`value`, and None for a parameter that is None unless a caller passes it
        (``seed`` in ``def udf(row, seed=None)``): helix_tf passes a UDF its row or batch
        only, and a caller that leaves it out gets None."""
        if isinstance(node, ast.Name):
            for names, nones in reversed(self.parameters):
                if node.id in names:
                    return None if node.id in nones else _UNKNOWN
        return self.value(node)

    # -- static values
    def value(self, node: ast.AST) -> object:
        """The value of a name, attribute chain or path expression known at compile time."""
        try:
            return self._value(node)
        except Exception:  # e.g. a module's lazy __getattr__ failing: not known statically
            return _UNKNOWN

    def _value(self, node: ast.AST) -> object:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            return node.value
        if isinstance(node, ast.Name):
            return self.resolve(node.id)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            if _is_environ(base) and node.attr == "get":
                return _ENVIRON_GET
            if base is sys.modules and node.attr == "get":
                return _MODULES_GET
            if isinstance(base, type(os) | pathlib.PurePath) or _is_library_class(base):
                return getattr(base, node.attr, _UNKNOWN)
            return _static_attribute(base, node.attr)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            return _static_item(self.value(node.value), node.slice.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self.value(node.left), self.value(node.right)
            if isinstance(left, pathlib.PurePath) and isinstance(right, str | pathlib.PurePath):
                return left / right
            return _UNKNOWN
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # D + "/x.csv"
            left, right = self.value(node.left), self.value(node.right)
            return left + right if isinstance(left, str) and isinstance(right, str) else _UNKNOWN
        if isinstance(node, ast.JoinedStr):  # f"{D}/x.csv": a path of known parts
            return _joined(self, node)
        if isinstance(node, ast.Call) and not node.keywords:
            fn = self.value(node.func)
            args = [self.value(a) for a in node.args]
            if any(a is _UNKNOWN for a in args):
                return _UNKNOWN
            if any(fn is f for f in PATH_FUNCTIONS) and all(isinstance(a, str) for a in args):
                return fn(*args)  # type: ignore[operator]
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, pathlib.PurePath) and getattr(fn, "__name__", "") in PURE_PATH:
                return fn(*args)  # type: ignore[operator]
            if isinstance(fn, type) and issubclass(fn, pathlib.PurePath):
                return fn(*args)  # type: ignore[arg-type]
            if (fn is str or fn is os.fspath) and len(args) == 1:  # str(FOLDER / "x.csv")
                return os.fspath(args[0]) if isinstance(args[0], str | os.PathLike) else _UNKNOWN
            if fn is importlib.resources.files and len(args) == 1:
                return package_folder(args[0])
        return _UNKNOWN

    def text(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        text = " ".join(text.split())
        return text if len(text) <= 80 else text[:77] + "..."

    def path_of(self, node: ast.AST | None) -> str | None:
        return path_of_value(_UNKNOWN if node is None else self.value(node))

    # -- visits
    def visit_Call(self, node: ast.Call) -> None:
        fn = self.value(node.func)
        first = node.args[0] if node.args else None
        if fn is _ENVIRON_GET or any(fn is f for f in _GETENVS):
            self.env_key(node, first)
            if isinstance(node.func, ast.Attribute):
                self.consumed.add(id(node.func.value))
        elif any(fn is f for f in _EXPANDERS):
            _env_expanded(self, node, first)
        elif any(fn is f for f in _OPENERS) or is_reader(fn):
            if first is None:
                first = next((k.value for k in node.keywords if k.arg in _PATH_KEYWORDS), None)
            self.found.files.append((self.text(node), node.lineno, self.path_of(first)))
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _PATH_READS:
            base = node.func.value
            target = self.value(base)
            # read_text()/read_bytes() read whatever they are called on; open() only a path
            if node.func.attr != "open" or isinstance(target, pathlib.PurePath):
                self.found.files.append((self.text(node), node.lineno, self.path_of(base)))
            elif isinstance(base, ast.Call) and computes_path(self.value(base.func)):
                self.found.files.append((self.text(node), node.lineno, None))
            else:  # gzip.open(P), tarfile.open(P), a module's or object's own open
                self.path_arguments(node)
        elif any(fn is f for f in _DYNAMIC_READS):
            self.found.dynamic.append((self.text(node), node.lineno))
        elif any(fn is f for f in _IMPORTERS) or fn is _MODULES_GET:
            self.module_named(node, first)
        elif fn is pkgutil.get_data and len(node.args) == 2:
            folder, name = package_folder(self.value(node.args[0])), self.value(node.args[1])
            path = os.fspath(folder / name) if folder and isinstance(name, str) else None
            self.found.files.append((self.text(node), node.lineno, path))
        elif any(fn is f for f in _LISTERS):
            note_listing(self, node, self.listed(first))
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _PATH_LISTS:
            target = self.value(node.func.value)
            if isinstance(target, pathlib.PurePath):
                note_listing(self, node, os.fspath(target))
        elif not computes_path(fn) and not writes_its_file(fn, node):
            self.path_arguments(node)
        fact = next((name for name, f in MACHINE_FACTS.items() if fn is f), None)
        if fact is not None and node.args:
            fact = None  # a fact of the machine is read by a call without arguments
        if fact is None and reads_local_zone(fn, node):
            fact = LOCAL_ZONE
        if fact is None and decodes_by_locale(fn, node):
            fact = LOCALE_TEXT
        if fact is not None and fact not in self.found.facts:
            self.found.facts.append(fact)
        why = varying(fn, node, self.value)
        if why == HASH_WHY and self.functions[-1:] == ["__hash__"]:
            why = None  # a class's own __hash__: set and dict lookups, not values computed
        if why:
            self.found.varying.append((self.text(node), node.lineno, why))
        shared = _draws_shared_state(fn, node, self.value)
        if shared or _is_unseeded(fn, node, self.value):
            self.found.unseeded.append((self.text(node), node.lineno))
            if shared:
                self.found.global_draws.append((self.text(node), node.lineno))
        else:
            judge_seeds(self, fn, node)
        self.generic_visit(node)

    def listed(self, node: ast.AST | None) -> str | None:
        """The folder (or glob pattern) a listing call reads, when known (``os.listdir()``
        lists the working folder)."""
        return self.path_of(node) if node is not None else "."

    def path_arguments(self, node: ast.Call) -> None:
        """Any other call given an existing local file by a value known at compile time
        reads it, as far as anyone can tell (``gzip.open(P)``, ``sqlite3.connect(P)``,
        ``zipfile.ZipFile(P)``, a reader of one's own): its content is hashed. Naming a file
        is what counts, not which function opens it: no list of openers is complete."""
        values = [*node.args, *(k.value for k in node.keywords)]
        for arg in values:
            if isinstance(arg, ast.Starred):
                continue
            for value in _named_paths(self, arg):
                path = path_of_value(value)
                if path is not None and names_file(path, value):
                    self.found.files.append((self.text(node), node.lineno, path))

    def visit_Subscript(self, node: ast.Subscript) -> None:
        base = self.value(node.value)
        if _is_environ(base):
            self.env_key(node, node.slice)
            self.consumed.add(id(node.value))
        elif base is sys.modules:
            self.module_named(node, node.slice)
        self.generic_visit(node)

    def module_named(self, node: ast.AST, key: ast.AST | None) -> None:
        """A module looked up by name when the code runs: known if the name is literal."""
        name = self.value(key) if key is not None else _UNKNOWN
        if isinstance(name, str) and name and not name.startswith("."):
            if name not in self.found.imports:
                self.found.imports.append(name)
        else:
            self.found.dynamic.append((self.text(node), node.lineno))  # type: ignore[attr-defined]

    def visit_Compare(self, node: ast.Compare) -> None:
        if (
            len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and _is_environ(self.value(node.comparators[0]))
        ):
            self.env_key(node, node.left)
            self.consumed.add(id(node.comparators[0]))
        self.generic_visit(node)

    def env_key(self, node: ast.AST, key: ast.AST | None) -> None:
        name = self.value(key) if key is not None else _UNKNOWN
        if isinstance(name, bytes):  # os.environb, os.getenvb
            name = os.fsdecode(name)
        if isinstance(name, str):
            if name not in self.found.env:
                self.found.env.append(name)
        else:
            self.found.env_unresolved.append(f"{self.text(node)} (line {node.lineno})")  # type: ignore[attr-defined]

    def leftover_environ(self, tree: ast.AST) -> None:
        """Any other use of ``os.environ`` (the whole mapping) cannot be resolved."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Name | ast.Attribute) and id(node) not in self.consumed:
                if isinstance(node, ast.Attribute) and id(node.value) in self.consumed:
                    continue
                if _is_environ(self.value(node)):
                    self.consumed.add(id(node))
                    self.found.env_unresolved.append(
                        f"{self.text(node)} used as a whole (line {node.lineno})"
                    )


def _env_expanded(scan: _Scan, node: ast.Call, text: ast.AST | None) -> None:
    """``os.path.expandvars(T)``: the variables a text known at compile time names are read
    by name; a text known only when it runs reads the environment by it (QA pass 17)."""
    value = scan.value(text) if text is not None else _UNKNOWN
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    if not isinstance(value, str):
        scan.env_key(node, None)
        return
    for match in _VARIABLE.finditer(value):
        name = match.group(1).strip("{}")
        if name and name not in scan.found.env:
            scan.found.env.append(name)


def _is_environ(value: object) -> bool:
    return any(value is e for e in _ENVIRONS)


def _static_attribute(base: object, attr: str) -> object:
    """``base.attr`` found without running code (``inspect.getattr_static``): an object's
    own attribute (its ``__dict__`` or a slot), a class's data attribute, a method bound
    to ``base``; :data:`_UNKNOWN` for what only code computes (a property, ``__getattr__``)
    and for a base not known at compile time. Lets a chain through user objects
    (``CFG.rng``, ``Settings.SEED``) resolve as a module's attributes do."""
    if base is _UNKNOWN or base is _ENVIRON_GET or base is _MODULES_GET:
        return _UNKNOWN
    try:
        found = inspect.getattr_static(base, attr)
    except AttributeError:
        return _UNKNOWN
    if isinstance(found, types.MemberDescriptorType):  # a slot
        try:
            return found.__get__(base, type(base))
        except AttributeError:
            return _UNKNOWN
    if isinstance(found, staticmethod):
        return found.__func__
    if isinstance(found, classmethod):
        return types.MethodType(found.__func__, base if isinstance(base, type) else type(base))
    try:  # its own attributes, without an overridden __getattribute__ running
        own = object.__getattribute__(base, "__dict__")
    except AttributeError:
        own = {}
    if isinstance(found, types.FunctionType):
        if isinstance(base, type) or attr in own:
            return found
        return types.MethodType(found, base)  # a method: called with base as self
    if attr not in own and hasattr(type(found), "__get__"):
        return _UNKNOWN  # a property or another descriptor: computed by code
    return found


def _static_item(base: object, key: object) -> object:
    """``base[key]`` for a literal key of a dict, list or tuple whose item lookup is the
    built-in one (a subclass's own ``__getitem__`` is code): else :data:`_UNKNOWN`."""
    for kind in (dict, list, tuple):
        if isinstance(base, kind) and type(base).__getitem__ is kind.__getitem__:
            try:
                if isinstance(base, dict) and key not in base:
                    return _UNKNOWN  # (a defaultdict would make the missing item)
                return base[key]  # type: ignore[index,call-overload]
            except (KeyError, IndexError, TypeError):
                return _UNKNOWN
    return _UNKNOWN


_PATH_KEYWORDS = frozenset({"file", "path", "filepath_or_buffer", "source", "fname", "filename"})


def _named_paths(scan: _Scan, arg: ast.AST) -> list[object]:
    """The values an argument passes that may name files: its value, and the items of a
    list, tuple or set of them (``fileinput.input(files=(P, Q))``, ``FILES = [P, Q]``;
    QA pass 17: a file in a tuple was not hashed, so its edit kept the fingerprint)."""
    if isinstance(arg, ast.Tuple | ast.List | ast.Set):
        return [v for item in arg.elts for v in _named_paths(scan, item)]
    value = scan.value(arg)
    if isinstance(value, list | tuple | set | frozenset) and len(value) <= _MOST_NAMED:
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [v for v in items if isinstance(v, str | bytes | os.PathLike)]
    return [value]


#: The most items of a list passed to a call looked at as file names.
_MOST_NAMED = 1000


def _is_library_class(value: object) -> bool:
    """A class of the standard library, numpy or pandas (``datetime.date``, ``pd.Timestamp``):
    reading its attributes at compile time has no effect."""
    if not isinstance(value, type):
        return False
    top = value.__module__.split(".")[0]
    return top in sys.stdlib_module_names or top in ("numpy", "pandas")


def _joined(scan: _Scan, node: ast.JoinedStr) -> object:
    """An f-string's text when every part is known at compile time as text or a path and
    shown as it is (no conversion, no format spec), else :data:`_UNKNOWN`."""
    parts: list[str] = []
    for part in node.values:
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            parts.append(part.value)
            continue
        if not isinstance(part, ast.FormattedValue) or part.conversion != -1 or part.format_spec:
            return _UNKNOWN
        value = scan.value(part.value)
        if not isinstance(value, str | pathlib.PurePath):
            return _UNKNOWN
        parts.append(str(value))
    return "".join(parts)
