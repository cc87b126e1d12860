"""The agent loop's decisions, with the runs faked: ablation, metric choice, direction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helix_tf import search
from helix_tf.agent._daemon import _Agent
from helix_tf.agent._options import AgentOptions, metric_direction, preferred_metric
from helix_tf.agent._study import AS_WRITTEN, AgentPaths, requeue, suggest
from helix_tf.agent._worker import Finished


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
    assert metric_direction(auc) == "maximize" and metric_direction(rmse) == "minimize"


def test_approximate_rung_prunes_by_successive_halving(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from helix_tf.agent._study import open_study

    agent = _Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    space = search.SearchSpace(
        dimensions={"x": search.Float(0.0, 1.0)}, current={"x": 0.5}, declared=True
    )
    study = open_study(AgentPaths(home=tmp_path), "w@1", create=True)
    rungs: list[bool] = []

    def fake_run(overrides: dict[str, Any], *, approx: Any = None, **kwargs: Any) -> Finished:
        rungs.append(approx is not None)
        return Finished(
            result={"metrics": {"auc": overrides["x"]}, "approx": approx is not None},
            error=None,
            seconds=0.0,
        )

    agent.run = fake_run  # type: ignore[method-assign]
    agent.approx_is_cheaper = lambda overrides, approx: True  # type: ignore[method-assign]
    for x in (0.9, 0.8, 0.7, 0.1):
        study.enqueue_trial({"x": x})
        agent.trial(study, space, "auc")
    states = [t.state for t in study.get_trials()]
    assert states[-1] == TrialState.PRUNED  # 0.1 is not in the top third at rung 0
    assert TrialState.COMPLETE in states[:3]
    assert rungs[:2] == [True, False]  # approximate first, then promoted to exact


def test_the_agents_entries_are_capped_at_a_share_of_the_budget(tmp_path: Path) -> None:
    import shutil

    import pytest

    from helix_tf.agent._options import agent_share_bytes

    assert agent_share_bytes(AgentOptions(config="c.py", budget=1000, share=0.2), tmp_path) == 200
    disk = shutil.disk_usage(tmp_path).total
    assert agent_share_bytes(AgentOptions(config="c.py"), tmp_path) == int(0.25 * disk)
    with pytest.raises(ValueError, match="share"):
        AgentOptions(config="c.py", share=0)


def test_a_batch_runs_in_reuse_aware_order_and_requeues_what_a_stop_left(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from helix_tf.agent._study import open_study

    agent = _Agent(
        AgentOptions(config=str(tmp_path / "c.py"), resume_after=0.0), AgentPaths(home=tmp_path)
    )
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    space = search.SearchSpace(
        dimensions={"v.min_count": search.Choice(1, 5), "learner.l2": search.Float(0.0, 1.0)},
        current={"v.min_count": 1, "learner.l2": 0.0},
        declared=True,
    )
    study = open_study(AgentPaths(home=tmp_path), "w@1", create=True)
    for mc, l2 in ((1, 0.1), (5, 0.2), (1, 0.3), (5, 0.4)):
        study.enqueue_trial({"v.min_count": mc, "learner.l2": l2})
    # min_count 5 would compute new vocabularies (stored: those of 1).
    agent.plan_computes = lambda o: {  # type: ignore[method-assign]
        f"vocab{o['v.min_count']}": 0.0 if o["v.min_count"] == 1 else 9.0,
        f"fit{o['learner.l2']}": 1.0,
    }
    ran: list[float] = []

    def fake_run(overrides: dict[str, Any], **kwargs: Any) -> Finished:
        ran.append(overrides["learner.l2"])
        agent.stop_requested = len(ran) == 3
        return Finished(result={"metrics": {"auc": 0.5}, "approx": False}, error=None, seconds=0.0)

    agent.run = fake_run  # type: ignore[method-assign]
    agent.approx_is_cheaper = lambda overrides, approx: False  # type: ignore[method-assign]
    agent.batch(study, space, "auc", 4)
    assert ran == [0.1, 0.3, 0.2]  # the stored vocabularies first, then 5's twice in a row
    states = {t.params["learner.l2"]: t.state for t in study.get_trials() if t.params}
    assert states[0.4] == TrialState.FAIL  # never ran: failed and queued again
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [
        {"v.min_count": 5, "learner.l2": 0.4}
    ]


def test_the_winner_is_queued_again_with_only_the_changes_that_matter(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    from helix_tf.agent._study import open_study
    from helix_tf.agent._verdicts import is_winner, keep_what_matters

    agent = _Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
    agent.space = search.SearchSpace(
        dimensions={
            "learner.l2": search.Float(1e-6, 1.0, log=True),
            "add:x": search.Choice(None, "numeric"),
            "v.min_count": search.Choice(1, 5),
        },
        # As written, L2 is 0: outside the log range searched (the sampler cannot take it).
        current={"learner.l2": 0.0, "add:x": None, "v.min_count": 1},
        declared=False,
    )
    study = open_study(AgentPaths(home=tmp_path), "w@1", create=True)
    params = {"learner.l2": 1e-2, "add:x": "numeric", "v.min_count": 5}
    study.enqueue_trial(params)
    trial = study.ask()
    for k in params:
        search_dim = agent.space.dimensions[k]
        if isinstance(search_dim, search.Float):
            trial.suggest_float(k, search_dim.low, search_dim.high, log=True)
        else:
            trial.suggest_categorical(k, list(search_dim.values))
    study.tell(trial, 0.9)

    def diff(d: float, significant: bool = True) -> dict[str, Any]:
        return {"difference": {"difference": d, "significant": significant}}

    study.set_user_attr("verified:0", diff(0.01))
    study.set_user_attr("verified:7", diff(0.02, significant=False))
    assert is_winner(study, 0, sign=1)
    study.set_user_attr("verified:8", diff(0.03))
    assert not is_winner(study, 0, sign=1) and is_winner(study, 8, sign=1)

    ablation = {
        "learner.l2": {"matters": False, "effect": -0.001},
        "add:x": {"matters": True, "effect": 0.01},
        "v.min_count": {"error": "boom"},  # kept: reverting it alone did not run
    }
    keep_what_matters(study, study.trials[0], ablation)
    [queued] = study.get_trials(states=(TrialState.WAITING,))
    assert queued.system_attrs["fixed_params"] == {"add:x": "numeric", "v.min_count": 5}
    assert queued.user_attrs["ablated_from"] == 0
    assert queued.user_attrs[AS_WRITTEN] == ["learner.l2"]
    # Nothing to drop (every change matters): nothing queued.
    keep_what_matters(study, study.trials[0], {"add:x": {"matters": True}})
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
    # The queued trial runs with L2 as written (no override); requeued, it stays so.
    again = study.ask()
    assert suggest(again, agent.space) == {"add:x": "numeric", "v.min_count": 5}
    study.tell(again, state=TrialState.FAIL)
    requeue(study, again)
    third = study.ask()
    assert suggest(third, agent.space) == {"add:x": "numeric", "v.min_count": 5}


def test_verification_stays_within_its_share_of_the_workers_time(tmp_path: Path) -> None:
    """Verifying every new leader (test runs, ablations) took half the think time."""
    from helix_tf.agent._study import open_study

    opts = AgentOptions(config=str(tmp_path / "c.py"), verify_share=0.25)
    agent = _Agent(opts, AgentPaths(home=tmp_path))
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    study = open_study(AgentPaths(home=tmp_path), "w@1", create=True)
    for value in (0.91, 0.92, 0.93):
        study.enqueue_trial({"x": value})
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, value)
    verified: list[dict[str, Any]] = []

    def fake_run(overrides: dict[str, Any], **kwargs: Any) -> Finished:
        agent.spent[agent.purpose] += 5.0
        verified.append(overrides)
        return Finished(result={"metrics": {"auc": 0.9}}, error=None, seconds=5.0)

    agent.run = fake_run  # type: ignore[method-assign]
    agent.spent["search"] = 20.0
    agent.verify(study, "auc", 0.90)
    # The base's test run and the best trial's: 10 s of 30 s, over the share: no more.
    assert verified == [{}, {"x": 0.93}]
    assert [k for k in study.user_attrs if k.startswith("verified:")] == ["verified:2"]
    agent.spent["search"] = 40.0  # the search went on: verification may resume (10 of 50 s)
    agent.verify(study, "auc", 0.90)
    assert verified[2:] == [{"x": 0.92}]
    agent.verify(study, "auc", 0.90, final=True)  # the search is over: all of them
    assert verified[3:] == [{"x": 0.91}]


def test_search_runs_deliver_only_the_scored_outputs_verifications_all(tmp_path: Path) -> None:
    from helix_tf.agent._trial_run import scored_outputs

    dag = {
        "nodes": [
            {"name": "learner", "role": "train", "output": False},
            {"name": "evaluation", "role": "evaluate", "output": True},
            {"name": "explanation", "role": "explain", "output": True},
            {"name": "unused_eval", "role": "evaluate", "output": False},
        ]
    }
    assert scored_outputs(dag) == ["evaluation"]
    assert scored_outputs({"nodes": [{"name": "x", "role": "explain", "output": True}]}) is None
    agent = _Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
    agent.scored = scored_outputs(dag)
    sent: list[dict[str, Any]] = []

    class FakeWorker:
        def call(self, request: dict[str, Any], **kwargs: Any) -> Finished:
            sent.append(request)
            return Finished(result={"metrics": {}}, error=None, seconds=0.0)

        def stats(self) -> dict[str, Any]:
            return {}

    agent.worker = FakeWorker()  # type: ignore[assignment]
    agent.run({}, validation=agent.opts.validation)
    agent.run({}, validation=None, materialize="all")  # a verification on the test split
    assert [r["outputs"] for r in sent] == [["evaluation"], None]
