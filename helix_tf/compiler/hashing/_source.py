"""Source code as data: parsed files, definitions by qualname, normalised ASTs."""

from __future__ import annotations

import ast
import copy
import dataclasses
import dis
import functools
import types
from typing import cast

from ._canonical import _digest

_COMPREHENSIONS = {
    ast.ListComp: "<listcomp>",
    ast.SetComp: "<setcomp>",
    ast.DictComp: "<dictcomp>",
    ast.GeneratorExp: "<genexpr>",
}
_DEFS = ast.FunctionDef | ast.AsyncFunctionDef


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _ModuleSource:
    """A parsed source file: its definitions by qualname and its compiled code objects."""

    tree: ast.Module
    defs: tuple[tuple[str, ast.AST], ...]
    code: dict[tuple[str, int], list[types.CodeType]] | None
    text: str = ""

    def matches(self, code: types.CodeType) -> bool:
        """True when the file still compiles to the loaded code object."""
        if self.code is None:
            return False
        key = (code.co_qualname, code.co_firstlineno)
        return any(_same_code(code, other) for other in self.code.get(key, ()))


@functools.lru_cache(maxsize=64)
def _parse_source(filename: str, text: str) -> _ModuleSource | None:
    try:
        tree = ast.parse(text, filename=filename)
    except (SyntaxError, ValueError):
        return None
    try:
        compiled: types.CodeType | None = compile(text, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        compiled = None
    index: dict[tuple[str, int], list[types.CodeType]] | None = None
    if compiled is not None:
        index = {}
        stack = [compiled]
        while stack:
            co = stack.pop()
            index.setdefault((co.co_qualname, co.co_firstlineno), []).append(co)
            stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return _ModuleSource(tree=tree, defs=tuple(_qualified_defs(tree)), code=index, text=text)


def _qualified_defs(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Every def, class and lambda with the ``__qualname__`` CPython gives it."""
    out: list[tuple[str, ast.AST]] = []

    def visit(node: ast.AST, unit: str, kind: str) -> None:
        if isinstance(node, _DEFS | ast.ClassDef | ast.Lambda):
            name = "<lambda>" if isinstance(node, ast.Lambda) else node.name
            qualname = _child_qualname(unit, kind, name)
            out.append((qualname, node))
            outer: list[ast.AST] = []
            inner: list[ast.AST] = []
            if isinstance(node, ast.ClassDef):
                outer = [*node.decorator_list, *node.bases, *node.keywords]
                inner = list(node.body)
            else:
                args = node.args
                outer = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
                if isinstance(node, ast.Lambda):
                    inner = [node.body]
                else:
                    outer += node.decorator_list
                    inner = list(node.body)
            for child in outer:
                visit(child, unit, kind)
            child_kind = "class" if isinstance(node, ast.ClassDef) else "function"
            for child in inner:
                visit(child, qualname, child_kind)
            return
        if type(node) in _COMPREHENSIONS:
            qualname = _child_qualname(unit, kind, _COMPREHENSIONS[type(node)])
            generators = node.generators  # type: ignore[attr-defined]
            visit(generators[0].iter, unit, kind)
            rest = [c for c in ast.iter_child_nodes(node) if c is not generators[0].iter]
            for child in rest:
                if isinstance(child, ast.comprehension):
                    for part in ast.iter_child_nodes(child):
                        if part is not generators[0].iter:
                            visit(part, qualname, "comprehension")
                else:
                    visit(child, qualname, "comprehension")
            return
        for child in ast.iter_child_nodes(node):
            visit(child, unit, kind)

    for stmt in tree.body:
        visit(stmt, "", "module")
    return out


def _child_qualname(unit: str, kind: str, name: str) -> str:
    if kind == "module":
        return name
    if kind == "function":
        return f"{unit}.<locals>.{name}"
    return f"{unit}.{name}"


def _start_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None)
    return decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined]


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    if (a.co_code, a.co_names, a.co_varnames, a.co_freevars, a.co_cellvars) != (
        b.co_code,
        b.co_names,
        b.co_varnames,
        b.co_freevars,
        b.co_cellvars,
    ) or len(a.co_consts) != len(b.co_consts):
        return False
    return all(_same_const(x, y) for x, y in zip(a.co_consts, b.co_consts, strict=True))


def _same_const(x: object, y: object) -> bool:
    """Constants compare by type and repr (so 0.0 != -0.0); frozensets ignore their order,
    which depends on the hash seed of the process that wrote a ``.pyc``."""
    if type(x) is not type(y):
        return False
    if isinstance(x, types.CodeType):
        return _same_code(x, y)  # type: ignore[arg-type]
    if isinstance(x, frozenset):
        return sorted(map(repr, x)) == sorted(map(repr, y))  # type: ignore[call-overload]
    if isinstance(x, tuple):
        other = cast("tuple[object, ...]", y)  # the same type as x
        return len(x) == len(other) and all(
            _same_const(a, b) for a, b in zip(x, other, strict=True)
        )
    return repr(x) == repr(y)


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _DEFS | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _code_globals(code: types.CodeType) -> list[str]:
    """Names the code (and its nested code) loads as globals, in order of appearance."""
    names: dict[str, None] = {}
    stack = [code]
    while stack:
        co = stack.pop(0)
        for ins in dis.get_instructions(co):
            if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"):
                names[str(ins.argval)] = None
        stack.extend(c for c in co.co_consts if isinstance(c, types.CodeType))
    return list(names)


class _Scope:
    __slots__ = ("bound", "declared_global", "declared_nonlocal", "imports", "kind", "parent")

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind  # "function", "class" or "comprehension"
        self.parent = parent
        self.bound: set[str] = set()
        self.declared_global: set[str] = set()
        self.declared_nonlocal: set[str] = set()
        self.imports: set[str] = set()


_Key = tuple[str, int, str]  # (kind, id(scope), name); kind "local", "import" or "class"


class _Normaliser:
    """Normalises one def, lambda or class and finds the names it reads from outside.

    Docstrings and annotations inside functions go, the top definition's name (and
    a top function's decorators) go, and local names are renamed ``$0``, ``$1``...
    in order of first appearance. ``free`` lists the names read from the defining
    environment, ``imports`` the local imports, ``chains`` the attribute chains
    used on each outside name (``helpers.normalise`` -> ``("normalise",)``).
    """

    def __init__(self, node: ast.AST) -> None:
        self.tree = node
        self._refs: list[tuple[ast.AST, str, int | None, _Scope | None, str]] = []
        self.imports: list[tuple[ast.Import | ast.ImportFrom, ast.alias, _Key]] = []
        _strip_docstrings(node)
        if isinstance(node, _DEFS):
            self._function(node, None, top=True)
        elif isinstance(node, ast.ClassDef):
            self._class(node, None, top=True)
        else:
            self._visit(node, None)
        parents = {id(c): p for p in ast.walk(node) for c in ast.iter_child_nodes(p)}
        self.free: dict[str, None] = {}
        self.chains: dict[object, set[tuple[str, ...]]] = {}
        self._resolved: list[tuple[ast.AST, str, int | None, _Key | None, str]] = []
        for holder, field, index, scope, name in self._refs:
            key = self._lookup(scope, name)
            self._resolved.append((holder, field, index, key, name))
            if key is None:
                self.free.setdefault(name, None)
            if (key is None or key[0] == "import") and isinstance(holder, ast.Name):
                chain: list[str] = []
                child: ast.AST = holder
                parent = parents.get(id(holder))
                while isinstance(parent, ast.Attribute) and parent.value is child:
                    chain.append(parent.attr)
                    child, parent = parent, parents.get(id(parent))
                self.chains.setdefault(key or ("free", name), set()).add(tuple(chain))
        for imported in self.imports:
            self.chains.setdefault(imported[2], set())

    def dump(self, self_names: set[str]) -> str:
        """Rename locals canonically (and self-references to ``$self``) and dump the AST."""
        names: dict[_Key, str] = {}
        for holder, field, index, key, name in self._resolved:
            if key is None:
                new = "$self" if name in self_names else name
            elif key[0] == "local":
                new = names.setdefault(key, f"${len(names)}")
            else:
                continue
            if index is None:
                setattr(holder, field, new)
            else:
                getattr(holder, field)[index] = new
        return ast.dump(self.tree, annotate_fields=True, include_attributes=False)

    # -- pass 1: scopes, bindings and references
    def _ref(self, holder: ast.AST, field: str, index: int | None, scope: _Scope | None) -> None:
        name = getattr(holder, field) if index is None else getattr(holder, field)[index]
        self._refs.append((holder, field, index, scope, name))

    def _bind(self, holder: ast.AST, field: str, scope: _Scope | None) -> None:
        if scope is not None:
            scope.bound.add(getattr(holder, field))
        self._ref(holder, field, None, scope)

    def _visit(self, node: ast.AST, scope: _Scope | None) -> None:
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self._ref(node, "id", None, scope)
            else:
                self._bind(node, "id", scope)
        elif isinstance(node, _DEFS):
            self._function(node, scope, top=False)
        elif isinstance(node, ast.ClassDef):
            self._class(node, scope, top=False)
        elif isinstance(node, ast.Lambda):
            self._defaults(node.args, scope)
            inner = _Scope("function", scope)
            self._arguments(node.args, inner)
            self._visit(node.body, inner)
        elif type(node) in _COMPREHENSIONS:
            self._comprehension(node, scope)
        elif isinstance(node, ast.NamedExpr):
            self._visit(node.value, scope)
            target = scope
            while target is not None and target.kind == "comprehension":
                target = target.parent
            self._bind(node.target, "id", target)
        elif isinstance(node, ast.Global) and scope is not None:
            scope.declared_global.update(node.names)
        elif isinstance(node, ast.Nonlocal) and scope is not None:
            scope.declared_nonlocal.update(node.names)
            for i in range(len(node.names)):
                self._ref(node, "names", i, scope)
        elif isinstance(node, ast.ExceptHandler):
            if node.type is not None:
                self._visit(node.type, scope)
            if node.name:
                self._bind(node, "name", scope)
            for stmt in node.body:
                self._visit(stmt, scope)
        elif isinstance(node, ast.MatchAs | ast.MatchStar | ast.MatchMapping):
            self._children(node, scope)
            field = "rest" if isinstance(node, ast.MatchMapping) else "name"
            if getattr(node, field):
                self._bind(node, field, scope)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if scope is not None:
                    scope.bound.add(bound)
                    scope.imports.add(bound)
                    self.imports.append((node, alias, ("import", id(scope), bound)))
        elif isinstance(node, ast.AnnAssign) and scope is not None and scope.kind != "class":
            node.annotation = ast.Constant(value=None)
            self._visit(node.target, scope)
            if node.value is not None:
                self._visit(node.value, scope)
        else:
            self._children(node, scope)

    def _children(self, node: ast.AST, scope: _Scope | None) -> None:
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope | None, *, top: bool
    ) -> None:
        if top:
            node.decorator_list = []
            node.name = ""
        for decorator in node.decorator_list:
            self._visit(decorator, scope)
        self._defaults(node.args, scope)
        if not top:
            self._bind(node, "name", scope)
        node.returns = None
        inner = _Scope("function", scope)
        self._arguments(node.args, inner)
        for stmt in node.body:
            self._visit(stmt, inner)

    def _class(self, node: ast.ClassDef, scope: _Scope | None, *, top: bool) -> None:
        for child in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self._visit(child, scope)
        if top:
            node.name = ""
        else:
            self._bind(node, "name", scope)
        inner = _Scope("class", scope)
        for stmt in node.body:
            self._visit(stmt, inner)

    def _defaults(self, args: ast.arguments, scope: _Scope | None) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self._visit(default, scope)

    def _arguments(self, args: ast.arguments, inner: _Scope) -> None:
        every = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
        for arg in every:
            if arg is not None:
                arg.annotation = None
                self._bind(arg, "arg", inner)

    def _comprehension(self, node: ast.AST, scope: _Scope | None) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self._visit(generators[0].iter, scope)
        inner = _Scope("comprehension", scope)
        for i, generator in enumerate(generators):
            self._visit(generator.target, inner)
            if i:
                self._visit(generator.iter, inner)
            for condition in generator.ifs:
                self._visit(condition, inner)
        if isinstance(node, ast.DictComp):
            self._visit(node.key, inner)
            self._visit(node.value, inner)
        else:
            self._visit(node.elt, inner)  # type: ignore[attr-defined]

    # -- pass 2: which binding each reference means
    @staticmethod
    def _lookup(scope: _Scope | None, name: str) -> _Key | None:
        first = True
        while scope is not None:
            if name in scope.declared_global:
                return None
            if scope.kind == "class":
                if first and name in scope.bound:
                    return ("class", id(scope), name)
            elif name not in scope.declared_nonlocal and name in scope.bound:
                kind = "import" if name in scope.imports else "local"
                return (kind, id(scope), name)
            scope, first = scope.parent, False
        return None


def _tree_digest(tree: ast.Module) -> str:
    """Digest of a whole module's source without comments, docstrings and formatting."""
    tree = copy.deepcopy(tree)
    _strip_docstrings(tree)
    return _digest(ast.dump(tree, include_attributes=False))


def _contains(node: ast.AST, span: tuple[int, int, int, int]) -> bool:
    line, col, end_line, end_col = span
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return start <= (line, col) and (end_line, end_col) <= end
