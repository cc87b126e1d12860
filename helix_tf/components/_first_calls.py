"""Which pieces of user code this process has already called once: the one registry the
checks for state kept between calls read (a feature's UDF on its first batch,
:mod:`helix_tf.engine._user_calls`; a custom metric's function,
:mod:`helix_tf.components.metrics._custom`). Each is called twice on its first call in a
process, and a different second answer names the state it keeps.
"""

from __future__ import annotations

from typing import Any

__all__ = ["first_call"]

#: What was called already, by id; the object itself is kept so that its id is never
#: another's.
_CALLED: dict[int, Any] = {}


def first_call(obj: object) -> bool:
    """Whether ``obj`` (an operator, a function) is called for the first time in this
    process; it is remembered, so the next call says False."""
    if id(obj) in _CALLED:
        return False
    _CALLED[id(obj)] = obj
    return True
