"""The agent benchmark's own logic: the yield latency percentile, Kendall τ, the load it
ran under, when the study counts as resumed after the SIGKILLs, the ABBA pair ratios."""

from __future__ import annotations

import math
import time
from pathlib import Path

import optuna
import pytest
from hypothesis import given, strategies as st

from benchmarks import agent_value as av

latencies = st.lists(st.floats(0.0, 1000.0, allow_nan=False), min_size=1, max_size=80)


@given(latencies, st.sampled_from([50, 90, 95, 99, 100]))
def test_percentile_is_the_nearest_rank(values: list[float], q: int) -> None:
    p = av.percentile(values, q)
    n = len(values)
    # At least q % of the values lie at or below it, and fewer than q % lie below it.
    assert sum(v <= p for v in values) >= q / 100 * n
    assert sum(v < p for v in values) < q / 100 * n


def test_p95_of_thirty_latencies_is_the_twenty_ninth() -> None:
    # 0.95 x 30 = 28.5: nearest rank 29 (rounding half to even would take the 28th).
    values = [float(i) for i in range(1, 31)]
    assert av.percentile(values, 95) == 29.0
    assert av.percentile([], 95) is None


def test_kendall_tau_counts_concordant_minus_discordant_over_all_pairs() -> None:
    assert av._kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert av._kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0
    assert math.isclose(av._kendall_tau([1, 2, 3], [10, 30, 20]), 1 / 3)
    assert av._kendall_tau([1.0], [2.0]) is None


def test_load_sampler_reports_the_load_it_saw() -> None:
    with av._LoadSampler(every=0.01) as load:
        pass
    summary = load.summary()
    assert summary["min"] <= summary["mean"] <= summary["max"]
    assert {"start", "end"} <= summary.keys()


class _FakeAgent:
    def __init__(self, store: Path, statuses: list[dict[str, object]]) -> None:
        self.store, self.statuses = store, statuses

    def status(self) -> dict[str, object]:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def _study(store: Path) -> optuna.Study:
    (store / "agent").mkdir(parents=True)
    return optuna.create_study(study_name="s", storage=f"sqlite:///{store}/agent/study.db")


