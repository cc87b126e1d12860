"""What a config's own error says: the config line that raised it, the helper module it was
raised in, and a hint for the usual causes (an operator's unknown keyword, a missing
module, a config that exits). :func:`helix_tf.config.load_config` reports with these."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from helix_tf.components.base import did_you_mean
from helix_tf.errors import ConfigError

__all__ = ["at_line", "config_line", "user_error"]


def config_line(exc: BaseException, path: Path) -> str:
    """``"line N: "`` of the innermost frame of ``exc`` in the config file, or ''."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f"line {frames[-1].lineno}: " if frames else ""


def user_error(exc: BaseException, path: Path) -> str:
    return (
        f"{config_line(exc, path)}{type(exc).__name__}: {exc}{_keyword_hint(exc)}"
        f"{_raised_in_helper(exc, path)}{_missing_module_hint(exc, path)}{_exit_hint(exc)}"
    )


def _exit_hint(exc: BaseException) -> str:
    """For a config that exits (``sys.exit``, or ``argparse`` reading helix-tf's own command
    line): a config is imported, its script code must not run."""
    if not isinstance(exc, SystemExit):
        return ""
    return (
        " (the config exited: helix-tf imports a config, it does not run it as a script; "
        'put script code, such as sys.exit() or argparse, under if __name__ == "__main__":)'
    )


def _missing_module_hint(exc: BaseException, path: Path) -> str:
    """For ``import helpers`` of a module that is nowhere: where it may come from."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    top = exc.name.split(".")[0]
    return (
        f"; install it into this Python environment ({sys.executable} -m pip install "
        f"{top}), or put {top}.py beside the config in {path.parent} (that folder is on "
        "the import path)"
    )


def _raised_in_helper(exc: BaseException, path: Path) -> str:
    """`` (raised at helper.py:2)`` when the innermost frame of your own code that raised
    is in another file than the config (a helper module beside it), else ''."""
    import sysconfig

    paths = sysconfig.get_paths()
    library = (
        os.path.dirname(os.path.abspath(__file__)),  # helix_tf's own package (this module's folder)
        *(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths),
    )
    own = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(library) and not f.filename.startswith("<")
    ]
    if not own or own[-1].filename == str(path):
        return ""
    return f" (raised at {own[-1].filename}:{own[-1].lineno})"


_UNEXPECTED_KEYWORD = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def _keyword_hint(exc: BaseException) -> str:
    """For ``Numeric(standardise=True)``: the operator's closest parameters and all of them."""
    found = _UNEXPECTED_KEYWORD.search(str(exc)) if isinstance(exc, TypeError) else None
    if found is None:
        return ""
    from helix_tf.components import features, learners, metrics, sources

    name, keyword = found.groups()
    for namespace in (sources, features, learners, metrics):
        cls = vars(namespace).get(name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            fields = sorted(f.name for f in dataclasses.fields(cls) if not f.name.startswith("_"))
            return f"{did_you_mean(keyword, fields)}; its parameters are: {', '.join(fields)}"
    return ""


def at_line(exc: ConfigError, path: Path) -> list[str]:
    """The problems of a ConfigError raised while the config ran (an operator built with
    a bad parameter), each with the config line that raised it unless it names a place."""
    where = config_line(exc, path)
    return [p if str(path) in p else f"{where}{p}" for p in exc.problems]


def no_workflow(module: object) -> str:
    """What a config without ``workflow`` is told: the fix, and the functions of its own
    that look meant to be it (``def make_workflow(params)``)."""
    said = (
        "defines no workflow: add a module-level `workflow = Workflow(...)` or "
        "`def workflow(params): ...` that returns one"
    )
    name = getattr(module, "__name__", None)
    near = [
        f"{key}() at line {value.__code__.co_firstlineno}"
        for key, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == name and "workflow" in key.lower()
    ]
    return f"{said} (rename {', '.join(near)} to workflow)" if near else said


def workflow_signature(factory: Any) -> str | None:
    """Why ``factory`` cannot be called as ``workflow(params)`` (its line and the fix);
    None when it can, or when its signature cannot be read (a builtin)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(object())
    except TypeError as exc:
        code = getattr(factory, "__code__", None)
        where = f"line {code.co_firstlineno}: " if code is not None else ""
        return (
            f"{where}workflow{signature} cannot be called as workflow(params) ({exc}); "
            "define it as def workflow(params): with one argument, the config's "
            "parameters (PARAMS and -p values)"
        )
    return None
