"""What a store records: manifests and their files, staging directories, entries."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from helix_tf.reuse.store._fs import _CHUNK

#: Version of the manifest format written by this module; readers skip unknown versions
#: (an entry of a newer format is not read, and ``verify``/``gc`` never remove it).
FORMAT_VERSION = 1
_SUPPORTED_FORMATS = frozenset({1})
_TOKEN_RE = re.compile(r"[0-9a-f]{32}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")


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
    def from_json(cls, text: str | builtins.bytes) -> Manifest:
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
        if isinstance(version, int) and version > max(_SUPPORTED_FORMATS):
            raise NewerFormatError(
                f"manifest format_version {version} was written by a newer helix_tf; this "
                f"one reads {sorted(_SUPPORTED_FORMATS)}: upgrade helix_tf to reuse it",
                token=data.get("token") if isinstance(data.get("token"), str) else None,
            )
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


class NewerFormatError(ValueError):
    """A manifest of a format newer than this helix_tf reads; ``token`` names its data."""

    def __init__(self, message: str, *, token: str | None) -> None:
        super().__init__(message)
        self.token = token


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    """What is at ``artifacts/<fp>/MANIFEST.json``: state is missing, invalid, valid, or
    newer (written by a newer helix_tf: not read, and not removed as damaged)."""

    state: str
    parsed: Manifest | None = None  # the manifest if it parsed, valid or not
    problem: str = ""
    raw: bytes = b""  # the manifest's bytes as read
    newer_token: str | None = None  # the data a newer-format manifest names

    @property
    def token(self) -> str | None:
        return self.parsed.token if self.parsed is not None else self.newer_token

    @property
    def manifest(self) -> Manifest | None:
        return self.parsed if self.state == "valid" else None


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
