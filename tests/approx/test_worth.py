"""What a sample saves, from the exact run's measurements: the rule behind running exact."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, strategies as st

from helix_tf.approx.worth import SAMPLED_ROLES, approx_saving

ROLES = ("source", "feature", "examples", "train", "predict", "evaluate")


@dataclasses.dataclass
class Rec:
    compute_seconds: float | None


@given(
    st.lists(st.tuples(st.sampled_from(ROLES), st.floats(0, 100)), min_size=1, max_size=8),
    st.floats(0.01, 1.0),
    st.floats(0.01, 1.0),
    st.sampled_from(sorted(SAMPLED_ROLES)),
)
def test_saving_counts_only_what_the_sample_shrinks(
    nodes: list[tuple[str, float]], fraction: float, epochs: float, placement: str
) -> None:
    named = [(f"n{i}", role) for i, (role, _) in enumerate(nodes)]
    history = {f"n{i}": Rec(s) for i, (_, s) in enumerate(nodes)}
    saving = approx_saving(
        named, history, fraction=fraction, epochs_scale=epochs, placement=placement
    )
    assert saving is not None
    shrunk = sum(s for role, s in nodes if role in SAMPLED_ROLES[placement])
    assert 0 <= saving <= shrunk + 1e-9
    # Nodes the sample does not touch (prediction, evaluation) never count.
    untouched = [(f"x{i}", "evaluate") for i in range(3)]
    more = {**history, **{name: Rec(1e6) for name, _ in untouched}}
    assert approx_saving(
        [*named, *untouched], more, fraction=fraction, epochs_scale=epochs, placement=placement
    ) == pytest.approx(saving)


def test_unknown_cost_of_a_shrunk_node_decides_nothing() -> None:
    args = {"fraction": 0.1, "epochs_scale": 1.0, "placement": "source"}
    assert approx_saving([("rows", "source")], {}, **args) is None
    assert approx_saving([("rows", "source")], {"rows": Rec(None)}, **args) is None
    assert approx_saving([("e", "evaluate")], {}, **args) == 0.0


def test_training_shrinks_by_sample_and_epochs() -> None:
    saving = approx_saving(
        [("m", "train")], {"m": Rec(10.0)}, fraction=0.5, epochs_scale=0.5, placement="train"
    )
    assert saving == pytest.approx(7.5)


@pytest.mark.parametrize(("sample", "user_scale"), [(None, 1.0), (0.1, 1.0), (0.01, 0.5)])
def test_a_learner_edit_on_stored_examples_is_worth_a_sample(
    sample: float | None, user_scale: float
) -> None:
    """The sample trains for the exact run's steps (1 / sample times the epochs), but the
    run's estimate goes by the rows' share: by steps, a learner edit over stored
    examples would save nothing and every approximate one would run exact instead."""
    from types import SimpleNamespace

    from helix_tf._session import _too_little_to_save
    from helix_tf.approx.settings import Approx

    nodes = [("examples", "examples"), ("learner", "train"), ("predictions", "predict")]
    compiled = SimpleNamespace(
        name="census", nodes=[SimpleNamespace(name=n, role=r) for n, r in nodes]
    )
    exact = {"examples": Rec(8.0), "learner": Rec(10.0), "predictions": Rec(0.2)}
    meta = SimpleNamespace(compute_history=lambda name, approx: {} if approx else exact)
    approx = Approx(sample=sample, epochs_scale=user_scale).resolved(3_256_100)
    assert approx.sample_epochs == pytest.approx(1 / approx.sample)  # type: ignore[operator]
    note = _too_little_to_save(compiled, {"examples"}, meta, approx, "train")  # type: ignore[arg-type]
    assert note == ""
    # Where a sample cannot save a second, the run is still exact instead.
    small = {**exact, "learner": Rec(0.5)}
    meta_small = SimpleNamespace(compute_history=lambda name, approx: {} if approx else small)
    small_note = _too_little_to_save(compiled, {"examples"}, meta_small, approx, "train")  # type: ignore[arg-type]
    assert "ran exact instead" in small_note
