"""How label values are read as text: numbers written one way, missing texts, spellings.

A label's values are counted and compared as text (a numeric column's ``2.0`` is the
text ``2``, as is ``positive=2``); blank text and spellings of NaN are missing labels;
values that differ only in how they are written (case, spaces, a final full stop, a
whole number's zeros) are spellings of one value (QA pass 25), which a label refuses to
read as different ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "NAN_TEXTS",
    "as_strings",
    "is_text",
    "is_unset_text",
    "label_texts",
    "missing_texts",
    "number_of",
    "spelled_like",
    "spelling_variants",
    "unset_class",
    "value_text",
]


def as_strings(values: Any) -> Any:
    """Values as an Arrow string array (nulls kept); a number as :func:`_number_text`
    writes it, whether it comes in a numpy, an Arrow or a Python container."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_string(values.type):
            return values
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
            return pc.cast(values, pa.string())
        values = values.to_numpy(zero_copy_only=False)
    arr = np.asarray(values)
    # Numeric class columns (read as float64): 2.0 is the class "2".
    return pa.array([value_text(v) for v in arr.tolist()], type=pa.string())


def _number_text(value: float) -> str:
    """How a label number is written: a whole number as an integer (``2``), else its
    shortest float text (``2.5``)."""
    whole = math.isfinite(value) and value == round(value)
    return str(int(value)) if whole else repr(float(value))


def value_text(value: Any) -> str | None:
    """One label value as text: ``None`` (and NaN) missing, a float by :func:`_number_text`,
    a boolean as the number it is in a column (``1``)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


def number_of(text: str) -> float | None:
    """The number ``text`` writes (``"2"``, ``"2.0"``), None for no number (or NaN)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None


def _spelling(text: str) -> str:
    """What the spellings of one value share: the text without the spaces around it, a
    final full stop (the census test file's ``>50K.``) or case; a whole number's, its value
    (``1``, ``1.0`` and ``01`` in a text column; ``250.1`` and ``250.10`` stay apart, as
    codes written so may be different values)."""
    number = number_of(text.strip())
    if number is not None and math.isfinite(number) and number == round(number):
        return _number_text(number)
    return text.strip().rstrip(".").strip().casefold()


def spelling_variants(counts: dict[str, int], column: str, *, of: str | None = None) -> str | None:
    """Why a label cannot learn from ``counts`` (its training split's values): values that
    are spellings of one (:func:`_spelling`), which it would read as different classes
    (``of=None``) or, beside ``of`` (a binary label's positive value), as negative rows.
    None where there are none. Each group is mapped to ``of``, else to its most frequent
    spelling (a clean one first among equals)."""
    groups: dict[str, list[str]] = {}
    for value in counts:
        groups.setdefault(_spelling(value), []).append(value)
    if of is not None:
        group = groups.get(_spelling(of), [])
        if of not in group or len(group) < 2:
            return None  # positive= held by no row: the examples' check lists the values
        found = [[of, *(v for v in group if v != of)]]
        read_as = f"as different values (only {of!r} is positive, the others negative)"
    else:
        found = [
            sorted(g, key=lambda v: (-counts[v], v != v.strip().rstrip("."), v))
            for g in groups.values()
            if len(g) > 1
        ]
        read_as = "as different classes"
    if not found:
        return None
    held = "; ".join(
        ", ".join(f"{v!r} ({counts[v]:,} row{'s' if counts[v] != 1 else ''})" for v in g)
        for g in found
    )
    mapping = ", ".join(f"{v!r}: {g[0]!r}" for g in found for v in g[1:])
    return (
        f"the training split's label column {column!r} holds {held}: spellings of one value "
        f"(they differ in case, spaces around them, a final full stop or how a number is "
        f"written) that the label "
        f"reads {read_as}. Map them to one with sources.Csv(..., replace={{{column!r}: "
        f"{{{mapping}}}}}), or, where they are different values, rename one there"
        + ("" if of is not None else " or declare the classes (classes=[...])")
    )


#: Label texts that are missing, besides blank text (compared trimmed, in lower case):
#: how a missing number is written as text (``str(float("nan"))``, numpy's ``savetxt``,
#: pandas' ``to_csv(na_rep="NaN")``), which a numeric label column reads as missing too.
NAN_TEXTS = ("nan", "+nan", "-nan")


def is_unset_text(text: str) -> bool:
    """Whether a label's text is missing: blank, or a spelling of NaN (:data:`NAN_TEXTS`)."""
    trimmed = text.strip()
    return not trimmed or trimmed.lower() in NAN_TEXTS


def unset_class(param: str, text: str, column: str) -> str:
    """Why ``text`` cannot be a class of the label (it reads as a missing label)."""
    return (
        f"{param} holds {text!r}, which a label reads as missing (blank text and NaN are "
        f"missing labels); give that class another name with sources.Csv(..., "
        f"replace={{{column!r}: {{{text!r}: <another name>}}}})"
    )


def missing_texts(texts: Any) -> np.ndarray:
    """Which of ``texts`` (an Arrow string array) are missing labels: blank (empty or
    only whitespace) or a spelling of NaN (``NaN``, ``nan``: :data:`NAN_TEXTS`).

    A label of such text is missing, whatever the source's ``na_values`` (a text
    column beside it may keep its empty values: the SMS config reads ``na_values=()``),
    never a class or a negative row of its own: in a numeric column ``NaN`` reads as
    missing, and a label's meaning must not follow the column's declared type.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_lower(pc.utf8_trim_whitespace(texts))
    unset = pc.or_(pc.equal(trimmed, ""), pc.is_in(trimmed, value_set=pa.array(NAN_TEXTS)))
    return np.asarray(pc.fill_null(unset, False), dtype=bool)


def is_text(values: Any) -> bool:
    """Whether ``values`` (an Arrow array, a numpy array or a list) hold text."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray | pa.Array):
        return bool(pa.types.is_string(values.type) or pa.types.is_large_string(values.type))
    return np.asarray(values).dtype.kind in "OUS"


def label_texts(values: Any) -> Any:
    """Label values as an Arrow string array, missing text (:func:`missing_texts`) as null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = as_strings(values)
    unset = missing_texts(texts)
    return (
        pc.if_else(pa.array(unset), pa.nulls(len(texts), pa.string()), texts)
        if unset.any()
        else texts
    )


def spelled_like(value: str, counts: dict[str, int]) -> str | None:
    """The value of ``counts`` (a training split's values, or declared classes) that
    ``value`` is a spelling of (:func:`_spelling`), the most frequent; None for none."""
    key = _spelling(value)
    alike = [v for v in counts if v != value and _spelling(v) == key]
    return min(alike, key=lambda v: (-counts[v], v)) if alike else None
