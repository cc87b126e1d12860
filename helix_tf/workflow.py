"""The public declaration API: a ``Workflow`` of named operators.

A config module builds one ``Workflow``; every method declares one node and
returns a :class:`~helix_tf.types.NodeRef` to pass to later declarations.
Declaring records what was asked and where (file and line); all checks that
need the whole graph happen in :func:`helix_tf.compiler.graph.compile_workflow`,
which reports every problem of a config at once.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from helix_tf.components.base import Operator, did_you_mean
from helix_tf.components.explain import Explain
from helix_tf.components.features import Feature, Label, MulticlassLabel, NumericLabel, Udf
from helix_tf.components.learners import Learner
from helix_tf.components.metrics import Metric
from helix_tf.components.sources import Source
from helix_tf.errors import ConfigError
from helix_tf.roles import Role
from helix_tf.types import NodeRef

__all__ = ["Workflow", "Declaration"]

#: The roles a declaration can have, in the order data flows (see :mod:`helix_tf.roles`).
ROLES = tuple(Role)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Declaration:
    """One declared node, as the user wrote it."""

    name: str
    role: Role
    op: Operator | None
    refs: dict[str, Any]  # role-specific references (NodeRefs, lists of them, strings)
    file: str | None
    line: int | None

    @property
    def where(self) -> str:
        """``file:line`` of the declaration, for messages."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}"


_HERE = os.path.dirname(os.path.abspath(__file__))


def _not_a_label_param(node: str, param: str, label: Operator) -> str:
    """Why ``-p EXAMPLES.PARAM`` cannot be set: an examples node's only parameters are
    its label's, and its features are the config's list (structural edits add to it)."""
    known = sorted(label.params())
    return (
        f"node {node!r} (examples) is set through its label, {label.op_name}, whose "
        f"parameters are: {', '.join(known)}; {param!r} is not one of them"
        f"{did_you_mean(param, known)}. Which features the examples hold is the config's "
        "list, not a parameter: add one with -p add:COLUMN=numeric (or "
        "-p bucketize:FEATURE='18,30,45', -p cross:A*B=1000), or edit the config"
    )


