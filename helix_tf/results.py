"""What a run or a plan reports: per-node decisions and measurements, metrics.

Pure data, JSON-serialisable; the CLI renders it, benchmarks read its JSON.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from helix_tf.roles import NodeState, Role, Stage

if TYPE_CHECKING:
    from helix_tf.history._metrics import RunComparison

__all__ = ["INTERVAL_KIND", "NodeDecision", "NodeResult", "RunResult", "PlanResult"]

#: What the intervals of an approximate run cover: a bootstrap over the evaluated
#: rows, i.e. evaluation noise only, not the variance of training on a sample (the
#: exact run's value can fall outside them).
INTERVAL_KIND = "evaluation_bootstrap_95"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeDecision:
    """The plan's decision for one node, with estimated costs and the reason."""

    name: str
    kind: str
    state: str  # compute | load | prune
    compute_cost: float  # estimated seconds
    load_cost: float | None  # estimated seconds, None when nothing is stored
    reason: str
    fingerprint: str
    #: How the node itself differs from the previous version, whatever its state (a
    #: node loaded or pruned may differ too: the config is back at an earlier version):
    #: one phrase per difference ("learner.l1 0.003 → 0.0"), ``("new node",)``; empty
    #: when it does not, when only an input does, or when there is no previous version.
    changed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeResult:
    """What happened to one node in a run: the one per-node result.

    The engine makes one per node (``reason`` empty: the plan's decision fills it),
    :class:`RunResult` carries them and the metadata database records them
    (``NodeRecord.from_result``). ``seconds`` is the time the node took in the run:
    compute, load, the writing it waited for and other time.
    """

    name: str
    kind: str
    state: str
    seconds: float
    rows: int | None
    bytes: int | None
    materialized: bool
    reason: str
    fingerprint: str
    compute_seconds: float = 0.0
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    #: Of ``write_seconds``, what the run waited for where a background writer wrote the
    #: files beside other work (in-process preprocessing); None: written in line.
    write_wait_seconds: float | None = None
    #: Of ``compute_seconds``, reading the node's inputs from files.
    read_seconds: float = 0.0
    #: Time that is neither computing, loading nor writing (deserialising a loaded
    #: model, importing TensorFlow for the first training node); part of ``seconds``.
    other_seconds: float = 0.0
    #: What the node's output says of itself (a feature's cardinality, a model's
    #: zero-weight features, skipped rows ...): the stored entry's meta and the run's
    #: facts. Not part of the JSON form.
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def written(self) -> bool:
        """Whether this run wrote the node's output to the store (a load did not)."""
        return self.materialized and self.state != NodeState.LOAD

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "seconds": round(self.seconds, 4),
            "compute_seconds": round(self.compute_seconds, 4),
            "load_seconds": round(self.load_seconds, 4),
            "write_seconds": round(self.write_seconds, 4),
            "write_wait_seconds": (
                None if self.write_wait_seconds is None else round(self.write_wait_seconds, 4)
            ),
            "read_seconds": round(self.read_seconds, 4),
            "rows": self.rows,
            "bytes": self.bytes,
            "materialized": self.materialized,
            "reason": self.reason,
            "fingerprint": self.fingerprint,
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The outcome of one run: metrics of the outputs and one result per node.

    From Python, the run's results are at hand too: :meth:`predictions` (a table),
    :meth:`model` (the trained Keras model) and :meth:`explanation` (feature
    importance and weights): held in memory from the run, else read from the store
    (:mod:`helix_tf.views` draws the curves and charts of ``helix-tf report``).
    """

    workflow: str
    version: int | None
    run_id: int | None
    approx: bool
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    nodes: tuple[NodeResult, ...]
    wall_seconds: float
    notes: tuple[str, ...] = ()
    #: With ``--retrain-without-zero``: what was dropped (per examples node, feature →
    #: number of zero weights), the first run's id and metrics, and this run's
    #: metrics minus those.
    retrained: dict[str, Any] | None = None
    #: This run against the workflow's history: each metric's change from the
    #: previous version and from the best earlier run, and what changed.
    comparison: RunComparison | None = None
    #: The artifact store the run used: its stored results are read from there.
    store_url: str = ""
    #: Reads the run's results (a :class:`ResultReader`): what the run held in memory,
    #: else the store's copy. Set by ``helix_tf.run``; not part of the data.
    reader: Any = dataclasses.field(default=None, repr=False, compare=False)

    # -- the run's results, read lazily (nothing is loaded until asked for) ---------------

    def _node(self, kind: str, name: str | None) -> NodeResult:
        from helix_tf.errors import ConfigError, StoreError

        if self.reader is None:
            raise StoreError(
                "this result carries no reader of its stored results: results of "
                "helix_tf.run(...) do; a result rebuilt from JSON does not"
            )
        candidates = [n for n in self.nodes if n.kind == kind]
        for n in candidates:
            if name is None or n.name == name:
                return n
        from helix_tf.components.base import did_you_mean

        names = [n.name for n in candidates]
        if name is None:
            raise ConfigError(f"workflow {self.workflow!r} has no {kind} node")
        raise ConfigError(
            f"workflow {self.workflow!r} has no {kind} node {name!r}{did_you_mean(name, names)}; "
            f"its {kind} nodes are: {', '.join(names) or 'none'}"
        )

    def predictions(self, node: str | None = None, *, pandas: bool = False) -> Any:
        """A predict node's scores: columns ``__row``, ``__label``, ``__score``.

        A pyarrow ``Table`` (``pandas=True``: a ``DataFrame``) of the first predict
        node unless ``node`` names one. Raises ``StoreError`` when the run did not
        hold it and the materialization policy did not keep it.
        """
        n = self._node(Stage.PREDICT, node)
        table = self.reader.read(Role.PREDICT, n.name, n.fingerprint)
        return table.to_pandas() if pandas else table

    def model(self, node: str | None = None) -> Any:
        """A train node's Keras model (imports TensorFlow when read from the store).

        It takes a dict of feature arrays and returns logits; see
        ``helix_tf.components.keras_models.arrays_from_table``.
        """
        n = self._node(Stage.TRAIN, node)
        return self.reader.read(Role.TRAIN, n.name, n.fingerprint)

    def explanation(self, node: str | None = None) -> dict[str, Any]:
        """An explain node's result: permutation importance and linear weights per feature."""
        n = self._node(Stage.EXPLAIN, node)
        return self.reader.read(Role.EXPLAIN, n.name, n.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workflow": self.workflow,
            "version": self.version,
            "run_id": self.run_id,
            "approx": self.approx,
            "metrics": self.metrics,
            "nodes": [n.to_dict() for n in self.nodes],
            "wall_seconds": round(self.wall_seconds, 4),
            "notes": list(self.notes),
        }
        if self.intervals:
            out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
            out["interval_kind"] = INTERVAL_KIND
        if self.retrained is not None:
            out["retrained"] = self.retrained
        if self.store_url:
            out["store"] = self.store_url
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_dict()
        return out


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlanResult:
    """A plan without running it."""

    workflow: str
    approx: bool
    nodes: tuple[NodeDecision, ...]
    estimated_seconds: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "approx": self.approx,
            "estimated_seconds": round(self.estimated_seconds, 4),
            "nodes": [n.to_dict() for n in self.nodes],
            "notes": list(self.notes),
        }
