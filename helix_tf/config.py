"""Load a config module into a ``Workflow``, applying ``-p key=value`` overrides.

A config module is ordinary Python. It defines either a module-level
``workflow`` object or a ``def workflow(params)`` factory, and may declare
``PARAMS = {...}`` (its own parameters with defaults, e.g. ``scale``).
Overrides name either a declared parameter (``-p scale=10``), an operator
parameter of a node (``-p learner.l1=0.001``) or a structural edit
(``-p model:learner=DNN``, ``-p add:capital_loss=numeric``; :mod:`helix_tf.edits`).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from helix_tf._config_errors import (
    at_line as _at_line,
    no_workflow,
    user_error as _user_error,
    workflow_signature,
)
from helix_tf.components.base import did_you_mean
from helix_tf.edits import apply_edits, is_edit
from helix_tf.errors import ConfigError, HelixError
from helix_tf.workflow import Workflow

__all__ = [
    "Params",
    "LoadedConfig",
    "load_config",
    "parse_overrides",
    "repeated_overrides",
    "find_data_dir",
]

DATA_ENV = "HELIX_TF_DATA"


def parse_value(text: str) -> Any:
    """``-p`` values: Python literals (numbers, lists, True/None), else the raw string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``["a.b=1", "scale=10"]`` → ``{"a.b": 1, "scale": 10}``."""
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    problems = repeated_overrides(items)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"-p {item!r}: expected key=value, e.g. -p learner.l1=0.001")
            continue
        parsed = parse_value(value.strip())
        if not _finite(parsed):
            problems.append(
                f"-p {key.strip()}={value.strip()}: {value.strip()!r} is not finite "
                f"(it reads as {parsed!r}); pass finite numbers, e.g. 1e6"
            )
            continue
        out[key.strip()] = parsed
    if problems:
        raise ConfigError(problems)
    return out


def repeated_overrides(items: Sequence[str]) -> list[str]:
    """A problem for each ``-p`` key given twice with different values (``-p l1=0.1 -p
    l1=0.2``): which one a run should take is the user's to say, not the order's (the
    last one was kept silently). The same value twice is one setting."""
    given: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key.strip():
            texts = given.setdefault(key.strip(), [])
            if value.strip() not in texts:
                texts.append(value.strip())
    return [
        f"-p {key} is given {len(texts)} times, with "
        f"{', '.join(repr(t) for t in texts[:-1])} and {texts[-1]!r}: give it once "
        "(a later -p does not replace an earlier one)"
        for key, texts in given.items()
        if len(texts) > 1
    ]


def _finite(value: Any) -> bool:
    """No float in ``value`` (or in its lists, tuples, sets and dicts) is inf or NaN
    (``1e999`` reads as inf: a parameter of that size is a typo, never a setting)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple | set | frozenset):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(k) and _finite(v) for k, v in value.items())
    return True


def _raw_texts(items: Sequence[str] | Mapping[str, Any]) -> dict[str, str]:
    """The text of each ``-p key=value`` as typed (none for a mapping of Python values)."""
    if isinstance(items, Mapping):
        return {}
    return {
        key.strip(): value.strip()
        for key, sep, value in (item.partition("=") for item in items)
        if sep
    }


def _declared_value(key: str, default: Any, value: Any, text: str | None) -> tuple[Any, str | None]:
    """``value`` for the config parameter ``key`` declared as ``default`` in PARAMS, and
    the problem when its type cannot be the one the default has.

    A config reads its parameters as it declares them (``if params.std:``,
    ``int(params.scale)``), so a value of another kind would run silently wrong:
    ``-p std=false`` is the string ``'false'``, which is true. Where the default is a
    string, a value typed on the command line stays the text typed (``-p tag=2024`` is
    ``'2024'``, ``-p tag=None`` is None); defaults of other types (None, lists, dicts)
    take any value.
    """

    def problem(expected: str, hint: str = "") -> tuple[Any, str]:
        shown = text if text is not None else repr(value)
        return value, (
            f"-p {key}={shown}: PARAMS declares {key!r} as {default!r} ({expected}), but got "
            f"{value!r} (a {type(value).__name__}); {hint or f'pass {expected}'}"
        )

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value, None
        spelled = str(value).strip().lower()
        if spelled in ("true", "false", "yes", "no", "on", "off"):
            word = "True" if spelled in ("true", "yes", "on") else "False"
            return problem("True or False", f"write -p {key}={word} (Python's spelling)")
        return problem("True or False")
    if isinstance(default, int | float):  # PARAMS = {"dropout": 0} takes 0.5 too
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value, None
        return problem("a number")
    if isinstance(default, str) and not isinstance(value, str) and text is not None:
        # The text typed (-p tag=2024 is '2024'), except Python's spelling of no value:
        # -p transform=None for a "log" default means None, not the string 'None'.
        return (None if value is None else text), None
    return value, None


