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


def test_a_proposals_p_arguments_read_back_through_the_shell_as_the_values() -> None:
    """Before: ``-p 'add:fnlwgt='"'"'numeric'"'"''`` for every text value (correct, and
    unreadable); now double quotes where the shell leaves them alone."""
    import shlex

    from helix_tf.agent._proposals import overrides_args
    from helix_tf.config import parse_overrides

    overrides = {
        "add:fnlwgt": "numeric",
        "bucketize:age": "25,40,60",
        "learner.l1": 0.003,
        "tag": 'say "hi"',
        "note": "it's $HOME!",
    }
    args = overrides_args(overrides)
    assert "-p \"add:fnlwgt='numeric'\"" in args and "-p learner.l1=0.003" in args
    words = shlex.split(" ".join(args))
    assert words[::2] == ["-p"] * len(overrides)
    assert parse_overrides(words[1::2]) == overrides
