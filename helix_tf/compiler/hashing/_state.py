"""State code writes outside its call (QA pass 14), beside :mod:`._effects`, which calls
:func:`note_writes` on every function it scans.

A UDF that writes into a module (``STATE["scale"] = 2.0``, ``global MEAN; MEAN = m``,
``SCALER.fit(batch)``, ``helpers.MEAN = m``) hands a value to every other UDF reading that
state in the same process: the reader's result depends on the writer having run before
it, which its fingerprint does not show (the state is what the config's import left when
the workflow was compiled). An edit of the writer reused the reader's stale result.

The scan records each write with the *keys* of what it changes: ``"module.NAME"`` for a
module's name bound anew, ``"cell:<id>"`` for a closure's cell, ``"object:<id>"`` for an
object changed in place (and every object on the way to it). What code reads carries the
same keys (:func:`object_keys`, the resolver's bindings), so the compiler can tell one
node's writes from another node's reads (:mod:`helix_tf.compiler._shared_state`).

A write is *derived* when what it writes, or whether it writes, comes from the function's
parameters (its row or batch): a memo cache keyed by the input, ``STATE["m"] =
batch.mean()``. A lazy load (``global _VOCAB; if _VOCAB is None: _VOCAB = load(PATH)``)
writes what compile-time values decide, the same whichever node runs it first.

A function changing an object it is given (``def fill(d, b): d["m"] = b.mean()``, a
method's ``self._table = load(self.path)``) reports that parameter with the write
(:attr:`Effects.mutated`): its callers are judged where they pass it, the write shown as
the callee's (so two nodes calling one lazy load meet on one write), derived when it
comes from the callee's other parameters and the call passes it rows.
"""

from __future__ import annotations

import ast
import builtins
import collections
import inspect
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._canonical import _library_family
from ._held import LEAVES, held_parts

if TYPE_CHECKING:
    from ._effects import _Scan

__all__ = [
    "CONTAINER_CHANGES",
    "PROCESS_SETTINGS",
    "DATA_CHANGES",
    "MUTATOR_PREFIXES",
    "changing_name",
    "note_writes",
    "object_keys",
    "written_only",
]

#: Methods of Python's containers that change them in place.
CONTAINER_CHANGES = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "remove",
        "pop",
        "popleft",
        "popitem",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
        "rotate",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "__setitem__",
        "__delitem__",
        "__iadd__",
        "__ior__",
    }
)
_CONTAINERS = (dict, list, set, bytearray, collections.deque)
#: Name prefixes of the methods through which other objects (of a library, whose code is
#: not read) are told to change: fitting (scikit-learn's ``fit``, Keras' ``adapt``,
#: ``fit_on_texts``), setting, resetting, loading state, and what a container does.
MUTATOR_PREFIXES = (
    "fit",
    "partial_fit",
    "adapt",
    "set",
    "reset",
    "load",
    "assign",
    "register",
    "fill",
    "put",
    "push",
    "resize",
    *sorted(CONTAINER_CHANGES),
)
#: Methods of numpy's and pandas' data that change it in place (their others give new
#: data: ``set_index``, ``fillna``); a call passing ``inplace=True`` changes it too.
DATA_CHANGES = {
    "numpy": frozenset({"fill", "sort", "put", "resize", "itemset", "partition", "setfield"}),
    "pandas": frozenset({"update", "insert", "pop", "__setitem__", "__delitem__"}),
}
#: The key of the process-wide settings of libraries (pandas' options, numpy's error
#: handling and print options, the locale, decimal's context): every node's code reads them
#: (:mod:`helix_tf.compiler._shared_state`), so a UDF changing one as it runs is state
#: shared with every other node (QA pass 17).
PROCESS_SETTINGS = "process:settings"
#: Functions that change a process-wide setting, by their library and name.
_SETTERS = {
    "pandas": frozenset({"set_option", "reset_option"}),
    "numpy": frozenset({"seterr", "seterrcall", "set_printoptions"}),
    "decimal": frozenset({"setcontext"}),
}
#: The most objects :func:`object_keys` visits in one value.
_MOST_OBJECTS = 10_000