def find_data_dir(explicit: str | os.PathLike[str] | None, config_path: Path | None) -> Path | None:
    """The shared data folder: --data-dir, $HELIX_TF_DATA, or ../shared/data near here."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise ConfigError(
                f"--data-dir {str(p)!r} is not a folder; pass the folder that holds census/, "
                "sms_spam/ and diamonds/ (e.g. ../shared/data)"
            )
        return p.resolve()
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise ConfigError(f"${DATA_ENV}={env!r} is not a folder; unset it or fix the path")
        return p.resolve()
    candidates = [Path.cwd() / ".." / "shared" / "data"]
    if config_path is not None:
        candidates.append(config_path.parent.parent / ".." / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@dataclasses.dataclass(slots=True)
class Params:
    """Parameters a config's ``workflow(params)`` receives.

    Attribute and item access both work (``params.scale``, ``params["scale"]``).
    ``data_dir`` is the shared data folder (None when absent); ``work_dir`` is a
    folder next to the config where generated sample data may be written.
    """

    values: dict[str, Any]
    data_dir: Path | None
    work_dir: Path

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(
                f"no parameter {name!r}{did_you_mean(name, list(self.values))}; "
                f"declare it in the config's PARAMS"
            ) from None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def data(self, name: str) -> Path | None:
        """The folder ``name`` under the shared data folder, if present."""
        if self.data_dir is None:
            return None
        p = self.data_dir / name
        return p if p.is_dir() else None


#: The names ``Params`` answers itself: a PARAMS key among them would be shadowed.
_PARAMS_OWN = frozenset(name for name in dir(Params) if not name.startswith("_")) | {
    f.name for f in dataclasses.fields(Params)
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LoadedConfig:
    workflow: Workflow
    path: Path
    params: dict[str, Any]
    overrides: dict[str, Any]
    notes: tuple[str, ...]


def _import(path: Path) -> Any:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"config file {str(path)!r} {what}; pass the path of a Python config module, "
            "e.g. configs/census.py"
        )
    if path.suffix != ".py":
        raise ConfigError(
            f"config file {str(path)!r} is not a Python module (its name must end in .py); "
            "pass the config (e.g. configs/census.py), not a data file: the config names "
            "its data"
        )
    try:
        raw = path.read_bytes()
        source = importlib.util.decode_source(raw)  # honours a coding line
    except OSError as exc:
        raise ConfigError(
            f"config file {str(path)!r} cannot be read ({exc.strerror or exc}); check its "
            "permissions",
        ) from None
    except (UnicodeDecodeError, SyntaxError):
        try:
            raw.decode("utf-8")
            where = ""
        except UnicodeDecodeError as bad:
            line = raw.count(b"\n", 0, bad.start) + 1
            where = f" at line {line} (byte {raw[bad.start]:#04x})"
        raise ConfigError(
            f"the text is not valid UTF-8{where}; save the config as UTF-8 (or declare "
            "its encoding in a first-line comment: # -*- coding: latin-1 -*-)",
            path=str(path),
        ) from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise ConfigError(
            f"syntax error at line {exc.lineno}: {exc.msg} — fix the config and run again",
            path=str(path),
        ) from None
    _beside_on_path(path.parent)
    before = set(sys.modules)
    name = "helix_config_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)  # the text just read, never a stale .pyc (_SourceOnly)
    except ConfigError as exc:
        if exc.path is not None:
            raise
        raise ConfigError(_at_line(exc, path), path=str(path)) from exc
    except HelixError:
        raise
    except (Exception, SystemExit) as exc:
        message = _user_error(exc, path)
        shadowing = (
            _shadowing_helpers(path) if isinstance(exc, ImportError | AttributeError) else []
        )
        if shadowing:
            message += (
                f" (beside the config, {', '.join(shadowing)} has the name of a standard "
                "library module, which is imported instead: rename it)"
            )
        raise ConfigError(message, path=str(path)) from exc
    finally:
        helpers = _remember_user_modules(before, path.parent)
    # Ship the config's own code (and modules beside it) by value to remote Beam workers:
    # the pipeline registers these with the pickler Beam uses (its own cloudpickle copy).
    SHIPPED_BY_VALUE.update(m.__name__ for m in [module, *helpers])
    try:
        import cloudpickle

        for shipped in [module, *helpers]:
            cloudpickle.register_pickle_by_value(shipped)
    except Exception:
        pass
    return module


#: Names of the user modules (configs and helpers beside them) that travel by value in
#: pickled code: no worker can import them (helix_tf.engine.beam_pipeline registers them).
SHIPPED_BY_VALUE: set[str] = set()


#: User modules first imported while a config loaded (helpers beside it, or anywhere
#: on the path outside the installation): forgotten before the next load, so an edited
#: helper is imported afresh, as in a new process.
_CONFIG_MODULES: set[str] = set()


#: The config folder this module put on ``sys.path`` (the latest load's).
_CONFIG_FOLDERS: list[str] = []


def _beside_on_path(folder: Path) -> None:
    """Make modules beside the config importable; helpers an earlier load imported are
    forgotten.

    The folder goes *last* on ``sys.path``, not first as a script's would: helix_tf and
    its libraries import lazily after the config has loaded, and a file beside it named
    like a standard or installed module (``concurrent.py``, ``json.py``, ``types.py``)
    would otherwise replace that module for the whole run. Such a helper cannot be
    imported under its name, which :func:`_shadowing_helpers` reports.
    """
    entry = str(folder)
    for earlier in (*_CONFIG_FOLDERS, entry):  # only the latest config's folder stays
        while earlier in sys.path:
            sys.path.remove(earlier)
    _CONFIG_FOLDERS[:] = [entry]
    sys.path.append(entry)
    # Helpers beside the config are compiled from their text, as the config is.
    sys.path_importer_cache[entry] = importlib.machinery.FileFinder(
        entry, (_SourceOnly, importlib.machinery.SOURCE_SUFFIXES)
    )
    for name in sorted(_CONFIG_MODULES):
        sys.modules.pop(name, None)
    _CONFIG_MODULES.clear()


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """Loads a module from its source text every time: no ``.pyc`` read or written. A
    cached one is trusted when the source's size and modification second match, which
    an edit within a second can keep (a script or the agent writing a helper)."""

    def path_stats(self, path: str) -> Mapping[str, Any]:
        raise OSError("source only")  # SourceLoader.get_code then compiles the text


def _shadowing_helpers(path: Path) -> list[str]:
    """Modules beside config ``path`` named like a standard-library module (not the
    config itself, which loads under a private name)."""
    found = []
    for item in sorted(path.parent.iterdir()):
        stem = item.stem if item.suffix == ".py" else item.name
        is_module = item.suffix == ".py" or (item / "__init__.py").is_file()
        if is_module and item != path and stem in sys.stdlib_module_names:
            found.append(item.name)
    return found


def _remember_user_modules(before: set[str], folder: Path) -> list[Any]:
    """The user modules from the config's folder (not helix_tf, the stdlib or site-packages)
    imported since ``before``; every user module imported since then, wherever it lies,
    is forgotten before the next load (else an edited helper outside the config's folder
    kept running its old code in a long-lived process: a notebook, the agent)."""
    from helix_tf.compiler.hashing import is_user_module

    found = []
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if module is None or not file or name.startswith("helix_config_"):
            continue
        if not is_user_module(module):
            continue
        _CONFIG_MODULES.add(name)
        if Path(file).resolve().is_relative_to(folder.resolve()):
            found.append(module)
    return found


def _declared_params(module: Any, path: Path) -> dict[str, Any]:
    """The config's ``PARAMS``: a dict of parameter names to defaults (or none)."""
    declared = getattr(module, "PARAMS", None)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping) or not all(isinstance(k, str) for k in declared):
        raise ConfigError(
            f"PARAMS must be a dict of parameter names to their defaults, e.g. "
            f'PARAMS = {{"scale": 1}}, but got {_shortened(declared)} '
            f"(a {type(declared).__name__})",
            path=str(path),
        )
    shadowed = sorted(k for k in declared if k in _PARAMS_OWN)
    if shadowed:  # params.values is the dict of every value, params.data a method
        raise ConfigError(
            [
                f"PARAMS declares {k!r}, a name params has for its own "
                f"{'method' if callable(getattr(Params, k, None)) else 'attribute'} "
                f"(params.{k} would not read your value): rename it, e.g. {k + '_'!r}"
                for k in shadowed
            ],
            path=str(path),
        )
    return dict(declared)


