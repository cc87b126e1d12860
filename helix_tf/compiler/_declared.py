"""The declarations of a workflow by name, references between them, and the problems found.

:class:`Declared` is what every compile check reads and reports to: it resolves
a reference to a declared node of an allowed role (the role table's ``inputs``),
finds a node's source and a source's columns, and collects every problem with
the file and line of the declaration, so a config's problems are reported
together.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from helix_tf.compiler._values import article
from helix_tf.components.base import Operator, did_you_mean
from helix_tf.components.features._label import LABELS
from helix_tf.components.sources import Source
from helix_tf.roles import ROLE_SPECS, Input, Role
from helix_tf.types import NodeRef
from helix_tf.workflow import Declaration, Workflow

__all__ = ["Declared"]


class Declared:
    """The declarations of ``wf`` by name (the first of each name), and the problems found."""

    def __init__(self, wf: Workflow) -> None:
        self.wf = wf
        self.problems: list[str] = []
        #: Each source's schema (empty where it cannot be read), read once.
        self._schemas: dict[str, dict[str, str]] = {}
        #: The sources whose own check reported a problem with their files.
        self.reported: set[str] = set()
        self.decls: dict[str, Declaration] = {}
        for d in wf.declarations:
            if not isinstance(d.name, str) or not d.name or "/" in d.name:
                self.problem(d, f"node names must be non-empty and contain no '/', got {d.name!r}")
                continue
            if d.name in self.decls:
                first = self.decls[d.name]
                self.problem(
                    d, f"duplicate name: already declared at {first.where or 'an earlier line'}"
                )
                continue
            self.decls[d.name] = d
        if not self.decls:
            self.problems.append(f"workflow {wf.name!r} declares no nodes")

    def problem(self, decl: Declaration | None, text: str) -> None:
        """Record a problem of ``decl`` (its file and line, its name, then ``text``)."""
        where = f"{decl.where}: " if decl is not None and decl.where else ""
        who = f"node {decl.name!r}: " if decl is not None else ""
        self.problems.append(f"{where}{who}{text}")

    def replace_op(self, name: str, op: Operator) -> None:
        """The node's operator, as resolved by a check (an explain node's scorings)."""
        self.decls[name] = dataclasses.replace(self.decls[name], op=op)

    def of_role(self, role: Role) -> list[str]:
        """The names of the nodes of ``role``, in declaration order."""
        return [n for n, d in self.decls.items() if d.role == role]

    def input(self, decl: Declaration, inp: Input, ref: Any) -> str | None:
        """Resolve ``ref`` as the input ``inp`` of ``decl`` (its allowed roles from the table)."""
        return self.ref(decl, ref, inp.what, inp.roles)

    def ref(self, decl: Declaration, ref: Any, what: str, roles: tuple[Role, ...]) -> str | None:
        """Resolve a reference, checking that it names a node of one of ``roles``."""
        if not isinstance(ref, NodeRef):
            self.problem(
                decl,
                f"{what} must be a node returned by the workflow, but got {_shown(ref)}"
                f"{_callable_hint(ref)}{self._name_hint(ref, what)}",
            )
            return None
        if ref.workflow and ref.workflow != self.wf.name:
            self.problem(decl, f"{what} {ref.name!r} belongs to workflow {ref.workflow!r}")
            return None
        target = self.decls.get(ref.name)
        if target is None:
            self.problem(
                decl,
                f"{what} {ref.name!r} is not declared{did_you_mean(ref.name, self.decls)}",
            )
            return None
        if target.role not in roles:
            expected = " or ".join(roles)
            produced = ROLE_SPECS[target.role].output
            self.problem(
                decl,
                f"{what} {ref.name!r} is {article(produced)} {produced} ({target.role} node), but "
                f"{decl.role} {what} must be {article(expected)} {expected} node",
            )
            return None
        return ref.name

    def _name_hint(self, value: Any, what: str) -> str:
        """How to pass a node given by its name (or a raw column where a feature is due)."""
        if not isinstance(value, str):
            return ""
        if value in self.decls:
            return (
                f"; pass the reference its wf.{self.decls[value].role}(...) returned, not its name"
            )
        return (
            "; a raw column becomes a model input through a feature: "
            f'wf.feature("{value}", F.Numeric("{value}")) or F.Vocabulary(...)'
        )

    def source_of(self, decl: Declaration, explicit: Any) -> str | None:
        """The source ``decl`` reads: the one named, else the workflow's only source."""
        if explicit is not None:
            return self.input(decl, ROLE_SPECS[decl.role].input("source"), explicit)
        srcs = self.of_role(Role.SOURCE)
        if len(srcs) == 1:
            return srcs[0]
        if not srcs:
            self.problem(decl, "the workflow declares no source; add wf.source(...) first")
        else:
            self.problem(
                decl, f"several sources ({', '.join(srcs)}): pass source=... to say which one"
            )
        return None

    def columns(self, source: str) -> dict[str, str]:
        """The schema of a declared source (its problem reported when it cannot be read)."""
        if source in self._schemas:
            return self._schemas[source]
        op = self.decls[source].op
        schema: dict[str, str] = {}
        if isinstance(op, Source):  # else reported by the source's own check
            try:
                schema = op.schema()
            except Exception as exc:  # once, however many nodes read the source
                if source not in self.reported:  # (a garbage Parquet file: said once)
                    self.problem(self.decls[source], f"cannot read the schema: {exc}")
        self._schemas[source] = schema
        return schema

    def label_of(self, predictions: Any) -> Operator | None:
        """The label operator behind a predict node (None when a reference is broken)."""
        pred = self.decls.get(predictions.name) if isinstance(predictions, NodeRef) else None
        ex_ref = (
            pred.refs.get("examples") if pred is not None and pred.role == Role.PREDICT else None
        )
        return self.label_of_examples(ex_ref)

    def label_of_examples(self, examples: Any) -> Operator | None:
        """The label operator of an examples node (None when the reference is broken)."""
        ex = self.decls.get(examples.name) if isinstance(examples, NodeRef) else None
        if ex is None or ex.role != Role.EXAMPLES or not isinstance(ex.op, LABELS):
            return None  # a broken reference, or a label reported by the examples' check
        return ex.op


def _shown(value: Any) -> str:
    """A value for a message: a function by its name, not its address."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"function {value.__qualname__}"
    return repr(value)


def _callable_hint(value: Any) -> str:
    """How to use a function (or an operator) where a node is expected."""
    if isinstance(value, Operator):  # F.Numeric(F.Udf(f)): the inner one is no node yet
        kind = value.KIND
        return (
            f"; an operator is not a node: declare it first as a {kind} node, e.g. "
            f'inner = wf.{kind}("inner", {value.op_name}(...)), and pass inner'
            if kind in (Role.FEATURE, Role.SOURCE)
            else "; an operator is not a node: declare it with the workflow and pass that"
        )
    if not callable(value):
        return ""
    if getattr(value, "__qualname__", "").startswith("Workflow.udf."):
        return (
            '; wf.udf(...) is a decorator: write @wf.udf("name") above a def and pass '
            "the name it binds"
        )
    return (
        '; to compute a feature with a function, declare it with @wf.udf("name") above '
        'its def (or wf.udf("name")(function)) and pass what that returns'
    )
