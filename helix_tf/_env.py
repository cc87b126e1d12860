"""Settings read from the environment: a number of seconds with one clear error
(:func:`env_seconds`); the threads TensorFlow splits an op over (:func:`intra_op_threads`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from helix_tf.errors import ConfigError

__all__ = ["env_seconds", "intra_op_threads"]


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


def intra_op_threads(environ: Mapping[str, str] | None = None) -> int:
    """The threads TensorFlow splits one op over: ``$TF_NUM_INTRAOP_THREADS`` when set
    above 0, else the CPUs this process may run on (TensorFlow's own default, which a CPU
    affinity such as ``taskset`` or a pinned agent lowers)."""
    raw = (os.environ if environ is None else environ).get("TF_NUM_INTRAOP_THREADS", "")
    try:
        threads = int(raw.strip() or 0)
    except ValueError:
        threads = 0
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
