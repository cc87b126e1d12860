"""The project's own generated sample data, in the formats of the real data sets.

:func:`write_census_like` writes ``adult.data`` and ``adult.test`` exactly in the
UCI Adult ("Census Income") format, quirks included; :func:`write_sms_like`
writes an ``SMSSpamCollection`` (``label<TAB>text``); :func:`write_diamonds_like`
writes a ``diamonds.csv`` with the columns of ggplot2's diamonds. Both are deterministic for a
seed and have a learnable label, so examples, tests and benchmarks run without
the real files. :data:`CENSUS_COLUMNS` declares the census columns for
:class:`helix_tf.components.sources.Csv`; :data:`CENSUS_CSV_OPTIONS` holds the
other settings the census files need.

Examples
--------
>>> import tempfile
>>> from helix_tf.components.sources import Csv, read_all
>>> train, test = write_census_like(tempfile.mkdtemp(), train_rows=50, test_rows=20)
>>> rows = read_all(Csv(train=str(train), test=str(test), **CENSUS_CSV_OPTIONS), "test")
>>> len(rows), sorted(rows["income"].unique())
(20, ['<=50K', '>50K'])
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from helix_tf._census_sample import _census_rows, _pick

__all__ = [
    "CENSUS_COLUMNS",
    "CENSUS_CSV_OPTIONS",
    "SMS_COLUMNS",
    "SMS_CSV_OPTIONS",
    "DIAMONDS_COLUMNS",
    "DIAMONDS_CUTS",
    "write_census_like",
    "write_diamonds_like",
    "diamonds_table",
    "write_sms_like",
]

logger = logging.getLogger(__name__)

CENSUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("age", "int"),
    ("workclass", "string"),
    ("fnlwgt", "int"),
    ("education", "string"),
    ("education_num", "int"),
    ("marital_status", "string"),
    ("occupation", "string"),
    ("relationship", "string"),
    ("race", "string"),
    ("sex", "string"),
    ("capital_gain", "int"),
    ("capital_loss", "int"),
    ("hours_per_week", "int"),
    ("native_country", "string"),
    ("income", "string"),
)
"""The 15 UCI Adult columns in file order, snake_case, with their types."""

CENSUS_CSV_OPTIONS: dict[str, Any] = {
    "columns": CENSUS_COLUMNS,
    "separator": ",",
    "strip": True,
    "skip_lines": {"test": 1},
    "replace": {"income": {">50K.": ">50K", "<=50K.": "<=50K"}},
}
"""Csv settings for the census files: ", " fields, adult.test's junk line and labels."""

SMS_COLUMNS: tuple[tuple[str, str], ...] = (("label", "string"), ("text", "string"))
"""The SMS Spam Collection columns."""

SMS_CSV_OPTIONS: dict[str, Any] = {
    "columns": SMS_COLUMNS,
    "separator": "\t",
    "rest_in_last": True,
    "na_values": (),
}
"""Csv settings for an SMS Spam Collection file (free text in the last column)."""


