"""How the bootstrap draws and reads its resamples: in cache-sized slices, with the
resamples and intervals of the earlier block-at-once code, AUC's wins in integers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from helix_tf.components import metrics as M
from helix_tf.components.metrics import _bootstrap


class _Recording:
    """A generator that records the shape of every batch of row indices drawn."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.shapes: list[tuple[int, ...]] = []

    def integers(self, *args: Any, size: tuple[int, ...], **kwargs: Any) -> np.ndarray:
        self.shapes.append(size)
        return self.rng.integers(*args, size=size, **kwargs)


def _block_at_once(counts: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The counts as the block-at-once code drew them (every row index of up to 1M at
    once, one bincount a block)."""
    rng = np.random.default_rng(seed)
    n, width = int(counts.sum()), len(counts)
    category_of_row = np.repeat(np.arange(width), counts)
    block, out = max(1, 1_000_000 // n), []
    for start in range(0, samples, block):
        b = min(block, samples - start)
        drawn = category_of_row[rng.integers(0, n, size=(b, n), dtype=np.int32)]
        drawn += (np.arange(b) * width)[:, np.newaxis]
        out.append(np.bincount(drawn.ravel(), minlength=b * width).reshape(b, width))
    return np.concatenate(out)


def test_row_draws_stay_in_cache_sized_slices_and_are_the_same_resamples() -> None:
    """16k rows over 3,000 categories: each slice of draws holds at most _CACHED_DRAWS
    indices (the block-at-once code held 1M, 8 MB of int64 categories), and the counts are
    those of drawing the block at once (the generator's stream is the same)."""
    counts = np.random.default_rng(1).integers(0, 11, size=3000)
    n = int(counts.sum())
    rng = _Recording(7)
    drawn = np.concatenate(list(_bootstrap._draw_counts(counts, 200, rng)))  # type: ignore[arg-type]
    assert max(math.prod(shape) for shape in rng.shapes) <= max(n, _bootstrap._CACHED_DRAWS)
    assert sum(shape[0] for shape in rng.shapes) == 200
    np.testing.assert_array_equal(drawn, _block_at_once(counts, 200, 7))


def test_intervals_are_the_bits_they_were() -> None:
    """Intervals of 16k rows with ties and slices, as the block-at-once code (main before
    session 16) computed them for this seed, to the bit."""
    rng = np.random.default_rng(9)
    n = 16_000
    y = (rng.random(n) < 0.25).astype(np.int64)
    s = np.round(np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1), 3)  # ties
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n, p=[0.3, 0.7])})
    metrics = [M.Accuracy(), M.AUC(slice_by="g"), M.LogLoss()]
    out = M.bootstrap_metrics(metrics, y, s, frame, samples=200, seed=5)
    assert {k: tuple(float.hex(x) for x in v) for k, v in out.items()} == {
        "accuracy": ("0x1.ac27bb2fec56ep-1", "0x1.b21db22d0e561p-1"),
        "auc": ("0x1.d632af7273a2bp-1", "0x1.db121fe561056p-1"),
        "auc[g=a]": ("0x1.d3bcdeace0aa5p-1", "0x1.db6bafb9fd38dp-1"),
        "auc[g=b]": ("0x1.d681f8ed5d6efp-1", "0x1.dc26e30b1f1c8p-1"),
        "log_loss": ("0x1.a1c249abf8cbdp-2", "0x1.b713338e5167fp-2"),
    }


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 8)), min_size=1, max_size=60),
    st.integers(0, 2**32 - 1),
)
def test_auc_of_every_resample_is_the_pairwise_count(
    rows: list[tuple[int, int]], seed: int
) -> None:
    """AUC's value per resample (its counts per column read as integers) is the fraction of
    (positive, negative) pairs the positive wins, a tie one half, over the rows drawn."""
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows]) / 8  # few scores: ties
    tally = M.AUC()._tally(y, s)
    # Resample counts per category (score and label), read in the tally's groups.
    draws = np.random.default_rng(seed).multinomial(
        int(tally.counts.sum()), tally.counts / tally.counts.sum(), size=5
    )
    values = tally.finish(_bootstrap._group_counts(draws, tally.groups))["auc"]
    _, rank = np.unique(s, return_inverse=True)
    occurring = np.unique(2 * rank + y)  # the tally's categories, in order
    for draw, value in zip(draws, values, strict=True):
        pos = np.repeat(occurring // 2, draw * (occurring % 2 == 1))
        neg = np.repeat(occurring // 2, draw * (occurring % 2 == 0))
        if not len(pos) or not len(neg):
            assert math.isnan(value)
            continue
        wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
        assert value == wins / (len(pos) * len(neg))
