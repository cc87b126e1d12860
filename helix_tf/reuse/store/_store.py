"""The artifact store: look up, stage and commit, open and delete artifacts by fingerprint."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import posixpath
import secrets
import shutil
import time
from collections.abc import Mapping
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from helix_tf.errors import StoreError
from helix_tf.reuse.store._cleanup import _Cleanup
from helix_tf.reuse.store._fs import (
    _ARTIFACTS,
    _MANIFEST,
    _MARKER,
    _STAGING,
    _check_fingerprint,
    _discard_local,
    _make_fs,
    _write_local,
)
from helix_tf.reuse.store._manifest import (
    _SUPPORTED_FORMATS,
    FORMAT_VERSION,
    FileEntry,
    Manifest,
    Staging,
    _compare_sizes,
    _Entry,
    _verify_dir,
)

logger = logging.getLogger(__name__)

_PUBLISH_ATTEMPTS = 3


class ArtifactStore(_Cleanup):
    """Materialized artifacts keyed by fingerprint, on a local folder, GCS or memory.

    Parameters
    ----------
    url : str
        A local folder path, ``file://...``, ``gs://bucket/prefix`` or ``memory://name``.
    cache_dir : str, optional
        Local download cache for remote stores; default
        ``~/.cache/helix_tf/<hash of url>`` (``$XDG_CACHE_HOME`` is honoured).

    Raises
    ------
    StoreError
        If the URL's scheme is unsupported or the store cannot be created or written.

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

    def __init__(self, url: str, *, cache_dir: str | None = None) -> None:
        if not isinstance(url, str) or not url.strip():
            raise StoreError(
                f"artifact store URL must be a non-empty string, got {url!r}; use a folder "
                "path, file://..., gs://bucket/prefix or memory://name"
            )
        self.fs, self.root, self.url = _make_fs(url.strip())
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if cache_dir is None:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
            digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
            cache_dir = os.path.join(base, "helix_tf", digest)
        self.cache_dir = os.path.abspath(os.path.expanduser(cache_dir))
        self._init_root()

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # ------------------------------------------------------------------ setup

    def _init_root(self) -> None:
        marker = self._join(_MARKER)
        try:
            if self.is_local:
                os.makedirs(self._join(_ARTIFACTS), exist_ok=True)
                os.makedirs(self._join(_STAGING), exist_ok=True)
                if not os.access(self.root, os.W_OK):
                    raise PermissionError(errno.EACCES, "not writable", self.root)
            try:
                text = self.fs.cat_file(marker)
            except FileNotFoundError:
                body = json.dumps({"format_version": FORMAT_VERSION, "kind": "helix_tf store"})
                self._write_bytes(marker, (body + "\n").encode())
                return
        except Exception as exc:
            raise StoreError(self._explain(exc, "cannot be created or written")) from exc
        try:
            version = json.loads(text)["format_version"]
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreError(
                f"artifact store {self.url}: {marker} is not a helix_tf store marker "
                f"({type(exc).__name__}: {exc}); point --store at an empty or helix_tf-created "
                "location"
            ) from exc
        if version not in _SUPPORTED_FORMATS:
            raise StoreError(
                f"artifact store {self.url} has format_version {version!r} but this "
                f"helix_tf reads {sorted(_SUPPORTED_FORMATS)}; upgrade helix_tf or use "
                "another --store"
            )

    # ------------------------------------------------------------------ lookup

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
        with self._errors(f"look up {fingerprint}"):
            self._refresh()
            entry = self._inspect(fingerprint)
        if entry.state == "invalid":
            logger.warning(
                "artifact %s in %s is unusable and will be recomputed: %s",
                fingerprint,
                self.url,
                entry.problem,
            )
        return entry.manifest

    def _inspect(
        self,
        fingerprint: str,
        *,
        check_data: bool = True,
        sizes_by_token: Mapping[str, Mapping[str, int]] | None = None,
    ) -> _Entry:
        """Read and validate the entry of ``fingerprint`` (no warning, no cache refresh)."""
        try:
            text = self.fs.cat_file(self._manifest_path(fingerprint))
        except FileNotFoundError:
            return _Entry(state="missing")
        return self._validate(
            fingerprint, text, check_data=check_data, sizes_by_token=sizes_by_token
        )

    def _validate(
        self,
        fingerprint: str,
        text: bytes,
        *,
        check_data: bool = True,
        sizes_by_token: Mapping[str, Mapping[str, int]] | None = None,
    ) -> _Entry:
        """Parse a manifest and (with ``check_data``) compare it with the data's sizes.

        ``sizes_by_token`` is a listing already made (token → relative path → size);
        without it the data directory is listed.
        """
        try:
            manifest = Manifest.from_json(text)
        except ValueError as exc:
            return _Entry(state="invalid", problem=f"bad {_MANIFEST}: {exc}", raw=text)
        if manifest.fingerprint != fingerprint:
            return _Entry(
                state="invalid",
                parsed=manifest,
                problem=f"{_MANIFEST} is for fingerprint {manifest.fingerprint!r}",
                raw=text,
            )
        if check_data:
            if sizes_by_token is not None:
                sizes = sizes_by_token.get(manifest.token, {})
            else:
                sizes = self._list_files(self._data_dir(fingerprint, manifest.token))
            problem = _compare_sizes(manifest, sizes)
            if problem:
                return _Entry(state="invalid", parsed=manifest, problem=problem, raw=text)
        return _Entry(state="valid", parsed=manifest, raw=text)

    # ------------------------------------------------------------------ write

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
        _check_fingerprint(fingerprint)
        token = self._new_token()
        path = self._join(_STAGING, f"{fingerprint}.{token}")
        with self._errors(f"create a staging directory for {fingerprint}"):
            if self.is_local:
                os.makedirs(path)
        return Staging(
            fingerprint=fingerprint, token=token, url=self._to_url(path), path=path, fs=self.fs
        )

    def abort(self, staging: Staging) -> None:
        """Discard a staging directory and everything written to it."""
        self._check_staging(staging)
        with self._errors(f"remove staging {staging.url}"):
            self._rm_tree(staging.path)

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
            already committed (e.g. by a concurrent run); then this run's data is removed.

        Raises
        ------
        StoreError
            If nothing was staged, the metadata is not JSON, or the store cannot be written.
        """
        self._check_staging(staging)
        fingerprint, token = staging.fingerprint, staging.token
        with self._errors(f"commit {fingerprint}"):
            self._refresh()
            files = self._hash_staged(staging)
            if not files:
                raise StoreError(
                    f"nothing was written to staging {staging.url} for {fingerprint}; write "
                    "the artifact's files there before commit (was it cleaned up meanwhile?)"
                )
            manifest = Manifest(
                fingerprint=fingerprint,
                kind=kind,
                token=token,
                files=files,
                bytes=sum(f.bytes for f in files),
                rows=rows,
                schema=schema,
                meta=dict(meta or {}),
                compute_seconds=float(compute_seconds),
                created=time.time(),
            )
            try:
                text = manifest.to_json().encode()
            except (TypeError, ValueError) as exc:
                self._rm_tree(staging.path)
                raise StoreError(
                    f"cannot commit {fingerprint} to {self.url}: schema/meta must be "
                    f"JSON-serialisable (str keys, finite numbers), but {exc}"
                ) from exc
            existing = self._inspect_deep(fingerprint)
            if existing.state == "invalid":
                self._remove_bad(fingerprint, existing, token)
            elif existing.state == "valid":
                logger.info(
                    "artifact %s already committed in %s; discarding ours", fingerprint, self.url
                )
                self._rm_tree(staging.path)
                return None
            data_dir = self._data_dir(fingerprint, token)
            try:
                self._move_in(staging, data_dir)
            except BaseException:
                self._move_back(staging, data_dir)
                raise
            try:
                won = self._publish(fingerprint, token, text)
            except BaseException:
                # The caller may still read the staged files: give them back.
                with contextlib.suppress(Exception):
                    if self._inspect(fingerprint, check_data=False).token != token:
                        self._move_back(staging, data_dir)
                raise
            if not won:
                logger.info(
                    "artifact %s was committed concurrently in %s; discarding ours",
                    fingerprint,
                    self.url,
                )
                self._rm_tree(data_dir)
                if not self.is_local:
                    self._rm_tree(staging.path)
                return None
            if not self.is_local:
                with contextlib.suppress(Exception):
                    self._rm_tree(staging.path)
            # A concurrent cleanup()/delete() may have removed our data in the window
            # between the move and the manifest: never leave a manifest pointing at nothing.
            problem = _compare_sizes(manifest, self._list_files(data_dir))
            if problem:
                logger.warning(
                    "artifact %s lost its data while committing (%s); withdrawn",
                    fingerprint,
                    problem,
                )
                self._remove_manifest_if(fingerprint, token)
                return None
        logger.info(
            "committed artifact %s to %s: %d files, %d bytes",
            fingerprint,
            self.url,
            len(files),
            manifest.bytes,
        )
        return manifest

    def _check_staging(self, staging: Staging) -> None:
        expected = self._join(_STAGING, f"{staging.fingerprint}.{staging.token}")
        if staging.path != expected:
            raise StoreError(
                f"staging {staging.url} does not belong to artifact store {self.url}; "
                "use the Staging returned by this store's begin()"
            )

    def _hash_staged(self, staging: Staging) -> tuple[FileEntry, ...]:
        entries = []
        for rel in sorted(self._list_files(staging.path)):
            path = self._join(_STAGING, f"{staging.fingerprint}.{staging.token}", rel)
            size, sha = self._hash_file(path)
            entries.append(FileEntry(path=rel, bytes=size, sha256=sha))
        return tuple(entries)

    def _move_in(self, staging: Staging, data_dir: str) -> None:
        """Move the staged files to ``data_dir`` (local: one rename; remote: copy + delete)."""
        if self.is_local:
            os.makedirs(os.path.dirname(data_dir), exist_ok=True)
            os.rename(staging.path, data_dir)
            # Fresh mtime: cleanup() measures age by it, and this dir has no manifest yet.
            os.utime(data_dir)
            return
        rels = sorted(self._list_files(staging.path))
        # gcsfs's mv tries the moveTo API first (unsupported by the emulator, retried for
        # ~17 s per file); a server-side copy is portable and as cheap. The staged copy
        # is removed once the manifest is published (commit), so a failure keeps it.
        self.fs.copy(
            [posixpath.join(staging.path, r) for r in rels],
            [posixpath.join(data_dir, r) for r in rels],
        )

    def _move_back(self, staging: Staging, data_dir: str) -> None:
        """Undo :meth:`_move_in` after a failed commit: the staged files are the caller's."""
        with contextlib.suppress(Exception):
            if self.is_local and os.path.isdir(data_dir) and not os.path.exists(staging.path):
                os.rename(data_dir, staging.path)
            else:
                self._rm_tree(data_dir)

    def _publish(self, fingerprint: str, token: str, text: bytes) -> bool:
        """Create MANIFEST.json exclusively; replace an invalid one. True if ours won."""
        path = self._manifest_path(fingerprint)
        for _attempt in range(_PUBLISH_ATTEMPTS):
            try:
                self._create_exclusive(path, text, token)
            except FileExistsError:
                entry = self._inspect_deep(fingerprint)
                if entry.state == "valid":
                    return False
                if entry.state == "invalid":
                    self._remove_bad(fingerprint, entry, token)
                continue
            # Read back: guards backends that ignore the create-if-absent precondition.
            current = self._inspect(fingerprint, check_data=False)
            return current.token == token
        raise StoreError(
            f"could not publish {fingerprint} to {self.url} after {_PUBLISH_ATTEMPTS} "
            "attempts: its manifest keeps changing under concurrent writers; retry later"
        )

    def _inspect_deep(self, fingerprint: str) -> _Entry:
        """:meth:`_inspect`, and for a valid entry also every file's sha256."""
        entry = self._inspect(fingerprint)
        if entry.state != "valid" or entry.parsed is None:
            return entry
        problem = self._content_problem(entry.parsed)
        if problem is None:
            return entry
        return dataclasses.replace(entry, state="invalid", problem=problem)

    def _content_problem(self, manifest: Manifest) -> str | None:
        """None if every file of a committed entry has its recorded size and sha256."""
        data_dir = self._data_dir(manifest.fingerprint, manifest.token)
        if self.is_local:
            return _verify_dir(data_dir, manifest, hashes=True)
        for f in manifest.files:
            try:
                size, sha = self._hash_file(posixpath.join(data_dir, f.path))
            except FileNotFoundError:
                return f"data file {f.path} is missing"
            if size != f.bytes or sha != f.sha256:
                return f"data file {f.path} does not match its recorded sha256"
        return None

    def _remove_bad(self, fingerprint: str, entry: _Entry, token: str | None = None) -> bool:
        """Remove an unusable manifest and the data it names (unless that is ``token``).

        The manifest is re-read first and left alone if it changed since ``entry`` was
        judged (a concurrent writer replaced it), which narrows the window in which a
        good entry could be removed. Returns whether it was removed.
        """
        path = self._manifest_path(fingerprint)
        try:
            if self.fs.cat_file(path) != entry.raw:
                return False
        except FileNotFoundError:
            return False
        logger.warning(
            "removing unusable artifact entry %s from %s: %s", fingerprint, self.url, entry.problem
        )
        self._rm_file(path)
        if entry.token and entry.token != token:
            self._rm_tree(self._data_dir(fingerprint, entry.token))
        return True

    def _remove_manifest_if(self, fingerprint: str, token: str) -> None:
        """Remove the manifest only if it still names ``token`` (narrows delete races)."""
        if self._inspect(fingerprint, check_data=False).token == token:
            self._rm_file(self._manifest_path(fingerprint))

    # ------------------------------------------------------------------ read

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
        _check_fingerprint(manifest.fingerprint)
        with self._errors(f"open {manifest.fingerprint}"):
            if self.is_local:
                data_dir = self._data_dir(manifest.fingerprint, manifest.token)
                problem = _verify_dir(data_dir, manifest, hashes=verify)
                if problem is None:
                    return data_dir
                self._reject(manifest, problem)
                return None
            return self._open_remote(manifest, verify=verify)

    def _open_remote(self, manifest: Manifest, *, verify: bool) -> str | None:
        parent = os.path.join(self.cache_dir, manifest.fingerprint)
        target = os.path.join(parent, manifest.token)
        marker = target + ".complete"
        if os.path.isdir(target):
            # A target dir is only ever created by renaming a verified download; without
            # its marker (a crash or a concurrent download in between) hashes decide.
            marked = os.path.exists(marker)
            problem = _verify_dir(target, manifest, hashes=verify or not marked)
            if problem is None:
                if not marked:
                    _write_local(marker, manifest.to_json().encode())
                return target
            logger.warning(
                "cached copy of %s is damaged (%s); downloading again",
                manifest.fingerprint,
                problem,
            )
            _discard_local(target, marker)
        os.makedirs(parent, exist_ok=True)
        partial = os.path.join(parent, f".{manifest.token}.{secrets.token_hex(4)}.partial")
        try:
            data_dir = self._data_dir(manifest.fingerprint, manifest.token)
            try:
                self.fs.get(
                    [posixpath.join(data_dir, f.path) for f in manifest.files],
                    [os.path.join(partial, *f.path.split("/")) for f in manifest.files],
                )
            except FileNotFoundError as exc:
                self._reject(manifest, f"file missing in the store: {exc}")
                return None
            os.makedirs(partial, exist_ok=True)
            problem = _verify_dir(partial, manifest, hashes=verify)
            if problem is not None:
                self._reject(manifest, problem)
                return None
            try:
                os.rename(partial, target)
            except OSError:
                if not os.path.isdir(target):  # else: a concurrent download won; use it
                    raise
            _write_local(marker, manifest.to_json().encode())
            return target
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _reject(self, manifest: Manifest, problem: str) -> None:
        """Log a corrupt entry and remove it from the store so it can be recomputed."""
        logger.warning(
            "artifact %s in %s failed verification and will be recomputed: %s",
            manifest.fingerprint,
            self.url,
            problem,
        )
        with contextlib.suppress(Exception):
            if self._inspect(manifest.fingerprint, check_data=False).token == manifest.token:
                self.delete(manifest.fingerprint)
        if not self.is_local:
            target = os.path.join(self.cache_dir, manifest.fingerprint, manifest.token)
            _discard_local(target, target + ".complete")

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
        return self._to_url(self._data_dir(manifest.fingerprint, manifest.token))

    # ------------------------------------------------------------------ manage

    def delete(self, fingerprint: str) -> None:
        """Remove an entry: its manifest first, then the data directory it names.

        Data of other (uncommitted or orphaned) tokens is left to :meth:`cleanup`.
        """
        _check_fingerprint(fingerprint)
        with self._errors(f"delete {fingerprint}"):
            self._refresh()
            entry = self._inspect(fingerprint, check_data=False)
            if entry.state == "missing":
                return
            self._rm_file(self._manifest_path(fingerprint))
            if entry.token:
                self._rm_tree(self._data_dir(fingerprint, entry.token))
            if self.is_local:
                with contextlib.suppress(OSError):
                    os.rmdir(self._fp_dir(fingerprint))
        logger.info("deleted artifact %s from %s", fingerprint, self.url)