def write_census_like(
    directory: str | Path, *, train_rows: int = 6000, test_rows: int = 3000, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``adult.data`` and ``adult.test`` in the exact UCI Adult format.

    No header, fields separated by ", ", the 15 columns of :data:`CENSUS_COLUMNS`,
    empty fields for some missing workclass/occupation/native-country values,
    ``adult.test`` starting with the junk line ``|1x3 Cross validator`` and with
    labels ending in ".", and a blank line at the end of both files. The label
    follows a noisy logistic model of education, age, hours, capital gain,
    marital status, sex and occupation, so a linear model reaches about 0.85
    accuracy.

    Parameters
    ----------
    directory
        Where to write (created if needed).
    train_rows, test_rows
        Rows in each file.
    seed
        The files are byte-identical for the same seed and sizes.

    Returns
    -------
    tuple[pathlib.Path, pathlib.Path]
        The paths of ``adult.data`` and ``adult.test``. A file that already holds
        the same content is not rewritten.
    """
    if train_rows < 0 or test_rows < 0:
        raise ValueError(f"row counts must be >= 0, but got {train_rows=}, {test_rows=}")
    rows = _census_rows(train_rows + test_rows, seed)
    train = "".join(r + "\n" for r in rows[:train_rows]) + "\n"
    test = "|1x3 Cross validator\n" + "".join(r + ".\n" for r in rows[train_rows:]) + "\n"
    folder = Path(directory)
    return (
        _write_if_changed(folder / "adult.data", train),
        _write_if_changed(folder / "adult.test", test),
    )


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_HAM_WORDS = _words(
    """
    ok lol sorry home later love going tonight dinner see you u me when get there haha yeah
    i am will be late what time meeting tomorrow miss good night morning thanks babe work
    class lunch wat doing now k gonna sleep pick up da hey dont know come back its fine :)
    hope ur day went well tell mom just reached bus still waiting
    """
)
_SPAM_WORDS = _words(
    """
    free win winner prize claim cash urgent txt text reply mobile award guaranteed £1000
    150p/msg stop offer ringtone selected bonus valid 12hrs contact customer service entry
    weekly draw unsubscribe STOP 08712345678 www.prizes.co.uk £250 voucher holiday
    congratulations call now chance landline T&C's 18+
    """
)
_SHARED_WORDS = _words("call now to the a for your you have and is on in of")


def write_sms_like(directory: str | Path, *, messages: int = 1500, seed: int = 0) -> Path:
    """Write ``SMSSpamCollection``: ``label<TAB>text`` lines, ~13% spam, learnable from words.

    Parameters
    ----------
    directory
        Where to write (created if needed).
    messages
        How many lines.
    seed
        The file is byte-identical for the same seed and size.

    Returns
    -------
    pathlib.Path
        The file's path; a file that already holds the same content is not rewritten.
    """
    import numpy as np

    if messages < 0:
        raise ValueError(f"messages must be >= 0, but got {messages}")
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(messages):
        spam = rng.random() < 0.13
        own, other = (_SPAM_WORDS, _HAM_WORDS) if spam else (_HAM_WORDS, _SPAM_WORDS)
        size = int(rng.integers(10, 26) if spam else rng.integers(3, 16))
        words = []
        for _ in range(size):
            draw = rng.random()
            pool = own if draw < 0.7 else _SHARED_WORDS if draw < 0.93 else other
            words.append(str(pool[int(rng.integers(len(pool)))]))
        if rng.random() < 0.03:  # the real file has quotes inside messages
            words[0] = f'"{words[0]}'
            words[-1] = f'{words[-1]}"'
        text = " ".join(words)
        lines.append(f"{'spam' if spam else 'ham'}\t{text[0].upper()}{text[1:]}\n")
    return _write_if_changed(Path(directory) / "SMSSpamCollection", "".join(lines))


def _write_if_changed(path: Path, text: str) -> Path:
    """Write ``text`` atomically unless ``path`` already holds it."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            logger.debug("%s is up to date", path)
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.info("wrote %s (%d bytes)", path, len(data))
    return path


# -- diamonds -------------------------------------------------------------------------

DIAMONDS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("carat", "float"),
    ("cut", "string"),
    ("color", "string"),
    ("clarity", "string"),
    ("depth", "float"),
    ("table", "float"),
    ("price", "int"),
    ("x", "float"),
    ("y", "float"),
    ("z", "float"),
)
"""The 10 columns of ``diamonds.csv`` in file order, with their types."""

DIAMONDS_CUTS = ("Fair", "Good", "Very Good", "Premium", "Ideal")
"""The cut grades, worst to best."""

# name: share of rows, log-price effect, mean depth, sd depth, mean table, sd table
_CUTS = {
    "Fair": (0.030, -0.10, 64.0, 3.6, 59.0, 3.9),
    "Good": (0.091, -0.04, 62.4, 2.2, 58.7, 2.8),
    "Very Good": (0.224, 0.00, 61.8, 1.4, 58.0, 2.1),
    "Premium": (0.256, 0.02, 61.3, 1.2, 58.7, 1.5),
    "Ideal": (0.399, 0.05, 61.7, 0.7, 56.0, 1.2),
}
_COLORS = (("D", 0.126, 0.45), ("E", 0.182, 0.37), ("F", 0.177, 0.33), ("G", 0.209, 0.27),
           ("H", 0.154, 0.17), ("I", 0.101, 0.05), ("J", 0.052, -0.07))  # fmt: skip
