"""Reuse-aware order of a batch of trials: each shared intermediate computed once."""

from __future__ import annotations

from hypothesis import given, strategies as st

from helix_tf.agent._order import compute_costs, reuse_order


def _batch(keys: list[int], prep: list[float], fits: list[float]) -> list[dict[str, float]]:
    """Trial i computes preprocessing ``p{keys[i]}`` (not stored yet) and its own model."""
    return [{f"p{k}": prep[k], f"fit{i}": fits[i]} for i, k in enumerate(keys)]


def _computed_with_one_slot(batch: list[dict[str, float]], order: list[int]) -> int:
    """Preprocessing computations when only the newest preprocessing stays stored."""
    kept, computed = None, 0
    for i in order:
        prep = next(fp for fp in batch[i] if fp.startswith("p"))
        computed += prep != kept
        kept = prep
    return computed


@given(
    keys=st.lists(st.integers(0, 3), min_size=1, max_size=12),
    prep=st.lists(st.floats(3.0, 10.0), min_size=4, max_size=4),
    data=st.data(),
)
def test_each_shared_intermediate_is_computed_once_even_when_only_the_newest_is_kept(
    keys: list[int], prep: list[float], data: st.DataObject
) -> None:
    fits = data.draw(st.lists(st.floats(1.0, 2.0), min_size=len(keys), max_size=len(keys)))
    batch = _batch(keys, prep, fits)
    order = reuse_order(batch)
    assert sorted(order) == list(range(len(keys)))
    assert _computed_with_one_slot(batch, order) == len(set(keys))


def test_stored_first_duplicates_after_their_twin_unplannable_last() -> None:
    a, b = {"p1": 5.0, "fa": 1.0}, {"p2": 5.0, "fb": 1.0}
    stored = {"fc": 1.0}  # its preprocessing is stored: only the model to fit
    assert reuse_order([a, None, b, stored, a, b]) == [3, 0, 4, 2, 5, 1]
    # The sampler's own order would compute p1 and p2 twice each with one slot.
    batch = [a, b, a, b]
    assert _computed_with_one_slot(batch, [0, 1, 2, 3]) == 4
    assert _computed_with_one_slot(batch, reuse_order(batch)) == 2


def test_compute_costs_reads_the_plan() -> None:
    from helix_tf.results import NodeDecision, PlanResult

    def node(name: str, state: str) -> NodeDecision:
        return NodeDecision(
            name=name,
            kind="x",
            state=state,
            compute_cost=2.0,
            load_cost=0.1,
            reason="",
            fingerprint=f"fp-{name}",
        )

    plan = PlanResult(
        workflow="w",
        approx=False,
        nodes=(node("a", "compute"), node("b", "load")),
        estimated_seconds=2.1,
    )
    assert compute_costs(plan) == {"fp-a": 2.0}
