"""How a store reaches its files: URLs to file systems, paths, listing, writing, removing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import secrets
import shutil
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from helix_tf.errors import StoreError

_MANIFEST = "MANIFEST.json"
_MARKER = "helix_store.json"
_ARTIFACTS = "artifacts"
_STAGING = "staging"
#: The runs' leases (:mod:`helix_tf.reuse.store._leases`).
_RUNS = "runs"
_TMP_PREFIX = ".MANIFEST.json."
_CHUNK = 1 << 20
_FINGERPRINT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")


def holds_a_store(folder: str | os.PathLike[str]) -> bool:
    """Whether the local ``folder`` is a store a run made (it holds the store's marker);
    a folder without it (``.helix/`` holding only the examples' generated data) is not."""
    return (Path(folder).expanduser() / _MARKER).is_file()


#: errno values that mean "this location cannot take the data" (full, read-only, denied, or
#: a file larger than the file system or the process's file-size limit allows).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)
_WRITE_FAILURE_RE = re.compile(
    r"\[errno (" + "|".join(str(e) for e in _WRITE_ERRNOS) + r")\]"
    r"|no space left on device|read-only file system|disk quota exceeded|file too large"
    r"|database or disk is full|readonly database|disk i/o error",
    re.I,
)


@dataclass(frozen=True, slots=True)
class StorePaths:
    """Where things are in a store: the layout of the module docstring of ``reuse.store``.

    Attributes
    ----------
    fs : fsspec.AbstractFileSystem
        The store's file system.
    root : str
        The store's root within ``fs`` (an OS path for a local store).
    is_local : bool
        Whether ``fs`` is the local file system.
    """

    fs: fsspec.AbstractFileSystem
    root: str
    is_local: bool

    def join(self, *parts: str) -> str:
        """The path of ``parts`` below the root."""
        if self.is_local:
            return os.path.join(self.root, *parts)
        return posixpath.join(self.root, *parts)

    def fp_dir(self, fingerprint: str) -> str:
        """The folder of everything stored for ``fingerprint``."""
        return self.join(_ARTIFACTS, fingerprint)

    def manifest(self, fingerprint: str) -> str:
        """The path of ``fingerprint``'s ``MANIFEST.json``."""
        return self.join(_ARTIFACTS, fingerprint, _MANIFEST)

    def data_dir(self, fingerprint: str, token: str) -> str:
        """The folder of the data files that a manifest naming ``token`` describes."""
        return self.join(_ARTIFACTS, fingerprint, token)

    def staging(self, fingerprint: str, token: str) -> str:
        """The private folder where attempt ``token`` writes ``fingerprint``'s files."""
        return self.join(_STAGING, f"{fingerprint}.{token}")

    def to_url(self, path: str) -> str:
        """An OS path for a local store, else a URL with the scheme (``gs://...``)."""
        return path if self.is_local else self.fs.unstrip_protocol(path)


class StoreFiles:
    """How a store touches its file system: I/O errors, listing, reading, writing, removing.

    Parameters
    ----------
    url : str
        The store's URL (see :func:`_make_fs`).
    """

    def __init__(self, url: str) -> None:
        self.fs, self.root, self.url = _make_fs(url)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.paths = StorePaths(self.fs, self.root, self.is_local)

    # ------------------------------------------------------------------ errors

    def explain(self, exc: BaseException, what: str) -> str:
        """A StoreError message naming the URL, the cause and a fix."""
        fix = "check the path and your permissions, or pass another --store"
        err = getattr(exc, "errno", None)
        if err in (errno.ENOSPC, errno.EDQUOT):
            fix = "its disk (or your quota) is full: free space there, or pass another --store"
        elif err == errno.EROFS:
            fix = "its file system is mounted read-only: pass a --store on a writable one"
        elif err == errno.EFBIG:
            fix = (
                "a file is larger than its file system or your file-size limit (`ulimit -f`) "
                "allows: raise the limit, or pass a --store on a file system that takes it"
            )
        elif isinstance(exc, PermissionError) and self.is_local:
            # Reading an entry as much as writing one: a file another user left unreadable.
            where = getattr(exc, "filename", None) or self.root
            fix = (
                f"this user may not {'read' if _reading(what) else 'write'} {where}: fix its "
                "permissions (the store's files must be readable and writable by everyone "
                f"who runs on it; for a group: chmod -R g+rwX {self.root}), or pass another "
                "--store"
            )
        elif isinstance(exc, PermissionError) or "403" in str(exc) or "401" in str(exc):
            fix = (
                "grant write access to it (gs://: roles/storage.objectAdmin), "
                "or pass another --store"
            )
        elif isinstance(exc, NotADirectoryError | FileExistsError) and self.is_local:
            fix = "a file is in the way: the store must be a folder; pass another --store"
            blocker = _file_in_the_way(getattr(exc, "filename", None))
            if blocker is not None and blocker.startswith(self.root + os.sep):
                fix = (
                    f"the file {blocker} is in the way of the store's own folders: move it "
                    "away (helix_tf makes the folder again), or pass another --store"
                )
        elif _is_gcs(self.fs):
            bucket = self.root.split("/", 1)[0]
            with contextlib.suppress(Exception):
                if not self.fs.exists(bucket):
                    fix = f"bucket {bucket!r} does not exist: create it with " + (
                        f"`gcloud storage buckets create gs://{bucket}`, or pass another --store"
                    )
        return f"artifact store {self.url} {what}: {type(exc).__name__}: {exc}; {fix}"

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn I/O failures into StoreError naming the store and the action."""
        try:
            yield
        except (StoreError, ValueError, TypeError):
            raise
        except OSError as exc:
            raise StoreError(self.explain(exc, f"failed to {action}")) from exc
        except Exception as exc:
            if self.is_local:
                raise
            raise StoreError(self.explain(exc, f"failed to {action}")) from exc

    def refresh(self) -> None:
        """Drop cached listings of remote stores so other writers' files are visible."""
        if not self.is_local:
            self.fs.invalidate_cache()

    # ------------------------------------------------------------------ reading

    def list_files(self, directory: str) -> dict[str, int]:
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

    def hash_file(self, path: str) -> tuple[int, str]:
        """The size and hex sha256 of a file."""
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def cat_many(self, paths: list[str]) -> dict[str, Any]:
        """Path → bytes (or the exception reading it raised) of each of ``paths``."""
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

    def files_in(self, directory: str) -> list[tuple[str, float]]:
        """(path, modification time) of each file directly in ``directory``."""
        try:
            found = self.fs.ls(directory, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [(str(i["name"]), _mtime(i)) for i in found if i.get("type") == "file"]

    # ------------------------------------------------------------------ writing

    def create_exclusive(self, path: str, data: bytes, token: str) -> None:
        """Write ``path`` only if absent, atomically where the backend allows.

        Raises ``FileExistsError`` when something is there. Local: a fsync'ed temporary
        file hard-linked to ``path`` (``O_CREAT | O_EXCL`` where links are unsupported).
        Remote: ``open(path, "xb")``, which gcsfs sends as the precondition
        ``ifGenerationMatch=0`` (HTTP 412 → ``FileExistsError``).
        """
        if self.is_local:
            _create_local(path, data, token)
            return
        try:
            with self.fs.open(path, "xb") as f:
                f.write(data)
        except (ValueError, NotImplementedError):
            # Backend without exclusive mode: best effort, read-back decides the winner.
            if self.fs.exists(path):
                raise FileExistsError(path) from None
            self.write_bytes(path, data)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write (or replace) a small file; atomically on a local store."""
        if self.is_local:
            _write_local(path, data)
        else:
            with self.fs.open(path, "wb") as f:
                f.write(data)

    def rm_tree(self, path: str) -> None:
        """Remove a folder (or file) and everything below; missing is fine."""
        if self.is_local:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, onerror=_ignore_missing)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    def rm_file(self, path: str) -> None:
        """Remove one file; missing is fine."""
        with contextlib.suppress(FileNotFoundError):
            if self.is_local:
                os.unlink(path)
            else:
                self.fs.rm_file(path)


def _create_local(path: str, data: bytes, token: str) -> None:
    """Create ``path`` exclusively and durably on a local (or shared) file system."""
    tmp = os.path.join(os.path.dirname(path), f"{_TMP_PREFIX}{token}.tmp")
    try:
        with open(tmp, "wb") as f:  # inside the try: a full disk leaves no .tmp behind
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
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


def _reading(what: str) -> bool:
    """Whether the failed action ``what`` (``"failed to open ..."``) only reads the store."""
    verbs = ("open", "look up", "check", "verify", "list")
    return any(what.startswith(f"failed to {verb}") for verb in verbs)


def _file_in_the_way(path: str | None) -> str | None:
    """The nearest of ``path`` and its parents that exists and is not a folder, if any."""
    if not path:
        return None
    for candidate in (path, *(str(p) for p in Path(path).parents)):
        if os.path.lexists(candidate):
            return None if os.path.isdir(candidate) else candidate
    return None


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says a write found no room or no permission.

    Disk full, quota exceeded, read-only or immutable (``EPERM``), access denied, a file
    too large for the file system or the file-size limit (``EFBIG``), and
    SQLite's "database or disk is full" and "disk I/O error" (what opening a database
    in WAL mode on a full disk reports). Runners re-raise a worker's error with its
    message only, so the messages are read too.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _WRITE_ERRNOS:
            return True
        if _WRITE_FAILURE_RE.search(str(cur)):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _make_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """Return (file system, root path within it, normalised URL) for a store URL."""
    if "://" not in url and "::" not in url:
        root = os.path.abspath(os.path.expanduser(url))
        return LocalFileSystem(), root, root
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("gs", "gcs"):
        _probe_gcs(url.rstrip("/"))
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


#: Seconds to wait for a TCP connection to a remote store's endpoint before giving up.
PROBE_TIMEOUT = 3.0


def _probe_gcs(url: str) -> None:
    """Fail in seconds, with one clear line, when the GCS endpoint cannot be reached.

    Without a network, gcsfs spends ~15 s looking for credentials and then retries for
    about two minutes; one TCP connection with a short timeout tells first whether there
    is anything to talk to.
    """
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"
    parsed = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        address = _resolve(host, port, PROBE_TIMEOUT)
        socket.create_connection(address, timeout=PROBE_TIMEOUT).close()
    except OSError as exc:
        raise StoreError(
            f"artifact store {url} cannot be reached: no connection to {host}:{port} "
            f"within {PROBE_TIMEOUT:.0f} s ({type(exc).__name__}: {exc}); check the network "
            "(or STORAGE_EMULATOR_HOST for an emulator), or pass a local --store"
        ) from None


def _resolve(host: str, port: int, timeout: float) -> tuple[str, int]:
    """``host``'s first address, or TimeoutError: a resolver without network can hang ~15 s."""
    found: list[Any] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][:2])
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, name="helix-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise TimeoutError(f"resolving {host} took over {timeout:.0f} s")
    if isinstance(found[0], OSError):
        raise found[0]
    return found[0]


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
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _discard_local(target: str, marker: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)
    shutil.rmtree(target, ignore_errors=True)


def _ignore_missing(func: Any, path: str, exc_info: Any) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
