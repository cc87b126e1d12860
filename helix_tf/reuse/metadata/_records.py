"""What the metadata database returns: records of nodes, runs and workflow versions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from helix_tf.results import NodeResult

from helix_tf.roles import NodeState

#: The states a node record may have (NodeState, defined once in helix_tf.roles).
NODE_STATES = tuple(NodeState)
RUN_STATUSES = ("running", "ok", "failed", "killed")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """What happened to one node in one run.

    Parameters
    ----------
    name, kind, fingerprint
        The node's name, stage (``helix_tf.roles.Stage``: source, preprocess,
        train, ...) and fingerprint in that run.
    state
        ``"compute"``, ``"load"`` or ``"prune"``.
    compute_seconds, load_seconds, write_seconds
        Measured time to compute it, to load it from the store, to materialize it.
    rows, bytes
        Size of its result, when known.
    materialized
        Whether the run wrote it to the artifact store.
    reason
        The human-readable reason of the plan's or the materializer's decision.
    """

    name: str
    kind: str
    fingerprint: str
    state: str
    compute_seconds: float = 0.0
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    rows: int | None = None
    bytes: int | None = None
    materialized: bool = False
    reason: str = ""

    @classmethod
    def from_result(cls, result: NodeResult) -> NodeRecord:
        """The row recorded for a run's :class:`~helix_tf.results.NodeResult` (the one
        per-node result): ``materialized`` is whether the run wrote it (a load did not)."""
        return cls(**_measured(result), materialized=result.written)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run of a workflow, with its nodes (in the order recorded) and its metrics.

    ``finished`` and ``wall_seconds`` are ``None`` while ``status`` is ``"running"``
    or ``"killed"`` (its process ended without finishing it: killed, or crashed). ``intervals`` holds the
    uncertainty interval ``(lower, upper)`` of the metrics of an approximate run.
    """

    id: int
    workflow: str
    version: int
    started: float
    finished: float | None
    wall_seconds: float | None
    status: str
    approx: bool
    policy: str
    metrics: dict[str, float]
    nodes: tuple[NodeRecord, ...]
    error: str | None
    params: dict[str, Any]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    store_url: str = ""
    #: Who ran it and on which host ("" in databases older than team mode).
    user: str = ""
    host: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionRecord:
    """One distinct compiled DAG of a workflow; ``parent`` is the version it followed."""

    workflow: str
    number: int
    digest: str
    created: float
    dag: dict[str, Any]
    parent: int | None
    #: Who recorded it first ("" in databases older than team mode).
    user: str = ""


def _version_record(workflow: str, row: Any) -> VersionRecord:
    return VersionRecord(
        workflow=workflow,
        number=row.number,
        digest=row.digest,
        created=row.created,
        dag=json.loads(row.dag_json),
        parent=row.parent_number,
        user=row.user_name or "",
    )


def _node_record(row: Any) -> NodeRecord:
    return NodeRecord(**_measured(row), materialized=bool(row.materialized))


#: The fields a :class:`NodeRecord` copies by name from a node's result or its row.
_MEASURED = (
    "name",
    "kind",
    "fingerprint",
    "state",
    "compute_seconds",
    "load_seconds",
    "write_seconds",
    "rows",
    "bytes",
    "reason",
)


def _measured(source: Any) -> dict[str, Any]:
    """The :data:`_MEASURED` fields of ``source`` (a ``NodeResult`` or a ``node_runs`` row)."""
    return {name: getattr(source, name) for name in _MEASURED}
