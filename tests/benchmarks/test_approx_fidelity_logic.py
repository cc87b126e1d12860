"""The approximate-run fidelity scores: Kendall τ over decisive pairs, plain τ-b over all
pairs, the share of pairs kept, and rescoring an earlier report."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from benchmarks import approx_fidelity as af

RESULTS = Path(af.__file__).parent / "results"

metric = st.floats(0.0, 1.0, allow_nan=False).map(lambda x: round(x, 3))  # ties happen


def tau_b_by_matrix(x: list[float], y: list[float]) -> float | None:
    """τ-b from the sign matrices (a second formulation)."""
    a = np.sign(np.subtract.outer(x, x))
    b = np.sign(np.subtract.outer(y, y))
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return None if denominator == 0 else float((a * b).sum()) / denominator


def test_tau_b_matches_the_reference_value_with_ties() -> None:
    # scipy.stats.kendalltau's documented example (variant b, ties in both).
    got = af.kendall_tau_b([12, 2, 1, 12, 2], [1, 4, 7, 1, 0])
    assert got == pytest.approx(-0.47140452079103173, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(metric, metric), min_size=2, max_size=9))
def test_tau_b_agrees_with_the_sign_matrix_formula_and_its_symmetries(
    pairs: list[tuple[float, float]],
) -> None:
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    got, expected = af.kendall_tau_b(x, y), tau_b_by_matrix(x, y)
    if expected is None:
        assert got is None
        return
    assert got == pytest.approx(expected, abs=1e-12)
    assert -1.0 - 1e-12 <= got <= 1.0 + 1e-12
    assert af.kendall_tau_b(y, x) == pytest.approx(got, abs=1e-12)
    assert af.kendall_tau_b(x, [-v for v in y]) == pytest.approx(-got, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(metric, metric, st.floats(0.0, 0.2)), min_size=2, max_size=9),
    st.floats(1.0, 5.0),
)
def test_wider_intervals_only_drop_pairs_and_never_change_plain_tau_b(
    rows: list[tuple[float, float, float]], widen: float
) -> None:
    """The decisive-pair score leaves ties out, so noise can flatter it; τ-b cannot move."""
    exact, approx, hw = ([r[i] for r in rows] for i in range(3))
    narrow = af.fidelity(exact, approx, hw)
    wide = af.fidelity(exact, approx, [h * widen for h in hw])
    assert wide["decisive_pairs"] <= narrow["decisive_pairs"]
    assert set(map(tuple, narrow["tie_pairs"])) <= set(map(tuple, wide["tie_pairs"]))
    assert wide["tau_b_all_pairs"] == narrow["tau_b_all_pairs"]
    for r in (narrow, wide):
        assert r["decisive_pairs"] + r["ties"] == r["pairs"] == len(rows) * (len(rows) - 1) // 2
        assert r["decisive_share"] == pytest.approx(r["decisive_pairs"] / r["pairs"])
        assert r["concordant"] + r["discordant"] + r["approx_equal"] == r["decisive_pairs"]


def test_decisive_tau_can_be_perfect_while_plain_tau_b_is_not() -> None:
    # Variants 0 and 1 are within the interval (a tie, left out) and ranked the wrong way.
    exact, approx = [0.80, 0.805, 0.90], [0.75, 0.70, 0.80]
    r = af.fidelity(exact, approx, [0.01, 0.01, 0.01])
    assert r["tau"] == 1.0 and r["decisive_pairs"] == 2 and r["tie_pairs"] == [[0, 1]]
    assert r["tau_b_all_pairs"] == pytest.approx(1 / 3)
    assert r["decisive_share"] == pytest.approx(2 / 3)


def test_pairs_with_nan_are_ties_and_left_out_of_tau_b() -> None:
    r = af.fidelity([0.8, float("nan"), 0.9], [0.7, 0.5, 0.8], [0.01, 0.01, 0.01])
    assert r["ties"] == 2 and r["decisive_pairs"] == 1
    assert r["tau_b_all_pairs"] == 1.0


def _variant(name: str, exact: dict, approx: dict, hw: float, wall: tuple[float, float]) -> dict:
    def side(metrics: dict, intervals: dict, w: float) -> dict:
        return {
            "metrics": metrics,
            "intervals": intervals,
            "wall_s": w,
            "cpu_s": w,
            "wall_seconds_json": w,
            "train_rows": 10,
        }

    intervals = {k: [v - hw, v + hw] for k, v in approx.items()}
    return {
        "variant": name,
        "exact": side(exact, {}, wall[0]),
        "approx": side(approx, intervals, wall[1]),
        "exact_reused": False,
    }


def test_rescore_recomputes_every_summary_from_the_stored_runs() -> None:
    variants = [
        _variant(f"v{i}", {"accuracy": e, "auc": e}, {"accuracy": a, "auc": a}, 0.001, (4.0, 2.0))
        for i, (e, a) in enumerate([(0.80, 0.70), (0.85, 0.72), (0.90, 0.71)])
    ]
    old = {"results": [{"workload": "census", "scale": 10, "variants": variants, "summary": {}}]}
    new = af.rescore(old)
    assert old["results"][0]["summary"] == {}  # the input is not modified
    summary = new["results"][0]["summary"]
    acc = summary["fidelity"]["accuracy"]
    assert (acc["concordant"], acc["discordant"]) == (2, 1)
    assert acc["tau"] == pytest.approx(1 / 3) and acc["tau_b_all_pairs"] == pytest.approx(1 / 3)
    assert summary["speed"]["speedup_wall"] == 2.0
    assert summary["targets"]["tau_met"] == {"accuracy": False, "auc": False}
    text = af.render(new["results"][0])
    assert "plain τ-b over all 3 pairs = 0.333" in text and "pairs kept 3/3 (100%)" in text


@pytest.mark.parametrize("name", ["approx_fidelity_census_x10_server_cold.json"])
def test_rescoring_a_stored_report_keeps_its_decisive_scores(name: str) -> None:
    """The stored census ×10 report: rescoring adds τ-b without moving the old score."""
    old = json.loads((RESULTS / name).read_text())
    new = af.rescore(old)
    for before, after in zip(old["results"], new["results"], strict=True):
        for m in af.METRICS:
            b, a = before["summary"]["fidelity"][m], after["summary"]["fidelity"][m]
            assert (a["tau"], a["decisive_pairs"], a["ties"]) == (
                b["tau"],
                b["decisive_pairs"],
                b["ties"],
            )
            exact = [v["exact"]["metrics"][m] for v in after["variants"]]
            approx = [v["approx"]["metrics"][m] for v in after["variants"]]
            assert a["tau_b_all_pairs"] == pytest.approx(tau_b_by_matrix(exact, approx))


def test_half_width_of_an_interval() -> None:
    assert af.half_width([0.7, 0.8]) == pytest.approx(0.05)
    assert math.isnan(af.half_width(None)) and math.isnan(af.half_width([0.5]))


def test_fidelity_counts_every_pair_once() -> None:
    n = 6
    r = af.fidelity(list(range(n)), list(range(n)), [0.0] * n)
    assert r["pairs"] == len(list(itertools.combinations(range(n), 2))) == r["concordant"]
    assert r["tau"] == r["tau_b_all_pairs"] == 1.0
