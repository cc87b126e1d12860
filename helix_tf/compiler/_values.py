"""Views of declared values the compiler needs: for hashing, for display, and the approx facts.

Plain functions over a declaration's values (operators, node references, user
callables); the fingerprint and the compiled node's facts are built from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from helix_tf.compiler.hashing import canonical_json, code_fingerprint
from helix_tf.components.base import Operator
from helix_tf.roles import Role
from helix_tf.types import NodeRef
from helix_tf.workflow import Declaration

__all__ = [
    "article",
    "callable_label",
    "callables",
    "code_identity",
    "display",
    "op_params",
    "source_sample",
    "substitute",
    "train_approx",
]


def article(word: str) -> str:
    """``a`` or ``an``, for messages."""
    return "an" if word[:1] in "aeiou" else "a"


def substitute(value: Any, fps: Mapping[str, str]) -> Any:
    """Replace node references by their fingerprints (for hashing)."""
    if isinstance(value, NodeRef):
        return {"__input__": fps.get(value.name, "?")}
    if isinstance(value, list | tuple):
        return [substitute(v, fps) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, fps) for k, v in value.items()}
    return value


def display(value: Any) -> Any:
    """A JSON-able view of a parameter value, for history and diff."""
    if isinstance(value, NodeRef):
        return value.name
    if isinstance(value, list | tuple):
        return [display(v) for v in value]
    if isinstance(value, dict):
        return {str(k): display(v) for k, v in value.items()}
    if isinstance(value, Operator):
        return {"op": value.op_name, "params": op_params(value)}
    if callable(value):
        return f"<function {getattr(value, '__qualname__', type(value).__name__)}>"
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return json.loads(canonical_json(value))


def op_params(op: Operator) -> dict[str, Any]:
    """The displayed parameters of an operator."""
    return {k: display(v) for k, v in op.params().items()}


def code_identity(op: Operator | None) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """For the operator's callable parameters: name -> code digest, and name -> the
    parts of that digest (``CodeFingerprint.parts``), from one fingerprint each."""
    digests: dict[str, str] = {}
    parts: dict[str, dict[str, str]] = {}
    for k, v in (op.params() if op is not None else {}).items():
        if callable(v) and not isinstance(v, Operator | NodeRef):
            fp = code_fingerprint(v)
            digests[k] = fp.digest
            if fp.parts:
                parts[k] = dict(fp.parts)
    return digests, parts


def _nested(value: Any) -> Iterator[Any]:
    """A parameter value and every value inside it: operators' parameters, mappings'
    values, list items (not what a node reference names)."""
    yield value
    if isinstance(value, Operator):
        children: Any = value.params().values()
    elif isinstance(value, Mapping):
        children = value.values()
    elif isinstance(value, list | tuple):
        children = value
    else:
        return
    for v in children:
        yield from _nested(v)


def callables(value: Any) -> Iterator[Any]:
    """The user callables inside a parameter value (operators' parameters included)."""
    for v in _nested(value):
        if callable(v) and not isinstance(v, type | Operator | Mapping | list | tuple | NodeRef):
            yield v


def operators(value: Any) -> Iterator[Operator]:
    """The operators inside a parameter value, each operator's nested ones included."""
    return (v for v in _nested(value) if isinstance(v, Operator))


def callable_label(fn: Any) -> str:
    """``module.qualname`` of a callable, for messages."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def source_sample(approx: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The row sample a source applies (approximate runs placed at the source)."""
    if not approx or approx.get("placement") != Role.SOURCE:
        return None
    return {"fraction": approx["sample"], "seed": approx["seed"]}


def train_approx(d: Declaration, approx: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What an approximate run changes in a train node: sample, precision, epochs (the exact
    run's steps over the sample), when it stops sooner (``plateau``: its training loss
    fell by less than the sample resolves; ``helix_tf.approx.settings``), and its training loop (``light``: a
    traced step over seeded numpy batches, not Keras' ``fit``;
    ``helix_tf.components._light_fit``)."""
    if not approx:
        return None
    from helix_tf.approx.settings import (
        PLATEAU_EPOCHS,
        PLATEAU_ERRORS,
        PLATEAU_SHARE,
        resolve_precision,
    )

    op_name = d.op.op_name if d.op is not None else ""
    return {
        "sample": approx["sample"] if approx.get("placement") == Role.TRAIN else None,
        "seed": approx["seed"],
        "precision": resolve_precision(approx["precision"], op_name, bool(approx.get("bf16_fast"))),
        "epochs_scale": approx["epochs_scale"],
        "fraction": approx["sample"],  # the exact run's steps are matched by batches
        "plateau": {"errors": PLATEAU_ERRORS, "share": PLATEAU_SHARE, "epochs": PLATEAU_EPOCHS},
        "loop": "light",
        # 2: the step gathers its batch in the graph (issue 9): FTRL's weights moved in
        # their last bits, so a model the loop before stored is not reused. 3: a bag's
        # width is open in the traced step (any sample's bags on one trainer). 4: an
        # epoch is one traced loop over its batches (issue 9, session 11). 5: a linear
        # learner steps over one table of its weights (components._linear_step).
        "loop_version": 5,
    }
