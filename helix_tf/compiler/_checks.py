"""Checks across nodes: feature value kinds, what a model can read, metrics and scorings by task.

Plain functions over the :class:`~helix_tf.compiler._declared.Declared` nodes and
their resolved inputs; each reports its problems there.
"""

from __future__ import annotations

from collections.abc import Mapping

from helix_tf.compiler._declared import Declared
from helix_tf.components.explain import Explain
from helix_tf.components.features import Feature
from helix_tf.components.metrics import Metric
from helix_tf.roles import Role
from helix_tf.types import MODEL_INPUT_KINDS, NUMERIC, STRING, TOKENS, NodeRef

__all__ = ["check_metric_tasks", "check_model_inputs", "feature_kinds", "resolve_explain_tasks"]

#: The value kind of a feature whose kind cannot be known (a broken input).
UNKNOWN = "?"


def feature_kinds(
    declared: Declared, order: list[str], sources: Mapping[str, str | None]
) -> dict[str, str]:
    """Value kinds of features, in topological order (``?`` where an input is unknown)."""
    kinds: dict[str, str] = {}
    for name in order:
        d = declared.decls[name]
        if d.role != Role.FEATURE or not isinstance(d.op, Feature):
            continue
        op = d.op
        src = sources.get(name)
        cols = declared.columns(src) if src else {}
        ins = []
        for r in op.inputs():
            if isinstance(r, str):
                t = cols.get(r)
                ins.append(STRING if t == "string" else NUMERIC if t else UNKNOWN)
            else:  # a reference that is no node was reported by the edges
                ins.append(kinds.get(r.name, UNKNOWN) if isinstance(r, NodeRef) else UNKNOWN)
        if UNKNOWN in ins:
            kinds[name] = UNKNOWN
            continue
        problems = op.check_input_kinds(ins)
        for p in problems:
            declared.problem(d, p)
        try:
            kinds[name] = op.output_kind(ins) if not problems else UNKNOWN
        except ValueError as exc:
            declared.problem(d, str(exc))
            kinds[name] = UNKNOWN
    return kinds


def check_model_inputs(
    declared: Declared, inputs: Mapping[str, list[str]], kinds: Mapping[str, str]
) -> None:
    """Every feature of an examples node must be of a kind a model reads."""
    for name in declared.of_role(Role.EXAMPLES):
        for f in inputs.get(name, []):
            kind = kinds.get(f)
            if declared.decls[f].role == Role.FEATURE and kind not in (*MODEL_INPUT_KINDS, UNKNOWN):
                hint = (
                    "encode it with features.Vocabulary(...) or features.TfIdf(...)"
                    if kind in (STRING, TOKENS)
                    else "encode it first"
                )
                declared.problem(
                    declared.decls[name],
                    f"feature {f!r} is {kind}, which a model cannot read; {hint}",
                )


def check_metric_tasks(declared: Declared) -> None:
    """Every metric must fit the task of the label its predictions come from."""
    from helix_tf.components.metrics import metric_problem

    for name in declared.of_role(Role.EVALUATE):
        d = declared.decls[name]
        label = declared.label_of(d.refs.get("predictions"))
        if label is None:
            continue
        for m in d.refs.get("metrics") or []:
            problem = metric_problem(m, label) if isinstance(m, Metric) else None
            if problem:
                declared.problem(d, problem)


def resolve_explain_tasks(declared: Declared) -> None:
    """Every explain node's scorings follow its label: defaults filled in, misfits reported.

    The resolved scorings are the spec's parameters from here on, so the
    fingerprint names the scorings used (a binary label's defaults give the
    spec it always had, and the same fingerprint).
    """
    for name in declared.of_role(Role.EXPLAIN):
        d = declared.decls[name]
        if not isinstance(d.op, Explain):
            continue
        label = declared.label_of_examples(d.refs.get("examples"))
        if label is None:
            continue
        op, problems = d.op.for_label(label)
        for problem in problems:
            declared.problem(d, problem)
        if op is not d.op:
            declared.replace_op(name, op)
