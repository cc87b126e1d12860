"""Write a proposal into the user's config: keyword by keyword, at the declaring line.

A ``node.param`` override rewrites (or adds) the keyword ``param=`` of the
operator call in the statement that declared ``node``; a declared-PARAMS
override rewrites that entry of the ``PARAMS`` dict. Where the old value is an
expression rather than a literal (``epochs=params.epochs``), replacing it would
change more than the proposal, so the edited config is written to a new file
beside the original instead, and the message names it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any

from helix_tf import versions
from helix_tf.errors import ConfigError

__all__ = ["ConfigEdit", "edit_config"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConfigEdit:
    """The edited text of a config, where to write it, and its unified diff."""

    path: Path
    text: str
    diff: str
    #: The original file could not be edited safely: ``path`` is a new file beside it.
    new_file: bool
    notes: tuple[str, ...]


def _offsets(source: bytes) -> list[int]:
    starts = [0]
    for i, b in enumerate(source):
        if b == 0x0A:
            starts.append(i + 1)
    return starts


def _span(node: ast.AST, starts: list[int]) -> tuple[int, int]:
    return (
        starts[node.lineno - 1] + node.col_offset,  # type: ignore[attr-defined]
        starts[node.end_lineno - 1] + node.end_col_offset,  # type: ignore[attr-defined]
    )


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _call_name(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _params_edit(tree: ast.Module, key: str, value: Any, starts: list[int]) -> tuple[int, int, str]:
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "PARAMS" for t in stmt.targets)
            and isinstance(stmt.value, ast.Dict)
        ):
            for k, v in zip(stmt.value.keys, stmt.value.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == key:
                    a, b = _span(v, starts)
                    return a, b, repr(value)
    raise ConfigError(f"cannot find {key!r} in a literal PARAMS dict; use `agent apply --print`")


def _node_edit(
    tree: ast.Module, view: versions.NodeView, param: str, value: Any, starts: list[int]
) -> tuple[int, int, str, bool]:
    """(start, end, replacement, safe) for ``param`` of ``view``'s operator call."""
    statements = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and n.lineno <= (view.line or -1) <= (n.end_lineno or -1)
    ]
    if not statements:
        raise ConfigError(f"cannot find the declaration of {view.name!r} at line {view.line}")
    outer = min(statements, key=lambda n: (n.lineno, n.col_offset, -(n.end_lineno or 0)))
    calls = [n for n in ast.walk(outer) if isinstance(n, ast.Call)]
    ops = [c for c in calls if _call_name(c) == view.op] or calls
    for call in ops:
        for kw in call.keywords:
            if kw.arg == param:
                a, b = _span(kw.value, starts)
                return a, b, repr(value), _is_literal(kw.value)
    for call in ops:
        if _call_name(call) == view.op:
            end = _span(call, starts)[1] - 1  # the closing parenthesis
            sep = ", " if call.args or call.keywords else ""
            return end, end, f"{sep}{param}={value!r}", True
    raise ConfigError(
        f"cannot find the {view.op} call of node {view.name!r} at line {view.line}; "
        "use `agent apply --print` and pass the -p overrides"
    )


def edit_config(
    config: str | os.PathLike[str],
    overrides: dict[str, Any],
    *,
    label: str = "agent",
    data_dir: str | None = None,
) -> ConfigEdit:
    """The config with ``overrides`` written in (not yet saved)."""
    path = Path(config).resolve()
    raw = path.read_bytes()
    tree = ast.parse(raw, filename=str(path))
    starts = _offsets(raw)
    view = versions.describe(path, data_dir=data_dir)
    edits: list[tuple[int, int, str]] = []
    unsafe: list[str] = []
    for key, value in sorted(overrides.items()):
        if key in view.params:
            edits.append(_params_edit(tree, key, value, starts))
            continue
        node, _, param = key.partition(".")
        try:
            nv = view.node(node)
        except KeyError:
            raise ConfigError(f"the config has no node {node!r} (from override {key})") from None
        if nv.file is None or Path(nv.file).resolve() != path:
            raise ConfigError(
                f"node {node!r} is declared in {nv.file}, not in {path}; "
                "use `agent apply --print` and pass the -p overrides"
            )
        a, b, text, safe = _node_edit(tree, nv, param, value, starts)
        edits.append((a, b, text))
        if not safe:
            unsafe.append(f"{key}: the old value is an expression, replaced by {value!r}")
    out = raw
    for a, b, text in sorted(edits, reverse=True):
        out = out[:a] + text.encode() + out[b:]
    new_text = out.decode()
    target = path if not unsafe else path.with_name(f"{path.stem}.{label}{path.suffix}")
    diff = "".join(
        difflib.unified_diff(
            raw.decode().splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=str(path),
            tofile=str(target),
        )
    )
    return ConfigEdit(
        path=target, text=new_text, diff=diff, new_file=bool(unsafe), notes=tuple(unsafe)
    )