def test_the_study_resumed_only_by_a_trial_completed_after_the_restart(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(tmp_path)
    study.tell(study.ask(), 0.5)  # completed before the last restart
    since = time.time() + 0.01
    time.sleep(0.05)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # a failed one is no resume
    # The status's counts moved (a trial ended) but nothing completed since the restart.
    agent = _FakeAgent(tmp_path, [{"trials": {"complete": 1, "fail": 1}}])
    assert av._resumed(agent, "s", since=since, timeout=1.2) is None
    study.tell(study.ask(), 0.7)
    agent = _FakeAgent(tmp_path, [{}, {"trials": {"complete": 2, "fail": 1}}])
    assert av._resumed(agent, "s", since=since, timeout=5) is not None


def test_abba_ratio_is_taken_within_each_pair_so_load_drift_cancels() -> None:
    # The machine slows down pair after pair; within each pair the active runs take
    # 10% longer than the idle ones. Medians over all runs would mix the pairs.
    idle, active = [], []
    for load in (1.0, 1.0, 1.0, 4.0, 4.0):
        idle += [10 * load, 10 * load]
        active += [11 * load, 11 * load]
    assert av.abba_pair_ratios(idle, active) == pytest.approx([1.1] * 5)
    # Drift in the other direction inside one pair (A B B A) averages out too.
    assert av.abba_pair_ratios([10.0, 20.0], [14.0, 16.0]) == pytest.approx([1.0])


def test_abba_pair_ratios_names_mismatched_runs() -> None:
    with pytest.raises(ValueError, match="3 idle and 4 active"):
        av.abba_pair_ratios([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])


def test_fidelity_tau_per_family_uses_each_points_model_swap() -> None:
    points = [
        {"overrides": {"model:learner": "DNN"}, "approx": a, "exact": e}
        for a, e in ((1, 1), (2, 3), (3, 2))
    ] + [{"overrides": {"learner.l2": 0.1}, "approx": a, "exact": a} for a in (1, 2)]
    taus = av._fidelity_taus(points)
    assert taus["DNN"] == {"n": 3, "tau": av._kendall_tau([1, 2, 3], [1, 3, 2])}
    assert taus["as written"] == {"n": 2, "tau": 1.0}
    assert taus["all"]["n"] == 5


def test_stored_exact_reads_a_trials_file_and_a_result_file(tmp_path: Path) -> None:
    import json

    rows = [{"fidelity_trial": {"a": i}, "approx": 0.5, "exact": 0.8 + i / 100} for i in range(3)]
    lines = tmp_path / "trials.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in [*rows, {"other": 1}]) + "\n")
    expected = [{"overrides": {"a": i}, "exact": 0.8 + i / 100} for i in range(3)]
    assert av._stored_exact(lines) == expected
    result = tmp_path / "result.json"
    points = [{"overrides": e["overrides"], "exact": e["exact"], "approx": 0.1} for e in expected]
    result.write_text(json.dumps({"fidelity": {"points": points}}))
    assert av._stored_exact(result) == expected


def _fidelity_args(tmp_path: Path, exact_from: Path, **kw: object) -> object:
    import argparse

    defaults = {
        "config": tmp_path / "cfg.py",
        "data_dir": None,
        "scale": 10,
        "fidelity_trials": 3,
        "fidelity_sample": None,
        "fidelity_precision": "auto",
        "fidelity_epochs_scale": 1.0,
        "exact_from": str(exact_from),
        "exact_check": 1,
        "exact_tolerance": 1e-3,
    }
    return argparse.Namespace(**{**defaults, **kw})


def _fake_runs(monkeypatch: pytest.MonkeyPatch, exact: dict[int, float]) -> list[tuple[str, int]]:
    """``helix_tf.run`` answering AUC 0.5 + x/10 approximately and ``exact[x]`` exactly."""
    import types

    import helix_tf
    from helix_tf import warm

    calls: list[tuple[str, int]] = []

    def run(config: object, *, params: list[str], approx: object, **kw: object) -> object:
        x = int(next(p for p in params if p.startswith("x=")).split("=")[1])
        kind = "exact" if approx is None else "approx"
        calls.append((kind, x))
        auc = exact[x] if approx is None else 0.5 + x / 10
        return types.SimpleNamespace(metrics={"auc": auc}, wall_seconds=1.0 if approx else 4.0)

    monkeypatch.setattr(helix_tf, "run", run)
    monkeypatch.setattr(warm, "preload", lambda **kw: 0.0)
    return calls


def test_fidelity_reuses_stored_exact_aucs_and_recomputes_only_the_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    stored = tmp_path / "trials.jsonl"
    stored.write_text(
        "\n".join(
            json.dumps({"fidelity_trial": {"x": x}, "exact": e})
            for x, e in ((0, 0.8), (2, 0.82), (1, 0.81))
        )
    )
    calls = _fake_runs(monkeypatch, {0: 0.8, 1: 0.81, 2: 0.82})
    out = av.fidelity(_fidelity_args(tmp_path, stored), tmp_path)  # type: ignore[arg-type]
    assert sorted(calls) == [("approx", 0), ("approx", 1), ("approx", 2), ("exact", 0)]
    assert [p["exact_source"] for p in out["points"]] == ["recomputed", "stored", "stored"]
    assert out["exact_auc"] == [0.8, 0.82, 0.81] and out["kendall_tau"] == 1.0
    assert {k: v for k, v in out["cost_side_by_side"].items() if "cpu" not in k} == {
        "pairs": 1,
        "approx_seconds": 1.0,
        "exact_seconds": 4.0,
        "ratio": 0.25,
    }
    assert out["approx"]["sample"] == 0.5  # the agent's rung by default


def test_fidelity_refuses_stored_exact_aucs_the_code_no_longer_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    stored = tmp_path / "trials.jsonl"
    stored.write_text(
        "\n".join(json.dumps({"fidelity_trial": {"x": x}, "exact": 0.8}) for x in (0, 1, 2))
    )
    _fake_runs(monkeypatch, {0: 0.81, 1: 0.8, 2: 0.8})
    with pytest.raises(SystemExit, match="cannot be reused"):
        av.fidelity(_fidelity_args(tmp_path, stored), tmp_path)  # type: ignore[arg-type]