def _shortened(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _build_workflow(
    module: Any,
    params: Params,
    cfg_path: Path,
    problems: list[str],
    given: Mapping[str, Any] | None = None,
) -> Workflow:
    """The config module's workflow: its ``workflow`` object, or ``workflow(params)``.

    An error raised while the config builds it is reported with ``problems`` (the
    command line's, found before), each naming the config line where it can, and the
    ``-p`` values of PARAMS it was built with (``given``): the value the line reads may
    be one of them.
    """
    try:
        return _call_workflow(module, params, cfg_path, problems)
    except ConfigError as exc:
        if not given or exc.path is None or len(exc.problems) <= len(problems):
            raise
        built = ", ".join(f"-p {k}={v!r}" for k, v in sorted(given.items()))
        raised = [f"{p} (built with {built})" for p in exc.problems[len(problems) :]]
        raise ConfigError([*exc.problems[: len(problems)], *raised], path=exc.path) from exc


def _call_workflow(module: Any, params: Params, cfg_path: Path, problems: list[str]) -> Workflow:
    """:func:`_build_workflow` without naming the ``-p`` values."""
    factory = getattr(module, "workflow", None)
    if factory is None:
        raise ConfigError(no_workflow(module), path=str(cfg_path))
    if isinstance(factory, Workflow):
        return factory
    if not callable(factory):
        raise ConfigError(
            f"`workflow` is a {type(factory).__name__}; it must be a Workflow or a function",
            path=str(cfg_path),
        )
    wrong = workflow_signature(factory)
    if wrong is not None:
        raise ConfigError([*problems, wrong], path=str(cfg_path))
    try:
        wf = factory(params)
    except HelixError as exc:
        if isinstance(exc, ConfigError) and (exc.path is None or problems):
            found = [*problems, *_at_line(exc, cfg_path)]
            raise ConfigError(found, path=str(cfg_path)) from exc
        raise
    except (Exception, SystemExit) as exc:
        found = [*problems, _user_error(exc, cfg_path)]
        raise ConfigError(found, path=str(cfg_path)) from exc
    if not isinstance(wf, Workflow):
        code = getattr(factory, "__code__", None)
        where = f"line {code.co_firstlineno}: " if code is not None else ""
        raise ConfigError(
            f"{where}workflow(params) returned {type(wf).__name__} ({_short(wf)}), expected "
            "a helix_tf.Workflow; end the function with `return wf` (the Workflow it "
            "built)",
            path=str(cfg_path),
        )
    return wf


def _short(value: Any) -> str:
    """``repr(value)`` cut to 60 characters, for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_config(
    path: str | os.PathLike[str],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    *,
    data_dir: str | os.PathLike[str] | None = None,
) -> LoadedConfig:
    """Import a config module and build its workflow with overrides applied."""
    cfg_path = Path(path).resolve()
    module = _import(cfg_path)
    declared = _declared_params(module, cfg_path)
    over = parse_overrides(overrides)
    problems: list[str] = []
    values = dict(declared)
    node_overrides: dict[str, Any] = {}
    edit_overrides: dict[str, Any] = {}
    raw = _raw_texts(overrides)
    for key, value in over.items():
        if key in declared:
            typed, problem = _declared_value(key, declared[key], value, raw.get(key))
            values[key] = over[key] = typed  # recorded as used (history compiles it again)
            if problem:
                problems.append(problem)
                # Built with its default: a value of the wrong kind would only fail again
                # inside the config ("int('abc')"), a second error for one mistake.
                values[key] = declared[key]
        elif is_edit(key):
            edit_overrides[key] = value
        elif "." in key:
            node_overrides[key] = value
        else:
            problems.append(
                f"-p {key}: not a parameter of this config{did_you_mean(key, list(declared))}; "
                f"declared parameters: {', '.join(sorted(declared)) or 'none'} "
                "(operator parameters are written node.param, e.g. -p learner.l1=0.001; "
                "structural edits kind:target, e.g. -p model:learner=DNN)"
            )
    # Unknown config parameters are reported with the node overrides' problems (all
    # problems of one command line together); the workflow is built without them.
    data = find_data_dir(data_dir, cfg_path)
    params = Params(values=values, data_dir=data, work_dir=cfg_path.parent / ".helix")
    given = {k: values[k] for k in over if k in declared and values[k] != declared[k]}
    wf = _build_workflow(module, params, cfg_path, problems, given)
    problems.extend(apply_edits(wf, edit_overrides))
    for key, value in node_overrides.items():
        node, _, param = key.partition(".")
        try:
            wf.override(node, param, value)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        # The declarations' own problems too (a misspelt column beside a misspelt -p):
        # one message, not one round each.
        from helix_tf.compiler.graph import check_workflow

        problems.extend(
            p for p in check_workflow(wf, config_path=str(cfg_path)) if p not in problems
        )
        raise ConfigError(problems, path=str(cfg_path))
    notes = tuple(getattr(wf, "notes", ()))
    return LoadedConfig(workflow=wf, path=cfg_path, params=values, overrides=over, notes=notes)
