"""Rewrite a workflow so that its learners no longer see features proven useless.

After training, a model's facts name the features whose every weight is exactly
zero (see ``keras_models.zero_weight_features``). Inference already skips them
without changing any prediction. Retraining without them is a *different*
model, so it is only done when the user opts in (``--retrain-without-zero``):
this module derives that workflow — the same declarations, with the dropped
features removed from the examples that feed those learners — and the new
fingerprints follow from the changed inputs, so reuse keeps working.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Set
from typing import Any

from helix_tf.roles import Role
from helix_tf.types import NodeRef
from helix_tf.workflow import Workflow

__all__ = ["features_to_drop", "without_features"]


def features_to_drop(
    workflow: Workflow, zero: Mapping[str, Set[str]]
) -> tuple[dict[str, set[str]], list[str]]:
    """Per examples node, the features to drop; plus notes on what cannot be dropped.

    ``zero`` maps a train node to the features whose weights are all zero in its
    model. Examples shared by several learners drop only the features that are
    zero in *every* one of them (the others still read them); examples whose
    every feature is zero are left alone (a model needs an input).
    """
    readers: dict[str, list[str]] = {}
    for d in workflow.declarations:
        if d.role == Role.TRAIN:
            readers.setdefault(_name(d.refs["examples"]), []).append(d.name)
    drop: dict[str, set[str]] = {}
    notes: list[str] = []
    for examples, trains in readers.items():
        sets = [set(zero.get(t, ())) for t in trains]
        common = set.intersection(*sets) if sets else set()
        for t, s in zip(trains, sets, strict=True):
            kept = sorted(s - common)
            if kept:
                notes.append(
                    f"{t}: {', '.join(kept)} kept although their weights are 0: other learners "
                    f"reading {examples!r} still use them"
                )
        if not common:
            continue
        features = [_name(f) for f in workflow.declaration(examples).refs["features"]]
        if set(features) <= common:
            notes.append(
                f"{examples}: every feature has only zero weights; not retrained "
                "(a model needs at least one input)"
            )
            continue
        drop[examples] = common
    return drop, notes


def without_features(workflow: Workflow, drop: Mapping[str, Set[str]]) -> Workflow:
    """A copy of ``workflow`` whose examples nodes no longer list the dropped features.

    Feature declarations that nothing references any more are removed too, so the
    derived workflow does not warn about (or compute) dead operators.
    """
    out = copy.copy(workflow)
    out.outputs = list(workflow.outputs)
    out.notes = list(workflow.notes)
    decls = []
    for d in workflow.declarations:
        if d.role == Role.EXAMPLES and d.name in drop:
            kept = [f for f in d.refs["features"] if _name(f) not in drop[d.name]]
            d = dataclasses.replace(d, refs={**d.refs, "features": kept})
        decls.append(d)
    dropped = set().union(*drop.values()) if drop else set()
    used = {name for d in decls for name in _referenced(d.refs)}
    out.declarations = [
        d
        for d in decls
        if not (d.role == Role.FEATURE and d.name in dropped and d.name not in used)
    ]
    return out


def _name(ref: Any) -> str:
    return ref.name if isinstance(ref, NodeRef) else str(ref)


def _referenced(refs: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for value in refs.values():
        items = value if isinstance(value, list | tuple) else [value]
        names.update(v.name for v in items if isinstance(v, NodeRef))
    return names
