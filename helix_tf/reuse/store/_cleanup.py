"""Listing a store's entries and removing the leftovers of killed or failed runs."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helix_tf.reuse.store._entries import Entries
from helix_tf.reuse.store._fs import (
    _ARTIFACTS,
    _MANIFEST,
    _STAGING,
    _TMP_PREFIX,
    _mtime,
)
from helix_tf.reuse.store._leases import LeaseInfo, Leases, owner_of
from helix_tf.reuse.store._manifest import Manifest

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

    def killed_runs(self, metadata_url: str) -> list[int]:
        """The run ids, in the metadata database ``metadata_url``, of the dead runs.

        A lease names its run once the run is recorded (``run_id`` and the database's
        ``metadata`` URL, as :class:`~helix_tf.reuse.metadata.MetadataStore` renders
        it); runs recorded in another database are not this database's to mark.
        """
        return [
            int(info.run["run_id"])
            for info in self.dead_runs
            if info.run.get("run_id") is not None and info.run.get("metadata") == metadata_url
        ]

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
    newer : list of str
        Fingerprints of entries a newer helix_tf wrote: not checked, never removed.
    """

    ok: list[Manifest] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    leftovers: GcReport = field(default_factory=GcReport)
    newer: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No bad entry and nothing left over."""
        return not self.bad and not self.leftovers.removed


class Collector:
    """Scanning a store: listing its entries, verifying them, reclaiming leftovers.

    Parameters
    ----------
    entries : Entries
        The store's entries (and through them its files).
    leases : Leases
        The store's leases: what live runs own is never touched.
    """

    def __init__(self, entries: Entries, leases: Leases) -> None:
        self.entries = entries
        self.leases = leases
        self.files = entries.files
        self.paths = entries.paths

    def valid_entries(self) -> list[Manifest]:
        """Every valid committed entry, sorted by fingerprint."""
        with self.files.errors("list entries"):
            self.files.refresh()
            layout = self.scan(_ARTIFACTS)
            manifests = [fp for fp, group in sorted(layout.items()) if _MANIFEST in group.files]
            texts = self.files.cat_many([self.paths.manifest(fp) for fp in manifests])
        out = []
        for fp in manifests:
            text = texts.get(self.paths.manifest(fp))
            if not isinstance(text, bytes):
                continue
            entry = self.entries.validate(fp, text, sizes_by_token=layout[fp].sizes_by_token)
            if entry.state == "invalid":
                entry = self.entries.inspect(fp)  # the listing may predate a concurrent commit
            if entry.manifest is not None:
                out.append(entry.manifest)
            elif entry.state != "newer":  # a newer helix_tf's: not ours to judge
                logger.warning(
                    "artifact %s in %s is unusable: %s", fp, self.files.url, entry.problem
                )
        return out

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """See ``ArtifactStore.verify``."""
        report = VerifyReport()
        with self.files.errors("verify"):
            self.files.refresh()
            for fp, group in sorted(self.scan(_ARTIFACTS).items()):
                if _MANIFEST not in group.files:
                    continue
                entry = self.entries.inspect(fp, sizes_by_token=group.sizes_by_token)
                if entry.state == "invalid":
                    entry = self.entries.inspect(fp)
                if entry.state == "newer":  # not checked, never removed: see _Entry
                    report.newer.append(fp)
                    continue
                problem = entry.problem
                if entry.manifest is not None:
                    problem = self.entries.content_problem(entry.manifest) or ""
                if not problem and entry.manifest is not None:
                    report.ok.append(entry.manifest)
                    continue
                report.bad.append((fp, problem))
                if repair:
                    self.entries.delete(fp)
        report.leftovers = self.collect(dry_run=not repair)
        return report

    def collect(self, *, older_than: float = 3600.0, dry_run: bool = False) -> GcReport:
        """See ``ArtifactStore.collect``."""
        now = time.time()
        report = GcReport(dry_run=dry_run)
        with self.files.errors("clean up"):
            self.files.refresh()
            leases = self.leases.all()
            live = {lease.id for lease in leases if lease.alive}
            dead = {lease.id for lease in leases if not lease.alive}

            def reclaimable(name: str, newest: float) -> bool:
                owner = owner_of(name)
                if owner in live:
                    return False
                return owner in dead or now - newest >= older_than

            for name, group in self.scan(_STAGING).items():
                token = name.rsplit(".", 1)[-1].removeprefix("run-")
                if reclaimable(token, group.newest):
                    report.add(group.path, group.total, dry_run, self.files.rm_tree)
            for fp, group in self.scan(_ARTIFACTS).items():
                self._collect_fingerprint(fp, group, now, older_than, reclaimable, report)
            for path, mtime in self.leases.stray_files():
                if reclaimable(posixpath.basename(path), mtime):
                    report.add(path, 0, dry_run, self.files.rm_file)
            for lease in leases:
                if not lease.alive:
                    report.dead_runs.append(lease)
                    if not dry_run:
                        self.leases.drop(lease)
            if not dry_run:
                self.files.write_bytes(self.paths.join(_GC_STAMP), f"{now}\n".encode())
        if report.removed and not dry_run:
            logger.info(
                "store gc removed %d leftovers (%d bytes) from %s",
                report.removed,
                report.bytes,
                self.files.url,
            )
        return report

    def collection_due(self, *, every: float = 3600.0) -> bool:
        """See ``ArtifactStore.collection_due``."""
        if any(not lease.alive for lease in self.leases.all()):
            return True
        try:
            last = _mtime(self.files.fs.info(self.paths.join(_GC_STAMP)))
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
            entry = self.entries.inspect(fp, sizes_by_token=group.sizes_by_token)
            if entry.state == "invalid":
                entry = self.entries.inspect(fp)  # the listing may predate a concurrent commit
            named = entry.token
            old = now - group.files[_MANIFEST] >= older_than
            if entry.state == "invalid" and old:
                size = sum(group.sizes_by_token.get(named or "", {}).values())
                if report.dry_run:
                    report.add(self.paths.manifest(fp), size, True, None)
                elif self.entries.remove_bad(fp, entry):
                    report.add(self.paths.manifest(fp), size, False, None)
                    named = None
        for name, mtime in group.files.items():
            if name.startswith(_TMP_PREFIX) and reclaimable(name.removeprefix(_TMP_PREFIX), mtime):
                path = self.paths.join(_ARTIFACTS, fp, name)
                report.add(path, 0, report.dry_run, self.files.rm_file)
        for token, newest in group.subdirs.items():
            if token != named and reclaimable(token, newest):
                size = sum(group.sizes_by_token.get(token, {}).values())
                report.add(self.paths.data_dir(fp, token), size, report.dry_run, self.files.rm_tree)
        empty = not group.files and not group.subdirs
        stale = report.removed > before or (empty and now - group.newest >= min(older_than, 60))
        if self.files.is_local and not report.dry_run and stale:
            with contextlib.suppress(OSError):
                os.rmdir(self.paths.fp_dir(fp))

    def scan(self, area: str) -> dict[str, _Group]:
        """Group everything under ``<root>/<area>`` by its first path component."""
        base = self.paths.join(area)
        groups: dict[str, _Group] = {}
        try:
            found = self.files.fs.find(base, withdirs=True, detail=True)
        except FileNotFoundError:
            return groups
        prefix = base.rstrip("/") + "/"
        for path, info in found.items():
            if path.rstrip("/") == base.rstrip("/") and info.get("type") == "file":
                # A file in place of the store's folder: not an empty area (verify said
                # "clean"); the store's error names the file and the fix.
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", base)
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            head, _, rest = rel.partition("/")
            group = groups.setdefault(head, _Group(path=self.paths.join(area, head)))
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
