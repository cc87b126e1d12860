"""Clock reads beyond the wall clock's functions (QA pass 12), beside :mod:`._effects`,
whose ``varying`` (:mod:`._machine_facts`) asks :func:`reads_clock` about every call it scans.

* The interval clocks: ``time.monotonic()``, ``time.perf_counter()``,
  ``time.process_time()``, ``time.thread_time()`` (and their ``_ns`` forms),
  ``time.clock_gettime(...)``: a UDF that stops work after a time budget, or keeps a
  timing, computes another result on a busier machine.
* The current time asked for by a word: ``np.datetime64("now")``, ``pd.Timestamp("today")``,
  ``pd.to_datetime("now")``, ``pd.date_range(end="today", ...)`` parse "now" and "today"
  as the clock's reading.
* ``now``/``today``/``utcnow`` of any numpy or pandas class (``pd.Period.now("D")``),
  beside those of ``datetime.date`` that ``_effects`` knows.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable

__all__ = ["reads_clock"]

_INTERVAL_CLOCKS = tuple(
    getattr(time, name)
    for name in (
        "monotonic",
        "monotonic_ns",
        "perf_counter",
        "perf_counter_ns",
        "process_time",
        "process_time_ns",
        "thread_time",
        "thread_time_ns",
        "clock_gettime",
        "clock_gettime_ns",
    )
    if hasattr(time, name)
)
#: Words that numpy's and pandas' parsers read as the clock's current reading.
_CLOCK_WORDS = frozenset({"now", "today"})
_CLOCK_METHODS = frozenset({"now", "today", "utcnow"})
_LIBRARIES = frozenset({"numpy", "pandas"})


def reads_clock(fn: object, node: ast.Call, value: Callable[[ast.AST], object]) -> bool:
    """Whether a call reads the clock in one of the ways above."""
    if any(fn is f for f in _INTERVAL_CLOCKS):
        return True
    if _library(fn) and getattr(fn, "__name__", "") in _CLOCK_METHODS:
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, type) and _library(owner):
            return True  # pd.Period.now("D")
    if not _library(fn):
        return False
    arguments = [*node.args, *(k.value for k in node.keywords)]
    return any(_clock_word(a.value if isinstance(a, ast.Constant) else value(a)) for a in arguments)


def _library(fn: object) -> bool:
    module = getattr(fn, "__module__", None) or ""
    return module.split(".")[0] in _LIBRARIES


def _clock_word(text: object) -> bool:
    return isinstance(text, str) and text.strip().lower() in _CLOCK_WORDS
