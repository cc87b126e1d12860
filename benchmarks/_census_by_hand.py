"""What the hand-written census baselines share: the file layout and the transform.

``handwritten_census.py`` and ``pandas_census_preprocess.py`` are what a person would
write without helix_tf, so they do not import it; they import this instead (their
folder is on ``sys.path`` when they run as scripts).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
INT_COLUMNS = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
NUMERIC = ["age", "hours_per_week", "capital_gain"]
CATEGORICAL = ["education", "occupation", "marital_status", "relationship", "sex"]
MISSING = "<missing>"
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "census"


def transform(frame: pd.DataFrame, stats: dict[str, dict[str, object]]) -> pa.Table:
    """Standardise the numeric columns, index the categorical ones, add the 0/1 label."""
    cols: dict[str, pa.Array] = {}
    for c in NUMERIC:
        mean, std = stats["numeric"][c]["mean"], stats["numeric"][c]["std"]  # type: ignore[index]
        x = frame[c].to_numpy(dtype=np.float64)
        x = np.where(np.isnan(x), mean, x)
        cols[c] = pa.array(((x - mean) / std).astype(np.float32))
    for c in CATEGORICAL:
        vocab = stats["vocab"][c]
        idx = pd.Index(vocab, dtype=object).get_indexer(frame[c].fillna(MISSING))
        idx[idx < 0] = len(vocab)  # type: ignore[arg-type]  # the one OOV bucket
        cols[c] = pa.array(idx.astype(np.int32))
    cols["label"] = pa.array((frame["income"] == ">50K").to_numpy().astype(np.int8))
    return pa.table(cols)
