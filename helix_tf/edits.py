"""Structural edits a ``-p`` override may name: swap a model, add, bucketize or cross features.

A key with a colon is an edit of the workflow's structure, applied after the
config builds it and before ``node.param`` overrides (so those apply to the
edited workflow)::

    -p model:learner=DNN                 # the learner node becomes a DNN (Linear, DNN,
                                         # WideDeep), keeping optimizer, rate, epochs, ...
    -p add:capital_loss=numeric          # a feature from an unused source column
                                         # (numeric or vocabulary), fed to every examples
    -p bucketize:age='18,30,45,60'       # the Numeric feature node age becomes a
                                         # Bucketize at these boundaries
    -p cross:education*occupation=1000   # a hashed cross of two categorical feature
                                         # nodes into 1000 buckets, fed to every examples

A value of ``None`` leaves the workflow as written (the search spaces of
:mod:`helix_tf.search` use it for "no edit"). The think-time agent proposes
these, so every proposal stays a reproducible ``-p`` change; the nodes an edit
adds are named ``<column>`` and ``<a>_x_<b>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from helix_tf.components import features as F, learners
from helix_tf.components.base import did_you_mean
from helix_tf.errors import ConfigError
from helix_tf.roles import Role
from helix_tf.types import NodeRef
from helix_tf.workflow import Declaration, Workflow

__all__ = [
    "EDIT_KINDS",
    "MODELS",
    "is_edit",
    "apply_edits",
    "parse_boundaries",
    "value_as_written",
]

#: The kinds of edit, in the order they apply.
EDIT_KINDS = ("model", "add", "bucketize", "cross")
#: The learners ``model:`` swaps between.
MODELS = {"Linear": learners.Linear, "DNN": learners.DNN, "WideDeep": learners.WideDeep}
#: What ``add:`` builds for a column.
ADD_OPS = {"numeric": F.Numeric, "vocabulary": F.Vocabulary}


def is_edit(key: str) -> bool:
    """Whether a ``-p`` key names a structural edit (``kind:target``)."""
    return ":" in key


def value_as_written(wf: Workflow, key: str) -> Any:
    """The value of edit ``key`` that leaves ``wf`` as written: its model's name, else None."""
    kind, _, target = key.partition(":")
    if kind == "model":
        i, problem = _declaration(wf, target, (Role.TRAIN,))
        return None if problem else type(wf.declarations[i].op).__name__
    return None


def parse_boundaries(value: Any) -> tuple[float, ...]:
    """``"18,30,45"`` or ``(18, 30, 45)`` → ``(18.0, 30.0, 45.0)``."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(float(x) for x in items)


def apply_edits(wf: Workflow, edits: Mapping[str, Any]) -> list[str]:
    """Apply ``edits`` (``-p`` keys with a colon → values) to ``wf`` in place.

    Returns the problems (empty when every edit applied), each naming the key.
    """
    problems: list[str] = []
    ordered = sorted(
        edits.items(),
        key=lambda kv: (
            EDIT_KINDS.index(kv[0].partition(":")[0])
            if kv[0].partition(":")[0] in EDIT_KINDS
            else len(EDIT_KINDS),
            kv[0],
        ),
    )
    for key, value in ordered:
        kind, _, target = key.partition(":")
        if value is None:
            continue
        if kind not in EDIT_KINDS:
            problems.append(
                f"-p {key}: unknown edit {kind!r}{did_you_mean(kind, list(EDIT_KINDS))}; "
                f"edits are {', '.join(k + ':...' for k in EDIT_KINDS)}"
            )
            continue
        try:
            problem = _EDITS[kind](wf, target.strip(), value)
        except ConfigError as exc:
            problem = "; ".join(exc.problems)
        except (TypeError, ValueError) as exc:
            problem = str(exc)
        if problem:
            problems.append(f"-p {key}={value!r}: {problem}")
    return problems


def _declaration(wf: Workflow, name: str, roles: tuple[Role, ...]) -> tuple[int, str | None]:
    names = [d.name for d in wf.declarations]
    if name not in names:
        return -1, f"workflow {wf.name!r} has no node {name!r}{did_you_mean(name, names)}"
    i = names.index(name)
    if wf.declarations[i].role not in roles:
        role = wf.declarations[i].role
        return -1, f"node {name!r} ({role}) is not a {' or '.join(roles)} node"
    return i, None


def _swap_model(wf: Workflow, node: str, value: Any) -> str | None:
    i, problem = _declaration(wf, node, (Role.TRAIN,))
    if problem:
        return problem
    cls = MODELS.get(str(value))
    if cls is None:
        return f"the model must be one of {', '.join(MODELS)}"
    old = wf.declarations[i].op
    if type(old) is cls:
        return None
    common = {f.name: getattr(old, f.name) for f in dataclasses.fields(learners.Learner)}
    wf.declarations[i] = dataclasses.replace(wf.declarations[i], op=cls(**common))
    return None


def _feed(wf: Workflow, decl: Declaration) -> None:
    """Declare ``decl`` before the first examples node and add it to every examples node."""
    at = next(i for i, d in enumerate(wf.declarations) if d.role == Role.EXAMPLES)
    wf.declarations.insert(at, decl)
    ref = NodeRef(decl.name, wf.name)
    for j, d in enumerate(wf.declarations):
        if d.role == Role.EXAMPLES:
            refs = {**d.refs, "features": [*d.refs["features"], ref]}
            wf.declarations[j] = dataclasses.replace(d, refs=refs)


def _new_feature(wf: Workflow, name: str, op: Any) -> str | None:
    if any(d.name == name for d in wf.declarations):
        return f"the workflow already has a node {name!r}"
    if not any(d.role == Role.EXAMPLES for d in wf.declarations):
        return "the workflow has no examples node to feed"
    sources = [d for d in wf.declarations if d.role == Role.SOURCE]
    if len(sources) != 1:
        return f"an added feature needs exactly one source, but the workflow has {len(sources)}"
    _feed(
        wf,
        Declaration(
            name=name, role=Role.FEATURE, op=op, refs={"source": None}, file=None, line=None
        ),
    )
    return None


def _add(wf: Workflow, column: str, value: Any) -> str | None:
    make = ADD_OPS.get(str(value))
    if make is None:
        return f"add a column as one of {', '.join(ADD_OPS)}"
    return _new_feature(wf, column, make(column))


def _bucketize(wf: Workflow, node: str, value: Any) -> str | None:
    i, problem = _declaration(wf, node, (Role.FEATURE,))
    if problem:
        return problem
    op = wf.declarations[i].op
    if not isinstance(op, F.Numeric):
        return f"node {node!r} is a {type(op).__name__}; only a Numeric feature is bucketized"
    bucketized = F.Bucketize(op.column, parse_boundaries(value))
    wf.declarations[i] = dataclasses.replace(wf.declarations[i], op=bucketized)
    return None


def _cross(wf: Workflow, pair: str, value: Any) -> str | None:
    a, star, b = pair.partition("*")
    if not star or not a or not b:
        return "name two feature nodes: cross:<a>*<b>"
    for name in (a, b):
        _, problem = _declaration(wf, name, (Role.FEATURE,))
        if problem:
            return problem
    if isinstance(value, bool) or not isinstance(value, int):
        return "the value is the number of hash buckets (an integer)"
    op = F.Cross([NodeRef(a, wf.name), NodeRef(b, wf.name)], buckets=value)
    return _new_feature(wf, f"{a}_x_{b}", op)


_EDITS = {"model": _swap_model, "add": _add, "bucketize": _bucketize, "cross": _cross}
