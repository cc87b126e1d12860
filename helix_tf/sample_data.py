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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

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

# -- census categories (the real names and roughly the real frequencies) ------------

_EDUCATION = (  # name, education-num, share
    ("Preschool", 1, 0.002),
    ("1st-4th", 2, 0.005),
    ("5th-6th", 3, 0.010),
    ("7th-8th", 4, 0.020),
    ("9th", 5, 0.016),
    ("10th", 6, 0.029),
    ("11th", 7, 0.036),
    ("12th", 8, 0.013),
    ("HS-grad", 9, 0.322),
    ("Some-college", 10, 0.224),
    ("Assoc-voc", 11, 0.042),
    ("Assoc-acdm", 12, 0.033),
    ("Bachelors", 13, 0.164),
    ("Masters", 14, 0.053),
    ("Prof-school", 15, 0.018),
    ("Doctorate", 16, 0.013),
)
_WORKCLASS = (
    ("Private", 0.697),
    ("Self-emp-not-inc", 0.078),
    ("Local-gov", 0.064),
    ("State-gov", 0.040),
    ("Self-emp-inc", 0.034),
    ("Federal-gov", 0.029),
    ("Without-pay", 0.0005),
    ("Never-worked", 0.0003),
    ("", 0.0572),
)
_MARITAL = (
    "Married-civ-spouse",
    "Never-married",
    "Divorced",
    "Separated",
    "Widowed",
    "Married-spouse-absent",
    "Married-AF-spouse",
)
_OCCUPATION = (  # name, share, shift per education level, shift for women, income effect
    ("Prof-specialty", 0.127, 0.55, 0.1, 0.6),
    ("Craft-repair", 0.126, -0.15, -2.0, 0.0),
    ("Exec-managerial", 0.125, 0.35, -0.2, 0.9),
    ("Adm-clerical", 0.116, 0.0, 1.2, -0.2),
    ("Sales", 0.112, 0.05, 0.0, 0.3),
    ("Other-service", 0.101, -0.3, 0.8, -1.1),
    ("Machine-op-inspct", 0.061, -0.3, -0.2, -0.4),
    ("Transport-moving", 0.049, -0.2, -1.8, -0.1),
    ("Handlers-cleaners", 0.042, -0.35, -1.2, -0.8),
    ("Farming-fishing", 0.030, -0.3, -1.5, -0.9),
    ("Tech-support", 0.028, 0.2, 0.3, 0.4),
    ("Protective-serv", 0.020, 0.0, -1.0, 0.3),
    ("Priv-house-serv", 0.005, -0.4, 2.0, -1.8),
    ("Armed-Forces", 0.0003, 0.0, -2.0, 0.0),
)
_RACE = (
    ("White", 0.854),
    ("Black", 0.096),
    ("Asian-Pac-Islander", 0.032),
    ("Amer-Indian-Eskimo", 0.010),
    ("Other", 0.008),
)
_COUNTRY = (
    ("United-States", 0.895),
    ("Mexico", 0.0197),
    ("", 0.0179),
    ("Philippines", 0.0061),
    ("Germany", 0.0042),
    ("Canada", 0.0037),
    ("Puerto-Rico", 0.0035),
    ("El-Salvador", 0.0033),
    ("India", 0.0031),
    ("Cuba", 0.0029),
    ("England", 0.0028),
    ("Jamaica", 0.0025),
    ("South", 0.0025),
    ("China", 0.0023),
    ("Italy", 0.0022),
    ("Dominican-Republic", 0.0021),
    ("Vietnam", 0.0021),
    ("Guatemala", 0.0020),
    ("Japan", 0.0019),
    ("Poland", 0.0018),
    ("Columbia", 0.0018),
    ("Taiwan", 0.0016),
    ("Haiti", 0.0014),
    ("Iran", 0.0013),
    ("Portugal", 0.0011),
    ("Nicaragua", 0.0010),
    ("Peru", 0.0009),
    ("France", 0.0009),
    ("Greece", 0.0009),
    ("Ecuador", 0.0009),
    ("Ireland", 0.0007),
    ("Hong", 0.0006),
    ("Cambodia", 0.0006),
    ("Trinadad&Tobago", 0.0006),
    ("Laos", 0.0006),
    ("Thailand", 0.0005),
    ("Yugoslavia", 0.0005),
    ("Outlying-US(Guam-USVI-etc)", 0.0004),
    ("Honduras", 0.0004),
    ("Hungary", 0.0004),
    ("Scotland", 0.0004),
    ("Holand-Netherlands", 0.0001),
)
_GAINS = (
    594,
    914,
    1055,
    2174,
    2407,
    3103,
    3325,
    3411,
    3674,
    3908,
    4064,
    4386,
    4650,
    5013,
    5178,
    7298,
    7688,
    8614,
    10520,
    14084,
    15024,
    15831,
    20051,
    25236,
    99999,
)
_LOSSES = (1485, 1590, 1602, 1740, 1876, 1887, 1902, 1977, 2001, 2051, 2179, 2415)


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


