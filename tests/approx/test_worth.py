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