def object_keys(value: object) -> list[str]:
    """The keys (``"object:<id>"``) of the objects code reading ``value`` can see change:
    ``value`` itself, what it holds (containers' items, objects' attributes) and an
    object's class (``CFG.scale`` finds ``Cfg.scale``) and a class's bases, not into code
    nor modules (their
    names are bindings, keyed by name)."""
    keys: list[str] = []
    seen: set[int] = set()
    stack: list[object] = [value]
    while stack and len(seen) < _MOST_OBJECTS:
        item = stack.pop()
        if type(item) in LEAVES or id(item) in seen or isinstance(item, types.ModuleType):
            continue
        seen.add(id(item))
        keys.append(f"object:{id(item)}")
        if isinstance(item, type):  # what ``Sub.n`` finds in a base class (``type(self)``)
            stack += [base for base in item.__mro__[1:] if base is not object]
            continue
        if isinstance(item, types.FunctionType):
            continue
        if not isinstance(item, (*_CONTAINERS, tuple, frozenset)):
            stack.append(type(item))  # its class's attributes: what ``item.x`` may find
        stack += [v for v, _ in held_parts(item, "")]
    return keys


def written_only(tree: ast.AST) -> frozenset[str]:
    """The free names ``tree`` uses only to write into (``STATS.append(n)`` as a statement,
    ``STATE["k"] = v``): the code reads nothing from them, so another node writing there
    changes nothing it computes (:mod:`helix_tf.compiler._shared_state`)."""
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    only: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            only[node.id] = only.get(node.id, True) and _writes_into(node, parents)
    return frozenset(name for name, write in only.items() if write)


