"""How a data value is named in results: metric slice keys, the value names of a feature.

helix_tf names a few things that are no value of the data in angle brackets: a missing
value is ``<missing>``, the values a vocabulary did not learn ``<other>`` (or ``<other
k>``). The data may hold the same text as a value of its own (a category spelled
``<missing>``): it stays a value of its own, named with one more pair of single quotes
(``'<missing>'``; a value ``'<missing>'`` is ``''<missing>''``), so no value is named
as a marker and no two values share a name. A whole number is written without ``.0``
whether its column is declared int or float (sources hold both as float64).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["MISSING_NAME", "value_name"]

MISSING_NAME = "<missing>"
"""The name of a missing value (a null, NaN) in metric keys and a feature's value names."""


def value_name(value: Any, reserved: Collection[str] = (MISSING_NAME,)) -> str:
    """The name of ``value`` in results: :data:`MISSING_NAME` for ``None``, else its text,
    quoted once more where it reads as one of ``reserved`` (the markers the names sit
    among; :data:`MISSING_NAME` always is one).

    >>> value_name(None), value_name("a"), value_name("<missing>"), value_name("'<missing>'")
    ('<missing>', 'a', "'<missing>'", "''<missing>''")
    >>> value_name("<other>", reserved=("<other>",))
    "'<other>'"

    A whole number held as a float (an int column: sources hold numbers as float64) is
    written as the integer: ``10``, not ``10.0``.

    >>> value_name(10.0), value_name(10.5), value_name(1e300)
    ('10', '10.5', '1e+300')
    """
    if value is None:
        return MISSING_NAME
    whole = isinstance(value, float) and value.is_integer() and abs(value) < 2**53
    text = str(int(value)) if whole else str(value)
    core = text
    while len(core) >= 2 and core[0] == core[-1] == "'":
        core = core[1:-1]
    return f"'{text}'" if core == MISSING_NAME or core in reserved else text
