"""The artifact store: materialized node results keyed by fingerprint, over fsspec.

A store is a URL: a local folder (or ``file://...``), ``gs://bucket/prefix`` (through
gcsfs, imported only when such a URL is used) or ``memory://name`` (tests). Layout::

    <root>/helix_store.json                      marker: format version of the store
    <root>/staging/<fingerprint>.<token>/...     files being written (never visible)
    <root>/artifacts/<fingerprint>/<token>/...   committed data files
    <root>/artifacts/<fingerprint>/MANIFEST.json names <token>, sizes and sha256s

The manifest is written last, atomically and exclusively (create-if-absent), so a run
killed at any moment never leaves an entry that looks complete, and of two runs that
commit the same fingerprint at once exactly one wins; the loser removes its data.

Exclusive publication per backend:

* local: the manifest is written to a temporary file, fsync'ed, then ``os.link``-ed to
  ``MANIFEST.json`` (fails if it exists). On a file system without hard links it is
  created with ``O_CREAT | O_EXCL`` (exclusive, but a reader may briefly see a partly
  written manifest, which it treats as corrupt and skips).
* gs://: ``open(..., "xb")``, which gcsfs sends as an ``ifGenerationMatch=0`` precondition
  (HTTP 412 → ``FileExistsError``). The GCS *emulator* ignores that precondition; so the
  manifest is always read back after publication, and a writer whose manifest was
  overwritten withdraws. Residual race on a backend without the precondition: two
  writers whose write and read-back interleave can both believe they won; the manifest
  then names the last writer's data and the other's data dir is an orphan that
  :meth:`ArtifactStore.cleanup` removes. A manifest never points at missing data.
* memory:// and other fsspec backends: ``open(..., "xb")`` (falling back to
  check-then-write plus the same read-back where ``"xb"`` is unsupported).

Checksums are sha256 of each file's bytes. For a remote store, :meth:`commit` reads the
staged files back to compute them (files may have been written by remote workers that
never passed through this process).

Only JSON and the caller's own open formats are written; nothing is ever pickled.
Never imports TensorFlow, Keras or Apache Beam.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import posixpath
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from helix_tf.errors import StoreError

__all__ = ["FORMAT_VERSION", "ArtifactStore", "FileEntry", "Manifest", "Staging"]

logger = logging.getLogger(__name__)

#: Version of the manifest format written by this module; readers skip unknown versions.
FORMAT_VERSION = 1
_SUPPORTED_FORMATS = frozenset({1})

_MANIFEST = "MANIFEST.json"
_MARKER = "helix_store.json"
_ARTIFACTS = "artifacts"
_STAGING = "staging"
_TMP_PREFIX = ".MANIFEST.json."
_CHUNK = 1 << 20
_FINGERPRINT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")
_TOKEN_RE = re.compile(r"[0-9a-f]{32}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_PUBLISH_ATTEMPTS = 3


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One file of an artifact.

    Attributes
    ----------
    path : str
        POSIX path relative to the artifact's data directory.
    bytes : int
        Size in bytes.
    sha256 : str
        Hex sha256 of the file's bytes.
    """

    path: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """The record of a committed artifact, written last as ``MANIFEST.json``.

    Attributes
    ----------
    fingerprint : str
        The node fingerprint the artifact belongs to.
    kind : str
        What the files hold (e.g. ``"table"``, ``"model"``), chosen by the caller.
    token : str
        Name of the data directory ``artifacts/<fingerprint>/<token>/``.
    files : tuple of FileEntry
        Every data file, sorted by path.
    bytes : int
        Total size of ``files``.
    rows : int or None
        Row count for tables.
    schema : dict or None
        JSON description of the data's schema.
    meta : dict
        Free-form JSON metadata.
    compute_seconds : float
        How long computing the artifact took (feeds the cost model).
    created : float
        POSIX time of the commit.
    format_version : int
        Manifest format version.
    """

    fingerprint: str
    kind: str
    token: str
    files: tuple[FileEntry, ...]
    bytes: int
    rows: int | None
    schema: dict[str, Any] | None
    meta: dict[str, Any]
    compute_seconds: float
    created: float
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Serialise deterministically (sorted keys, files sorted by path).

        Returns
        -------
        str
            The JSON text, ending with a newline.
        """
        data = {
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "token": self.token,
            "files": [f.to_dict() for f in sorted(self.files, key=lambda f: f.path)],
            "bytes": self.bytes,
            "rows": self.rows,
            "schema": self.schema,
            "meta": self.meta,
            "compute_seconds": self.compute_seconds,
            "created": self.created,
            "format_version": self.format_version,
        }
        return json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate a manifest.

        Parameters
        ----------
        text : str or bytes
            JSON produced by :meth:`to_json`.

        Returns
        -------
        Manifest

        Raises
        ------
        ValueError
            If the text is not a well-formed manifest (the message says which field).
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"manifest must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if not isinstance(version, int) or version not in _SUPPORTED_FORMATS:
            raise ValueError(
                f"unknown manifest format_version {version!r}; this helix_tf reads "
                f"{sorted(_SUPPORTED_FORMATS)} (upgrade helix_tf to read newer stores)"
            )
        fingerprint = _field(data, "fingerprint", str)
        token = _field(data, "token", str)
        if not _TOKEN_RE.fullmatch(token):
            raise ValueError(f"manifest token {token!r} is not 32 hex digits")
        raw_files = _field(data, "files", list)
        files = []
        for i, raw in enumerate(raw_files):
            if not isinstance(raw, dict):
                raise ValueError(f"manifest files[{i}] must be an object")
            path = _field(raw, "path", str)
            _check_relpath(path)
            size = _field(raw, "bytes", int)
            sha = _field(raw, "sha256", str)
            if size < 0 or not _SHA_RE.fullmatch(sha):
                raise ValueError(f"manifest files[{i}] has a bad size or sha256")
            files.append(FileEntry(path=path, bytes=size, sha256=sha))
        total = _field(data, "bytes", int)
        if total != sum(f.bytes for f in files):
            raise ValueError(f"manifest bytes={total} differs from the sum of its file sizes")
        rows = data.get("rows")
        if rows is not None and not isinstance(rows, int):
            raise ValueError(f"manifest rows must be an integer or null, got {rows!r}")
        schema = data.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise ValueError("manifest schema must be an object or null")
        return cls(
            fingerprint=fingerprint,
            kind=_field(data, "kind", str),
            token=token,
            files=tuple(sorted(files, key=lambda f: f.path)),
            bytes=total,
            rows=rows,
            schema=schema,
            meta=_field(data, "meta", dict),
            compute_seconds=float(_field(data, "compute_seconds", (int, float))),
            created=float(_field(data, "created", (int, float))),
            format_version=version,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Staging:
    """A private directory where one run writes an artifact before :meth:`ArtifactStore.commit`.

    Attributes
    ----------
    fingerprint : str
        The fingerprint being materialized.
    token : str
        Unique id of this attempt (names the data directory after commit).
    url : str
        Directory to write into: an OS path for a local store, else a URL (``gs://...``).
    path : str
        The same directory as a path within ``fs``.
    fs : fsspec.AbstractFileSystem
        The store's file system.
    """

    fingerprint: str
    token: str
    url: str
    path: str
    fs: fsspec.AbstractFileSystem = field(repr=False, compare=False)

    @property
    def local_path(self) -> str | None:
        """The OS path of the directory for a local store, ``None`` for a remote one."""
        return self.path if isinstance(self.fs, LocalFileSystem) else None

    def open(self, relpath: str, mode: str = "wb") -> IO[Any]:
        """Open a file inside the staging directory through the store's file system.

        Parameters
        ----------
        relpath : str
            POSIX path relative to the staging directory (sub-directories are created).
        mode : str
            File mode, ``"wb"`` by default.

        Returns
        -------
        file object
        """
        _check_relpath(relpath)
        path = posixpath.join(self.path, relpath)
        if self.local_path is not None and any(c in mode for c in "wax+"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.fs.open(path, mode)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    """What is at ``artifacts/<fp>/MANIFEST.json``: state is missing, invalid or valid."""

    state: str
    parsed: Manifest | None = None  # the manifest if it parsed, valid or not
    problem: str = ""
    raw: bytes = b""  # the manifest's bytes as read

    @property
    def token(self) -> str | None:
        return self.parsed.token if self.parsed is not None else None

    @property
    def manifest(self) -> Manifest | None:
        return self.parsed if self.state == "valid" else None


# --------------------------------------------------------------------------- store


class ArtifactStore:
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

    # ------------------------------------------------------------------ paths

    def _join(self, *parts: str) -> str:
        if self.is_local:
            return os.path.join(self.root, *parts)
        return posixpath.join(self.root, *parts)

    def _fp_dir(self, fingerprint: str) -> str:
        return self._join(_ARTIFACTS, fingerprint)

    def _manifest_path(self, fingerprint: str) -> str:
        return self._join(_ARTIFACTS, fingerprint, _MANIFEST)

    def _data_dir(self, fingerprint: str, token: str) -> str:
        return self._join(_ARTIFACTS, fingerprint, token)

    def _to_url(self, path: str) -> str:
        return path if self.is_local else self.fs.unstrip_protocol(path)

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

    def _explain(self, exc: BaseException, what: str) -> str:
        """A StoreError message naming the URL, the cause and a fix."""
        fix = "check the path and your permissions, or pass another --store"
        if isinstance(exc, PermissionError) or "403" in str(exc) or "401" in str(exc):
            fix = (
                "grant write access to it (gs://: roles/storage.objectAdmin), "
                "or pass another --store"
            )
        elif isinstance(exc, NotADirectoryError | FileExistsError) and self.is_local:
            fix = "a file is in the way: the store must be a folder; pass another --store"
        elif _is_gcs(self.fs):
            bucket = self.root.split("/", 1)[0]
            with contextlib.suppress(Exception):
                if not self.fs.exists(bucket):
                    fix = f"bucket {bucket!r} does not exist: create it with " + (
                        f"`gcloud storage buckets create gs://{bucket}`, or pass another --store"
                    )
        return f"artifact store {self.url} {what}: {type(exc).__name__}: {exc}; {fix}"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn I/O failures into StoreError naming the store and the action."""
        try:
            yield
        except (StoreError, ValueError, TypeError):
            raise
        except OSError as exc:
            raise StoreError(self._explain(exc, f"failed to {action}")) from exc
        except Exception as exc:
            if self.is_local:
                raise
            raise StoreError(self._explain(exc, f"failed to {action}")) from exc

    def _refresh(self) -> None:
        """Drop cached listings of remote stores so other writers' files are visible."""
        if not self.is_local:
            self.fs.invalidate_cache()

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

    def _list_files(self, directory: str) -> dict[str, int]:
        """Map relative POSIX path → size of every file under ``directory``."""
        out: dict[str, int] = {}
        if self.is_local:
            for dirpath, _dirs, names in os.walk(directory):
                for name in names:
                    full = os.path.join(dirpath, name)
                    with contextlib.suppress(FileNotFoundError):
                        rel = os.path.relpath(full, directory).replace(os.sep, "/")
                        out[rel] = os.stat(full).st_size
            return out
        try:
            found = self.fs.find(directory, detail=True)
        except FileNotFoundError:
            return out
        prefix = directory.rstrip("/") + "/"
        for path, info in found.items():
            if info.get("type") == "file" and path.startswith(prefix):
                out[path[len(prefix) :]] = int(info.get("size") or 0)
        return out

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
        token = secrets.token_hex(16)
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
            existing = self._inspect(fingerprint)
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
                with contextlib.suppress(Exception):
                    self._rm_tree(data_dir)
                raise
            try:
                won = self._publish(fingerprint, token, text)
            except BaseException:
                self._withdraw_if_unpublished(fingerprint, token)
                raise
            if not won:
                logger.info(
                    "artifact %s was committed concurrently in %s; discarding ours",
                    fingerprint,
                    self.url,
                )
                self._rm_tree(data_dir)
                return None
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

    def _hash_file(self, path: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

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
        # ~17 s per file); a server-side copy then delete is portable and as cheap.
        self.fs.copy(
            [posixpath.join(staging.path, r) for r in rels],
            [posixpath.join(data_dir, r) for r in rels],
        )
        self._rm_tree(staging.path)

    def _publish(self, fingerprint: str, token: str, text: bytes) -> bool:
        """Create MANIFEST.json exclusively; replace an invalid one. True if ours won."""
        path = self._manifest_path(fingerprint)
        for _attempt in range(_PUBLISH_ATTEMPTS):
            try:
                self._create_exclusive(path, text, token)
            except FileExistsError:
                entry = self._inspect(fingerprint)
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

    def _create_exclusive(self, path: str, data: bytes, token: str) -> None:
        """Write ``path`` only if absent, atomically where the backend allows."""
        if self.is_local:
            tmp = os.path.join(os.path.dirname(path), f"{_TMP_PREFIX}{token}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            _fsync_dir(os.path.dirname(path))
            return
        try:
            with self.fs.open(path, "xb") as f:
                f.write(data)
        except (ValueError, NotImplementedError):
            # Backend without exclusive mode: best effort, read-back decides the winner.
            if self.fs.exists(path):
                raise FileExistsError(path) from None
            self._write_bytes(path, data)

    def _write_bytes(self, path: str, data: bytes) -> None:
        if self.is_local:
            _write_local(path, data)
        else:
            with self.fs.open(path, "wb") as f:
                f.write(data)

    def _withdraw_if_unpublished(self, fingerprint: str, token: str) -> None:
        """After a failed publish: remove our data unless a manifest names it."""
        with contextlib.suppress(Exception):
            if self._inspect(fingerprint, check_data=False).token != token:
                self._rm_tree(self._data_dir(fingerprint, token))

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

    def _cat_many(self, paths: list[str]) -> dict[str, Any]:
        if not paths:
            return {}
        if self.is_local:
            out: dict[str, Any] = {}
            for p in paths:
                try:
                    with open(p, "rb") as f:
                        out[p] = f.read()
                except OSError as exc:
                    out[p] = exc
            return out
        result = self.fs.cat(paths, on_error="return")
        return result if isinstance(result, dict) else {paths[0]: result}

    def _rm_tree(self, path: str) -> None:
        if self.is_local:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, onerror=_ignore_missing)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    def _rm_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.is_local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)


# --------------------------------------------------------------------------- helpers


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


def _compare_sizes(manifest: Manifest, listing: Mapping[str, int]) -> str | None:
    """None if every manifest file is in ``listing`` with its size, else the problem."""
    for entry in manifest.files:
        size = listing.get(entry.path)
        if size is None:
            return f"data file {entry.path} is missing"
        if size != entry.bytes:
            return f"data file {entry.path} has {size} bytes, manifest says {entry.bytes}"
    return None


def _verify_dir(directory: str, manifest: Manifest, *, hashes: bool) -> str | None:
    """Check a local directory against a manifest; None if it matches."""
    for entry in manifest.files:
        path = os.path.join(directory, *entry.path.split("/"))
        try:
            size = os.path.getsize(path)
        except OSError:
            return f"data file {entry.path} is missing"
        if size != entry.bytes:
            return f"data file {entry.path} has {size} bytes, manifest says {entry.bytes}"
        if hashes:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != entry.sha256:
                return f"data file {entry.path} has sha256 {digest.hexdigest()[:12]}…, " + (
                    f"manifest says {entry.sha256[:12]}…"
                )
    return None


def _make_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """Return (file system, root path within it, normalised URL) for a store URL."""
    if "://" not in url and "::" not in url:
        root = os.path.abspath(os.path.expanduser(url))
        return LocalFileSystem(), root, root
    scheme = url.split("://", 1)[0].lower()
    try:
        if scheme in ("gs", "gcs") and os.environ.get("STORAGE_EMULATOR_HOST"):
            fs, root = _emulator_fs(url)
        else:
            fs, root = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as exc:
        raise StoreError(
            f"unsupported artifact store URL {url!r} ({exc}); use a folder path, "
            "file://..., gs://bucket/prefix or memory://name"
        ) from exc
    if isinstance(fs, LocalFileSystem):
        root = os.path.abspath(root)
        return fs, root, root
    root = root.rstrip("/")
    if scheme in ("gs", "gcs") and not root:
        raise StoreError(
            f"artifact store URL {url!r} names no bucket; use gs://bucket or gs://bucket/prefix"
        )
    return fs, root, url.rstrip("/")


def _is_gcs(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return bool({"gs", "gcs"} & set(protocols))


def _emulator_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """A gcsfs file system for the GCS emulator named by ``STORAGE_EMULATOR_HOST``.

    gcsfs must be imported after ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` and
    ``NO_GCE_CHECK=true``, or it probes zonal-bucket features and the GCE metadata server
    and every write stalls ~90 s; the core class is used even if gcsfs was imported
    earlier with its experimental subclass. Credentials are anonymous.
    """
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    os.environ.setdefault("NO_GCE_CHECK", "true")
    from gcsfs.core import GCSFileSystem

    fs = GCSFileSystem(token="anon")
    return fs, fs._strip_protocol(url)


def _check_fingerprint(fingerprint: str) -> None:
    if not isinstance(fingerprint, str) or not _FINGERPRINT_RE.fullmatch(fingerprint):
        raise ValueError(
            f"fingerprint must be 1-200 characters of [A-Za-z0-9_-] starting with a letter "
            f"or digit, got {fingerprint!r}"
        )


def _check_relpath(relpath: str) -> None:
    parts = relpath.split("/")
    if (
        not relpath
        or relpath.startswith("/")
        or "\\" in relpath
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(
            f"artifact file path must be relative POSIX without '.', '..' or empty parts, "
            f"got {relpath!r}"
        )


def _field(data: Mapping[str, Any], name: str, types: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, types) or isinstance(value, bool):
        raise ValueError(f"manifest field {name!r} is missing or has the wrong type: {value!r}")
    return value


def _mtime(info: Mapping[str, Any]) -> float:
    """Modification time (POSIX seconds) from an fsspec info dict, 0.0 if unknown."""
    for key in ("mtime", "updated", "created", "LastModified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_local(path: str, data: bytes) -> None:
    """Write a small local file atomically (temp file + rename)."""
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _discard_local(target: str, marker: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)
    shutil.rmtree(target, ignore_errors=True)


def _ignore_missing(func: Any, path: str, exc_info: Any) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
