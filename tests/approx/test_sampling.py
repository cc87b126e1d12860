"""Row sampling of approximate runs (``helix_tf.approx.sampling.keep_mask``).

A row is kept when a seeded hash of its stable id is below the fraction, so the
same rows are kept wherever the sample is applied (at the source, or later on
stored examples): the decision for a row depends only on its id, the fraction
and the seed — never on the other rows of the batch or their order. Covered:
determinism, independence from batch contents and order, nesting of samples of
growing fractions, the kept fraction on many ids (a tolerance of 5 binomial
standard deviations on fixed inputs, so nothing can flake), distinct seeds
giving distinct samples, and the edge fractions 0 and >= 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helix_tf.approx.sampling import keep_mask
from helix_tf.components.sources._base import COPY_STRIDE, FILE_STRIDE

N = 100_000

# Row ids as sources assign them: non-negative int64 (line numbers, offset per file and copy).
row_ids = st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=200)
fractions = st.floats(min_value=0.0, max_value=1.0, exclude_max=True, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32)


def within_five_sd(kept: int, n: int, fraction: float) -> bool:
    """``kept`` is within 5 standard deviations of Binomial(n, fraction)'s mean."""
    sd = math.sqrt(n * fraction * (1 - fraction))
    return abs(kept - n * fraction) <= 5 * sd


# ------------------------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None)
@given(ids=row_ids, fraction=fractions, seed=seeds)
def test_same_ids_and_seed_give_the_same_mask(ids: list[int], fraction: float, seed: int) -> None:
    a = keep_mask(np.array(ids, dtype=np.int64), fraction, seed)
    b = keep_mask(np.array(ids, dtype=np.int64), fraction, seed)
    assert a.dtype == np.bool_ and a.shape == (len(ids),)
    assert np.array_equal(a, b)


@settings(max_examples=200, deadline=None)
@given(ids=row_ids, others=row_ids, fraction=fractions, seed=seeds, data=st.data())
def test_a_rows_fate_does_not_depend_on_the_other_rows_or_their_order(
    ids: list[int], others: list[int], fraction: float, seed: int, data: st.DataObject
) -> None:
    alone = keep_mask(np.array(ids, dtype=np.int64), fraction, seed)
    # Mixed into a larger batch, in any order: each row decides exactly as it did alone.
    batch = np.array(ids + others, dtype=np.int64)
    order = np.array(data.draw(st.permutations(range(len(batch)))), dtype=np.int64)
    mixed = keep_mask(batch[order], fraction, seed)
    back = np.empty_like(mixed)
    back[order] = mixed
    assert np.array_equal(back[: len(ids)], alone)
    # One row at a time (as a filter applied row by row would) gives the same decisions.
    one_by_one = [bool(keep_mask(np.array([i], dtype=np.int64), fraction, seed)[0]) for i in ids]
    assert one_by_one == alone.tolist()


@settings(max_examples=200, deadline=None)
@given(ids=row_ids, seed=seeds, f1=fractions, f2=fractions)
def test_a_larger_fraction_keeps_every_row_a_smaller_one_keeps(
    ids: list[int], seed: int, f1: float, f2: float
) -> None:
    small, large = sorted((f1, f2))
    arr = np.array(ids, dtype=np.int64)
    kept_small, kept_large = keep_mask(arr, small, seed), keep_mask(arr, large, seed)
    assert not (kept_small & ~kept_large).any()


@settings(max_examples=100, deadline=None)
@given(ids=row_ids, fraction=fractions, seed=seeds)
def test_the_id_container_type_does_not_matter(ids: list[int], fraction: float, seed: int) -> None:
    expected = keep_mask(np.array(ids, dtype=np.int64), fraction, seed)
    assert np.array_equal(keep_mask(ids, fraction, seed), expected)  # a plain list
    small = [i % 2**31 for i in ids]
    assert np.array_equal(
        keep_mask(np.array(small, dtype=np.int32), fraction, seed),
        keep_mask(np.array(small, dtype=np.int64), fraction, seed),
    )


# ------------------------------------------------------------------------------ kept fraction


@pytest.mark.parametrize("seed", [0, 1, 12345])
@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.1, 0.25, 0.5, 0.9, 0.999])
def test_kept_fraction_is_close_to_the_requested_one(fraction: float, seed: int) -> None:
    kept = int(keep_mask(np.arange(N), fraction, seed).sum())
    assert within_five_sd(kept, N, fraction), (kept, N * fraction)


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_kept_fraction_holds_for_ids_of_several_files_and_copies(fraction: float) -> None:
    # Sources offset the line numbers of each file and of each replicated copy.
    lines = np.arange(N // 4, dtype=np.int64)
    ids = np.concatenate(
        [lines + f * FILE_STRIDE + c * COPY_STRIDE for f in range(2) for c in range(2)]
    )
    mask = keep_mask(ids, fraction, 0)
    assert within_five_sd(int(mask.sum()), len(ids), fraction)
    # ...and within each file and copy, not only overall.
    for part in np.split(mask, 4):
        assert within_five_sd(int(part.sum()), len(part), fraction)


def test_every_label_keeps_its_share() -> None:
    """Kept by id alone: each label keeps about the requested fraction of its rows."""
    ids = np.arange(N)
    labels = np.random.default_rng(0).random(N) < 0.24  # like census: ~24% positive
    mask = keep_mask(ids, 0.1, 0)
    for label in (True, False):
        rows = labels == label
        assert within_five_sd(int(mask[rows].sum()), int(rows.sum()), 0.1)


# ------------------------------------------------------------------------------ seeds


def test_different_seeds_give_different_samples() -> None:
    ids = np.arange(N)
    masks = [keep_mask(ids, 0.5, seed) for seed in range(5)]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert not np.array_equal(masks[i], masks[j]), (i, j)
            # Different seeds sample (nearly) independently: overlap ~ 0.5 * 0.5 of the rows.
            both = int((masks[i] & masks[j]).sum())
            assert within_five_sd(both, N, 0.25), (i, j, both)


def test_a_large_seed_is_accepted_and_deterministic() -> None:
    ids = np.arange(1000)
    assert np.array_equal(keep_mask(ids, 0.3, 2**63), keep_mask(ids, 0.3, 2**63))
    assert not np.array_equal(keep_mask(ids, 0.3, 2**63), keep_mask(ids, 0.3, 0))


# ------------------------------------------------------------------------------ edge values


@pytest.mark.parametrize("fraction", [1.0, 1, 1.5])
def test_fraction_of_one_or_more_keeps_every_row(fraction: float) -> None:
    ids = np.arange(10_000)
    mask = keep_mask(ids, fraction, 7)
    assert mask.dtype == np.bool_ and mask.shape == (10_000,)
    assert mask.all()


@pytest.mark.parametrize("fraction", [0.0, -0.5])
def test_fraction_of_zero_or_less_keeps_no_row(fraction: float) -> None:
    assert not keep_mask(np.arange(10_000), fraction, 0).any()


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_no_ids_give_an_empty_mask(fraction: float) -> None:
    mask = keep_mask(np.array([], dtype=np.int64), fraction, 0)
    assert mask.dtype == np.bool_ and mask.shape == (0,)


def test_docstring_examples_hold() -> None:
    ids = np.arange(100_000)
    assert round(float(keep_mask(ids, 0.1).mean()), 2) == 0.1
    assert np.array_equal(keep_mask(ids, 0.1), keep_mask(ids, 0.1, seed=0))  # seed defaults to 0
