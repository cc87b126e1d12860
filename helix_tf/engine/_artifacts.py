"""A node's output files during a run."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from helix_tf.reuse.store import Manifest, Staging

__all__ = ["VALUE_NAMES", "Artifact", "folder_bytes"]

#: The file beside an examples artifact's splits naming each feature's values.
VALUE_NAMES = "value_names.json"


@dataclasses.dataclass(slots=True)
class Artifact:
    """A node's output during a run: where its files are, and its manifest meta."""

    root: str  # folder URL (staging or stored data dir) readable by Beam workers
    local: str | None  # local folder, when one exists
    meta: dict[str, Any]
    staging: Staging | None = None
    manifest: Manifest | None = None


def folder_bytes(path: str) -> int:
    """The bytes of every file under ``path``."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total
