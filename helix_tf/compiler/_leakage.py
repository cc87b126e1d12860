"""Target leakage: a model input computed from the label's own column.

A feature that reads the label column (directly, through the features it is built
from, or a user function reading it from its row or batch by a literal name) gives
the model the answer on every split, test rows included: the metrics describe a
model that cannot exist at prediction time. The examples node that declares both is
a compile error naming the column, the feature, the line that reads it and the fix.

A ``DatasetUdf``'s ``fit`` may read the label (a target encoding learns from the
training split's labels, which is not leakage); its ``apply`` may not.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from helix_tf.compiler._declared import Declared
from helix_tf.components.features import Feature
from helix_tf.roles import Role
from helix_tf.types import NodeRef

__all__ = ["check_label_leakage", "literal_column_reads"]


def check_label_leakage(
    declared: Declared,
    inputs: Mapping[str, list[str]],
    feature_sources: Mapping[str, str | None],
    examples_source: Mapping[str, str],
) -> None:
    """Every examples node whose features read its label's column is a problem."""
    for name in declared.of_role(Role.EXAMPLES):
        d = declared.decls[name]
        column = getattr(d.op, "column", None)
        src = examples_source.get(name)
        if not isinstance(column, str) or src is None:
            continue
        for feature in inputs.get(name, []):
            if declared.decls[feature].role != Role.FEATURE:
                continue
            found = _reads_column(declared, feature, column, src, feature_sources, set())
            if found is None:
                continue
            via = "" if found[0] == feature else f" (through feature {found[0]!r})"
            declared.problem(
                d,
                f"feature {feature!r}{via} {found[1]}, which is the label column "
                f"{column!r}: the model would be given the answer it is asked to predict "
                f"(target leakage), on the test split too. Remove {feature!r} from the "
                f"examples' feature list, or label another column",
            )


def _reads_column(
    declared: Declared,
    name: str,
    column: str,
    src: str,
    feature_sources: Mapping[str, str | None],
    seen: set[str],
) -> tuple[str, str] | None:
    """(feature, how it reads ``column`` of ``src``) for ``name`` or a feature it is built
    from; None when none does (as far as can be told)."""
    if name in seen:
        return None
    seen.add(name)
    decl = declared.decls.get(name)
    if decl is None or decl.role != Role.FEATURE or not isinstance(decl.op, Feature):
        return None
    op = decl.op
    own_source = feature_sources.get(name) == src
    for r in op.inputs():
        if isinstance(r, str):
            if own_source and r == column:
                return name, f"reads column {column!r}"
        elif isinstance(r, NodeRef):
            found = _reads_column(declared, r.name, column, src, feature_sources, seen)
            if found is not None:
                return found
    if own_source and op.reads_whole_row():
        for fn in _row_functions(op):
            where = next(literal_column_reads(fn, column), None)
            if where is not None:
                return name, f"reads column {column!r} from its rows ({where})"
    return None


def _row_functions(op: Feature) -> list[Callable[..., Any]]:
    """The functions of a user-function feature that see source rows at prediction time
    (a ``DatasetUdf``'s ``apply``, not its ``fit``: that sees the training split only)."""
    fns = [getattr(op, attr, None) for attr in ("fn", "apply")]
    return [f for f in fns if callable(f)]


def literal_column_reads(fn: Callable[..., Any], column: str) -> Iterator[str]:
    """Where ``fn`` reads ``column`` from its first argument by a literal name
    (``row["c"]``, ``row.get("c")``, ``batch.c``), as ``file:line``.

    Only what the source shows for certain: a name computed at run time, a function
    whose source cannot be read or found, or a read through another variable yields
    nothing.
    """
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    tree = _module_tree(code.co_filename)
    target = _function_node(tree, code) if tree is not None else None
    if target is None:
        return
    params = [*target.args.posonlyargs, *target.args.args]
    if not params:
        return
    row = params[0].arg
    for node in ast.walk(target):
        if _reads(node, row, column):
            yield f"{code.co_filename}:{getattr(node, 'lineno', target.lineno)}"


def _module_tree(filename: str) -> ast.Module | None:
    """The parsed source file ``filename`` (None where it cannot be read or parsed)."""
    linecache.checkcache(filename)  # a long-lived process may hold an edited file's lines
    lines = linecache.getlines(filename)
    return _parsed("".join(lines)) if lines else None


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _function_node(tree: ast.AST, code: Any) -> ast.FunctionDef | ast.Lambda | None:
    """The definition in ``tree`` that compiled to ``code``: by its first line (a
    decorator's, for a decorated function), its name and its arguments."""
    argnames = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    found: list[Any] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Lambda):
            first = n.lineno
            name = "<lambda>"
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([n.lineno, *(d.lineno for d in n.decorator_list)])
            name = n.name
        else:
            continue
        a = n.args
        names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
        if first == code.co_firstlineno and name == code.co_name and names == argnames:
            found.append(n)
    if len(found) > 1:  # several on one line (two lambdas): the one holding its code
        where = [(p[0], p[2]) for p in code.co_positions() if p[0] is not None and p[2]]
        found = [n for n in found if where and _holds(n, *where[-1])]
    return found[0] if len(found) == 1 else None


def _holds(node: ast.AST, line: int, col: int) -> bool:
    """Whether ``node``'s source span holds position (``line``, ``col``)."""
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    return start <= (line, col) <= end


def _reads(node: ast.AST, row: str, column: str) -> bool:
    """``row["column"]``, ``row.get("column", ...)`` or ``row.column``."""

    def is_row(value: ast.AST) -> bool:
        return isinstance(value, ast.Name) and value.id == row

    def is_column(value: ast.AST) -> bool:
        return isinstance(value, ast.Constant) and value.value == column

    if isinstance(node, ast.Subscript) and is_row(node.value):
        key = node.slice
        if isinstance(key, ast.List | ast.Tuple):  # batch[["a", "label"]]
            return any(is_column(k) for k in key.elts)
        return is_column(key)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        f = node.func
        return is_row(f.value) and f.attr == "get" and bool(node.args) and is_column(node.args[0])
    if isinstance(node, ast.Attribute) and is_row(node.value) and isinstance(node.ctx, ast.Load):
        return node.attr == column
    return False
