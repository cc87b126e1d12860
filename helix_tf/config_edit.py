"""Write ``-p`` overrides into a config module (``helix-tf run ... -p x=y --save``).

A parameter tried on the command line is kept by rewriting the one keyword that
sets it, at the line where its node (or the ``PARAMS`` entry) is declared; nothing
else in the file changes. Whatever cannot be rewritten safely is refused with the
reason and the line to edit by hand: an operator built elsewhere (a variable, a
helper function in another module), a value set by an expression rather than a
literal, a declaration inside a loop. After writing, the config is loaded again
and must give exactly the overridden values; otherwise the file is restored.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helix_tf.errors import ConfigError
from helix_tf.roles import ROLE_SPECS, Role

__all__ = ["SavedOverrides", "render_literal", "rewrite_overrides", "save_overrides"]

#: Workflow methods whose call declares a node (the call whose line is recorded): the
#: method of each role's name, and ``udf`` (a feature).
_DECLARING = (*ROLE_SPECS, "udf")
#: Declaring methods that build the node's operator from their own keywords (there is
#: no ``Op(...)`` call in the config to edit: the override is the method's keyword).
_OWN_KEYWORDS = ("udf", Role.EXPLAIN)
#: The longest line an edit may leave (the project's ruff line length): a one-line call
#: an edit would make longer is written one argument per line instead.
LINE_LIMIT = 100


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SavedOverrides:
    """What ``save_overrides`` wrote: the config, the keys saved, a unified diff."""

    path: str
    saved: tuple[str, ...]
    diff: str


def render_literal(value: Any) -> str:
    """``value`` as Python source (strings in double quotes when that is exact).

    >>> render_literal("ftrl"), render_literal(0.001), render_literal((64, 32))
    ('"ftrl"', '0.001', '(64, 32)')
    """
    if isinstance(value, str) and '"' not in value and "\\" not in value and "\n" not in value:
        return f'"{value}"'
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            raise ValueError
    except (ValueError, SyntaxError):
        raise ConfigError(
            f"cannot write {value!r} into a config: it is not a Python literal"
        ) from None
    return text


class _Edits:
    """Replacements of (line, col)–(end line, end col) spans of one source text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.spans: list[tuple[int, int, str]] = []  # absolute offsets

    def offset(self, line: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets
        head = self.lines[line - 1].encode("utf-8")[:col].decode("utf-8")
        return sum(len(x) for x in self.lines[: line - 1]) + len(head)

    def replace(self, node: ast.AST, new: str) -> None:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        self.spans.append((start, end, new))

    def insert(self, at: int, new: str) -> None:
        self.spans.append((at, at, new))

    def apply(self) -> str:
        out = self.text
        for start, end, new in sorted(self.spans, reverse=True):
            out = out[:start] + new + out[end:]
        return out


def _callee(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _is_literal(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False
    return True


def _inside_loop(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.For | ast.While | ast.comprehension) and any(
            n is target for n in ast.walk(node)
        ):
            return True
    return False


def _set_keywords(
    edits: _Edits,
    call: ast.Call,
    changes: Mapping[str, str],
    positional: list[str],
    where: Mapping[str, str],
) -> None:
    """Set every ``param=value`` of ``changes`` in ``call``.

    A call written on one line that the edit would take past :data:`LINE_LIMIT` is
    written again with one argument per line (nothing is lost: a one-line call holds
    no comments), so a saved config stays within the line length.
    """
    trial = _Edits(edits.text)
    for param, value in changes.items():
        _set_keyword(trial, call, param, value, positional, where[param])
    first, last = call.lineno - 1, call.end_lineno  # type: ignore[attr-defined]
    old_lines = edits.text.splitlines()[first:last]
    grown = len(trial.apply().splitlines()) - len(edits.text.splitlines())
    new_lines = trial.apply().splitlines()[first : last + grown]
    too_long = max(map(len, new_lines), default=0) > max(LINE_LIMIT, *map(len, old_lines))
    if call.lineno != call.end_lineno or not too_long:
        edits.spans.extend(trial.spans)
        return
    items = [ast.get_source_segment(edits.text, a) or "" for a in call.args]
    for i, param in enumerate(positional[: len(call.args)]):
        if param in changes:
            items[i] = changes[param]
    done = set(positional[: len(call.args)]) & set(changes)
    for kw in call.keywords:
        text = ast.get_source_segment(edits.text, kw.value) or ""
        if kw.arg is not None and kw.arg in changes:
            text = changes[kw.arg]
            done.add(kw.arg)
        items.append(f"{kw.arg}={text}" if kw.arg is not None else f"**{text}")
    items += [f"{p}={v}" for p, v in changes.items() if p not in done]
    line = edits.lines[first]
    indent = line[: len(line) - len(line.lstrip())]
    func = ast.get_source_segment(edits.text, call.func) or ""
    body = "".join(f"{indent}    {item},\n" for item in items)
    edits.replace(call, f"{func}(\n{body}{indent})")


def _set_keyword(
    edits: _Edits,
    call: ast.Call,
    param: str,
    value: str,
    positional: list[str],
    where: str,
) -> None:
    """Set ``param=value`` in ``call``: replace its keyword or positional literal, or add it."""
    for kw in call.keywords:
        if kw.arg == param:
            if not _is_literal(kw.value):
                segment = ast.get_source_segment(edits.text, kw.value) or ""
                hint = "edit it by hand"
                if segment.startswith("params.") and segment[7:].isidentifier():
                    hint = f"save the config parameter instead: -p {segment[7:]}=... --save"
                raise ConfigError(
                    f"{where}: {param} is set by an expression ({segment}), not a literal; {hint}"
                )
            edits.replace(kw.value, value)
            return
    if param in positional and positional.index(param) < len(call.args):
        arg = call.args[positional.index(param)]
        if not _is_literal(arg):
            raise ConfigError(
                f"{where}: {param} is given by an expression, not a literal; edit it by hand"
            )
        edits.replace(arg, value)
        return
    if any(kw.arg is None for kw in call.keywords):
        raise ConfigError(
            f"{where}: the call passes **kwargs, which may set {param}; edit it by hand"
        )
    end = edits.offset(call.end_lineno, call.end_col_offset) - 1  # type: ignore[arg-type]
    assert edits.text[end] == ")"
    before = edits.text[:end].rstrip()
    items = [*call.args, *[k.value for k in call.keywords]]
    if not items:
        edits.insert(end, f"{param}={value}")
    elif before.endswith(","):
        last_line = edits.lines[items[-1].end_lineno - 1]  # type: ignore[operator]
        indent = last_line[: len(last_line) - len(last_line.lstrip())]
        if call.end_lineno != items[-1].end_lineno:  # one argument per line
            line_start = edits.text.rfind("\n", 0, end) + 1
            edits.insert(line_start, f"{indent}{param}={value},\n")
        else:
            edits.insert(end, f" {param}={value},")
    else:
        edits.insert(len(before), f", {param}={value}")


def _positional(op: Any) -> list[str]:
    return _positional_names(type(op).__init__)


def _method_positional(method: str) -> list[str]:
    """The positional parameters of the ``Workflow`` method ``method`` (``udf``: name)."""
    from helix_tf.workflow import Workflow

    return _positional_names(getattr(Workflow, method))


def _positional_names(function: Any) -> list[str]:
    params = list(inspect.signature(function).parameters.values())[1:]  # after self
    return [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


def rewrite_overrides(text: str, path: str, overrides: Mapping[str, Any], workflow: Any) -> str:
    """The config source ``text`` with every override written in; raises ``ConfigError``.

    ``workflow`` is the :class:`~helix_tf.Workflow` the config declared (before the
    overrides): its declarations say where each node was declared.
    """
    tree = ast.parse(text, filename=path)
    edits = _Edits(text)
    problems: list[str] = []
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    # Each call's changes are written together (one call may be rewritten whole).
    targets: dict[int, tuple[ast.Call, list[str], dict[str, str], dict[str, str]]] = {}
    for key, raw in overrides.items():
        try:
            value = render_literal(raw)
            if "." not in key:
                _set_params_entry(edits, tree, key, value, path)
                continue
            node, _, param = key.partition(".")
            decl = workflow.declaration(node)
            where = f"-p {key}: node {node!r} ({decl.where or 'unknown line'})"
            if decl.file is None or Path(decl.file).resolve() != Path(path).resolve():
                raise ConfigError(
                    f"{where} is declared outside {path}; edit it where it is declared"
                )
            outer = [
                c
                for c in calls
                if c.lineno == decl.line
                and _callee(c) in _DECLARING
                and isinstance(c.func, ast.Attribute)
            ]
            if len(outer) != 1:
                raise ConfigError(
                    f"{where}: found {len(outer)} declaring calls on that line; edit it by hand"
                )
            if _inside_loop(tree, outer[0]):
                raise ConfigError(
                    f"{where} is declared in a loop, so the edit would change every node "
                    "the loop declares; edit it by hand"
                )
            if decl.op is None:
                raise ConfigError(f"{where}: a {decl.role} node has no operator parameters")
            op_name = type(decl.op).__name__
            callee = _callee(outer[0])
            if callee in _OWN_KEYWORDS:
                target = outer[0]
                positional = _method_positional(str(callee))
            else:
                args = [*outer[0].args, *[k.value for k in outer[0].keywords]]
                found = [a for a in args if isinstance(a, ast.Call) and _callee(a) == op_name]
                if len(found) != 1:
                    raise ConfigError(
                        f"{where}: its {op_name}(...) is not written inside the declaring call "
                        "(built elsewhere, e.g. in a variable); edit it where it is built"
                    )
                target = found[0]
                positional = _positional(decl.op)
            entry = targets.setdefault(id(target), (target, positional, {}, {}))
            entry[2][param], entry[3][param] = value, where
        except ConfigError as exc:
            problems.extend(exc.problems)
    for target, positional, changes, wheres in targets.values():
        try:
            _set_keywords(edits, target, changes, positional, wheres)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError([*problems, "nothing was written"], path=path)
    return edits.apply()


def _set_params_entry(edits: _Edits, tree: ast.Module, key: str, value: str, path: str) -> None:
    for stmt in tree.body:
        targets = (
            stmt.targets
            if isinstance(stmt, ast.Assign)
            else [stmt.target]
            if isinstance(stmt, ast.AnnAssign)
            else []
        )
        if not any(isinstance(t, ast.Name) and t.id == "PARAMS" for t in targets):
            continue
        if not isinstance(stmt.value, ast.Dict):
            break
        for k, v in zip(stmt.value.keys, stmt.value.values, strict=True):
            if isinstance(k, ast.Constant) and k.value == key:
                if not _is_literal(v):
                    raise ConfigError(
                        f"-p {key}: PARAMS[{key!r}] (line {v.lineno}) is an expression; "
                        "edit it by hand"
                    )
                edits.replace(v, value)
                return
    raise ConfigError(f"-p {key}: no literal PARAMS = {{...}} entry {key!r} found; edit it by hand")


def save_overrides(
    path: str | Path,
    overrides: Mapping[str, Any],
    *,
    data_dir: str | None = None,
) -> SavedOverrides:
    """Write ``overrides`` (``-p`` keys → values) into the config at ``path``.

    The config is loaded without overrides to find the declarations, rewritten,
    and loaded again: every overridden value must come out as written, else the
    original file is restored and :class:`~helix_tf.errors.ConfigError` says why.
    """
    from helix_tf.config import load_config, parse_overrides

    path = Path(path).resolve()
    values = parse_overrides(overrides)
    before = path.read_text(encoding="utf-8")
    plain = load_config(path, data_dir=data_dir)
    after = rewrite_overrides(before, str(path), values, plain.workflow)
    path.write_text(after, encoding="utf-8")
    try:
        check = load_config(path, data_dir=data_dir)
        wrong = []
        for key, value in values.items():
            if "." in key:
                node, _, param = key.partition(".")
                got = getattr(check.workflow.declaration(node).op, param, None)
                want = getattr(
                    plain.workflow.declaration(node).op.with_params(**{param: value}), param
                )
            else:
                got, want = check.params.get(key), value
            if got != want:
                wrong.append(f"{key}: the config now gives {got!r}, not {want!r}")
        if wrong:
            raise ConfigError([*wrong, "the file was restored; edit it by hand"], path=str(path))
    except BaseException:
        path.write_text(before, encoding="utf-8")
        raise
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path}",
        )
    )
    return SavedOverrides(path=str(path), saved=tuple(values), diff=diff)
