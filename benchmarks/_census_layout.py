"""The census file layout the hand-written baselines share.

``handwritten_census.py`` and ``pandas_census_preprocess.py`` are what a person would
write without helix_tf, so they do not import it; they import this instead (their
folder is on ``sys.path`` when they run as scripts).
"""

from pathlib import Path

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
