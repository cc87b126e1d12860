"""Each node's inputs, resolved and type-checked against the role table.

A role's declared references (``RoleSpec.inputs`` with a ``ref``) are resolved
the same way for every role; sources, features and examples have builders of
their own (a source has an operator to check, a feature reads the columns its
operator names, examples read a label column), and a role whose nodes read one
split of examples (``RoleSpec.split``) has that split checked against its source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from helix_tf.compiler._declared import Declared
from helix_tf.components.base import Operator, did_you_mean
from helix_tf.components.features import Feature
from helix_tf.components.features._label import LABELS
from helix_tf.components.learners import Learner
from helix_tf.components.metrics import Metric, metric_key_problems
from helix_tf.components.sources import Source
from helix_tf.roles import ROLE_SPECS, Input, Role
from helix_tf.types import NodeRef
from helix_tf.workflow import Declaration

__all__ = ["Edges", "wrong_operator"]


def wrong_operator(value: Any, needs: str) -> str:
    """What a declaration's operator slot needs (``needs``) and what it was given instead:
    a class not called (``learners.Linear``) with the call to write, a text or another
    operator by what it is."""
    if isinstance(value, type):
        spelled = _public_name(value)
        return f"{needs}, got the class {spelled}; call it: {spelled}()"
    shown = type(value).__name__ if isinstance(value, Operator) else repr(value)
    return f"{needs}, got {shown}"


def _public_name(cls: type) -> str:
    """``learners.Linear`` for a class of a public namespace, else the class's name."""
    parts = cls.__module__.split(".")
    if parts[:2] == ["helix_tf", "components"] and len(parts) > 2:
        namespace = parts[2]
        if namespace in ("sources", "features", "learners", "metrics"):
            return f"{namespace}.{cls.__name__}"
    return cls.__name__


