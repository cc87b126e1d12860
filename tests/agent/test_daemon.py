"""The agent loop's decisions, with the runs faked: ablation, metric choice, direction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helix_tf import search
from helix_tf.agent._child import Finished
from helix_tf.agent._daemon import AgentOptions, _Agent, _direction, preferred_metric
from helix_tf.agent._study import AgentPaths


def test_ablation_keeps_only_changes_whose_reversal_hurts(tmp_path: Path) -> None:
    agent = _Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
    agent.space = search.SearchSpace(
        dimensions={}, current={"learner.l2": 0.0, "x.min_count": 1}, declared=True
    )
    calls: list[dict[str, Any]] = []

    def fake(params: dict[str, Any], **kwargs: Any) -> Finished:
        calls.append(params)
        # l2 helps (+0.05); min_count does nothing.
        auc = 0.80 + (0.05 if params["learner.l2"] > 0 else 0.0)
        return Finished(result={"metrics": {"auc": auc}}, error=None, seconds=0.1)

    agent.run_until_done = fake  # type: ignore[method-assign]
    out = agent.ablate({"learner.l2": 1e-3, "x.min_count": 5}, 0.85, "auc", sign=1)
    assert calls == [
        {"learner.l2": 0.0, "x.min_count": 5},
        {"learner.l2": 1e-3, "x.min_count": 1},
    ]
    assert out["learner.l2"]["matters"] and not out["x.min_count"]["matters"]
    assert agent.ablate({"learner.l2": 1e-3, "x.min_count": 1}, 0.85, "auc", sign=1) == {}


def test_metric_and_direction() -> None:
    assert preferred_metric({"accuracy": 0.8, "auc": 0.9}) == "auc"
    assert preferred_metric({"accuracy": 0.8}) == "accuracy"
    auc = {"nodes": [{"role": "evaluate", "extra": {"metrics": [{"op": "AUC"}]}}]}
    rmse = {"nodes": [{"role": "evaluate", "extra": {"metrics": [{"op": "RMSE"}]}}]}
    assert _direction(auc) == "maximize" and _direction(rmse) == "minimize"
