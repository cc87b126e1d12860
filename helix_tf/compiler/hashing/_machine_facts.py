"""Calls whose value is a fact of the machine, the clock or the process, not of the code.

:mod:`._effects` asks these about every call it scans: a fact of the machine (host name,
core count, local time zone, the locale's text encoding) joins the fingerprint by name
(:data:`MACHINE_FACTS`); a call that gives another value in every run (the clock, string
hashes, process ids) is refused with the reason :func:`varying` gives.
"""

from __future__ import annotations

import ast
import builtins
import datetime as dt
import getpass
import io
import os
import pathlib
import platform
import socket
import threading
import time
from collections.abc import Callable

from ._clock import reads_clock

#: Functions of ``time`` that read the clock: the most arguments with which they still
#: do (``time.localtime()`` does, ``time.localtime(secs)`` does not; None: always).
_CLOCK_FUNCTIONS = (
    (time.time, None),
    (time.time_ns, None),
    (time.localtime, 0),
    (time.gmtime, 0),
    (time.ctime, 0),
    (time.asctime, 0),
    (time.strftime, 1),
)
#: Class methods of ``datetime.date`` and its subclasses (``datetime``, ``pd.Timestamp``)
#: that read the clock.
_CLOCK_METHODS = frozenset({"now", "today", "utcnow"})
_CLOCK_WHY = (
    "reads the clock: a result stored today is not what a run computes tomorrow; pass the "
    "date or time it needs as a parameter (a module constant or PARAMS) instead"
)
HASH_WHY = (
    "gives another value for the same text in every process (Python seeds string hashes at "
    "random): a stored result is not what a fresh run computes; use a stable hash such as "
    "zlib.crc32(text.encode())"
)


#: The fact a conversion between instants and wall-clock times in the local zone reads.
LOCAL_ZONE = "the local time zone"


def _local_zone() -> dict[str, object]:
    """The local time zone as the C library applies it (``$TZ``, else /etc/localtime)."""
    zone = os.environ.get("TZ")
    return {
        "TZ": zone if zone is not None else os.path.realpath("/etc/localtime"),
        "names": list(time.tzname),
        "offsets": [time.timezone, time.altzone, time.daylight],
    }


#: The fact a text file opened without an encoding is decoded by.
LOCALE_TEXT = "the locale's text encoding"


def _locale_text() -> str:
    """The encoding ``open()`` decodes text with when given none (the locale's, read
    when Python started; UTF-8 in UTF-8 mode)."""
    import locale

    return locale.getpreferredencoding(False)


#: Calls that read a fact of the machine, the user or the working folder: the same in
#: every run there, another on a colleague's machine sharing the store (a UDF computing
#: with the host name or the core count); by name, for the fingerprint to hold the value.
MACHINE_FACTS = {
    "socket.gethostname": socket.gethostname,
    "platform.node": platform.node,
    "getpass.getuser": getpass.getuser,
    "os.cpu_count": os.cpu_count,
    "os.getcwd": os.getcwd,
    LOCAL_ZONE: _local_zone,
    LOCALE_TEXT: _locale_text,
}

#: Functions of ``time`` that convert in the local zone (``localtime``/``ctime`` without
#: an argument read the clock too: refused by :func:`varying`).
_LOCAL_ZONE_FUNCTIONS = (time.localtime, time.mktime, time.ctime)


def reads_local_zone(fn: object, node: ast.Call) -> bool:
    """Whether a call converts in the machine's local time zone: ``time.localtime(secs)``,
    ``time.mktime``, ``time.ctime``, ``datetime.fromtimestamp(ts)`` (``pd.Timestamp``'s too)
    without a zone, a known naive datetime's ``timestamp()`` or ``astimezone()``."""
    if any(fn is f for f in _LOCAL_ZONE_FUNCTIONS):
        return True
    owner, name = getattr(fn, "__self__", None), getattr(fn, "__name__", "")
    given = len(node.args) + len(node.keywords)
    if isinstance(owner, type) and issubclass(owner, dt.date) and name == "fromtimestamp":
        zone = node.args[1] if len(node.args) > 1 else None
        zone = next((k.value for k in node.keywords if k.arg == "tz"), zone)
        return zone is None or (isinstance(zone, ast.Constant) and zone.value is None)
    if isinstance(owner, dt.datetime) and name in ("timestamp", "astimezone"):
        return owner.tzinfo is None or (name == "astimezone" and given == 0)
    return False


def decodes_by_locale(fn: object, node: ast.Call) -> bool:
    """Whether a call opens a file as text without naming its encoding: ``open(p)``,
    ``open(p, "r")``, a known path's ``read_text()`` or ``open()`` (the locale decodes it)."""
    if any(k.arg == "encoding" for k in node.keywords):
        return False
    owner, name = getattr(fn, "__self__", None), getattr(fn, "__name__", "")
    if fn is builtins.open or fn is io.open:
        mode_at, encoding_at = 1, 3
    elif isinstance(owner, pathlib.PurePath) and name == "open":
        mode_at, encoding_at = 0, 2
    elif isinstance(owner, pathlib.PurePath) and name == "read_text":
        return not node.args  # read_text(encoding)
    else:
        return False
    if len(node.args) > encoding_at:
        return False
    mode = node.args[mode_at] if len(node.args) > mode_at else None
    mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
    if mode is None:
        return True
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and "b" not in mode.value


#: Calls that give another value in every process (a seed drawn from them, a value
#: computed from them, differs between a stored result and a fresh run).
_PROCESS_IDS = (os.getpid, os.getppid, threading.get_ident, threading.get_native_id)
_PROCESS_WHY = (
    "gives another value in every process (a stored result is not what a fresh run "
    "computes: a seed drawn from it, for one); seed from a parameter instead"
)


def varying(fn: object, node: ast.Call, value: Callable[[ast.AST], object]) -> str | None:
    """Why a call's result differs between runs of the same code on the same data: it
    reads the clock or the process's string-hash seed. None for any other call."""
    if fn is builtins.hash:
        return HASH_WHY
    if any(fn is f for f in _PROCESS_IDS):
        return _PROCESS_WHY
    if reads_clock(fn, node, value):
        return _CLOCK_WHY
    arity = next((a for f, a in _CLOCK_FUNCTIONS if fn is f), -1)
    owner = getattr(fn, "__self__", None)
    if (
        arity == -1
        and isinstance(owner, type)
        and issubclass(owner, dt.date)
        and getattr(fn, "__name__", "") in _CLOCK_METHODS
    ):
        arity = None
    if arity == -1 or (arity is not None and len(node.args) + len(node.keywords) > arity):
        return None
    return _CLOCK_WHY
