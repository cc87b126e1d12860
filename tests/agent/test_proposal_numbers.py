"""The agent report's numbers go through the one formatter: NaN reads n/a, never +nan."""

from __future__ import annotations

from helix_tf.agent._proposals import _fmt_difference, _fmt_validation

NAN = float("nan")


def test_nan_differences_and_intervals_read_n_a() -> None:
    diff = {
        "metric": "auc",
        "new": NAN,
        "old": 0.5,
        "difference": NAN,
        "low": NAN,
        "high": 0.1,
        "rows": 3,
    }
    assert _fmt_difference(diff) == "test auc n/a vs 0.5000: n/a [n/a, +0.1000] over 3 rows"
    shown = _fmt_validation({"metric": "auc", "exact": False, "value": 0.5, "interval": (NAN, 1)})
    assert "nan" not in shown.replace("n/a", "")
