"""compiler.diff: changed values are shown whole or as what was removed and added."""

from __future__ import annotations

from hypothesis import given, strategies as st

from helix_tf.compiler.diff import SHORT, change_details, describe_values


def test_short_values_are_shown_whole() -> None:
    assert describe_values(0.01, 0.05) == "0.01 → 0.05"


def test_long_lists_show_the_items_removed_and_added() -> None:
    old = [f"feature_{i}" for i in range(12)]
    new = [*old[:5], "hours_bucket", *old[6:], "edu_x_occ"]
    assert describe_values(old, new) == "12 → 13 items -[feature_5] +[hours_bucket, edu_x_occ]"


def test_long_text_shows_the_changed_segment_with_context() -> None:
    old = "'re" + "a" * 80 + "ad'"
    new = "'re" + "a" * 80 + "ed'"
    text = describe_values(old, new)
    assert "[-a-]{+e+}" in text and "..." not in text


@given(
    st.text(alphabet="abc ", min_size=SHORT + 1, max_size=120),
    st.text(alphabet="abc ", min_size=SHORT + 1, max_size=120),
)
def test_every_removed_and_added_character_is_shown(old: str, new: str) -> None:
    """Applying the shown edits to the old text's pieces rebuilds the new text."""
    text = describe_values(old, new)
    removed = "".join(p.split("-]")[0] for p in text.split("[-")[1:])
    added = "".join(p.split("+}")[0] for p in text.split("{+")[1:])
    assert len(old) - len(removed) + len(added) == len(new)


def test_param_change_in_a_plan_reason_is_not_cut() -> None:
    cols = [[f"column_{i}", "string"] for i in range(10)]
    old = {"op": "Csv", "params": {"columns": cols}}
    new = {"op": "Csv", "params": {"columns": [*cols, ["extra", "int"]]}}
    (detail,) = change_details("rows", new, old, [])
    assert detail == "rows.columns 10 → 11 items +[['extra', 'int']]"
