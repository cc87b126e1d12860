"""Node roles and node states, and the one table that says what each role is.

Pure data, no heavy imports: the workflow, the compiler, the planner, approx and
the engine all read it.

The words, and what each one means
-----------------------------------
role (:class:`Role`)
    What a node does in the workflow: the ``Workflow`` method that declared it
    (``wf.train(...)`` declares a ``train`` node). ``Declaration.role``,
    ``CompiledNode.role`` and the ``role`` key of a compiled DAG's JSON.
state (:class:`NodeState`)
    What a plan does with a node in one run: compute it, load its stored result,
    or prune it. ``NodeDecision.state``, ``NodeResult.state``, the metadata's
    ``node_runs.state``.
split (:class:`Split`)
    One part of a source's rows: ``train`` (what training and analyzers read)
    or ``test``. Not a role: ``RoleSpec.split`` names the split a role reads,
    batch keys start with theirs.
stage (:class:`Stage`)
    The coarse step users see in tables and ``--json``: features and examples
    are both ``preprocess``. Public and stored under the name ``kind``
    (``CompiledNode.kind``, ``NodeDecision.kind``, the JSON key ``"kind"``);
    kept under that name there because runs already recorded use it.
artifact kind (:class:`helix_tf.types.ArtifactKind`)
    What flows along an edge: a table, examples, a model, ... A compiled node's
    ``output_type`` is its role's artifact kind, and for a feature
    ``"feature:<value kind>"`` (see :func:`output_type`).
value kind (:class:`helix_tf.types.ValueKind`)
    The values of one feature column: numeric, string, categorical, tokens, bag.
    ``CompiledNode.value_kind``; what ``Feature.output_kind`` returns.
``Operator.KIND``
    The family of an operator class, for messages ("learner", "metric",
    "label"): a property of the operator, not of the node that uses it.

Every enum here is a :class:`helix_tf.types.Vocabulary` (a :class:`enum.StrEnum`):
its members equal their string values (``Role.TRAIN == "train"``), format,
serialise to JSON and ``repr`` as them, and fingerprints hash them as them, so
stored fingerprints, stored compiled DAGs, messages and code that still compares
strings all stay the same.

The role table
--------------
:data:`ROLE_SPECS` holds one :class:`RoleSpec` per role: the roles each of its
inputs may have, the facts that join its fingerprint and those its compiled node
carries, its output artifact kind, its default compute cost and the engine step
that executes it. The compiler, the planner's cost model, approx and the engine
read it. Adding a role is one entry here, a ``Workflow`` method that declares
it, and its executor (the engine step named by ``step``); see
docs/ARCHITECTURE.md, "Roles: adding one".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from helix_tf.types import ArtifactKind, Vocabulary

__all__ = [
    "Role",
    "NodeState",
    "Stage",
    "Split",
    "Input",
    "RoleSpec",
    "ROLE_SPECS",
    "role_spec",
    "output_type",
    "PREPROCESS_STEP",
    "state_counts",
]


class Role(Vocabulary):
    """What a node does in the workflow (the ``Workflow`` method that declared it)."""

    SOURCE = "source"
    FEATURE = "feature"
    EXAMPLES = "examples"
    TRAIN = "train"
    PREDICT = "predict"
    EVALUATE = "evaluate"
    EXPLAIN = "explain"


class NodeState(Vocabulary):
    """What a plan does with a node in one run."""

    COMPUTE = "compute"  # run its operator
    LOAD = "load"  # read its stored result
    PRUNE = "prune"  # neither: nothing this run needs reads it


class Stage(Vocabulary):
    """The coarse step users see (public and stored as ``kind``)."""

    SOURCE = "source"
    PREPROCESS = "preprocess"
    TRAIN = "train"
    PREDICT = "predict"
    EVALUATE = "evaluate"
    EXPLAIN = "explain"


class Split(Vocabulary):
    """One part of a source's rows (a batch key's first element)."""

    TRAIN = "train"  # what training, and every analyzer, reads
    TEST = "test"  # held out: what predict and explain read unless told otherwise


#: The engine step that runs every preprocessing node together (one batch pipeline).
PREPROCESS_STEP = "preprocess"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Input:
    """One input a node of a role reads.

    ``ref`` is the key of ``Declaration.refs`` that holds it (``None`` when the
    compiler finds it otherwise: a feature's inputs come from its operator, an
    evaluate node's source from the metrics that read raw columns); ``what`` is
    how messages name it; ``roles`` are the roles the node it names may have;
    ``many`` when the reference is a list.
    """

    what: str
    roles: tuple[Role, ...]
    ref: str | None = None
    many: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RoleSpec:
    """Everything the layers above need to know about one role.

    Attributes
    ----------
    role:
        The role described.
    inputs:
        What a node of this role reads, in the order the compiler resolves it.
    fingerprint:
        Named facts that join the fingerprint besides the operator, its
        parameters and its inputs' fingerprints (the compiler's
        ``FINGERPRINT_FACTS`` computes each, in this order).
    facts:
        Named facts the compiled node carries (``CompiledNode.facts``, stored
        as ``"extra"`` in a compiled DAG's JSON; the compiler's ``NODE_FACTS``).
    output:
        The artifact kind it produces.
    stage:
        The coarse step users see (``kind`` in tables and JSON).
    default_seconds:
        Compute seconds the cost model assumes before the node was ever measured.
    load_overhead_seconds:
        Fixed seconds a load costs beyond reading its bytes (a model must be
        deserialised).
    step:
        The engine step that executes it: :data:`PREPROCESS_STEP` (the batch
        pipeline, all such nodes together) or the name of the run's per-node
        method.
    split:
        For a role that reads one split of examples, the split it reads unless
        the declaration names one (``Declaration.refs["split"]``).
    split_verb:
        How messages say it reads that split ("trains on").
    sampled_by:
        The approximate-run placements whose sample shrinks its work.
    epochs_scaled:
        Whether an approximate run's ``epochs_scale`` shrinks its work too.
    """

    role: Role
    inputs: tuple[Input, ...] = ()
    fingerprint: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    output: ArtifactKind
    stage: Stage
    default_seconds: float
    load_overhead_seconds: float = 0.0
    step: str
    split: Split | None = None
    split_verb: str = ""
    sampled_by: tuple[str, ...] = ()
    epochs_scaled: bool = False

    def input(self, what: str) -> Input:
        """The input named ``what`` in messages."""
        for i in self.inputs:
            if i.what == what:
                return i
        raise KeyError(f"role {self.role} has no input {what!r}")


_EXAMPLES = Input(what="examples", roles=(Role.EXAMPLES,), ref="examples")
_MODEL = Input(what="model", roles=(Role.TRAIN,), ref="model")
_SOURCE = Input(what="source", roles=(Role.SOURCE,), ref="source")


def _applies_model(role: Role, output: ArtifactKind, stage: Stage, verb: str) -> RoleSpec:
    """A role that applies a trained model to one split of examples (test unless declared).

    Its step is the run's method of the role's name; the split joins its fingerprint, and
    in an approximate run how it scores the model (``scoring``: a traced function).
    """
    return RoleSpec(
        role=role,
        inputs=(_MODEL, _EXAMPLES),
        fingerprint=("split", "scoring"),
        facts=("split",),
        output=output,
        stage=stage,
        default_seconds=2.0,
        step=str(role),
        split=Split.TEST,
        split_verb=verb,
    )


def _preprocessing(role: Role, **fields: Any) -> RoleSpec:
    """A role the batch pipeline computes (all such nodes together), shrunk by a source sample."""
    return RoleSpec(role=role, step=PREPROCESS_STEP, sampled_by=("source",), **fields)


_SPECS = (
    _preprocessing(
        Role.SOURCE,
        fingerprint=("sample",),
        facts=("sample",),
        output=ArtifactKind.TABLE,
        stage=Stage.SOURCE,
        default_seconds=2.0,
    ),
    _preprocessing(
        Role.FEATURE,
        inputs=(_SOURCE, Input(what="input", roles=(Role.FEATURE,))),
        facts=("source",),
        output=ArtifactKind.FEATURE,
        stage=Stage.PREPROCESS,
        default_seconds=1.0,
    ),
    _preprocessing(
        Role.EXAMPLES,
        inputs=(_SOURCE, Input(what="feature", roles=(Role.FEATURE,), ref="features", many=True)),
        fingerprint=("features", "examples_label"),
        facts=("features", "label"),
        output=ArtifactKind.EXAMPLES,
        stage=Stage.PREPROCESS,
        default_seconds=1.0,
    ),
    RoleSpec(
        role=Role.TRAIN,
        inputs=(Input(what="input", roles=(Role.EXAMPLES,), ref="examples"),),
        fingerprint=("approx", "training_label", "replicas", "streaming"),
        facts=("approx",),
        output=ArtifactKind.MODEL,
        stage=Stage.TRAIN,
        default_seconds=10.0,
        load_overhead_seconds=0.3,
        step="train",
        split=Split.TRAIN,
        split_verb="trains on",
        sampled_by=("source", "train"),
        epochs_scaled=True,
    ),
    _applies_model(Role.PREDICT, ArtifactKind.PREDICTIONS, Stage.PREDICT, "predicts on"),
    RoleSpec(
        role=Role.EVALUATE,
        inputs=(
            Input(what="input", roles=(Role.PREDICT,), ref="predictions"),
            Input(what="source", roles=(Role.SOURCE,)),
        ),
        fingerprint=("metrics",),
        facts=("metrics", "source"),
        output=ArtifactKind.METRICS,
        stage=Stage.EVALUATE,
        default_seconds=0.2,
        step="evaluate",
    ),
    _applies_model(Role.EXPLAIN, ArtifactKind.EXPLANATION, Stage.EXPLAIN, "explains its model on"),
)

#: One entry per role, in the order data flows (keyed by Role; a role's string finds it too).
ROLE_SPECS: Mapping[str, RoleSpec] = MappingProxyType({s.role: s for s in _SPECS})


def role_spec(role: str) -> RoleSpec:
    """The table entry of ``role`` (a :class:`Role` or its string value)."""
    try:
        return ROLE_SPECS[Role(role)]
    except ValueError:
        raise KeyError(f"unknown role {role!r}; roles are: {', '.join(ROLE_SPECS)}") from None


def output_type(role: str, value_kind: str | None = None) -> str:
    """A compiled node's ``output_type``: its artifact kind, ``feature:<value kind>`` for a feature.

    >>> output_type(Role.TRAIN)
    'model'
    >>> output_type("feature", "numeric")
    'feature:numeric'
    """
    kind = role_spec(role).output
    if kind is ArtifactKind.FEATURE:
        return f"{kind}:{value_kind or '?'}"
    return str(kind)


def state_counts(states: Iterable[str]) -> dict[str, int]:
    """How many of ``states`` are each state: every :class:`NodeState`, in plan order.

    A state that is not a :class:`NodeState` is counted under its own name, after them.

    >>> state_counts(["load", NodeState.COMPUTE, "load"])
    {'compute': 1, 'load': 2, 'prune': 0}
    """
    counts: dict[str, int] = dict.fromkeys(NodeState, 0)
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts
