"""Reading a number of seconds from an environment variable, with one clear error."""

from __future__ import annotations

import os

from helix_tf.errors import ConfigError

__all__ = ["env_seconds"]


def env_seconds(name: str, default: float, *, zero: str | None = None) -> float:
    """``name``'s value in seconds, else ``default`` (unset or empty).

    ``zero``: what 0 means where it is allowed (e.g. ``"never wait"``); without it
    the value must be > 0. Anything else (text, a negative number, NaN) is a
    :class:`ConfigError` naming the variable and what it must be.
    """
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 if zero else value > 0):  # also NaN
        bound = f">= 0 (0: {zero})" if zero else "> 0"
        raise ConfigError(f"{name} must be a number of seconds {bound}, but got {text!r}")
    return value
