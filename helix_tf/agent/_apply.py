"""Write a proposal into the user's config, or beside it when that cannot be done safely.

Parameter changes go through :func:`helix_tf.config_edit.save_overrides` (the
same rewrite as ``helix-tf run ... --save``): the keyword at the line the node
was declared, or the ``PARAMS`` entry, checked by loading the config again.
When it refuses (a value set by an expression, an operator built elsewhere, a
declaration in a loop), the proposal goes to a new config beside the original,
``NAME.agentN.py``, which loads the original and applies the overrides exactly
as ``-p`` does (:meth:`helix_tf.Workflow.override`), so its runs have the
verified run's fingerprints.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Any

from helix_tf.config_edit import render_literal, save_overrides
from helix_tf.edits import is_edit
from helix_tf.errors import ConfigError

__all__ = ["Applied", "apply_proposal", "wrapper_config"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """Where a proposal was written, the unified diff, and why not in place (if so)."""

    path: Path
    diff: str
    new_file: bool
    reasons: tuple[str, ...]


def wrapper_config(
    original: Path, overrides: dict[str, Any], declared: set[str], title: str
) -> str:
    """A config module: ``original`` with ``overrides`` applied as ``-p`` applies them."""
    params = {k: v for k, v in sorted(overrides.items()) if k in declared}
    edits = {k: v for k, v in sorted(overrides.items()) if k not in declared and is_edit(k)}
    nodes = {k: v for k, v in sorted(overrides.items()) if k not in declared and not is_edit(k)}
    params_text = "".join(f"    {k!r}: {render_literal(v)},\n" for k, v in params.items())
    edits_text = "".join(f"    {k!r}: {render_literal(v)},\n" for k, v in edits.items())
    nodes_text = "".join(f"    {k!r}: {render_literal(v)},\n" for k, v in nodes.items())
    return f'''"""{title}

{original.name} with these -p overrides, applied the way -p applies them:
{" ".join(f"-p {k}={v!r}" for k, v in sorted(overrides.items()))}
(written by `helix-tf agent apply`; edit {original.name} by hand to keep them there).
"""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

from helix_tf.edits import apply_edits as _apply_edits
from helix_tf.errors import ConfigError as _ConfigError

_path = _Path(__file__).with_name({original.name!r})
_spec = _util.spec_from_file_location("_helix_base_" + _path.stem, _path)
_base = _util.module_from_spec(_spec)
_sys.modules[_spec.name] = _base
_spec.loader.exec_module(_base)

PARAMS = {{
    **(getattr(_base, "PARAMS", None) or {{}}),
{params_text}}}
if getattr(_base, "SEARCH", None) is not None:
    SEARCH = _base.SEARCH

# Structural edits (helix_tf.edits), applied as -p applies them: before the node overrides.
EDITS = {{
{edits_text}}}

NODE_OVERRIDES = {{
{nodes_text}}}


def workflow(params):
    wf = _base.workflow(params) if callable(_base.workflow) else _base.workflow
    problems = _apply_edits(wf, EDITS)
    if problems:
        raise _ConfigError(problems)
    for key, value in NODE_OVERRIDES.items():
        node, _, param = key.partition(".")
        wf.override(node, param, value)
    return wf
'''


def apply_proposal(
    config: str | os.PathLike[str],
    overrides: dict[str, Any],
    *,
    label: str,
    declared: set[str],
    data_dir: str | None = None,
) -> Applied:
    """Write ``overrides`` into ``config`` (or a new config beside it); see the module doc."""
    path = Path(config).resolve()
    try:
        saved = save_overrides(path, overrides, data_dir=data_dir)
        return Applied(path=path, diff=saved.diff, new_file=False, reasons=())
    except ConfigError as exc:
        reasons = tuple(p for p in exc.problems if p != "nothing was written")
    target = path.with_name(f"{path.stem}.{label}{path.suffix}")
    text = wrapper_config(path, overrides, declared, f"The agent's {label} for {path.name}.")
    target.write_text(text, encoding="utf-8")
    diff = "".join(
        difflib.unified_diff([], text.splitlines(keepends=True), "/dev/null", str(target))
    )
    return Applied(path=target, diff=diff, new_file=True, reasons=reasons)
