"""Content identity of data files, memoised so unchanged large files are not re-read.

A local file is hashed (sha256 of its bytes) once per (path, device, inode, size,
mtime_ns, ctime_ns); the memo lives in a small JSON file. The inode change time
(ctime) is what git and DVC also key on: a user can set a file's mtime back
(``touch -d``) but not its ctime, which every write moves. What remains
undetected is a change that keeps all six (a tool that rewrites a file and sets
the system clock back, or a filesystem without ctime); ``rehash=True``
(``helix-tf run --rehash``) re-reads every file and ignores the memo.

An entry is memoised only once the file is older than :data:`RACY_SECONDS`
(git's "racily clean" rule): a file written again within the filesystem's
timestamp granularity of the moment it was hashed could keep the same
times, so it is hashed again next time instead of trusted.

A remote file (``gs://…``, ``s3://…``) is identified by the checksum the object store
reports for its bytes (crc32c/md5, else an ETag) and its size, read through fsspec
without downloading it. A store that reports no checksum (``memory://``, a plain HTTP
server) has its file read and hashed: a size or a date can survive a rewrite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from helix_tf._atomic import atomic_write
from helix_tf._files import files_under
from helix_tf.compiler.hashing import sha256_file
from helix_tf.errors import ConfigError

__all__ = ["ContentHasher"]

log = logging.getLogger(__name__)

#: Files changed less than this many seconds before they are hashed are not memoised.
RACY_SECONDS = 2.0


class ContentHasher:
    """Hashes files by content, memoised on (path, device, inode, size, mtime, ctime).

    Parameters
    ----------
    memo_path:
        JSON file that keeps the memo between processes (None: in memory only).
    rehash:
        Ignore the memo: read every file again (the entries are refreshed).
    """

    def __init__(
        self, memo_path: str | os.PathLike[str] | None = None, *, rehash: bool = False
    ) -> None:
        self.memo_path = Path(memo_path) if memo_path else None
        self.rehash = rehash
        self._memo: dict[str, list[object]] = {}
        self._dirty = False
        #: Each local file given a digest, with its stamp then (see :meth:`changed_files`).
        self._seen: dict[str, list[int]] = {}
        if self.memo_path and self.memo_path.exists():
            try:
                self._memo = json.loads(self.memo_path.read_text())
            except (OSError, ValueError):
                log.warning("ignoring unreadable content-hash memo %s", self.memo_path)

    def file_digest(self, path: str) -> str:
        """The content digest of one file (local path or fsspec URL), or of a local
        folder's files."""
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
        if stat.S_ISDIR(st.st_mode):
            return self._folder_digest(local)
        key = os.path.abspath(local)
        stamp = _stamp(st)
        self._seen.setdefault(key, stamp)
        hit = self._memo.get(key)
        if not self.rehash and isinstance(hit, list) and hit[:-1] == stamp:
            return str(hit[-1])
        try:
            digest = sha256_file(local)
        except OSError as exc:  # exists but cannot be read (permissions, I/O error)
            raise ConfigError(
                f"data file {local!r} cannot be read ({exc.strerror or exc}); check its "
                "permissions, or point the config at a readable copy"
            ) from exc
        newest = max(st.st_mtime_ns, st.st_ctime_ns)
        if time.time_ns() - newest > RACY_SECONDS * 1e9:
            self._memo[key] = [*stamp, digest]
        else:  # changed just now: the same times could survive another write
            self._memo.pop(key, None)
        self._dirty = True
        return digest

    def _folder_digest(self, folder: str) -> str:
        """A folder (e.g. a UDF's declared ``files=[lookup_dir]``) by its content: every
        file under it by relative name and digest, so adding, removing, renaming or
        editing one changes it (each file memoised like any other), through links to
        folders too (:func:`~helix_tf._files.files_under`)."""
        entries = [
            [os.path.relpath(path, folder), self.file_digest(path)] for path in files_under(folder)
        ]
        text = json.dumps(entries, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def watch(self, path: str) -> None:
        """Remember a local file's stamp now, for :meth:`changed_files` (a file a UDF opens,
        hashed with its code rather than here)."""
        key = os.path.abspath(path)
        if key not in self._seen:
            try:
                self._seen[key] = _stamp(os.stat(key))
            except OSError:
                return

    def changed_files(self) -> list[str]:
        """The local files given a digest whose bytes may have changed since (written,
        replaced or removed: another stamp). A run checks this before it stores a result
        computed from them: one computed while a file was edited holds neither version's
        content, and must not be stored under the fingerprint of the version hashed."""
        changed = []
        for path, stamp in self._seen.items():
            try:
                now = _stamp(os.stat(path))
            except OSError:
                now = None
            if now != stamp:
                changed.append(path)
        return changed

    def digest(self, paths: Iterable[str]) -> list[str]:
        """Digests of several files, in order."""
        return [self.file_digest(p) for p in paths]

    def _remote_digest(self, url: str) -> str:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
        # Content, not place: a checksum of the bytes (crc32c/md5 on GCS, an ETag on S3
        # and Azure, which changes with every write) and the size identify them wherever
        # they lie. Without one, what the store says (size, times, a creation date) can
        # stay the same through a rewrite: the bytes are read and hashed instead.
        keys = _checksum_keys(info)
        if keys:
            ident = {k: str(info[k]) for k in [*keys, "size"] if k in info}
            return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
        digest = hashlib.sha256()
        try:
            with fs.open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise ConfigError(
                f"data file {url!r} cannot be read ({exc}); its store reports no checksum, "
                "so its content is read to identify it: check the URL and your access to it"
            ) from exc
        return digest.hexdigest()[:32]

    def save(self) -> None:
        """Write the memo back (atomically) if it changed."""
        if not (self.memo_path and self._dirty):
            return
        try:
            self.memo_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.memo_path, json.dumps(self._memo))  # no .tmp left on failure
            self._dirty = False
        except OSError as exc:
            log.warning("could not save the content-hash memo %s: %s", self.memo_path, exc)


#: What object stores report that is a checksum of an object's bytes (matched without
#: case: S3 says ``ETag``, Azure ``etag``, GCS ``crc32c`` and ``md5Hash``), best first. An
#: ETag (a version of the bytes) counts only when no true checksum is given.
_CHECKSUMS = ("crc32c", "md5hash", "md5", "content_md5", "sha256", "checksum")
_CHUNK = 1 << 20


def _checksum_keys(info: dict[str, object]) -> list[str]:
    """The keys of ``info`` that hold a checksum of the object's bytes, as spelled there."""
    present = {k.lower(): k for k, v in info.items() if v}
    keys = [present[k] for k in _CHECKSUMS if k in present]
    return keys or [present[k] for k in ("etag",) if k in present]


def _stamp(st: os.stat_result) -> list[int]:
    """What the memo keys a file's content on, besides its path."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
