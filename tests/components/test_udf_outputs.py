"""A categorical UDF's value outside ``[0, size)`` names the row and the fix (QA pass 9).

Before: "Udf returned index 5, outside [0, 3)": no row, no word of what ``size`` means
or which ``size`` would hold the values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helix_tf import features as F
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