_CLARITIES = (("I1", 0.014, -0.45), ("SI2", 0.170, 0.10), ("SI1", 0.242, 0.25),
              ("VS2", 0.227, 0.36), ("VS1", 0.151, 0.42), ("VVS2", 0.094, 0.55),
              ("VVS1", 0.068, 0.60), ("IF", 0.033, 0.72))  # fmt: skip


def write_diamonds_like(directory: str | Path, *, rows: int = 6000, seed: int = 0) -> Path:
    """Write ``diamonds.csv``: a header line and ``rows`` diamonds like ggplot2's.

    Price follows log price ≈ 8.4 + 1.75 log carat + effects of color, clarity and
    cut + noise (as in the real table, a linear model on log carat and one-hot
    grades explains ~98% of the variance of log price); the cut is learnable from
    depth, table and the proportions, roughly as in the real data.

    Parameters
    ----------
    directory
        Where to write (created if needed).
    rows
        How many diamonds.
    seed
        The file is byte-identical for the same seed and size.

    Returns
    -------
    pathlib.Path
        The file's path; a file that already holds the same content is not rewritten.
    """
    import numpy as np

    if rows < 0:
        raise ValueError(f"rows must be >= 0, but got {rows}")
    rng = np.random.default_rng(seed)
    cuts = list(_CUTS)
    cut = _pick(rng, [_CUTS[c][0] for c in cuts], rows)
    color = _pick(rng, [c[1] for c in _COLORS], rows)
    clarity = _pick(rng, [c[1] for c in _CLARITIES], rows)
    carat = np.clip(np.round(np.exp(rng.normal(-0.39, 0.58, rows)), 2), 0.2, 5.0)
    params = np.array([_CUTS[c][1:] for c in cuts])[cut]
    depth = np.round(params[:, 1] + params[:, 2] * rng.standard_normal(rows), 1)
    table = np.round(params[:, 3] + params[:, 4] * rng.standard_normal(rows))
    log_price = (
        8.4
        + 1.75 * np.log(carat)
        + np.array([c[2] for c in _COLORS])[color]
        + np.array([c[2] for c in _CLARITIES])[clarity]
        - 0.45
        + params[:, 0]
        + rng.normal(0, 0.13, rows)
    )
    price = np.clip(np.round(np.exp(log_price)), 326, 18823).astype(int)
    x = np.round(6.45 * carat ** (1 / 3) * (1 + 0.01 * rng.standard_normal(rows)), 2)
    y = np.round(x * (1 + 0.005 * rng.standard_normal(rows)), 2)
    z = np.round(x * depth / 100, 2)
    lines = ["carat,cut,color,clarity,depth,table,price,x,y,z"]
    for i in range(rows):
        lines.append(
            f"{carat[i]:.2f},{cuts[cut[i]]},{_COLORS[color[i]][0]},{_CLARITIES[clarity[i]][0]},"
            f"{depth[i]:.1f},{table[i]:.0f},{price[i]},{x[i]:.2f},{y[i]:.2f},{z[i]:.2f}"
        )
    return _write_if_changed(Path(directory) / "diamonds.csv", "\n".join(lines) + "\n")


def diamonds_table(params: Any, wf: Any) -> Path:
    """The diamonds table a config reads: the shared copy, else a generated one (noted).

    ``params`` is the config's ``Params`` (its data folder and work folder); ``wf`` the
    workflow that records a note when the generated look-alike stands in.
    """
    folder = params.data("diamonds")
    if folder is not None:
        return Path(folder) / "diamonds.csv"
    path = write_diamonds_like(params.work_dir / "sample_data" / "diamonds")
    wf.note(f"the diamonds table was not found; running on generated diamonds in {path.parent}")
    return path