def _writes_into(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Whether ``node`` is the base of a target written (not ``+=``, which reads) or of a
    changing method called as a statement (its result unused)."""
    top = node
    parent = parents.get(id(top))
    while isinstance(parent, ast.Attribute | ast.Subscript) and parent.value is top:
        top, parent = parent, parents.get(id(parent))
    if top is node:
        return False
    if isinstance(getattr(top, "ctx", None), ast.Store | ast.Del):
        return not isinstance(parent, ast.AugAssign)
    if isinstance(top, ast.Attribute) and isinstance(parent, ast.Call) and parent.func is top:
        statement = parents.get(id(parent))
        return isinstance(statement, ast.Expr) and top.attr in CONTAINER_CHANGES
    return False


def note_writes(scan: _Scan, tree: ast.AST) -> None:
    """Record in ``scan.found`` the writes of ``tree`` into state outside its call
    (``writes``) and the parameters it changes in place (``mutated``)."""
    writer = _Writes(scan, tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.Delete):
            for target in _unpacked(node.targets):
                writer.target(node, target, getattr(node, "value", None))
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
            writer.target(node, node.target, node.value, augmented=isinstance(node, ast.AugAssign))
        elif isinstance(node, ast.Call):
            writer.call(node)


def _unpacked(targets: list[ast.expr]) -> Iterator[ast.expr]:
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List):
            yield from _unpacked(list(target.elts))
        elif isinstance(target, ast.Starred):
            yield from _unpacked([target.value])
        else:
            yield target


_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _parameters(node: ast.AST) -> set[str]:
    if not isinstance(node, _DEFS):
        return set()
    a = node.args
    every = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
    return {p.arg for p in every if p is not None}


def _names(node: ast.AST | None) -> set[str]:
    if node is None:
        return set()
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _tainted(tree: ast.AST, but: str | None = None) -> set[str]:
    """The names whose values come from a parameter of ``tree`` or of a def inside it
    (other than ``but``): the parameters, and every local bound from an expression naming
    one (to a fixed point). What a UDF computes from its row or batch; for a write into a
    parameter (``self``), what it computes from its other parameters."""
    tainted: set[str] = set()
    bindings: list[tuple[ast.AST | None, ast.AST]] = []
    for node in ast.walk(tree):
        tainted |= _parameters(node) - {but}
        if isinstance(node, ast.Assign):
            bindings += [(node.value, t) for t in node.targets]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.NamedExpr):
            bindings.append((node.value, node.target))
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            bindings.append((node.iter, node.target))
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            bindings.append((node.context_expr, node.optional_vars))
    grown = True
    while grown:
        grown = False
        for source, target in bindings:
            names = _names(target) - tainted
            if names and _names(source) & tainted:
                tainted |= names
                grown = True
    return tainted


class _Writes:
    """The writes of one scanned tree (:func:`note_writes`)."""

    def __init__(self, scan: _Scan, tree: ast.AST) -> None:
        self.scan = scan
        self.tree = tree
        self.top = _parameters(tree)
        self.tainted = _tainted(tree)
        self.unknown = _unknown()
        self._tainted_but: dict[str, set[str]] = {}

    def _changes_parameter(self, node: ast.AST, name: str, sources: list[ast.AST | None]) -> None:
        """A write into parameter ``name`` (``self._table = ...``, ``d["m"] = v``): derived
        when what it writes, or whether, comes from the other parameters."""
        if name not in self._tainted_but:
            self._tainted_but[name] = _tainted(self.tree, but=name)
        derived = bool(self._read_by(node, sources) & self._tainted_but[name])
        line = getattr(node, "lineno", 0)
        self.scan.found.mutated.append((name, derived, self.scan.text(node), line))

    def _read_by(self, node: ast.AST, sources: list[ast.AST | None]) -> set[str]:
        return set().union(*(_names(s) for s in sources)) | self._conditions(node)

    def target(
        self, node: ast.AST, target: ast.AST, value: ast.AST | None, augmented: bool = False
    ) -> None:
        if isinstance(target, ast.Name):
            declared = self._declared(node, target.id)
            key = self.scan.binding_of(target.id) if declared else None
            if key is not None:
                keys = [key]
                if augmented:  # ``X += v`` changes a list or an array in place too
                    keys += self._object_keys(target)
                self._record(node, keys, [value, target])
            return
        if isinstance(target, ast.Attribute) and self._settings_object(target.value):
            self._record(node, [PROCESS_SETTINGS], [value, target])
        elif isinstance(target, ast.Attribute | ast.Subscript):
            self._changed(node, target.value, [value, target], rebinds=target)

    def call(self, node: ast.Call) -> None:
        fn = self.scan.value(node.func)
        if _sets_process_setting(fn, node):
            self._record(node, [PROCESS_SETTINGS], [node])
            return
        if fn is builtins.setattr or fn is builtins.delattr:
            if node.args:
                self._changed(node, node.args[0], [node])
            return
        if isinstance(fn, types.MethodType) and self.scan.is_user_code(fn.__func__):
            code = fn.__func__.__code__
            first = code.co_varnames[0] if code.co_argcount else None
            for name, derived, site in self.scan.mutates_of(fn.__func__):
                if name == first:  # the method changes its object
                    receiver = node.func.value  # type: ignore[attr-defined]
                    self._changed(node, receiver, [node], site=(site, derived))
        elif isinstance(node.func, ast.Attribute) and (
            _changes(self.scan.value(node.func.value), node.func.attr, self.unknown)
            or _in_place(node)
        ):
            self._changed(node, node.func.value, [node])
        elif isinstance(node.func, ast.Attribute) and changing_name(node.func.attr):
            root = node.func.value
            while isinstance(root, ast.Attribute | ast.Subscript):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.top:  # ``d.update(...)``
                self._changes_parameter(node, root.id, [node])
        if self.scan.is_user_code(fn) and not isinstance(fn, types.MethodType):
            for arg, derived, site in _arguments_changed(fn, node, self.scan.mutates_of(fn)):
                self._changed(node, arg, [node], site=(site, derived))

    def _declared(self, node: ast.AST, name: str) -> bool:
        """Whether ``name`` is declared ``global`` or ``nonlocal`` in the def around
        ``node`` (a plain assignment binds a local)."""
        scope = self.scan.parents.get(id(node))
        while scope is not None and not isinstance(scope, _DEFS):
            scope = self.scan.parents.get(id(scope))
        if scope is None:
            return False
        for inner in ast.walk(scope):
            if isinstance(inner, ast.Global | ast.Nonlocal) and name in inner.names:
                return True
        return False

    def _changed(
        self,
        node: ast.AST,
        changed: ast.AST,
        sources: list[ast.AST | None],
        rebinds: ast.AST | None = None,
        site: tuple[str, bool] | None = None,
    ) -> None:
        """``changed`` (an expression) is changed in place; ``rebinds``: the target when it
        is ``module.NAME`` (a name of the module bound anew); ``site``: the write in the
        method or helper called (as shown, and whether it comes from the parameters other
        than the one changed), which a call passing rows makes derived only then."""
        root = changed
        owner = None
        while isinstance(root, ast.Attribute | ast.Subscript):
            sources.append(root.slice if isinstance(root, ast.Subscript) else None)
            owner = owner or self._class_of_self(root)
            root = root.value
        owner = owner or self._class_of_self(root)
        if owner is not None:  # ``type(self).n = v``: the class, which every object shares
            self._record(node, [f"object:{id(owner)}"], sources)
            return
        if isinstance(root, ast.Name) and root.id in self.top:
            self._changes_parameter(node, root.id, sources)
            return
        keys: list[str] = []
        if isinstance(rebinds, ast.Attribute):
            module = self.scan.value(rebinds.value)
            if isinstance(module, types.ModuleType):
                keys.append(f"{module.__name__}.{rebinds.attr}")
        keys += self._object_keys(changed)
        if not keys:
            return
        if site is None:
            self._record(node, keys, sources)
        elif site[1]:  # what the callee writes comes from what this call passes it
            self._record(node, keys, sources, f"{self.scan.text(node)}, which makes {site[0]}")
        else:  # the callee's own write (a lazy load through self): one write for every caller
            derived = bool(self._conditions(node) & self.tainted)
            self.scan.found.writes.append((tuple(keys), site[0], 0, derived))

    def _settings_object(self, base: ast.AST) -> bool:
        """Whether ``base`` is pandas' options (``pd.options.display``) or decimal's
        context (``decimal.getcontext()``), whose attributes are process-wide settings."""
        if isinstance(base, ast.Call):
            fn = self.scan.value(base.func)
            return getattr(fn, "__name__", "") == "getcontext" and _family(fn) == "decimal"
        while True:  # pd.options.display: only pd.options is known (the rest is computed)
            value = self.scan.value(base)
            if type(value).__name__ == "DictWrapper" and _family(type(value)) == "pandas":
                return True
            if not isinstance(base, ast.Attribute):
                return False
            base = base.value

    def _class_of_self(self, step: ast.AST) -> type | None:
        """The scanned class when ``step`` is ``type(self)`` or ``self.__class__`` of one
        of its methods (``self``: the method's first parameter), else None (QA pass 17:
        a method's ``type(self).n = v`` was no write, so a node calling it and another
        reading the class attribute reused the reader's stale result)."""
        owner = self.scan.owner
        if owner is None:
            return None
        if isinstance(step, ast.Attribute) and step.attr == "__class__":
            inner: ast.AST | None = step.value
        elif (
            isinstance(step, ast.Call)
            and len(step.args) == 1
            and not step.keywords
            and self.scan.value(step.func) is builtins.type
        ):
            inner = step.args[0]
        else:
            return None
        return owner if isinstance(inner, ast.Name) and self._first_parameter(inner) else None

    def _first_parameter(self, name: ast.Name) -> bool:
        """Whether ``name`` is the first parameter of the def it is used in."""
        scope = self.scan.parents.get(id(name))
        while scope is not None and not isinstance(scope, _DEFS):
            scope = self.scan.parents.get(id(scope))
        if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            return False
        first = [*scope.args.posonlyargs, *scope.args.args][:1]
        return bool(first) and first[0].arg == name.id

    def _object_keys(self, changed: ast.AST) -> list[str]:
        """The objects on the way to ``changed`` known at compile time (``STATE`` and
        ``STATE["inner"]`` for ``STATE["inner"]["m"]``): a reader may hold any of them."""
        keys: list[str] = []
        step: ast.AST = changed
        while True:
            value = self.scan.value(step)
            known = value is not self.unknown and type(value) not in LEAVES
            if known and not isinstance(value, types.ModuleType):
                keys.append(f"object:{id(value)}")
            if not isinstance(step, ast.Attribute | ast.Subscript):
                return keys
            step = step.value

    def _record(
        self,
        node: ast.AST,
        keys: list[str],
        sources: list[ast.AST | None],
        text: str | None = None,
    ) -> None:
        derived = bool(self._read_by(node, sources) & self.tainted)
        line = getattr(node, "lineno", 0)
        shown = self.scan.text(node) if text is None else text
        self.scan.found.writes.append((tuple(keys), shown, line, derived))

    def _conditions(self, node: ast.AST) -> set[str]:
        """The names the tests deciding whether ``node`` runs read (``if``, ``while``,
        ``for``, a conditional expression) up to the scanned tree."""
        names: set[str] = set()
        child, parent = node, self.scan.parents.get(id(node))
        while parent is not None:
            if isinstance(parent, ast.If | ast.While | ast.IfExp) and child is not parent.test:
                names |= _names(parent.test)
            elif isinstance(parent, ast.For | ast.AsyncFor) and child is not parent.iter:
                names |= _names(parent.iter)
            elif isinstance(parent, ast.Match):
                names |= _names(parent.subject)
            if parent is self.tree:
                break
            child, parent = parent, self.scan.parents.get(id(parent))
        return names


def _family(obj: object) -> str:
    return str(getattr(obj, "__module__", "") or "").split(".")[0].lstrip("_")


def _sets_process_setting(fn: object, node: ast.Call) -> bool:
    """A call changing a process-wide library setting for good (:data:`_SETTERS`,
    ``locale.setlocale`` given a locale); ``pd.option_context``/``np.errstate`` restore it."""
    name = getattr(fn, "__name__", "")
    if name == "setlocale" and _family(fn) == "locale":
        return len(node.args) + len(node.keywords) >= 2
    return name in _SETTERS.get(_family(fn), frozenset())


def _in_place(node: ast.Call) -> bool:
    """A call passing ``inplace=True`` (pandas' spelling) changes what it is called on."""
    return any(
        k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in node.keywords
    )


def _unknown() -> object:
    """The scan's mark of a value not known at compile time (:mod:`._effects` imports this
    module, so it is read when a function is scanned)."""
    from ._effects import _UNKNOWN

    return _UNKNOWN


def _changes(obj: object, method: str, unknown: object) -> bool:
    """Whether calling ``obj.method(...)`` may change ``obj``: a container's own changing
    methods, another object's by the names :data:`MUTATOR_PREFIXES` (its code is not read;
    a user class's methods are judged by their code)."""
    if obj is unknown or isinstance(obj, types.ModuleType) or type(obj) in LEAVES:
        return False
    if isinstance(obj, type | types.FunctionType | tuple | frozenset | str | bytes):
        return False
    if isinstance(obj, _CONTAINERS):
        return method in CONTAINER_CHANGES
    family = _library_family(type(obj))
    if family is not None:  # numpy, pandas, Arrow data: their own methods, by name
        return method in DATA_CHANGES.get(family, frozenset())
    return changing_name(method)


def changing_name(method: str) -> bool:
    """A method name :data:`MUTATOR_PREFIXES` lists, alone or before ``_`` (``fit``,
    ``fit_transform``, ``set_params``; not ``fillna`` nor ``settings``)."""
    name = method.lstrip("_")
    return any(name == p or name.startswith(p + "_") for p in MUTATOR_PREFIXES)


def _arguments_changed(
    fn: object, node: ast.Call, mutated: tuple[tuple[str, bool, str], ...]
) -> list[tuple[ast.AST, bool, str]]:
    """The arguments a call passes for parameters ``fn`` changes in place, with each
    write (whether it comes from the other parameters, and as shown)."""
    if not mutated:
        return []
    try:
        params = list(inspect.signature(fn).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return []
    passed: dict[str, ast.AST] = {}
    for i, arg in enumerate(node.args):
        if isinstance(arg, ast.Starred):
            break
        if i < len(params):
            passed[params[i]] = arg
    passed.update((k.arg, k.value) for k in node.keywords if k.arg is not None)
    return [(passed[name], derived, site) for name, derived, site in mutated if name in passed]
