"""What the hand-written census baselines share: the file layout, the reader, the transform.

``handwritten_census.py`` and ``pandas_census_preprocess.py`` are what a person would
write without helix_tf, so they do not import it; they import this instead (their
folder is on ``sys.path`` when they run as scripts).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

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
#: The columns the workflow reads; the reader parses no others (helix_tf does the same).
NEEDED = [*NUMERIC, *CATEGORICAL, "income"]
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "census"


def read_split(path: str | Path, *, skip_first_line: bool) -> pd.DataFrame:
    """One census file, the :data:`NEEDED` columns only, with pyarrow's CSV reader.

    Values trimmed, ``""``/``"?"`` missing, numbers as float64, the test labels'
    trailing ``.`` dropped, blank lines (the files end with one) skipped.
    """
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=COLUMNS, skip_rows=int(skip_first_line)),
        convert_options=pcsv.ConvertOptions(
            include_columns=NEEDED,
            column_types=dict.fromkeys(NUMERIC, pa.float64()),
            null_values=["", "?", " ?"],
            strings_can_be_null=True,
        ),
    )
    columns = {}
    for name in NEEDED:
        values = table.column(name)
        if name not in NUMERIC:
            values = pc.utf8_trim_whitespace(values)
            values = pc.if_else(pc.equal(values, "?"), pa.scalar(None, pa.string()), values)
        if name == "income":
            values = pc.utf8_rtrim(values, characters=".")
        columns[name] = values
    return pa.table(columns).to_pandas()


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