def _caller() -> tuple[str | None, int | None]:
    """The first stack frame outside helix_tf: where the user declared the node."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_HERE + os.sep):
            return path, frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return None, None


class Workflow:
    """A named pipeline: sources → features → examples → train → predict → evaluate (explain).

    Parameters
    ----------
    name:
        The workflow's name: its history, store entries and agent study are
        kept under it.

    Examples
    --------
    >>> from helix_tf import Workflow, sources, features as F
    >>> wf = Workflow("demo")
    >>> wf.name
    'demo'
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a workflow needs a non-empty name, but got {name!r}")
        self.name = name
        self.declarations: list[Declaration] = []
        self.outputs: list[str] = []
        self.notes: list[str] = []
        self._output_where: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        # Only for names the class does not have: a misspelt method ("wf.trian").
        if name.startswith("_"):
            raise AttributeError(name)
        methods = [m for m in dir(type(self)) if not m.startswith("_")]
        known = methods + [a for a in vars(self) if not a.startswith("_")]
        raise AttributeError(
            f"Workflow has no attribute {name!r}{did_you_mean(name, known)}; "
            f"its methods are: {', '.join(methods)}"
        )

    def note(self, text: str) -> None:
        """Attach a note that every run of this workflow reports (e.g. "generated data")."""
        self.notes.append(text)

    # ------------------------------------------------------------------ declarations

    def _declare(self, name: str, role: Role, op: Operator | None, **refs: Any) -> NodeRef:
        file, line = _caller()
        self.declarations.append(
            Declaration(name=name, role=role, op=op, refs=refs, file=file, line=line)
        )
        return NodeRef(name, self.name)

    def source(self, name: str, source: Source) -> NodeRef:
        """Declare a data source (``sources.Csv``, ``Parquet``, ``TFRecord``, ``Tfds``)."""
        return self._declare(name, Role.SOURCE, source)

    def feature(self, name: str, op: Feature, *, source: NodeRef | None = None) -> NodeRef:
        """Declare a feature column computed by ``op`` from a source's rows.

        ``source`` may be omitted when the workflow has exactly one source.
        """
        return self._declare(name, Role.FEATURE, op, source=source)

    def udf(
        self,
        name: str,
        *,
        batched: bool = False,
        output: str = "numeric",
        size: int | None = None,
        source: NodeRef | None = None,
        files: Sequence[str | os.PathLike[str]] | str = (),
    ) -> Callable[[Callable[..., Any]], NodeRef]:
        """Decorator: declare a feature computed by a Python function.

        ``batched=False`` calls ``fn(row: dict)`` per row; ``batched=True``
        calls ``fn(batch: DataFrame)`` once per batch and is much faster.
        ``files`` names the files the function reads (a lookup table): their
        content joins its fingerprint. The decorated name becomes the node's reference.
        """

        def decorate(fn: Callable[..., Any]) -> NodeRef:
            op = Udf(fn, batched=batched, output=output, size=size, files=files)
            return self.feature(name, op, source=source)

        return decorate

    def examples(
        self,
        name: str,
        features: Sequence[NodeRef],
        *,
        label: Label | MulticlassLabel | NumericLabel,
        source: NodeRef | None = None,
    ) -> NodeRef:
        """Declare the model's inputs: the listed feature columns plus the label.

        The label decides the task: ``features.Label`` (binary), ``MulticlassLabel``
        (softmax over classes) or ``NumericLabel`` (regression).
        """
        listed = list(features) if isinstance(features, list | tuple) else features
        return self._declare(name, Role.EXAMPLES, label, features=listed, source=source)

    def train(self, name: str, examples: NodeRef, learner: Learner) -> NodeRef:
        """Declare a model trained on the training split of ``examples``."""
        return self._declare(name, Role.TRAIN, learner, examples=examples)

    def predict(
        self, name: str, model: NodeRef, examples: NodeRef, *, split: str = "test"
    ) -> NodeRef:
        """Declare the model's scores on one split of ``examples`` (``test`` by default)."""
        return self._declare(name, Role.PREDICT, None, model=model, examples=examples, split=split)

    def evaluate(
        self, name: str, predictions: NodeRef, *metrics: Metric | Sequence[Metric]
    ) -> NodeRef:
        """Declare evaluation reducers over predictions (accuracy, AUC, sliced, custom ...)."""
        flat: list[Any] = []
        for m in metrics:
            flat.extend(m if isinstance(m, list | tuple) else [m])
        return self._declare(name, Role.EVALUATE, None, predictions=predictions, metrics=flat)

    def explain(
        self,
        name: str,
        model: NodeRef,
        examples: NodeRef,
        *,
        split: str = "test",
        repeats: int = 2,
        max_rows: int = 5_000,
        seed: int = 0,
        scoring: str | Sequence[str] | None = None,
    ) -> NodeRef:
        """Declare what ``model`` learned per feature, judged on one split of ``examples``.

        The node's result (computed once per model and split, then stored and
        loaded like any node's) holds each feature's permutation importance (how
        much each scoring worsens when its values are shuffled, ``repeats`` times
        over at most ``max_rows`` rows) and, for linear parts, the weights of every
        feature value (per class for a multiclass label). ``scoring`` names
        scorings of ``helix_tf.components.explain.SCORINGS`` that fit the label;
        by default they follow it: ``auc`` and ``log_loss`` (binary),
        ``multiclass_accuracy`` and ``multiclass_log_loss`` (multiclass), ``rmse``
        and ``r2`` (regression). Make it an output (``wf.output(...)``) to have it
        in every run; ``helix-tf report`` and ``RunResult.explanation()`` show it.
        """
        chosen = (
            None if scoring is None else tuple([scoring] if isinstance(scoring, str) else scoring)
        )
        op = Explain(repeats=repeats, max_rows=max_rows, seed=seed, scoring=chosen)
        return self._declare(name, Role.EXPLAIN, op, model=model, examples=examples, split=split)

    def output(self, *nodes: NodeRef) -> None:
        """Mark nodes as outputs: they are always available after a run."""
        file, line = _caller()
        for node in nodes:
            name = node.name if isinstance(node, NodeRef) else node
            if name not in self.outputs:
                self.outputs.append(name)
                self._output_where[name] = f"{file}:{line}" if file else ""

    # ------------------------------------------------------------------ overrides

    def declaration(self, name: str) -> Declaration:
        for d in self.declarations:
            if d.name == name:
                return d
        raise KeyError(name)

    def override(self, node: str, param: str, value: Any) -> None:
        """Replace one operator parameter (``-p node.param=value``)."""
        from helix_tf.components.base import did_you_mean

        names = [d.name for d in self.declarations]
        if node not in names:
            raise ConfigError(
                f"-p {node}.{param}: workflow {self.name!r} has no node {node!r}"
                f"{did_you_mean(node, names)}; nodes are: {', '.join(names)}"
            )
        i = names.index(node)
        decl = self.declarations[i]
        if decl.op is None:
            raise ConfigError(f"-p {node}.{param}: node {node!r} ({decl.role}) has no parameters")
        try:
            new_op = decl.op.with_params(**{param: value})
        except ConfigError as exc:
            problems = exc.problems
            if decl.role == Role.EXAMPLES and param not in decl.op.params():
                problems = [_not_a_label_param(node, param, decl.op)]
            raise ConfigError([f"-p {node}.{param}={value!r}: {p}" for p in problems]) from None
        self.declarations[i] = dataclasses.replace(decl, op=new_op)
