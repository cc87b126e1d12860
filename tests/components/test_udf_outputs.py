"""A categorical UDF's value outside ``[0, size)`` names the row and the fix (QA pass 9).

Before: "Udf returned index 5, outside [0, 3)": no row, no word of what ``size`` means
or which ``size`` would hold the values.

Every other output a user function gives that is no column (QA pass 20): a value of the
wrong length or shape said neither which function nor how to fix it, and text from a
numeric one failed in helix_tf's own conversion, "Udf raised ValueError: could not
convert string to float: 'Premium' (batch train/0); fix the code there", no "there"
named. Now: where the function is defined, the value and its row, and the fix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_tf import features as F
from helix_tf.components.features import SourceRows
from helix_tf.errors import ExecutionError
from helix_tf.types import ROW_ID


def _frame() -> pd.DataFrame:
    return pd.DataFrame({ROW_ID: [11, 12, 13, 14], "hours": [10.0, 20.0, 55.0, 30.0]})


@pytest.mark.parametrize("batched", [False, True])
def test_an_index_past_size_names_the_row_and_the_size_that_holds_it(batched: bool) -> None:
    def tens(row):
        return (row["hours"] // 10).astype(int) if batched else int(row["hours"] // 10)

    op = F.Udf(tens, batched=batched, output="categorical", size=3)
    with pytest.raises(ExecutionError) as info:
        op.transform([_frame()], None, 4)
    message = str(info.value)
    assert "returned index 5 for row 13 (the line number in its file), outside [0, 3)" in message
    assert "(2 such rows in this batch)" in message
    assert "Give size=6 or more" in message, message


def test_a_negative_index_says_to_map_the_values() -> None:
    op = F.Udf(lambda b: np.full(len(b), -1), batched=True, output="categorical", size=3)
    with pytest.raises(ExecutionError, match=r"returned index -1 for row 11 .*Map the values"):
        op.transform([_frame()], None, 4)


def _cut(row_or_batch):
    return row_or_batch["cut"]


def _three(batch):
    return np.zeros(3)


def _apply_text(batch, state):
    return batch["cut"].to_numpy()


TEXT = pd.DataFrame({ROW_ID: [11, 12, 13], "cut": ["Ideal", "Good", "Fair"]})


@pytest.mark.parametrize(
    ("op", "said"),
    [
        (F.Udf(_cut, batched=True), "returned 'Ideal' for row 11 (the line number in its file)"),
        (F.Udf(_cut), "returned 'Ideal' for row 11"),
        (
            F.DatasetUdf(fit=lambda f: {}, apply=_apply_text, columns=["cut"]),
            "returned 'Ideal' for row 11",
        ),
        (F.Udf(_cut, output="categorical", size=3), "returned 'Ideal' for row 11"),
        (F.Udf(_three, batched=True), "returned shape (3,), expected (4,): one value per row"),
    ],
    ids=["batched", "per_row", "dataset_udf", "categorical", "wrong_length"],
)
def test_an_output_that_is_no_column_names_the_function_the_value_and_the_fix(
    op: F.Feature, said: str
) -> None:
    frame = pd.concat([TEXT, TEXT.iloc[:1]])  # four rows: the 3 values of _three are too few
    with pytest.raises(ExecutionError) as info:
        op.transform([frame], {}, len(frame))
    message = str(info.value)
    fn = getattr(op, "fn", None) or op.apply  # type: ignore[attr-defined]
    assert f"(def {fn.__name__} at {__file__}:" in message, message
    assert said in message, message
    assert "declare output='string'" in message or "as long as the batch" in message, message


ROWS = SourceRows(columns={"cut": "string"}, describe=lambda row: f"line {row} of data/d.csv")


@pytest.mark.parametrize(
    ("op", "said"),
    [
        (F.Udf(_cut, batched=True), "returned 'Ideal' for line 11 of data/d.csv (row id 11)"),
        (F.Udf(_cut), "returned 'Ideal' for line 11 of data/d.csv (row id 11)"),
        (
            F.DatasetUdf(fit=lambda f: {}, apply=_apply_text, columns=["cut"]),
            "returned 'Ideal' for line 11 of data/d.csv (row id 11)",
        ),
        (
            F.Udf(lambda b: np.arange(len(b)) + 2, batched=True, output="categorical", size=3),
            "returned index 3 for line 12 of data/d.csv (row id 12), outside [0, 3)",
        ),
    ],
    ids=["batched", "per_row", "dataset_udf", "categorical_index"],
)
def test_a_bad_output_names_the_file_and_line_the_engine_gives(op: F.Feature, said: str) -> None:
    # QA 28: "for row 11 (the line number in its file)": which file was not said.
    with pytest.raises(ExecutionError) as info:
        op.transform([TEXT, ROWS], {}, len(TEXT))
    assert said in str(info.value), str(info.value)
    assert "(def " in str(info.value)
