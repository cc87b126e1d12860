"""Generate ``docs/reference.md`` from the docstrings and the click definitions.

Run ``python -m helix_tf.docs_reference > docs/reference.md`` after changing a
public operator, function or CLI option; ``tests/test_docs_reference.py`` fails
when the committed file differs from what this prints, so the reference cannot
drift from the code.

What it lists: the declaration API (``Workflow``, the parameters a config
receives, ``run``/``plan``/``Approx``), every name exported by the public
namespaces ``helix_tf.sources``, ``features``, ``learners`` and ``metrics`` (with
its constructor signature and docstring), the errors, the library functions for
comparing runs and saving parameters, and every ``helix-tf`` command and option.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Iterator
from typing import Any

import click

__all__ = ["render_reference", "public_names", "cli_options"]

#: Public namespaces, in the order a workflow uses them.
NAMESPACES = ("sources", "features", "learners", "metrics")

_INTRO = """\
# helix_tf reference

Generated from the docstrings and the CLI definitions by
`python -m helix_tf.docs_reference > docs/reference.md`; do not edit by hand (a test
fails when this file is out of date). For a walk-through, read `docs/guide.md`.

Each namespace imports both ways: `from helix_tf import features as F` or
`import helix_tf.features as F`.
"""


def _doc(obj: Any) -> str:
    """A docstring as Markdown: numpydoc section underlines become bold headings."""
    text = inspect.getdoc(obj) or "(no docstring)"
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)  # Sphinx roles
    text = re.sub(r"``([^`]+)``", r"`\1`", text)  # reST literals
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", nxt.strip()):
            out.append(f"**{line.strip()}**")
            out.append("")
            i += 2
            continue
        if line.startswith(">>> ") or line.startswith("... "):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.extend(["```python", *block, "```"])
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def _signature(name: str, obj: Any) -> str:
    try:
        try:
            sig = inspect.signature(obj, eval_str=True)
        except (NameError, TypeError, AttributeError, SyntaxError):
            sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = list(sig.parameters.values())
    if params and params[0].name == "self":
        sig = sig.replace(parameters=params[1:])
    text = str(sig)
    text = re.sub(r"\b(?:collections\.abc|typing|pathlib|helix_tf(?:\.\w+)*)\.", "", text)
    text = re.sub(r" at 0x[0-9a-f]+", "", text)
    if inspect.isclass(obj):
        text = re.sub(r" -> None$", "", text)
    return f"{name}{text}"


def public_names(namespace: str) -> list[str]:
    """The names ``helix_tf.<namespace>`` exports (its ``__all__``), in order."""
    module = importlib.import_module(f"helix_tf.{namespace}")
    return list(module.__all__)


def _entry(qualified: str, obj: Any, level: int = 3) -> list[str]:
    head = "#" * level
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return [
            f"{head} `{qualified}`",
            "",
            "```python",
            _signature(qualified.rsplit(".", 1)[-1], obj),
            "```",
            "",
            _doc(obj),
            "",
        ]
    if isinstance(obj, set | frozenset):  # a stable order, whatever the hash seed
        obj = sorted(obj)
    return [f"{head} `{qualified}`", "", f"A constant: `{obj!r}`.", ""]


def _methods(cls: type, names: list[str], prefix: str) -> Iterator[str]:
    for name in names:
        fn = getattr(cls, name)
        yield from _entry(f"{prefix}.{name}", fn, level=4)


def cli_options(group: click.Group | None = None) -> list[tuple[str, list[str]]]:
    """Every command path (``run``, ``server start``) and its option/argument names."""
    if group is None:
        from helix_tf.cli import main

        group = main
    out: list[tuple[str, list[str]]] = []

    def walk(cmd: click.Command, path: str) -> None:
        names = []
        for p in cmd.params:
            names.extend(p.opts if isinstance(p, click.Option) else [p.name.upper()])  # type: ignore[union-attr]
        if path:
            out.append((path, names))
        if isinstance(cmd, click.Group):
            for sub in sorted(cmd.commands):
                walk(cmd.commands[sub], f"{path} {sub}".strip())

    walk(group, "")
    return out


def _cli_section() -> list[str]:
    from helix_tf.cli import main

    lines = ["## Command line: `helix-tf`", ""]
    lines += [_doc(main.callback), ""] if main.callback else []
    for path, _ in cli_options(main):
        cmd: Any = main
        for part in path.split():
            cmd = cmd.commands[part]
        ctx = click.Context(cmd, info_name=f"helix-tf {path}")
        usage = cmd.collect_usage_pieces(ctx)
        lines += [f"### `helix-tf {path}`", "", "```", f"helix-tf {path} {' '.join(usage)}", "```"]
        lines += ["", inspect.cleandoc(cmd.help or "(no help)"), ""]
        rows = []
        for p in cmd.params:
            if isinstance(p, click.Argument):
                rows.append((f"`{p.name.upper()}`", "argument", ""))  # type: ignore[union-attr]
                continue
            assert isinstance(p, click.Option)
            names = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
            kind = p.type.name if not p.is_flag else "flag"
            if isinstance(p.type, click.Choice):
                kind = " \\| ".join(p.type.choices)
            default = ""
            unset = "Sentinel" in repr(p.default) or p.multiple
            if p.default is not None and not p.is_flag and not unset:
                default = f" (default: `{p.default}`)"
            if p.envvar:
                default += f" (env: `${p.envvar}`)"
            help_text = (p.help or "").replace("|", "\\|")
            rows.append((names, kind, help_text + default))
        if rows:
            lines += ["| option | value | what it does |", "|---|---|---|"]
            lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
            lines.append("")
    return lines


def render_reference() -> str:
    """The whole reference as Markdown (deterministic)."""
    import helix_tf
    from helix_tf import api, config_edit, errors, history
    from helix_tf.approx.settings import Approx
    from helix_tf.config import Params
    from helix_tf.results import PlanResult, RunResult
    from helix_tf.roles import ROLE_SPECS, Role
    from helix_tf.workflow import Workflow

    lines = [_INTRO, "## Declaring a workflow", ""]
    lines += _entry("helix_tf.Workflow", Workflow)
    # Each role's declaring method, in the role table's order (udf declares features too).
    declaring = [str(role) for role in ROLE_SPECS]
    declaring.insert(declaring.index(Role.FEATURE) + 1, "udf")
    lines += list(_methods(Workflow, [*declaring, "output"], "Workflow"))
    lines += list(_methods(Workflow, ["note"], "Workflow"))
    lines += _entry("helix_tf.NodeRef", helix_tf.NodeRef)
    lines += _entry("params", Params)
    lines += list(_methods(Params, ["data", "get"], "params"))
    lines += ["## Running from Python", ""]
    lines += _entry("helix_tf.run", api.run)
    lines += _entry("helix_tf.plan", api.plan)
    lines += _entry("helix_tf.Approx", Approx)
    lines += _entry("helix_tf.results.RunResult", RunResult)
    lines += list(_methods(RunResult, ["predictions", "model", "explanation"], "RunResult"))
    lines += _entry("helix_tf.results.PlanResult", PlanResult)
    from helix_tf import events

    lines += ["## Progress events (`helix_tf.events`)", "", _doc(events), ""]
    for name in [n for n in events.__all__ if n != "ProgressCallback"]:
        lines += _entry(f"helix_tf.events.{name}", getattr(events, name))
    from helix_tf import views

    lines += ["## The model's views (`helix_tf.views`)", "", _doc(views), ""]
    for name in ("roc_curve_of", "figure", "evidence", "views_for", "roc_curve"):
        lines += _entry(f"helix_tf.views.{name}", getattr(views, name))
    for name in ("precision_recall_curve", "calibration", "confusion", "slices"):
        lines += _entry(f"helix_tf.views.{name}", getattr(views, name))
    for namespace in NAMESPACES:
        module = importlib.import_module(f"helix_tf.{namespace}")
        lines += [f"## `helix_tf.{namespace}`", "", _doc(module), ""]
        for name in public_names(namespace):
            lines += _entry(f"{namespace}.{name}", getattr(module, name))
    lines += [
        "## Runs, versions, diffs and comparisons (`helix_tf.history`)",
        "",
        _doc(history),
        "",
    ]
    for name in history.__all__:
        lines += _entry(f"helix_tf.history.{name}", getattr(history, name))
    lines += ["## Keeping parameters (library)", ""]
    lines += _entry("helix_tf.config_edit.save_overrides", config_edit.save_overrides)
    lines += ["## Errors", "", _doc(errors), ""]
    for name in [n for n in helix_tf.__all__ if n.endswith("Error")]:
        lines += _entry(f"helix_tf.{name}", getattr(errors, name))
    lines += _cli_section()
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(render_reference())


if __name__ == "__main__":  # pragma: no cover
    main()
