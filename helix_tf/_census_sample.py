"""The census look-alike rows of :func:`helix_tf.sample_data.write_census_like`.

Marginals and the dependencies that matter for a learnable label (marital status
on age, occupation on education and sex, income on all of them) drawn with a
seeded NumPy generator: the same seed gives the same lines, byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

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
    return _census_lines(
        age=age,
        workclass=workclass,
        fnlwgt=fnlwgt,
        education=education,
        edu_num=edu_num,
        marital=marital,
        occupation=np.where(no_occupation, -1, occupation),
        relationship=relationship,
        race=race,
        female=female,
        capital_gain=capital_gain,
        capital_loss=capital_loss,
        hours=hours,
        country=country,
        rich=rich,
    )


def _census_lines(**c: Any) -> list[str]:
    """The drawn census columns (category indices, numbers) as text lines in file order;
    an ``occupation`` of -1 is missing."""
    names = {
        "workclass": [w[0] for w in _WORKCLASS],
        "education": [e[0] for e in _EDUCATION],
        "marital": list(_MARITAL),
        "occupation": [o[0] for o in _OCCUPATION],
        "relationship": list(_RELATIONSHIP),
        "race": [r[0] for r in _RACE],
        "country": [co[0] for co in _COUNTRY],
    }
    lines = []
    for i in range(len(c["age"])):
        occupation = int(c["occupation"][i])
        fields = (
            str(c["age"][i]),
            names["workclass"][c["workclass"][i]],
            str(c["fnlwgt"][i]),
            names["education"][c["education"][i]],
            str(c["edu_num"][i]),
            names["marital"][c["marital"][i]],
            "" if occupation < 0 else names["occupation"][occupation],
            names["relationship"][c["relationship"][i]],
            names["race"][c["race"][i]],
            "Female" if c["female"][i] else "Male",
            str(c["capital_gain"][i]),
            str(c["capital_loss"][i]),
            str(c["hours"][i]),
            names["country"][c["country"][i]],
            ">50K" if c["rich"][i] else "<=50K",
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
