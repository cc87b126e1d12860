"""The agent loop's decisions, with the runs faked: ablation, metric choice, direction."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helix_tf import search
from helix_tf.agent._options import AgentOptions, metric_direction, preferred_metric
from helix_tf.agent._search import Agent
from helix_tf.agent._study import AS_WRITTEN, AgentPaths, requeue, suggest
from helix_tf.agent._worker import Finished
from helix_tf.roles import NodeState


def test_ablation_keeps_only_changes_whose_reversal_hurts(tmp_path: Path) -> None:
    agent = Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
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

    agent = Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
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
    agent.approx_is_cheaper = lambda overrides, approx, **kw: True  # type: ignore[method-assign]
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

    agent = Agent(
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
    def fake_plan(o: dict[str, Any]) -> SimpleNamespace:
        computes = {
            f"vocab{o['v.min_count']}": 0.0 if o["v.min_count"] == 1 else 9.0,
            f"fit{o['learner.l2']}": 1.0,
        }
        nodes = [
            SimpleNamespace(fingerprint=f, compute_cost=c, state=NodeState.COMPUTE)
            for f, c in computes.items()
        ]
        return SimpleNamespace(nodes=nodes)

    agent.exact_plan = fake_plan  # type: ignore[method-assign]
    ran: list[float] = []

    def fake_run(overrides: dict[str, Any], **kwargs: Any) -> Finished:
        ran.append(overrides["learner.l2"])
        agent.stop_requested = len(ran) == 3
        return Finished(result={"metrics": {"auc": 0.5}, "approx": False}, error=None, seconds=0.0)

    agent.run = fake_run  # type: ignore[method-assign]
    agent.approx_is_cheaper = lambda overrides, approx, **kw: False  # type: ignore[method-assign]
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

    agent = Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
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
    agent = Agent(opts, AgentPaths(home=tmp_path))
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
    assert verified[2:] == []  # 0.92 and 0.91 are no new leaders
    _tell(study, 0.95)
    agent.verify(study, "auc", 0.90)
    assert verified[2:] == [{"x": 0.95}]
    agent.verify(study, "auc", 0.90, final=True)  # the search is over: the top 3
    assert verified[3:] == [{"x": 0.92}]


def _tell(study: Any, value: float) -> None:
    study.enqueue_trial({"x": value})
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, value)


def test_a_new_leader_is_verified_only_when_it_moved_meaningfully(tmp_path: Path) -> None:
    """Verifying each leader a hair above the last repeated its test runs and ablation."""
    from helix_tf.agent._study import open_study

    opts = AgentOptions(config=str(tmp_path / "c.py"), verify_share=1.0, verify_min_gain=0.1)
    agent = Agent(opts, AgentPaths(home=tmp_path))
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    study = open_study(AgentPaths(home=tmp_path), "w@1", create=True)
    verified: list[float] = []

    def fake_run(overrides: dict[str, Any], **kwargs: Any) -> Finished:
        if overrides:
            verified.append(overrides["x"])
        return Finished(result={"metrics": {"auc": 0.9}}, error=None, seconds=1.0)

    agent.run = fake_run  # type: ignore[method-assign]
    _tell(study, 0.93)
    agent.verify(study, "auc", 0.90)
    _tell(study, 0.932)  # gain 0.032: not 10% more than the verified 0.03
    agent.verify(study, "auc", 0.90)
    assert verified == [0.93]
    _tell(study, 0.934)  # gain 0.034 > 0.033
    agent.verify(study, "auc", 0.90)
    assert verified == [0.93, 0.934]


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
    agent = Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
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


def test_a_batch_plans_each_trial_once_and_the_approximate_rung_once_per_shape(
    tmp_path: Path,
) -> None:
    """Three plans a trial (order, then exact and approximate again) were most of the
    agent process's CPU; the exact plan serves both, the approximate one its shape."""
    from helix_tf.agent._study import open_study

    agent = Agent(
        AgentOptions(config=str(tmp_path / "c.py"), resume_after=0.0), AgentPaths(home=tmp_path)
    )
    agent.update = lambda **fields: None  # type: ignore[method-assign]
    agent.learners = frozenset({"learner"})
    space = search.SearchSpace(
        dimensions={
            "learner.learning_rate": search.Float(0.001, 0.1),
            "v.min_count": search.Choice(1, 5),
        },
        current={"learner.learning_rate": 0.01, "v.min_count": 1},
        declared=True,
    )
    study = open_study(AgentPaths(home=tmp_path), "w@1", create=True)
    for lr, mc in ((0.01, 1), (0.02, 1), (0.03, 5), (0.04, 1)):
        study.enqueue_trial({"learner.learning_rate": lr, "v.min_count": mc})
    planned: list[tuple[float, bool]] = []

    def fake_plan(overrides: dict[str, Any], approx: Any = None) -> SimpleNamespace:
        planned.append((overrides["learner.learning_rate"], approx is not None))
        cost = 1.0 if approx is not None else 4.0
        node = SimpleNamespace(
            fingerprint=f"fit{overrides['learner.learning_rate']}",
            compute_cost=cost,
            state=NodeState.COMPUTE,
        )
        return SimpleNamespace(nodes=[node], estimated_seconds=cost, approx=approx is not None)

    rungs: list[tuple[float, bool]] = []

    def fake_run(overrides: dict[str, Any], *, approx: Any = None, **kw: Any) -> Finished:
        rungs.append((overrides["learner.learning_rate"], approx is not None))
        result = {"metrics": {"auc": 0.5}, "approx": approx is not None}
        return Finished(result=result, error=None, seconds=0.0)

    agent.plan = fake_plan  # type: ignore[method-assign]
    agent.run = fake_run  # type: ignore[method-assign]
    agent.batch(study, space, "auc", 4)
    exact = [lr for lr, cheap in planned if not cheap]
    approximate = [lr for lr, cheap in planned if cheap]
    assert sorted(exact) == [0.01, 0.02, 0.03, 0.04]  # once each
    assert len(approximate) == 2  # one per trainer shape (min_count 1, min_count 5)
    # Every trial took the approximate rung first (1 s against 4 s estimated).
    assert {lr for lr, cheap in rungs if cheap} == {0.01, 0.02, 0.03, 0.04}


