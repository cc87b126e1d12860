"""What the trial worker does for the agent: keep trainers, and one tagged run per request."""

from __future__ import annotations

import os
from typing import Any

from helix_tf import api
from helix_tf.agent._options import TAG, AgentOptions
from helix_tf.roles import Role

__all__ = ["KEPT_TRAINERS", "keep_trainers", "run_request", "scored_outputs", "trainer_stats"]

#: Keras trainers each trial worker keeps (the reuse-aware order models the same cache).
KEPT_TRAINERS = 4


def keep_trainers() -> None:
    """In a new trial worker: keep built and traced Keras trainers across its runs.

    :data:`helix_tf.components.trainers.TRAINERS` (issue 9) reuses a trainer when a
    later run trains the same graph (only the learning rate, epochs or batch size
    changed), with the same bits as a fresh build; a plain process keeps none.
    """
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.keep(KEPT_TRAINERS)


def scored_outputs(dag: dict[str, Any]) -> list[str] | None:
    """The evaluate outputs of a compiled workflow (``to_dict()``): what a trial is scored on.

    Search runs deliver only these (:func:`helix_tf.run`'s ``outputs``): a trial
    computes its metrics, not explanations it never reads. None: the workflow
    has no evaluate output (every output is delivered).
    """
    names = [
        n["name"]
        for n in dag.get("nodes", [])
        if n.get("role") == Role.EVALUATE and n.get("output")
    ]
    return names or None


def run_request(opts: AgentOptions, share_bytes: int | None, request: dict[str, Any]) -> dict[str, Any]:
    """In the worker: one run through the public API (:func:`helix_tf.run`), tagged."""
    r = api.run(
        opts.config,
        params=request["params"],
        data_dir=opts.data_dir,
        store=opts.store,
        approx=request["approx"],
        validation=request["validation"],
        materialize=request["materialize"],
        budget=opts.budget,
        tag=TAG,
        tag_budget=share_bytes,
        outputs=request.get("outputs"),
    )
    states: dict[str, int] = {}
    for n in r.nodes:
        states[n.state] = states.get(n.state, 0) + 1
    return {
        "metrics": r.metrics,
        "intervals": {k: list(v) for k, v in r.intervals.items()},
        "approx": r.approx,
        "wall_seconds": r.wall_seconds,
        "states": states,
        "run_id": r.run_id,
        "version": r.version,
        "worker_pid": os.getpid(),
        "trainers": trainer_stats(),
    }


def trainer_stats() -> dict[str, int]:
    """The worker's Keras trainers so far: built, reused, kept."""
    from helix_tf.components.trainers import TRAINERS

    return TRAINERS.stats()
