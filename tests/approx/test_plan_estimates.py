"""An approximate run's plan is estimated by what a sampled run costs, not the exact run."""

from __future__ import annotations

from pathlib import Path

import pytest

import helix_tf
from helix_tf.roles import NodeState


def _train_cost(plan: helix_tf.PlanResult) -> float:
    (node,) = [d for d in plan.nodes if d.name == "learner"]
    assert node.state == NodeState.COMPUTE
    return float(node.compute_cost)


def test_an_approximate_plan_scales_the_exact_measurements_then_uses_its_own(
    tiny_census_config: Path, store: str
) -> None:
    """Both plans took the newest measurement of either kind: an approximate run was
    estimated at the exact run's cost, so the agent never chose its approximate rung."""
    cheap = helix_tf.Approx(sample=0.25, min_saving_seconds=0)
    helix_tf.run(tiny_census_config, store=store)
    edit = {"learner.learning_rate": 0.1}  # the learner and what follows it compute again
    exact = helix_tf.plan(tiny_census_config, params=edit, store=store)
    approx = helix_tf.plan(tiny_census_config, params=edit, store=store, approx=cheap)
    assert approx.approx
    assert _train_cost(approx) == pytest.approx(0.25 * _train_cost(exact), rel=1e-3)
    assert approx.estimated_seconds < exact.estimated_seconds
    # After an approximate run, it is what the approximate plan goes by, and the
    # exact plan still by the exact run.
    ran = helix_tf.run(tiny_census_config, params=edit, store=store, approx=cheap)
    assert ran.approx
    (sampled,) = [n for n in ran.nodes if n.name == "learner"]
    again = {"learner.learning_rate": 0.2}
    assert _train_cost(
        helix_tf.plan(tiny_census_config, params=again, store=store, approx=cheap)
    ) == pytest.approx(sampled.compute_seconds, rel=1e-3)
    assert _train_cost(
        helix_tf.plan(tiny_census_config, params=again, store=store)
    ) == pytest.approx(_train_cost(exact), rel=1e-3)