def _census_rows(count: int, seed: int) -> list[str]:
    """``count`` census rows as text lines (without the test file's full stop)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    female = rng.random(count) < 0.33
    age = np.clip(17 + rng.gamma(2.4, 8.8, count), 17, 90).astype(int)
    education = _pick(rng, [e[2] for e in _EDUCATION], count)
    edu_num = np.array([e[1] for e in _EDUCATION])[education]
    workclass = _pick(rng, [w[1] for w in _WORKCLASS], count)
    # marital status depends on age: the young are mostly never married
    young = np.clip((30 - age) / 13, 0, 1)[:, None]
    old = np.clip((age - 55) / 30, 0, 1)[:, None]
    adult_mix = np.array([0.55, 0.16, 0.17, 0.04, 0.05, 0.015, 0.001])
    young_mix = np.array([0.08, 0.86, 0.03, 0.02, 0.0, 0.01, 0.0])
    old_mix = np.array([0.5, 0.04, 0.12, 0.02, 0.3, 0.02, 0.0])
    marital = _pick_rows(rng, (1 - young - old) * adult_mix + young * young_mix + old * old_mix)
    married = (marital == 0) | (marital == 6)
    # occupation depends on education and sex; missing when workclass is missing
    occ_logits = (
        np.log([o[1] for o in _OCCUPATION])[None, :]
        + np.outer((edu_num - 10) / 2.0, [o[2] for o in _OCCUPATION])
        + np.outer(female, [o[3] for o in _OCCUPATION])
    )
    occupation = _pick_rows(rng, np.exp(occ_logits))
    no_occupation = (workclass == len(_WORKCLASS) - 1) | (workclass == 7)
    relationship = _relationships(rng, marital, female, age)
    race = _pick(rng, [r[1] for r in _RACE], count)
    country = _pick(rng, [c[1] for c in _COUNTRY], count)
    fnlwgt = np.clip(rng.lognormal(np.log(178_000), 0.5, count), 12_285, 1_490_400).astype(int)
    hours = np.where(
        rng.random(count) < 0.47,
        40,
        np.clip(rng.normal(40 + 4 * ~female - 6 * (age < 22) - 10 * (age > 64), 12), 1, 99),
    ).astype(int)
    gain_p = 0.04 + 0.015 * np.clip(edu_num - 9, 0, None)
    has_gain = rng.random(count) < gain_p
    big = rng.random(count) < 0.45
    gains = np.array(_GAINS)
    capital_gain = np.where(
        has_gain,
        np.where(big, gains[rng.integers(15, 25, count)], gains[rng.integers(0, 15, count)]),
        0,
    )
    has_loss = ~has_gain & (rng.random(count) < 0.047)
    capital_loss = np.where(has_loss, np.array(_LOSSES)[rng.integers(0, 12, count)], 0)
    # the label: a noisy logistic model
    occ_effect = np.array([o[4] for o in _OCCUPATION])[occupation]
    logit = (
        -11.0
        + 0.52 * edu_num
        + 0.1 * (np.minimum(age, 50) - 17)
        - 0.05 * np.maximum(age - 62, 0)
        + 2.8 * married
        + 0.5 * ~female
        + 1.3 * np.where(no_occupation, -0.7, occ_effect)
        + 0.045 * (hours - 40)
        + 5.0 * (capital_gain >= 7000)
        + 1.2 * (capital_loss >= 1800)
    )
    rich = rng.random(count) < 1 / (1 + np.exp(-logit))
    names = {
        "workclass": [w[0] for w in _WORKCLASS],
        "education": [e[0] for e in _EDUCATION],
        "marital": list(_MARITAL),
        "occupation": [o[0] for o in _OCCUPATION],
        "relationship": list(_RELATIONSHIP),
        "race": [r[0] for r in _RACE],
        "country": [c[0] for c in _COUNTRY],
    }
    lines = []
    for i in range(count):
        fields = (
            str(age[i]),
            names["workclass"][workclass[i]],
            str(fnlwgt[i]),
            names["education"][education[i]],
            str(edu_num[i]),
            names["marital"][marital[i]],
            "" if no_occupation[i] else names["occupation"][occupation[i]],
            names["relationship"][relationship[i]],
            names["race"][race[i]],
            "Female" if female[i] else "Male",
            str(capital_gain[i]),
            str(capital_loss[i]),
            str(hours[i]),
            names["country"][country[i]],
            ">50K" if rich[i] else "<=50K",
        )
        lines.append(", ".join(fields))
    return lines


_RELATIONSHIP = ("Husband", "Wife", "Own-child", "Not-in-family", "Unmarried", "Other-relative")


def _relationships(
    rng: np.random.Generator, marital: np.ndarray, female: np.ndarray, age: np.ndarray
) -> np.ndarray:
    import numpy as np

    count = len(marital)
    married = (marital == 0) | (marital == 6)
    spouse = np.where(female, 1, 0)
    young_single = (marital == 1) & (age < 26)
    single = _pick(rng, [0, 0, 0.1, 0.6, 0.2, 0.1], count)
    child = _pick(rng, [0, 0, 0.6, 0.3, 0.0, 0.1], count)
    other = _pick(rng, [0, 0, 0.05, 0.5, 0.4, 0.05], count)
    unmarried = np.where(young_single, child, np.where(marital == 1, single, other))
    mixed = rng.random(count) < 0.03
    return np.where(married & ~mixed, spouse, np.where(married, 5, unmarried))


def _pick(rng: np.random.Generator, weights: Any, count: int) -> np.ndarray:
    import numpy as np

    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=count, p=p / p.sum())


def _pick_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category per row from a (rows, categories) matrix of weights."""
    import numpy as np

    cumulative = np.cumsum(weights, axis=1)
    draws = rng.random(len(weights)) * cumulative[:, -1]
    return np.minimum((cumulative < draws[:, None]).sum(axis=1), weights.shape[1] - 1)


# -- SMS ------------------------------------------------------------------------------


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
