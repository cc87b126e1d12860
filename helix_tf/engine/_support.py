"""Helpers of the engine's run: its artifacts, runner-error unwrapping, store paths."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from helix_tf.errors import DataError, ExecutionError, HelixError
from helix_tf.reuse.store import Manifest, Staging

#: The file beside an examples artifact's splits naming each feature's values.
VALUE_NAMES = "value_names.json"


@dataclasses.dataclass(slots=True)
class _Artifact:
    """A node's output during a run: where its files are, and its manifest meta."""

    root: str  # folder URL (staging or stored data dir) readable by Beam workers
    local: str | None  # local folder, when one exists
    meta: dict[str, Any]
    staging: Staging | None = None
    manifest: Manifest | None = None


_OPERATOR_RE = re.compile(
    r"operator '(?P<node>[^']+)' failed: (?P<msg>.*?)(?: \[while running .*)?$", re.S
)


def _unwrap_runner_error(exc: BaseException) -> BaseException:
    """The helix_tf error an operator raised, out of the runner's wrapping.

    Beam re-raises an exception from a DoFn as ``type(exc)(message + context)``,
    which loses the failing node; recover the original from the exception chain,
    or parse the node back out of the message.
    """
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ExecutionError) and cur.node is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    text = str(exc)
    m = _OPERATOR_RE.search(text)
    if m:
        cls = DataError if isinstance(exc, DataError) else ExecutionError
        return cls(m["msg"].strip(), node=m["node"])
    if isinstance(exc, HelixError) or not isinstance(exc, Exception):
        return exc
    return ExecutionError(f"the Beam pipeline failed: {type(exc).__name__}: {text}")


def _folder_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total
