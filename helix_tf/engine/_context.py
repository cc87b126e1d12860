"""What every part of one run shares: the plan, the options, what it measured and holds.

:class:`RunContext` is the run's state; the objects that do the work
(:class:`~helix_tf.engine._outputs.RunOutputs`,
:class:`~helix_tf.engine._preprocess.PreprocessingStep`,
:class:`~helix_tf.engine._learning.LearningSteps`) each hold it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from helix_tf.errors import ExecutionError
from helix_tf.events import NodeFinished, ProgressEvent
from helix_tf.results import NodeResult
from helix_tf.roles import NodeState, Role

if TYPE_CHECKING:
    from helix_tf.compiler.graph import CompiledNode, CompiledWorkflow
    from helix_tf.engine.execute import EngineOptions, Materializer
    from helix_tf.reuse.store import ArtifactStore, Manifest

__all__ = ["NodeTally", "RunContext"]


@dataclasses.dataclass(slots=True, kw_only=True)
class NodeTally:
    """What the engine has measured of one node so far (mutable while the run goes on).

    :meth:`result` turns it into the one per-node result type, :class:`NodeResult`.
    """

    compute_seconds: float = 0.0
    load_seconds: float = 0.0
    write_seconds: float = 0.0
    #: Of ``write_seconds``, what the run waited for, where its files were written by a
    #: background writer beside other work (None: written in line, all waited for).
    write_wait_seconds: float | None = None
    other_seconds: float = 0.0  # e.g. deserialising a loaded model
    #: Of ``compute_seconds``, the part spent reading the node's inputs from files
    #: (examples, source columns, stored feature batches): reported, never planned on.
    read_seconds: float = 0.0
    rows: int | None = None
    bytes: int | None = None
    materialized: bool = False
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def waited_write_seconds(self) -> float:
        """The writing the run waited for: all of it unless written in the background."""
        return self.write_seconds if self.write_wait_seconds is None else self.write_wait_seconds

    def add_write(self, seconds: float) -> None:
        """Writing made in line (a commit): the run waited for all of it."""
        self.write_seconds += seconds
        if self.write_wait_seconds is not None:
            self.write_wait_seconds += seconds

    @property
    def seconds(self) -> float:
        """The time the run's node table shows: compute, load, the writing it waited for
        and other time."""
        return (
            self.compute_seconds
            + self.load_seconds
            + self.waited_write_seconds
            + self.other_seconds
        )

    def result(self, node: CompiledNode, state: str) -> NodeResult:
        """This node's :class:`NodeResult` (its ``reason`` is the plan's, filled in later)."""
        return NodeResult(
            name=node.name,
            kind=node.kind,
            state=state,
            seconds=self.seconds,
            rows=self.rows,
            bytes=self.bytes,
            materialized=self.materialized or state == NodeState.LOAD,
            reason="",
            fingerprint=node.fingerprint,
            compute_seconds=self.compute_seconds,
            load_seconds=self.load_seconds,
            write_seconds=self.write_seconds,
            write_wait_seconds=self.write_wait_seconds,
            read_seconds=self.read_seconds,
            other_seconds=self.other_seconds,
            meta=dict(self.meta),
        )


class RunContext:
    """One run of a plan: the compiled workflow, each node's state, and what it measured."""

    def __init__(
        self,
        compiled: CompiledWorkflow,
        states: Mapping[str, str],
        *,
        store: ArtifactStore,
        manifests: Mapping[str, Manifest],
        materializer: Materializer,
        options: EngineOptions,
        metric_ops: Mapping[str, list[Any]],
    ) -> None:
        self.compiled = compiled
        self.nodes = compiled.by_name
        self.states = dict(states)
        self.store = store
        self.manifests = dict(manifests)
        self.materializer = materializer
        self.options = options
        self.metric_ops = dict(metric_ops)
        self.tallies: dict[str, NodeTally] = {n.name: NodeTally() for n in compiled.nodes}
        #: In-memory results (models, predictions, metrics) and facts (feature states).
        self.values: dict[str, Any] = {}
        # Consumers still to compute, per node: when none is left, its entry is evictable.
        self.pending: dict[str, int] = {n.name: 0 for n in compiled.nodes}
        for n in compiled.nodes:
            if states[n.name] == NodeState.COMPUTE:
                for i in n.inputs:
                    self.pending[i] += 1
        if options.scratch:
            try:
                os.makedirs(options.scratch, exist_ok=True)
            except OSError as exc:  # --scratch / HELIX_TF_SCRATCH names no usable folder
                raise ExecutionError(
                    f"cannot create the run's scratch folder {options.scratch!r} "
                    f"({exc.strerror or exc}); pass --scratch (or set HELIX_TF_SCRATCH to) a "
                    "folder you can write, or leave both unset for the system's temporary "
                    "folder"
                ) from exc
            self.scratch = options.scratch
        else:
            self.scratch = tempfile.mkdtemp(prefix="helix-run-")
        # Beam's side files: beside the run on a local store; in the store (reachable by
        # remote workers) otherwise, named by the run's lease so a dead run's are reclaimed.
        owner = store.lease.id if store.lease is not None else os.urandom(8).hex()
        self.store_scratch = (
            os.path.join(self.scratch, "beam")
            if store.is_local
            else f"{store.url.rstrip('/')}/staging/run-{owner}"
        )

    def computed(self, role: str | tuple[str, ...]) -> list[str]:
        """The nodes of ``role`` (or roles) this run computes, in topological order."""
        roles = (role,) if isinstance(role, str) else role
        return [
            n.name
            for n in self.compiled.nodes
            if n.role in roles and self.states[n.name] == NodeState.COMPUTE
        ]

    def results(self) -> dict[str, NodeResult]:
        """Every node's result as measured so far."""
        return {
            n.name: self.tallies[n.name].result(n, self.states[n.name]) for n in self.compiled.nodes
        }

    def node_done(self, name: str) -> None:
        """``name`` finished computing: inputs nothing else will read may be evicted."""
        for i in self.nodes[name].inputs:
            self.pending[i] -= 1
            if self.pending[i] == 0 and not self.nodes[i].output:
                self.materializer.release(self.nodes[i].fingerprint)

    def emit(self, event: ProgressEvent) -> None:
        """Report ``event`` to the run's progress callback, if it has one."""
        if self.options.progress is not None:
            self.options.progress(event)

    def emit_computed(self, name: str, rows: int | None) -> None:
        """Report a computed node with the time the run's node table shows for it.

        That is compute, load, write and other time (a TensorFlow import paid by
        the first training node); the part outside the computation is said apart.
        """
        t = self.tallies[name]
        self.emit(
            NodeFinished(
                node=name,
                state=NodeState.COMPUTE,
                seconds=t.seconds,
                other_seconds=t.other_seconds,
                rows=rows,
            )
        )

    def source_of(self, name: str) -> str | None:
        """The source node whose rows ``name`` is computed from (None past the examples)."""
        node = self.nodes[name]
        if node.role == Role.SOURCE:
            return name
        if node.role == Role.FEATURE:
            src = node.extra.get("source")
            if src:
                return src
            for i in node.inputs:
                s = self.source_of(i)
                if s:
                    return s
        if node.role == Role.EXAMPLES:
            return node.inputs[0]
        return None
