"""Listing a store's entries and removing the leftovers of killed or failed runs."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from helix_tf.reuse.store._fs import (
    _ARTIFACTS,
    _MANIFEST,
    _STAGING,
    _TMP_PREFIX,
    _mtime,
)
from helix_tf.reuse.store._leases import _RUNS, LeaseInfo, _Leases, owner_of
from helix_tf.reuse.store._manifest import Manifest, _Entry

logger = logging.getLogger(__name__)

#: Written by every collection; its age says when the next is due.
_GC_STAMP = "last_gc"


@dataclass(slots=True, kw_only=True)
class GcReport:
    """What :meth:`ArtifactStore.collect` removed (or, with ``dry_run``, would remove).

    Attributes
    ----------
    removed : int
        Leftovers (directories and files) removed.
    bytes : int
        Their total size.
    paths : list of str
        Their paths in the store.
    dead_runs : list of LeaseInfo
        Leases of runs found dead (their process is gone): their runs were killed.
    dry_run : bool
        Nothing was removed.
    """

    removed: int = 0
    bytes: int = 0
    paths: list[str] = field(default_factory=list)
    dead_runs: list[LeaseInfo] = field(default_factory=list)
    dry_run: bool = False

    def add(
        self, path: str, size: int, dry_run: bool, remove: Callable[[str], None] | None
    ) -> None:
        if not dry_run and remove is not None:
            remove(path)
        self.removed += 1
        self.bytes += size
        self.paths.append(path)


@dataclass(slots=True, kw_only=True)
class VerifyReport:
    """What :meth:`ArtifactStore.verify` found.

    Attributes
    ----------
    ok : list of Manifest
        Entries whose every file matches its size and sha256.
    bad : list of (str, str)
        Fingerprints of entries that do not, with the problem.
    leftovers : GcReport
        Leftovers of dead runs (reclaimed when ``repair``, else only counted).
    """

    ok: list[Manifest] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    leftovers: GcReport = field(default_factory=GcReport)

    @property
    def clean(self) -> bool:
        """No bad entry and nothing left over."""
        return not self.bad and not self.leftovers.removed


class _Cleanup(_Leases):
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

        def _content_problem(self, manifest: Manifest) -> str | None: ...

        def delete(self, fingerprint: str) -> None: ...

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

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Check every entry's files against its manifest (sizes and sha256).

        Parameters
        ----------
        repair : bool
            Remove the entries that fail (a later run recomputes them) and reclaim the
            leftovers of dead runs.

        Returns
        -------
        VerifyReport
            The entries that verified, those that did not (with the problem), and the
            leftovers :meth:`collect` would reclaim now.
        """
        report = VerifyReport()
        with self._errors("verify"):
            self._refresh()
            for fp, group in sorted(self._scan(_ARTIFACTS).items()):
                if _MANIFEST not in group.files:
                    continue
                entry = self._inspect(fp, sizes_by_token=group.sizes_by_token)
                if entry.state == "invalid":
                    entry = self._inspect(fp)
                problem = entry.problem
                if entry.manifest is not None:
                    problem = self._content_problem(entry.manifest) or ""
                if not problem and entry.manifest is not None:
                    report.ok.append(entry.manifest)
                    continue
                report.bad.append((fp, problem))
                if repair:
                    self.delete(fp)
        report.leftovers = self.collect(dry_run=not repair)
        return report

    def total_bytes(self) -> int:
        """Return the summed size of all valid entries."""
        return sum(m.bytes for m in self.entries())

    def cleanup(self, *, older_than: float = 3600.0) -> int:
        """Remove leftovers of killed or failed runs; return how many were removed.

        See :meth:`collect`, of which this is the count.
        """
        return self.collect(older_than=older_than).removed

    def collect(self, *, older_than: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Reclaim what killed or failed runs left behind, safely beside live runs.

        Staging directories, data directories that no manifest names, temporary
        manifest files and unusable manifests (with the data they name) are removed
        when the run that wrote them is dead (its lease names a process that is gone,
        see :mod:`helix_tf.reuse.store._leases`), or, when no lease names a writer,
        once they are ``older_than`` seconds old (age is the newest modification
        inside). What a live run owns is never touched. Dead runs' leases and their
        scratch folders (on this host) go too; empty fingerprint folders are removed.

        Parameters
        ----------
        older_than : float
            Minimum age in seconds of leftovers whose writer is unknown.
        dry_run : bool
            Only report what would be removed.

        Returns
        -------
        GcReport
        """
        now = time.time()
        report = GcReport(dry_run=dry_run)
        with self._errors("clean up"):
            self._refresh()
            leases = self.leases()
            live = {lease.id for lease in leases if lease.alive}
            dead = {lease.id for lease in leases if not lease.alive}

            def reclaimable(name: str, newest: float) -> bool:
                owner = owner_of(name)
                if owner in live:
                    return False
                return owner in dead or now - newest >= older_than

            for name, group in self._scan(_STAGING).items():
                token = name.rsplit(".", 1)[-1].removeprefix("run-")
                if reclaimable(token, group.newest):
                    report.add(group.path, group.total, dry_run, self._rm_tree)
            for fp, group in self._scan(_ARTIFACTS).items():
                self._collect_fingerprint(fp, group, now, older_than, reclaimable, report)
            for path, mtime in self._stray_lease_files():
                if reclaimable(posixpath.basename(path), mtime):
                    report.add(path, 0, dry_run, self._rm_file)
            for lease in leases:
                if not lease.alive:
                    report.dead_runs.append(lease)
                    if not dry_run:
                        self._drop_lease(lease)
            if not dry_run:
                self._write_bytes(self._join(_GC_STAMP), f"{now}\n".encode())
        if report.removed and not dry_run:
            logger.info(
                "store gc removed %d leftovers (%d bytes) from %s",
                report.removed,
                report.bytes,
                self.url,
            )
        return report

    def _stray_lease_files(self) -> list[tuple[str, float]]:
        """Files in ``runs/`` that are not leases (a lease write killed halfway)."""
        try:
            found = self.fs.ls(self._join(_RUNS), detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [
            (str(info["name"]), _mtime(info))
            for info in found
            if info.get("type") == "file" and not str(info["name"]).endswith(".json")
        ]

    def collection_due(self, *, every: float = 3600.0) -> bool:
        """Whether a run should collect: a dead run's lease is there, or none ran for ``every`` s.

        Cheap (one listing of the leases, one stat): runs call it at start so that a
        dead run's leftovers go at once and the full scan happens at most hourly.
        """
        if any(not lease.alive for lease in self.leases()):
            return True
        try:
            last = _mtime(self.fs.info(self._join(_GC_STAMP)))
        except FileNotFoundError:
            return True
        return time.time() - last >= every

    def _collect_fingerprint(
        self,
        fp: str,
        group: _Group,
        now: float,
        older_than: float,
        reclaimable: Callable[[str, float], bool],
        report: GcReport,
    ) -> None:
        named = None
        before = report.removed
        if _MANIFEST in group.files:
            entry = self._inspect(fp, sizes_by_token=group.sizes_by_token)
            if entry.state == "invalid":
                entry = self._inspect(fp)  # the listing may predate a concurrent commit
            named = entry.token
            old = now - group.files[_MANIFEST] >= older_than
            if entry.state == "invalid" and old:
                size = sum(group.sizes_by_token.get(named or "", {}).values())
                if report.dry_run:
                    report.add(self._manifest_path(fp), size, True, None)
                elif self._remove_bad(fp, entry):
                    report.add(self._manifest_path(fp), size, False, None)
                    named = None
        for name, mtime in group.files.items():
            if name.startswith(_TMP_PREFIX) and reclaimable(name.removeprefix(_TMP_PREFIX), mtime):
                report.add(self._join(_ARTIFACTS, fp, name), 0, report.dry_run, self._rm_file)
        for token, newest in group.subdirs.items():
            if token != named and reclaimable(token, newest):
                size = sum(group.sizes_by_token.get(token, {}).values())
                report.add(self._data_dir(fp, token), size, report.dry_run, self._rm_tree)
        empty = not group.files and not group.subdirs
        stale = report.removed > before or (empty and now - group.newest >= min(older_than, 60))
        if self.is_local and not report.dry_run and stale:
            with contextlib.suppress(OSError):
                os.rmdir(self._fp_dir(fp))

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

    __slots__ = ("files", "newest", "path", "sizes_by_token", "subdirs", "total")

    def __init__(self, *, path: str) -> None:
        self.path = path
        self.files: dict[str, float] = {}  # direct child file → mtime
        self.subdirs: dict[str, float] = {}  # direct child dir → newest mtime inside
        self.sizes_by_token: dict[str, dict[str, int]] = {}
        self.newest = 0.0
        self.total = 0  # bytes of every file below

    def add(self, rest: str, info: Mapping[str, Any]) -> None:
        mtime = _mtime(info)
        self.newest = max(self.newest, mtime)
        if not rest:
            return
        head, _, tail = rest.partition("/")
        is_file = info.get("type") == "file"
        if is_file:
            self.total += int(info.get("size") or 0)
        if not tail and is_file:
            self.files[head] = mtime
            return
        self.subdirs[head] = max(self.subdirs.get(head, 0.0), mtime)
        if tail and is_file:
            self.sizes_by_token.setdefault(head, {})[tail] = int(info.get("size") or 0)
