"""Where code is defined: parsed source files (memoised per pass), a function's or class's node."""

from __future__ import annotations

import ast
import linecache
import os
import sys
import types
from collections.abc import Mapping
from typing import Any

from ._source import _DEFS, _contains, _ModuleSource, _parse_source, _start_line


def _is_empty_file(filename: str) -> bool:
    try:
        return os.path.getsize(filename) == 0 and filename.endswith(".py")
    except OSError:
        return False


class _SourceFinder:
    """The parsed source of each file, read once per pass, and definitions found in it."""

    def __init__(self) -> None:
        self._sources: dict[str, _ModuleSource | None] = {}

    def source(
        self, filename: str, module_globals: Mapping[str, Any] | None
    ) -> _ModuleSource | None:
        if filename not in self._sources:
            linecache.checkcache(filename)
            namespace = module_globals if isinstance(module_globals, dict) else None
            lines = linecache.getlines(filename, namespace)
            # An empty file (a package's bare __init__.py) is a source too: nothing in it.
            known = bool(lines) or _is_empty_file(filename)
            self._sources[filename] = _parse_source(filename, "".join(lines)) if known else None
        return self._sources[filename]

    def locate_function(self, fn: types.FunctionType) -> ast.AST | str:
        code = fn.__code__
        src = self.source(code.co_filename, fn.__globals__)
        if src is None:
            return "its source is not available"
        lam = code.co_name == "<lambda>"
        kinds = ast.Lambda if lam else _DEFS
        candidates = [
            node
            for _, node in src.defs
            if isinstance(node, kinds)
            and (lam or getattr(node, "name", None) == code.co_name)
            and _start_line(node) == code.co_firstlineno
        ]
        if len(candidates) > 1:
            qualnames = dict((id(n), q) for q, n in src.defs)
            candidates = [n for n in candidates if qualnames[id(n)] == code.co_qualname]
        if len(candidates) > 1 and lam:
            spans = [
                (a, c, b, d)
                for a, b, c, d in code.co_positions()
                if a is not None
                and b is not None
                and c is not None
                and d is not None
                and (b, d) > (a, c)
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

    def locate_class(self, cls: type, methods: dict[str, types.FunctionType]) -> ast.AST | str:
        module = sys.modules.get(cls.__module__)
        filename = getattr(module, "__file__", None)
        own = list(methods.values())
        if own:
            filename = own[0].__code__.co_filename
        if not filename:
            return "its source is not available"
        src = self.source(filename, vars(module) if module else None)
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
