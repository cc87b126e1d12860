"""Content identity of data files, memoised so unchanged large files are not re-read.

A local file is hashed (sha256 of its bytes) once per (path, size, mtime_ns);
the memo lives in a small JSON file. A remote file (``gs://…``) is identified
by what the object store says about it (generation, crc32c/md5, size), read
through fsspec without downloading it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from helix_tf.errors import ConfigError

__all__ = ["ContentHasher"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ContentHasher:
    """Hashes files by content, memoised on (path, size, mtime).

    Parameters
    ----------
    memo_path:
        JSON file that keeps the memo between processes (None: in memory only).
    """

    def __init__(self, memo_path: str | os.PathLike[str] | None = None) -> None:
        self.memo_path = Path(memo_path) if memo_path else None
        self._memo: dict[str, list[object]] = {}
        self._dirty = False
        if self.memo_path and self.memo_path.exists():
            try:
                self._memo = json.loads(self.memo_path.read_text())
            except (OSError, ValueError):
                log.warning("ignoring unreadable content-hash memo %s", self.memo_path)

    def file_digest(self, path: str) -> str:
        """The content digest of one file (local path or fsspec URL)."""
        if "://" in path and not path.startswith("file://"):
            return self._remote_digest(path)
        local = path.removeprefix("file://")
        try:
            st = os.stat(local)
        except OSError as exc:
            raise ConfigError(
                f"data file {local!r} cannot be read ({exc.strerror}); check the path, or pass "
                "--data-dir / set HELIX_TF_DATA to the folder that holds it"
            ) from exc
        key = os.path.abspath(local)
        hit = self._memo.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        h = hashlib.sha256()
        with open(local, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()[:32]
        self._memo[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def digest(self, paths: Iterable[str]) -> list[str]:
        """Digests of several files, in order."""
        return [self.file_digest(p) for p in paths]

    def _remote_digest(self, url: str) -> str:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
        ident = {
            k: str(info[k])
            for k in ("generation", "crc32c", "md5Hash", "etag", "size", "mtime")
            if k in info
        }
        if not ident:
            raise ConfigError(f"cannot identify the content of {url!r}: the store reports nothing")
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def save(self) -> None:
        """Write the memo back (atomically) if it changed."""
        if not (self.memo_path and self._dirty):
            return
        try:
            self.memo_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.memo_path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(self._memo, f)
            os.replace(tmp, self.memo_path)
            self._dirty = False
        except OSError as exc:
            log.warning("could not save the content-hash memo %s: %s", self.memo_path, exc)
