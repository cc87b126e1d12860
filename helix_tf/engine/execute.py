"""Execute a reuse plan: one fused Beam pipeline for preprocessing, Keras for
training and inference, numpy for evaluation; materialize as nodes finish.

The engine never decides *what* to run: it receives a state per node
(compute / load / prune) from the planner and a materialization policy, and
reports what it measured (one :class:`~helix_tf.results.NodeResult` per node) so
the cost model learns.

A run is a few objects with one job each, sharing one
:class:`~helix_tf.engine._context.RunContext` (the plan, the options, what was
measured): :class:`~helix_tf.engine._outputs.RunOutputs` (the nodes' files:
loaded, staged, committed), :class:`~helix_tf.engine._preprocess.PreprocessingStep`
(sources, features and examples in one pipeline) and
:class:`~helix_tf.engine._learning.LearningSteps` (train, predict, explain,
evaluate; their inputs read by :class:`~helix_tf.engine._inputs.LearningInputs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from helix_tf.compiler.graph import CompiledNode, CompiledWorkflow
from helix_tf.engine._context import RunContext
from helix_tf.engine._inputs import LearningInputs
from helix_tf.engine._learning import LearningSteps
from helix_tf.engine._outputs import (
    RunOutputs,
    StoreEntriesLost,
    drop_damaged_unread,
    no_room,
)
from helix_tf.engine._preprocess import PreprocessingStep
from helix_tf.errors import ExecutionError, HelixError, interrupted
from helix_tf.events import ProgressCallback
from helix_tf.results import NodeResult
from helix_tf.reuse.store import ArtifactStore, Manifest
from helix_tf.roles import PREPROCESS_STEP, NodeState, Role, role_spec

__all__ = ["EngineOptions", "EngineResult", "Materializer", "StoreEntriesLost", "execute_plan"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """How to run: Beam runner and options, batch size, progress callback."""

    runner: str = "direct"
    pipeline_args: tuple[str, ...] = ()
    batch_rows: int = 50_000
    prune_zero_weight: bool = True
    progress: ProgressCallback | None = None
    #: This run's scratch folder (created if missing, removed at the end): Beam's
    #: side files, and every output once the store cannot take more data. Default: a
    #: fresh folder in the system's temporary folder.
    scratch: str | None = None
    #: Why this run must not write the store (a worker of a multi-worker run that is not
    #: the chief): it loads what is stored, and its outputs go to scratch. None: it writes.
    read_only: str | None = None


class Materializer:
    """Decides, right after a node finishes, whether to keep its staged output.

    The engine reads every member below; a materializer overrides :meth:`decide` and
    whichever others it has a view on
    (:class:`helix_tf.reuse.materialize.MaterializationPolicy` is the one used).
    """

    @property
    def writes_intermediates(self) -> bool:
        """Whether computed intermediate features are written at all (else kept in the run)."""
        return True

    def release(self, fingerprint: str) -> None:
        """The run no longer reads this stored entry (it may be evicted)."""

    def recompute_cost(self, name: str, results: Mapping[str, NodeResult]) -> float | None:
        """Seconds to recompute ``name`` and its ancestors, kept with a committed entry
        (its value when a budget evicts); None: not known."""
        return None

    def entry_meta(self) -> dict[str, Any]:
        """What every entry this run commits carries in its meta (a tagged run's tag)."""
        return {}

    def decide(
        self, node: CompiledNode, result: NodeResult, results: Mapping[str, NodeResult]
    ) -> bool:
        """Keep ``node``'s output? ``result`` is what was measured of it so far."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EngineResult:
    """Measurements per node and the outputs' metrics."""

    #: One result per node, in the compiled order (``reason`` left to the plan).
    nodes: dict[str, NodeResult]
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    #: Results the run holds in memory, by node: models (Keras), predictions (Arrow
    #: tables), metrics and explanations; handed to Python callers of ``run``.
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


class _Run:
    """The objects of one run, wired together around its context."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.outputs = RunOutputs(ctx)
        self.preprocessing = PreprocessingStep(ctx, self.outputs)
        self.inputs = LearningInputs(ctx, self.outputs)
        self.learning = LearningSteps(ctx, self.outputs, self.inputs)


def execute_plan(
    compiled: CompiledWorkflow,
    states: Mapping[str, str],
    *,
    store: ArtifactStore,
    manifests: Mapping[str, Manifest],
    materializer: Materializer,
    metric_ops: Mapping[str, list[Any]],
    options: EngineOptions | None = None,
) -> EngineResult:
    """Run ``compiled`` with one state per node; returns what was measured."""
    ctx = RunContext(
        compiled,
        states,
        store=store,
        manifests=manifests,
        materializer=materializer,
        options=options or EngineOptions(),
        metric_ops=metric_ops,
    )
    run = _Run(ctx)
    try:
        return _execute(run)
    except StoreEntriesLost:
        raise
    except Exception as exc:
        # A failure while entries it loads went missing (deleted or replaced under the
        # run): say which, so the caller plans again and recomputes them.
        lost = run.outputs.lost_entries()
        if lost:
            raise StoreEntriesLost(lost, f"vanished during the run ({exc})") from exc
        raise
    finally:
        run.outputs.cleanup()


def _execute(run: _Run) -> EngineResult:
    """Verify what the plan loads, preprocess, run the learning steps, read the metrics."""
    ctx = run.ctx
    run.outputs.verify_loads()
    run.preprocessing.run()  # every node whose step is PREPROCESS_STEP, in one pipeline
    run.inputs.check_read_splits()  # a split the predictions read, before the training
    steps = run.learning.steps()
    for node in ctx.compiled.nodes:
        executor = role_spec(node.role).step
        if ctx.states[node.name] != NodeState.COMPUTE or executor == PREPROCESS_STEP:
            continue
        if executor not in steps:
            raise ExecutionError(
                f"the role table names engine step {executor!r} for role {node.role!r}, "
                f"but the engine has none of that name (it has: {', '.join(sorted(steps))}); "
                "add it to LearningSteps.steps()",
                node=node.name,
            )
        for pending, finish in run.learning.finish_deferred(node.inputs):
            _run_step(finish, pending, run.outputs)
        _run_step(steps[executor], node, run.outputs)
    for pending, finish in run.learning.finish_deferred():
        _run_step(finish, pending, run.outputs)
    metrics, intervals = _output_metrics(run)
    drop_damaged_unread(run.outputs)
    held = {n.name: ctx.values[n.name] for n in ctx.compiled.nodes if n.name in ctx.values}
    return EngineResult(nodes=ctx.results(), metrics=metrics, intervals=intervals, values=held)


def _run_step(step: Any, node: CompiledNode, outputs: RunOutputs) -> None:
    """Compute ``node``; an error is reported as the node's (``ExecutionError(node=...)``)."""
    try:
        step(node)
    except StoreEntriesLost:  # an input read back from the store: the run plans again
        raise
    except ExecutionError as exc:
        if exc.node is None:
            raise ExecutionError(str(exc), node=node.name) from exc
        raise
    except HelixError:
        raise
    except Exception as exc:
        if interrupted(exc):  # the user's Ctrl-C, not the node's failure
            raise KeyboardInterrupt from exc
        message = no_room(outputs, exc) or f"{type(exc).__name__}: {exc}"
        raise ExecutionError(message, node=node.name) from exc


def _output_metrics(run: _Run) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """The evaluate outputs' metrics and intervals; other loaded outputs are opened."""
    compiled, ctx = run.ctx.compiled, run.ctx
    metrics: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    # The first evaluate output's metrics keep their own names; those of any later
    # one carry its node name ("holdout/auc"), so adding an evaluation never
    # renames the keys of the one before it (and its history stays one series).
    evaluated = [o for o in compiled.outputs if ctx.nodes[o].role == Role.EVALUATE]
    for out in compiled.outputs:
        if ctx.nodes[out].role != Role.EVALUATE:
            if ctx.states[out] == NodeState.LOAD:
                run.outputs.load(out)
            continue
        payload = run.inputs.metrics_of(out)
        prefix = "" if out == evaluated[0] else f"{out}/"
        for k, v in payload["metrics"].items():
            metrics[prefix + k] = v
        for k, v in payload.get("intervals", {}).items():
            intervals[prefix + k] = (float(v[0]), float(v[1]))
    return metrics, intervals
