"""Listing a store's entries and removing the leftovers of killed or failed runs."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from helix_tf.reuse.store._fs import (
    _ARTIFACTS,
    _MANIFEST,
    _STAGING,
    _TMP_PREFIX,
    _mtime,
    _StoreFiles,
)
from helix_tf.reuse.store._manifest import Manifest, _Entry

logger = logging.getLogger(__name__)


class _Cleanup(_StoreFiles):
    """Listing and cleaning up a store: the part of :class:`ArtifactStore` that scans it.

    ``_inspect``, ``_validate`` and ``_remove_bad`` are :class:`ArtifactStore`'s.
    """

    if TYPE_CHECKING:

        def _inspect(
            self,
            fingerprint: str,
            *,
            check_data: bool = True,
            sizes_by_token: Mapping[str, Mapping[str, int]] | None = None,
        ) -> _Entry: ...

        def _validate(
            self,
            fingerprint: str,
            text: bytes,
            *,
            check_data: bool = True,
            sizes_by_token: Mapping[str, Mapping[str, int]] | None = None,
        ) -> _Entry: ...

        def _remove_bad(
            self, fingerprint: str, entry: _Entry, token: str | None = None
        ) -> bool: ...

    def entries(self) -> list[Manifest]:
        """Return every valid committed entry, sorted by fingerprint."""
        with self._errors("list entries"):
            self._refresh()
            layout = self._scan(_ARTIFACTS)
            manifests = [fp for fp, group in sorted(layout.items()) if _MANIFEST in group.files]
            texts = self._cat_many([self._manifest_path(fp) for fp in manifests])
        out = []
        for fp in manifests:
            text = texts.get(self._manifest_path(fp))
            if not isinstance(text, bytes):
                continue
            entry = self._validate(fp, text, sizes_by_token=layout[fp].sizes_by_token)
            if entry.state == "invalid":
                entry = self._inspect(fp)  # the listing may predate a concurrent commit
            if entry.manifest is not None:
                out.append(entry.manifest)
            else:
                logger.warning("artifact %s in %s is unusable: %s", fp, self.url, entry.problem)
        return out

    def total_bytes(self) -> int:
        """Return the summed size of all valid entries."""
        return sum(m.bytes for m in self.entries())

    def cleanup(self, *, older_than: float = 3600.0) -> int:
        """Remove leftovers of killed or failed runs that are older than ``older_than`` s.

        Removes stale staging directories, data directories no manifest names,
        temporary manifest files and unusable manifests (with the data they name). Age
        is measured from the newest modification inside each directory, so keep
        ``older_than`` above the longest time a writer leaves its staging untouched.

        Parameters
        ----------
        older_than : float
            Minimum age in seconds of what is removed.

        Returns
        -------
        int
            Number of directories and files removed.
        """
        now = time.time()
        removed = 0
        with self._errors("clean up"):
            self._refresh()
            for group in self._scan(_STAGING).values():
                if now - group.newest >= older_than:
                    self._rm_tree(group.path)
                    removed += 1
            for fp, group in self._scan(_ARTIFACTS).items():
                removed += self._cleanup_fingerprint(fp, group, now, older_than)
        if removed:
            logger.info("cleanup removed %d leftovers from %s", removed, self.url)
        return removed

    def _cleanup_fingerprint(self, fp: str, group: _Group, now: float, older_than: float) -> int:
        removed = 0
        named = None
        if _MANIFEST in group.files:
            entry = self._inspect(fp, sizes_by_token=group.sizes_by_token)
            if entry.state == "invalid":
                entry = self._inspect(fp)  # the listing may predate a concurrent commit
            named = entry.token
            old = now - group.files[_MANIFEST] >= older_than
            if entry.state == "invalid" and old and self._remove_bad(fp, entry):
                removed += 1
                named = None
        for name, mtime in group.files.items():
            if name.startswith(_TMP_PREFIX) and now - mtime >= older_than:
                self._rm_file(self._join(_ARTIFACTS, fp, name))
                removed += 1
        for token, newest in group.subdirs.items():
            if token != named and now - newest >= older_than:
                self._rm_tree(self._data_dir(fp, token))
                removed += 1
        if self.is_local and removed:
            with contextlib.suppress(OSError):
                os.rmdir(self._fp_dir(fp))
        return removed

    def _scan(self, area: str) -> dict[str, _Group]:
        """Group everything under ``<root>/<area>`` by its first path component."""
        base = self._join(area)
        groups: dict[str, _Group] = {}
        try:
            found = self.fs.find(base, withdirs=True, detail=True)
        except FileNotFoundError:
            return groups
        prefix = base.rstrip("/") + "/"
        for path, info in found.items():
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            head, _, rest = rel.partition("/")
            group = groups.setdefault(head, _Group(path=self._join(area, head)))
            group.add(rest, info)
        return groups


class _Group:
    """Files and sub-directories under one staging dir or one fingerprint dir."""

    __slots__ = ("files", "newest", "path", "sizes_by_token", "subdirs")

    def __init__(self, *, path: str) -> None:
        self.path = path
        self.files: dict[str, float] = {}  # direct child file → mtime
        self.subdirs: dict[str, float] = {}  # direct child dir → newest mtime inside
        self.sizes_by_token: dict[str, dict[str, int]] = {}
        self.newest = 0.0

    def add(self, rest: str, info: Mapping[str, Any]) -> None:
        mtime = _mtime(info)
        self.newest = max(self.newest, mtime)
        if not rest:
            return
        head, _, tail = rest.partition("/")
        is_file = info.get("type") == "file"
        if not tail and is_file:
            self.files[head] = mtime
            return
        self.subdirs[head] = max(self.subdirs.get(head, 0.0), mtime)
        if tail and is_file:
            self.sizes_by_token.setdefault(head, {})[tail] = int(info.get("size") or 0)
