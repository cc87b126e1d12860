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


def _builds(shapes: list[str], order: list[int], kept: int, recent: list[str]) -> int:
    """Trainers built running ``order`` with an LRU cache of ``kept`` (``recent`` in it)."""
    from collections import OrderedDict

    cache: OrderedDict[str, None] = OrderedDict((s, None) for s in recent[-kept:])
    builds = 0
    for i in order:
        if shapes[i] in cache:
            cache.move_to_end(shapes[i])
        else:
            builds += 1
            cache[shapes[i]] = None
            while len(cache) > kept:
                cache.popitem(last=False)
    return builds


@given(
    shapes=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=14),
    recent=st.lists(st.sampled_from("abcdefg"), max_size=4, unique=True),
    kept=st.integers(1, 4),
)
def test_each_trainer_shape_is_built_once_when_the_work_is_otherwise_equal(
    shapes: list[str], recent: list[str], kept: int
) -> None:
    """Trials that differ only in run-time parameters run while their trainer is kept."""
    fits = [{f"fit{i}": 1.0} for i in range(len(shapes))]
    order = reuse_order(fits, shapes, kept=kept, recent=recent)
    assert sorted(order) == list(range(len(shapes)))
    warm = set(recent[-kept:])
    assert _builds(shapes, order, kept, recent) == len(set(shapes) - warm)
    assert _builds(shapes, order, kept, recent) <= _builds(
        shapes, list(range(len(shapes))), kept, recent
    )


def test_trainer_shape_keeps_of_the_learners_run_time_values_only_whether_they_are_0() -> None:
    from helix_tf.agent._order import trainer_shape
    from helix_tf.components.trainers import RUN_TIME_PARAMS

    base = {"learner.l2": 1e-3, "vocab.min_count": 2}
    shape = trainer_shape(base, ["learner"])
    for param in RUN_TIME_PARAMS:
        assert trainer_shape({**base, f"learner.{param}": 7}, ["learner"]) == trainer_shape(
            {**base, f"learner.{param}": 9}, ["learner"]
        )
        assert trainer_shape({**base, f"learner.{param}": 7}, ["learner"]) != trainer_shape(
            {**base, f"learner.{param}": 0}, ["learner"]
        )
        assert trainer_shape({**base, f"vocab.{param}": 7}, ["learner"]) != shape
    assert trainer_shape({**base, "learner.l2": 1e-2}, ["learner"]) == shape
    assert trainer_shape({**base, "learner.l2": 0.0}, ["learner"]) != shape
    assert trainer_shape({**base, "vocab.min_count": 3}, ["learner"]) != shape
