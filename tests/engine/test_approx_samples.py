"""An approximate run whose sample leaves the training rows unusable (QA pass 11).

A sample of a small training split can keep no row, or rows of one label value only,
where the whole split has more. Trained anyway, the run showed metrics of a model that
learned nothing (AUC ≈0.5000 with the interval [0.5000, 0.5000]); a data check failing
on the sample named the training split (``no row of the training split has label ...``)
though the split has such rows. Every such failure names the sample and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import helix_tf
from helix_tf.approx.sampling import sample_problem
from helix_tf.errors import HelixError

#: So small that none of a few hundred rows is kept (each row: kept with this probability).
NONE_KEPT = 1e-9


def _approx(sample: float, seed: int = 1) -> helix_tf.Approx:
    # Seed 1: the row hash keeps row 0 at any fraction under seed 0.
    return helix_tf.Approx(sample=sample, seed=seed, min_saving_seconds=0)


def test_a_training_sample_with_no_row_fails_naming_the_sample(
    tiny_census_config: Path, store: str
) -> None:
    # The exact examples stored (sampled at training): at 600 rows the helix policy may
    # not find them worth storing.
    helix_tf.run(tiny_census_config, store=store, materialize="all")
    with pytest.raises(HelixError, match=r"sample") as caught:
        helix_tf.run(
            tiny_census_config,
            store=store,
            params={"learner.learning_rate": 0.02},
            approx=_approx(NONE_KEPT),
        )
    assert "600" in str(caught.value)  # of how many rows
    assert "--sample" in str(caught.value)


def test_a_source_sample_with_no_row_fails_naming_the_sample(
    tiny_census_config: Path, store: str
) -> None:
    with pytest.raises(HelixError, match=r"sample") as caught:
        helix_tf.run(tiny_census_config, store=store, approx=_approx(NONE_KEPT))
    assert "--sample" in str(caught.value)


def test_a_check_failing_on_a_source_sample_is_retried_at_training(
    tiny_census_config: Path, store: str
) -> None:
    # Seed 0 at 0.002 keeps one row of the 600: a '<=50K'. At the source the positive
    # label's check failed on it ("every row of the training split ..."); the run then
    # draws the sample at training from the exact examples, where it is the sample's
    # problem, said as such.
    with pytest.raises(HelixError) as caught:
        helix_tf.run(tiny_census_config, store=store, approx=_approx(0.002, seed=0))
    message = str(caught.value)
    assert "only one label value (0)" in message
    assert "approximate run" in message and "--sample" in message
    assert "every row of the training split" not in message


@pytest.mark.parametrize(
    ("task", "labels", "kept", "expected"),
    [
        ("binary", [0, 1, 0, 1], [False, False, False, False], "kept no row"),
        ("binary", [0, 1, 0, 1], [True, False, True, False], "only one label value"),
        ("multiclass", [0, 1, 2, 2], [False, False, True, True], "only one label value"),
        ("binary", [0, 0, 0, 0], [True, False, True, False], None),  # the split's own
        ("binary", [0, 1, 0, 1], [True, True, False, False], None),
        ("regression", [1.0, 2.0, 3.0], [True, False, False], None),
        ("regression", [1.0, 2.0, 3.0], [False, False, False], "kept no row"),
    ],
)
def test_sample_problem(
    task: str, labels: list[float], kept: list[bool], expected: str | None
) -> None:
    found = sample_problem(np.array(labels), np.array(kept), task=task, fraction=0.5, seed=3)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found
        assert "--sample 0.5" in found and "seed 3" in found
