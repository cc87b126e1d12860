"""The record step of a run: its per-node results, notes, and what the history keeps.

After the engine ran a plan, :func:`collect_results` gives each node its
:class:`~helix_tf.results.NodeResult` with the plan's reason (and what inference
pruned), the notes the run reports (sparse models, skipped rows) and each learner's
zero-weight features; :func:`record_run` writes the results and metrics into the
metadata database, and :func:`compare_with_previous` compares the run with the
workflow's history.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helix_tf.compiler.graph import CompiledWorkflow
from helix_tf.errors import StoreError
from helix_tf.results import NodeDecision, NodeResult
from helix_tf.roles import NodeState, Stage

if TYPE_CHECKING:
    from helix_tf.engine.execute import EngineResult
    from helix_tf.history import RunComparison
    from helix_tf.reuse.metadata import MetadataStore

__all__ = ["Collected", "collect_results", "compare_with_previous", "pruned_phrase", "record_run"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Collected:
    """A run's per-node results, its notes, and each learner's zero-weight features."""

    nodes: tuple[NodeResult, ...]
    notes: tuple[str, ...]
    #: Per train node: feature → number of its weights that are all zero.
    facts: dict[str, dict[str, int]]


def pruned_phrase(pruned: Mapping[str, int], predict: str, compiled: CompiledWorkflow) -> str:
    """Said of a predict node whose model gives some features only zero weights."""
    model = compiled.node(compiled.node(predict).inputs[0])
    parts = [f"all {n:,} weights of {f} are 0" for f, n in sorted(pruned.items())]
    return f"pruned from inference: {', '.join(parts)} in model {model.fingerprint[:12]}"


def _sparsity_note(name: str, meta: Mapping[str, Any]) -> str:
    total, zero = int(meta["weights"]), int(meta.get("zero_weights", 0))
    text = (
        f"{name}: {zero:,} of {total:,} linear weights ({zero / max(total, 1):.0%}) are exactly 0"
    )
    if meta.get("zero"):
        text += "; features contributing nothing: " + ", ".join(sorted(meta["zero"]))
    return text


def collect_results(
    decisions: Sequence[NodeDecision],
    engine: EngineResult,
    manifests: Mapping[str, Any],
    compiled: CompiledWorkflow,
) -> Collected:
    """Each node's result (the engine's measurements, the plan's reason) and the notes."""
    nodes = []
    notes: list[str] = []
    facts: dict[str, dict[str, int]] = {}
    for d in decisions:
        measured = engine.nodes[d.name]
        meta = measured.meta
        if d.kind == Stage.TRAIN:
            stored = manifests.get(d.name)
            known = meta if meta and "zero" in meta else stored.meta if stored else {}
            facts[d.name] = dict(known.get("zero") or {})
        reason = d.reason
        if meta.get("pruned_features"):
            reason = f"{reason}; {pruned_phrase(meta['pruned_features'], d.name, compiled)}"
        if meta.get("weights") and d.state == NodeState.COMPUTE:
            notes.append(_sparsity_note(d.name, meta))
        if meta.get("skipped_rows"):
            notes.append(
                f"{d.name}: skipped {meta['skipped_rows']:,} malformed row(s) "
                "(on_bad_row='skip'; the log names the first ones)"
            )
        nodes.append(dataclasses.replace(measured, reason=reason))
    return Collected(nodes=tuple(nodes), notes=tuple(notes), facts=facts)


def record_run(
    metadata: MetadataStore,
    run_id: int,
    nodes: Sequence[NodeResult],
    engine: EngineResult,
    *,
    wall_seconds: float,
) -> None:
    """Record the run's nodes and metrics; a disk too full for the history does not fail it."""
    from helix_tf.reuse.metadata import NodeRecord
    from helix_tf.reuse.store import is_write_failure

    try:
        metadata.record_nodes(run_id, [NodeRecord.from_result(n) for n in nodes])
        metadata.finish_run(
            run_id,
            status="ok",
            wall_seconds=wall_seconds,
            metrics=engine.metrics,
            intervals=engine.intervals or None,
        )
    except StoreError as exc:
        # The work is done: a disk too full for the history does not undo it.
        if not is_write_failure(exc):
            raise
        log.warning("run %d is not recorded in full: %s", run_id, exc)


def compare_with_previous(
    metadata: MetadataStore,
    compiled: CompiledWorkflow,
    *,
    version: int,
    run_id: int,
    approx: bool,
    metrics: Mapping[str, float],
) -> RunComparison | None:
    """This run against the history; a comparison that fails never fails the run."""
    from helix_tf.history import compare_with_history
    from helix_tf.settings import current_user

    try:
        return compare_with_history(
            metadata,
            compiled.name,
            user=current_user(),
            version=version,
            run_id=run_id,
            approx=approx,
            metrics=metrics,
            dag=compiled.to_dict(),
        )
    except Exception:
        log.warning("could not compare run %s with the history", run_id, exc_info=True)
        return None
