"""The artifact store: look up, stage and commit, open and delete artifacts by fingerprint.

:class:`ArtifactStore` is the one public face of a store; each of its jobs is a small
object beside it: :class:`~helix_tf.reuse.store._fs.StoreFiles` (file system access and
paths), :class:`~helix_tf.reuse.store._entries.Entries` (reading and judging entries),
:class:`~helix_tf.reuse.store._commit.Committer` (staging and commit),
:class:`~helix_tf.reuse.store._open.Opener` (local copies of entries),
:class:`~helix_tf.reuse.store._leases.Leases` (live runs; public as ``run_leases``) and
:class:`~helix_tf.reuse.store._cleanup.Collector` (verify and reclaim leftovers).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from helix_tf.errors import StoreError
from helix_tf.reuse.store._cleanup import Collector, GcReport, VerifyReport
from helix_tf.reuse.store._commit import Committer
from helix_tf.reuse.store._entries import Entries
from helix_tf.reuse.store._fs import (
    _ARTIFACTS,
    _MARKER,
    _RUNS,
    _STAGING,
    StoreFiles,
    _check_fingerprint,
)
from helix_tf.reuse.store._leases import LeaseInfo, Leases, RunLease, new_token
from helix_tf.reuse.store._manifest import _SUPPORTED_FORMATS, FORMAT_VERSION, Manifest, Staging
from helix_tf.reuse.store._open import Opener

logger = logging.getLogger(__name__)


class ArtifactStore:
    """Materialized artifacts keyed by fingerprint, on a local folder, GCS or memory.

    Parameters
    ----------
    url : str
        A local folder path, ``file://...``, ``gs://bucket/prefix`` or ``memory://name``.
    cache_dir : str, optional
        Local download cache for remote stores; default
        ``~/.cache/helix_tf/<hash of url>`` (``$XDG_CACHE_HOME`` is honoured).
    writing : bool
        ``False`` for a caller that only reads (``plan``, ``status``, ``report``,
        ``store du``, ``store verify``): an existing local store is opened as it is,
        on a read-only mount too (a store that is not there yet is still created).

    Raises
    ------
    StoreError
        If the URL's scheme is unsupported or the store cannot be created or written
        (with ``writing=False``: or read).

    Examples
    --------
    >>> store = ArtifactStore("memory://doctest-store")
    >>> staging = store.begin("abc123")
    >>> with staging.open("part-0.json") as f:
    ...     _ = f.write(b"[1, 2]")
    >>> manifest = store.commit(staging, kind="json", rows=2)
    >>> store.lookup("abc123").files[0].bytes
    6
    >>> store.delete("abc123")
    """

    def __init__(self, url: str, *, cache_dir: str | None = None, writing: bool = True) -> None:
        if not isinstance(url, str) or not url.strip():
            raise StoreError(
                f"artifact store URL must be a non-empty string, got {url!r}; use a folder "
                "path, file://..., gs://bucket/prefix or memory://name"
            )
        #: How the store reaches its files, and where they are (:class:`StoreFiles`).
        self.files = StoreFiles(url.strip())
        self.paths = self.files.paths
        self.fs, self.root, self.url = self.files.fs, self.files.root, self.files.url
        self.is_local = self.files.is_local
        if cache_dir is None:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            cache_dir = os.path.join(base, "helix_tf", digest)
        self.cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
        #: This process's lease on the store while a run holds one (:meth:`open_lease`).
        self.lease: RunLease | None = None
        _init_root(self.files, writing=writing)
        self._entries = Entries(self.files)
        self._committer = Committer(self._entries, lambda: new_token(self.lease))
        self._opener = Opener(self._entries, self.cache_dir)
        #: The leases of the runs on this store, of any machine (:class:`Leases`):
        #: ``run_leases.all()`` judges each live or dead, ``run_leases.pinned()`` names
        #: the fingerprints live runs may still read.
        self.run_leases = Leases(self.files)
        self._collector = Collector(self._entries, self.run_leases)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # ------------------------------------------------------------------ entries

    def lookup(self, fingerprint: str) -> Manifest | None:
        """Return the committed, complete entry for a fingerprint, else ``None``.

        The manifest must parse, have a known format version, and name files that all
        exist with their recorded sizes (content hashes are checked by
        :meth:`open_local`). A corrupt or half-written entry logs a warning and gives
        ``None``; it never raises.

        Parameters
        ----------
        fingerprint : str

        Returns
        -------
        Manifest or None

        Raises
        ------
        StoreError
            Only if the store itself cannot be read (e.g. the bucket is unreachable).
        """
        _check_fingerprint(fingerprint)
        with self.files.errors(f"look up {fingerprint}"):
            self.files.refresh()
            entry = self._entries.inspect(fingerprint)
        if entry.state == "newer":
            logger.warning(
                "artifact %s in %s is not read: %s (a run that needs it computes it, and "
                "stores its result in its place)",
                fingerprint,
                self.url,
                entry.problem,
            )
        if entry.state == "invalid":
            logger.warning(
                # Said on every lookup until it is replaced: a pruned node's entry is not
                # recomputed, so say what removes it.
                "artifact %s in %s is unusable (%s): treated as not stored, recomputed "
                "where a run needs it; `helix-tf store verify --repair` removes it",
                fingerprint,
                self.url,
                entry.problem,
            )
        return entry.manifest

    def begin(self, fingerprint: str) -> Staging:
        """Open a private staging directory for a new artifact of ``fingerprint``.

        Parameters
        ----------
        fingerprint : str

        Returns
        -------
        Staging
            Write files there (``staging.open`` or any writer given ``staging.url``),
            then :meth:`commit` or :meth:`abort`.
        """
        return self._committer.begin(fingerprint)

    def abort(self, staging: Staging) -> None:
        """Discard a staging directory and everything written to it."""
        self._committer.abort(staging)

    def commit(
        self,
        staging: Staging,
        *,
        kind: str,
        rows: int | None = None,
        schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        compute_seconds: float = 0.0,
    ) -> Manifest | None:
        """Publish a staged artifact: hash its files, move them in, write the manifest last.

        The manifest is created exclusively (create-if-absent): of several runs, on any
        machines, committing one fingerprint at once exactly one wins.

        Parameters
        ----------
        staging : Staging
            From :meth:`begin` of this store.
        kind : str
            What the files hold (``"table"``, ``"model"``, ...).
        rows, schema, meta, compute_seconds
            Recorded in the manifest; ``schema`` and ``meta`` must be JSON-serialisable.

        Returns
        -------
        Manifest or None
            The published manifest, or ``None`` if a valid entry for the fingerprint was
            already committed (e.g. by a concurrent run); then this run's data is removed
            and :meth:`lookup` gives the winner's entry.

        Raises
        ------
        StoreError
            If nothing was staged, the metadata is not JSON, or the store cannot be written.
        """
        return self._committer.commit(
            staging,
            kind=kind,
            rows=rows,
            schema=schema,
            meta=meta,
            compute_seconds=compute_seconds,
        )

    def open_local(self, manifest: Manifest, *, verify: bool = True) -> str | None:
        """Return a local directory holding the artifact's files, or ``None``.

        For a local store this is the data directory itself; for a remote one the files
        are downloaded into ``cache_dir/<fingerprint>/<token>/`` (reused while its
        completion marker ``<token>.complete`` exists). With ``verify`` every file's
        sha256 is checked; on a mismatch a warning is logged, the bad entry is removed
        from the store (so a recomputed artifact can replace it) and ``None`` returned.

        Parameters
        ----------
        manifest : Manifest
            From :meth:`lookup` or :meth:`entries` of this store.
        verify : bool
            Check content hashes (default ``True``).

        Returns
        -------
        str or None
            An OS directory path, or ``None`` if the artifact is missing or corrupt.
            Treat it as read-only: for a local store it *is* the stored artifact.
        """
        return self._opener.open_local(manifest, verify=verify)

    def data_url(self, manifest: Manifest) -> str:
        """Where an entry's data files are, in the store itself (not a local copy).

        An OS folder path for a local store, else a URL (``gs://bucket/...``) that Beam
        workers and other readers of the store's file system can open. The folder holds
        the files the manifest lists, at their relative paths; treat it as read-only.

        Parameters
        ----------
        manifest : Manifest
            From :meth:`lookup`, :meth:`commit` or :meth:`entries` of this store.

        Returns
        -------
        str
        """
        _check_fingerprint(manifest.fingerprint)
        return self.paths.to_url(self.paths.data_dir(manifest.fingerprint, manifest.token))

    def delete(self, fingerprint: str) -> None:
        """Remove an entry: its manifest first, then the data directory it names.

        Data of other (uncommitted or orphaned) tokens is left to :meth:`collect`.
        """
        _check_fingerprint(fingerprint)
        with self.files.errors(f"delete {fingerprint}"):
            self.files.refresh()
            if not self._entries.delete(fingerprint):
                return
        logger.info("deleted artifact %s from %s", fingerprint, self.url)

    def entries(self) -> list[Manifest]:
        """Return every valid committed entry, sorted by fingerprint."""
        return self._collector.valid_entries()

    # ------------------------------------------------------------------ housekeeping

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
        return self._collector.verify(repair=repair)

    def collect(self, *, older_than: float = 3600.0, dry_run: bool = False) -> GcReport:
        """Reclaim what killed or failed runs left behind, safely beside live runs.

        Staging directories, data directories that no manifest names, temporary
        manifest files and unusable manifests (with the data they name) are removed
        when the run that wrote them is dead (its lease names a process that is gone,
        see :mod:`helix_tf.reuse.store._leases`), or, when no lease names a writer,
        once they are ``older_than`` seconds old (age is the newest modification
        inside). What a live run owns, on any machine, is never touched. Dead runs'
        leases and their scratch folders (on this host) go too; empty fingerprint
        folders are removed.

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
        return self._collector.collect(older_than=older_than, dry_run=dry_run)

    def collection_due(self, *, every: float = 3600.0) -> bool:
        """Whether a run should collect: a dead run's lease is there, or none ran for ``every`` s.

        Cheap (one listing of the leases, one stat): runs call it at start so that a
        dead run's leftovers go at once and the full scan happens at most hourly.
        """
        return self._collector.collection_due(every=every)

    # ------------------------------------------------------------------ runs

    def open_lease(self, pins: Iterable[str], *, scratch_root: str | None = None) -> RunLease:
        """Register this process as a live run reading ``pins``; staged data carries its id.

        Parameters
        ----------
        pins : iterable of str
            Fingerprints the run may read: other runs' budget eviction skips them.
        scratch_root : str, optional
            Where the run's scratch folder ``helix-run-<lease id>`` goes (the lease names
            it, so whoever finds the run dead removes it).

        Returns
        -------
        RunLease
            Close it when the run ends (it is a context manager).
        """

        def forget(closed: RunLease) -> None:
            if self.lease is closed:
                self.lease = None

        lease = RunLease(self.files, pins, scratch_root, on_close=forget)
        self.lease = lease
        return lease.start()

    def in_flight(self, fingerprints: Iterable[str]) -> dict[str, LeaseInfo]:
        """Which of ``fingerprints`` other live runs, on any machine, are computing.

        Only runs that announced them (:meth:`RunLease.announce`) before this process's
        lease did count; fingerprint → the earliest such run's lease. Empty without a
        lease of this process, or when nobody announced them first.
        """
        if self.lease is None or self.lease.announced is None:
            return {}
        return self.run_leases.in_flight(fingerprints, self.lease)


def drop_if_damaged(store: ArtifactStore, fingerprint: str) -> str | None:
    """Remove the entry of ``fingerprint`` from ``store`` if its files fail their sha256;
    the problem.

    For a run that computed a node instead of loading its stored entry and does not keep
    its own output: a damaged entry it never read would otherwise stay until a later run
    trips on it. ``None`` if the entry is sound or absent. (A function beside
    :class:`ArtifactStore`, which has all the methods its size allows.)
    """
    _check_fingerprint(fingerprint)
    with store.files.errors(f"check {fingerprint}"):
        entry = store._entries.inspect_deep(fingerprint)
        if entry.state != "invalid":
            return None
        store._entries.remove_bad(fingerprint, entry)
    return entry.problem


def unusable_entry(store: ArtifactStore, fingerprint: str) -> str | None:
    """Why the entry of ``fingerprint`` in ``store`` is unusable (a manifest that does not
    parse, a data file missing or of the wrong size), without removing it; ``None`` when
    it is sound (by sizes: :meth:`ArtifactStore.open_local` checks hashes) or absent."""
    _check_fingerprint(fingerprint)
    with store.files.errors(f"check {fingerprint}"):
        entry = store._entries.inspect(fingerprint)
    return entry.problem if entry.state == "invalid" else None


def _init_root(files: StoreFiles, *, writing: bool = True) -> None:
    """Create the store's folders and marker, or check the marker of an existing store
    (``writing=False``: an existing local store need not be writable)."""
    marker = files.paths.join(_MARKER)
    try:
        if files.is_local and (writing or not os.path.isfile(marker)):
            for folder in (_ARTIFACTS, _STAGING, _RUNS):  # a file in the way is named
                os.makedirs(files.paths.join(folder), exist_ok=True)
            if not os.access(files.root, os.W_OK):
                raise PermissionError(errno.EACCES, "not writable", files.root)
        try:
            text = files.fs.cat_file(marker)
        except FileNotFoundError:
            body = json.dumps({"format_version": FORMAT_VERSION, "kind": "helix_tf store"})
            files.write_bytes(marker, (body + "\n").encode())
            return
    except Exception as exc:
        raise StoreError(files.explain(exc, "cannot be created or written")) from exc
    try:
        version = json.loads(text)["format_version"]
    except (ValueError, TypeError, KeyError) as exc:
        body = json.dumps({"format_version": FORMAT_VERSION, "kind": "helix_tf store"})
        raise StoreError(
            f"artifact store {files.url}: {marker} is not a helix_tf store marker "
            f"({type(exc).__name__}: {exc}); point --store at an empty or helix_tf-created "
            f"location, or, if this is a helix_tf store whose marker was damaged, write "
            f"{body} into it (its entries are checked one by one when loaded)"
        ) from exc
    if version not in _SUPPORTED_FORMATS:
        newer = isinstance(version, int) and version > max(_SUPPORTED_FORMATS)
        why = (
            "a newer helix_tf wrote it: upgrade helix_tf"
            if newer
            else "it was not written by a helix_tf this one can read: use the helix_tf "
            "that wrote it"
        )
        raise StoreError(
            f"artifact store {files.url} has format_version {version!r} but this "
            f"helix_tf reads {sorted(_SUPPORTED_FORMATS)}; {why}, or use another --store "
            "(nothing in it was changed)"
        )
