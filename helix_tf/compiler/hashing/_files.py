"""The content digest of a local file (shared by code fingerprints and data sources)."""

from __future__ import annotations

import glob
import hashlib
import json
import os

from helix_tf._files import files_under

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The first 32 hex characters of the sha256 of a local file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()[:32]


def sha256_files(path: str) -> str | None:
    """A folder by its files (relative names and contents), or a glob pattern by the files
    it matches: adding, removing, renaming or editing one changes it. None when ``path``
    is neither a folder nor a pattern."""
    if os.path.isdir(path):
        files = [(os.path.relpath(f, path), f) for f in files_under(path)]
    elif glob.has_magic(path):
        files = [(f, f) for f in sorted(glob.glob(path, recursive=True)) if os.path.isfile(f)]
    else:
        return None
    entries = [[name, sha256_file(f) if os.path.isfile(f) else "missing"] for name, f in files]
    text = json.dumps(entries, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
