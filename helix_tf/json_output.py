"""Strict JSON for the CLI's ``--json`` output (one function, used by every command)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["json_text"]


def json_text(
    value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> str:
    """``value`` as strict JSON for ``--json``: a NaN or infinite number (an AUC on a
    slice with one class) is ``null``, never the ``NaN`` that JSON readers (jq,
    JavaScript) reject.

    >>> json_text({"auc": float("nan"), "n": [1.5, float("inf")]})
    '{"auc": null, "n": [1.5, null]}'

    Every ``--json`` output of the CLI goes through here (``tests/test_json_output.py``
    checks that no command module calls ``json.dumps`` itself).
    """

    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [finite(x) for x in v]
        return v

    return json.dumps(finite(value), allow_nan=False, sort_keys=sort_keys, default=default)