def test_the_rungs_are_priced_by_their_measured_cpu_once_both_are_measured(
    tmp_path: Path,
) -> None:
    """One wall-clock measurement per node swung 5x under load and knows no epochs: at
    census x1 the approximate run took 0.86x the exact one's CPU, yet the planner's
    estimates kept choosing it. Once both rungs are measured, their medians decide."""
    agent = Agent(AgentOptions(config=str(tmp_path / "c.py")), AgentPaths(home=tmp_path))
    planned: list[bool] = []

    def fake_plan(overrides: dict[str, Any], approx: Any = None) -> SimpleNamespace:
        planned.append(approx is not None)
        cost = 1.0 if approx is not None else 4.0  # the planner: 0.25x, cheaper
        return SimpleNamespace(nodes=[], estimated_seconds=cost, approx=approx is not None)

    agent.plan = fake_plan  # type: ignore[method-assign]
    approx = object()

    def measure(kind: str, cpu: float) -> None:
        result = {"metrics": {"auc": 0.5}, "approx": kind == "approx"}
        agent.rungs.add(Finished(result=result, error=None, seconds=9.0, cpu_seconds=cpu))

    assert agent.approx_is_cheaper({}, approx)  # nothing measured: the planner decides
    for cpu in (2.0, 1.8, 2.4):
        measure("approx", cpu)
        measure("exact", cpu / 0.86)
    assert agent.rungs.ratio() == pytest.approx(0.86)
    planned.clear()
    assert not agent.approx_is_cheaper({}, approx)
    assert planned == []  # decided without planning
    for cpu in (0.5, 0.4, 0.6, 0.5):  # a larger scale: the sample pays
        measure("approx", cpu)
    assert agent.approx_is_cheaper({}, approx)
    assert planned == [True]  # only whether the planner would run it approximately
