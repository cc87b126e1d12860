"""compiler.diff: changed values are shown whole or as what was removed and added."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from helix_tf.compiler.diff import SHORT, change_details, describe_values


def test_short_values_are_shown_whole() -> None:
    assert describe_values(0.01, 0.05) == "0.01 → 0.05"


def test_long_lists_show_the_items_removed_and_added() -> None:
    old = [f"feature_{i}" for i in range(12)]
    new = [*old[:5], "hours_bucket", *old[6:], "edu_x_occ"]
    assert describe_values(old, new) == "12 → 13 items -[feature_5] +[hours_bucket, edu_x_occ]"


def test_list_items_differing_only_in_key_order_are_the_same_items() -> None:
    # QA 28: adding a metric to an evaluate node showed every metric removed and added:
    # the stored specs' params had sorted keys, the new ones field order.
    def metric(op: str, **params: Any) -> dict[str, Any]:
        return {"op": op, "params": params}

    old = [
        metric("R2", scale="log", slice_by=None),
        metric("RMSE", scale="original", slice_by=None),
    ]
    new = [
        metric("R2", slice_by=None, scale="log"),
        metric("RMSE", slice_by=None, scale="original"),
    ]
    added = metric("MAE", slice_by="color", scale="original")
    assert describe_values(old, [*new, added]) == (
        "2 → 3 items +[{'op': 'MAE', 'params': {'scale': 'original', 'slice_by': 'color'}}]"
    )


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


_CONFIG = """
import qa_diff_helpers
from helix_tf import Workflow, features as F, sources
from helix_tf.sample_data import CENSUS_COLUMNS

STEP = {step}


def workflow(params):
    wf = Workflow("w")
    wf.source("rows", sources.Csv(train={train!r}, columns=CENSUS_COLUMNS))

    @wf.udf("hours", batched=True)
    def hours(batch):
        return qa_diff_helpers.bucket(batch["hours_per_week"], STEP){tail}

    wf.output(wf.feature("hours_x", F.Numeric(hours)))
    return wf
"""
_HELPERS = "WIDTH = {width}\n\n\ndef bucket(values, step):\n    return values // (WIDTH * step)\n"


def _dag(tmp_path: Path, *, step: int = 1, width: int = 10, tail: str = "") -> dict[str, Any]:
    import sys

    from helix_tf.compiler.content import ContentHasher
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config
    from helix_tf.sample_data import write_census_like

    train, _ = write_census_like(tmp_path / "data", train_rows=20, test_rows=5, seed=1)
    (tmp_path / "qa_diff_helpers.py").write_text(_HELPERS.format(width=width))
    config = tmp_path / "cfg.py"
    config.write_text(_CONFIG.format(step=step, train=str(train), tail=tail))
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        loaded = load_config(config, {})
        return compile_workflow(loaded.workflow, hasher=ContentHasher()).to_dict()
    finally:
        sys.dont_write_bytecode = saved


@pytest.mark.parametrize(
    ("edit", "detail"),
    [
        ({"step": 3}, "STEP read by hours.fn"),
        ({"width": 4}, "WIDTH read by qa_diff_helpers.bucket (called by hours.fn)"),
        ({"tail": " + 1"}, "code of hours.fn"),
    ],
)
def test_a_udf_change_names_the_constant_or_helper_that_changed(
    tmp_path: Path, edit: dict[str, Any], detail: str
) -> None:
    """``diff`` says which constant, helper or environment variable a UDF's change came
    from, not only "code of ..." (only an edit of the body itself is "code of")."""
    from helix_tf.compiler.diff import diff_versions

    before = _dag(tmp_path)
    after = _dag(tmp_path, **edit)
    changes = {c.name: c.details for c in diff_versions(before, after) if c.change != "unchanged"}
    assert changes == {"hours": (detail,), "hours_x": ("input changed: hours",)}


def test_an_approximate_version_against_an_exact_one_reads_as_such() -> None:
    """Before: ``approx [-{'epochs_scale': 10.0, 'fraction': 0.1, ...-]None``."""
    approx = {"fraction": 0.1, "seed": 0, "precision": "fp32", "epochs_scale": 10.0}
    old = {"op": "Linear", "params": {"l1": 0.0}, "extra": {"approx": approx}}
    new = {"op": "Linear", "params": {"l1": 0.0}, "extra": {}}
    assert change_details("learner", new, old, []) == [
        "approx approximate (sample 0.1, seed 0, fp32) → exact"
    ]
