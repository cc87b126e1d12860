"""A node's output files during a run, and where a stored entry's files are."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from helix_tf.reuse.store import ArtifactStore, Manifest, Staging

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


def _data_url(store: ArtifactStore, manifest: Manifest) -> str:
    """The folder URL of a stored artifact's files (readable by Beam workers)."""
    return store._to_url(store._data_dir(manifest.fingerprint, manifest.token))


def folder_bytes(path: str) -> int:
    """The bytes of every file under ``path``."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total