class Edges:
    """Builds the inputs of every declared node, reporting problems to ``declared``."""

    def __init__(self, declared: Declared) -> None:
        self.declared = declared
        #: The source whose raw columns a node reads: a feature's, an evaluate node's.
        self.sources: dict[str, str | None] = {}
        #: The source of each examples node.
        self.examples_source: dict[str, str] = {}
        self._builders: dict[Role, Callable[[Declaration], list[str]]] = {
            Role.SOURCE: self._source,
            Role.FEATURE: self._feature,
            Role.EXAMPLES: self._examples,
        }
        self._checks: dict[Role, Callable[[Declaration], None]] = {
            Role.EVALUATE: self._check_metrics,
            Role.TRAIN: self._check_train,
        }

    def build(self) -> dict[str, list[str]]:
        """Inputs per node name, in declaration order."""
        return {
            name: self._builders.get(d.role, self._declared_inputs)(d)
            for name, d in self.declared.decls.items()
        }

    def _resolve(self, d: Declaration, inp: Input) -> list[str]:
        value = d.refs.get(inp.ref) if inp.ref is not None else None
        refs = (value or []) if inp.many else [value]
        return [name for ref in refs if (name := self.declared.input(d, inp, ref))]

    def _declared_inputs(self, d: Declaration) -> list[str]:
        """The references of the role's table entry, its split and its own checks."""
        spec = ROLE_SPECS[d.role]
        resolved = {inp.ref: self._resolve(d, inp) for inp in spec.inputs if inp.ref is not None}
        examples = resolved.get("examples")
        if spec.split is not None and examples:
            self.check_split(d, examples[0], d.refs.get("split", spec.split))
        check = self._checks.get(d.role)
        if check is not None:
            check(d)
        return [name for names in resolved.values() for name in names]

    def _source(self, d: Declaration) -> list[str]:
        if not isinstance(d.op, Source):
            self.declared.problem(d, wrong_operator(d.op, "wf.source needs a sources.* operator"))
        else:
            problems = d.op.check()
            for p in problems:
                self.declared.problem(d, p)
            if problems:  # its files said why already: no second "cannot read the schema"
                self.declared.reported.add(d.name)
        return []

    def _examples(self, d: Declaration) -> list[str]:
        ins: list[str] = []
        src = self.declared.source_of(d, d.refs.get("source"))
        if src:
            ins.append(src)
            self.examples_source[d.name] = src
            self._check_label(d, src)
        if not isinstance(d.refs.get("features"), list):
            self.declared.problem(
                d,
                "features must be a list of feature nodes (wf.examples(name, [a, b], "
                f"label=...)), but got {d.refs.get('features')!r}",
            )
            return ins
        if not d.refs.get("features"):
            self.declared.problem(d, "examples need at least one feature")
        names = [getattr(r, "name", r) for r in d.refs.get("features") or []]
        twice = sorted({str(n) for n in names if names.count(n) > 1})
        if twice:  # the model would get two inputs of one name (Keras refuses, late)
            self.declared.problem(
                d,
                f"the feature list names {', '.join(map(repr, twice))} more than once; "
                "list each feature once",
            )
        ins += self._resolve(d, ROLE_SPECS[Role.EXAMPLES].input("feature"))
        return ins

    def _check_label(self, d: Declaration, src: str) -> None:
        label = d.op
        cols = self.declared.columns(src)
        if not isinstance(label, LABELS):
            needs = (
                "label must be features.Label, features.MulticlassLabel or features.NumericLabel"
            )
            self.declared.problem(d, wrong_operator(label, needs))
        elif cols and label.column not in cols:
            self.declared.problem(
                d,
                f"label column {label.column!r} is not a column of source "
                f"{src!r}{did_you_mean(label.column, cols)}",
            )

    def _feature(self, d: Declaration) -> list[str]:
        op = d.op
        if not isinstance(op, Feature):
            self.declared.problem(d, wrong_operator(op, "wf.feature needs a features.* operator"))
            return []
        ins: list[str] = []
        needs_source = op.reads_whole_row() or any(isinstance(r, str) for r in op.inputs())
        src = self.declared.source_of(d, d.refs.get("source")) if needs_source else None
        self.sources[d.name] = src
        if src:
            ins.append(src)
        cols = self.declared.columns(src) if src else {}
        inp = ROLE_SPECS[Role.FEATURE].input("input")
        for r in op.inputs():
            if isinstance(r, str):
                if src and cols and r not in cols:
                    self.declared.problem(
                        d,
                        f"{op.op_name} reads column {r!r}, which source {src!r} does not have"
                        f"{did_you_mean(r, cols)}",
                    )
            else:
                name = self.declared.input(d, inp, r)
                if name and name not in ins:
                    ins.append(name)
        return ins

    def _check_metrics(self, d: Declaration) -> None:
        ms = d.refs.get("metrics") or []
        if not ms:
            self.declared.problem(d, "evaluate needs at least one metric")
        for m in ms:
            if not isinstance(m, Metric):
                self.declared.problem(d, wrong_operator(m, "evaluate takes metrics.* operators"))
        if all(isinstance(m, Metric) for m in ms):  # two metrics of one name: before training
            for problem in metric_key_problems(ms):
                self.declared.problem(d, problem)

    def _check_train(self, d: Declaration) -> None:
        if not isinstance(d.op, Learner):
            self.declared.problem(d, wrong_operator(d.op, "wf.train needs a learners.* operator"))
        else:
            self._check_feature_parts(d)

    def _check_feature_parts(self, d: Declaration) -> None:
        """A learner that feeds named features to parts of its model (``WideDeep(wide=...,
        deep=...)``) names features of the examples it trains on."""
        ref = d.refs.get("examples")
        ex = self.declared.decls.get(ref.name) if isinstance(ref, NodeRef) else None
        if ex is None or ex.role != Role.EXAMPLES or not isinstance(ex.refs.get("features"), list):
            return
        features = [getattr(r, "name", r) for r in ex.refs["features"]]
        for part in ("wide", "deep"):
            chosen = getattr(d.op, part, None)
            if not isinstance(chosen, tuple):
                continue
            for name in chosen:
                if name not in features:
                    self.declared.problem(
                        d,
                        f"{part}= names {name!r}, which is not a feature of examples "
                        f"{ex.name!r}{did_you_mean(str(name), features)}; its features are: "
                        f"{', '.join(map(str, features))}",
                    )

    def check_split(self, d: Declaration, examples: str, split: Any) -> None:
        """``d`` reads ``split`` of ``examples``: the source must have that split."""
        src = self.examples_source.get(examples)
        op = self.declared.decls[src].op if src else None
        if not isinstance(op, Source):
            return
        try:
            splits = op.splits()
        except Exception:  # reported by the source's own checks
            return
        if split in splits:
            return
        fix = (
            "give the source a test split: test=<file(s)>, or test_fraction=0.2 for a seeded "
            "split of the train rows"
            if split == "test"
            else f"give the source a {split!r} split, or read one of its splits"
        )
        if d.role == Role.PREDICT:
            fix += f", or predict on one of its splits (wf.predict(..., split={splits[0]!r}))"
        self.declared.problem(
            d,
            f"{ROLE_SPECS[d.role].split_verb} split {split!r} of examples {examples!r}, but "
            f"source {src!r} ({op.op_name}) has only the split(s) "
            f"{', '.join(map(repr, splits))}; {fix}",
        )

    def add_raw_column_sources(self, inputs: dict[str, list[str]]) -> None:
        """Evaluate nodes whose metrics read raw columns get the examples' source as input."""
        for name in self.declared.of_role(Role.EVALUATE):
            source = self._raw_column_source(name, inputs)
            if source is not None:
                self.sources[name] = source
                if source not in inputs[name]:
                    inputs[name].append(source)

    def _raw_column_source(self, name: str, inputs: dict[str, list[str]]) -> str | None:
        d = self.declared.decls[name]
        if not inputs.get(name):
            return None
        metrics = [m for m in d.refs.get("metrics") or [] if isinstance(m, Metric)]
        needed = sorted({c for m in metrics for c in m.columns()})
        if not needed:
            return None
        pred = self.declared.decls[inputs[name][0]]
        ex_ref = pred.refs.get("examples")
        ex = self.declared.decls.get(ex_ref.name) if isinstance(ex_ref, NodeRef) else None
        src = inputs.get(ex.name, [None])[0] if ex is not None else None
        if src is None or self.declared.decls[src].role != Role.SOURCE:
            return None
        cols = self.declared.columns(src)
        for c in needed:
            if cols and c not in cols:
                self.declared.problem(
                    d,
                    f"a metric reads column {c!r}, which source {src!r} does not have"
                    f"{did_you_mean(c, cols)}",
                )
        return src
