"""The label operator: the binary target column of a workflow."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from helix_tf.components.base import Operator


@dataclasses.dataclass(frozen=True, kw_only=True)
class Label(Operator):
    """The binary label: ``column == positive`` (or a 0/1 numeric column when ``positive`` is None)."""

    KIND: ClassVar[str] = "label"
    column: str
    positive: Any = None

    def __init__(self, column: str, positive: Any = None) -> None:
        object.__setattr__(self, "column", column)
        object.__setattr__(self, "positive", positive)
        self.__post_init__()

    def validate(self) -> list[str]:
        if not isinstance(self.column, str) or not self.column:
            return [f"column must be a column name, but got {self.column!r}"]
        return []

    def transform(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Labels as int8 and a mask of rows whose label is missing or invalid."""
        import pandas as pd

        if hasattr(values, "to_pandas"):
            values = values.to_pandas()
        series = pd.Series(values)
        missing = series.isna().to_numpy(dtype=bool)
        if self.positive is None:
            nums = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = missing | ~np.isin(nums, (0.0, 1.0))
            return np.where(bad, 0, nums).astype(np.int8), bad
        return (series == self.positive).fillna(False).to_numpy(dtype=bool).astype(np.int8), missing
