"""Run leases: which live runs use a store, what they will read, what they own.

A run registers itself in ``<root>/runs/<lease id>.json`` before it plans, and removes
the file when it ends. The lease names the process (host, pid and the process's start
time, so a recycled pid is not mistaken for it), the fingerprints the run may read
(pins: eviction by another run never deletes them), the run's scratch folder and its
run id in the metadata database. Everything the run writes into the store carries its
lease id: staging and data directories are named by tokens whose first 16 hex digits
are the lease id.

A lease is *live* when its process still runs (same host) or, for a process on
another host, when it was renewed within :data:`LEASE_EXPIRY` seconds (a daemon thread
renews it every :data:`LEASE_RENEW` seconds). Leftovers whose owner's lease is dead are
reclaimed at once; leftovers of no known owner only after an age limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from helix_tf.reuse.store._fs import _mtime, _StoreFiles

logger = logging.getLogger(__name__)

_RUNS = "runs"
#: Seconds after its last renewal that a lease of another host counts as dead.
LEASE_EXPIRY = 900.0
#: Seconds between renewals of a live lease.
LEASE_RENEW = 60.0
#: Hex digits of a lease id; a store token starts with its owner's lease id.
LEASE_ID_LEN = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseInfo:
    """A run's lease as read from the store.

    Attributes
    ----------
    id : str
        The lease id (16 hex digits).
    host, pid, proc_start
        The process holding it (``proc_start``: its start time in clock ticks since
        boot on Linux, ``None`` where unknown).
    created, renewed : float
        POSIX times of creation and of the last renewal.
    pins : frozenset of str
        Fingerprints the run may read.
    scratch : str or None
        The run's scratch folder on ``host``.
    run : dict
        Where the run is recorded (``run_id``, ``metadata`` URL), once known.
    alive : bool
        Whether the holder still runs (see the module docstring).
    """

    id: str
    host: str
    pid: int
    proc_start: int | None
    created: float
    renewed: float
    pins: frozenset[str]
    scratch: str | None
    run: dict[str, Any] = field(default_factory=dict)
    alive: bool = True


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of stat; fields[0] is field 3 (the state)
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start: int | None) -> bool:
    """Whether process ``pid`` runs and (where known) started at ``start``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):
            return False
    except (OSError, IndexError):
        pass
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False
    return True


def this_host() -> str:
    return socket.gethostname()


class RunLease:
    """This process's lease on a store (from :meth:`ArtifactStore.open_lease`)."""

    def __init__(self, store: _Leases, pins: Iterable[str], scratch_root: str | None) -> None:
        self.store = store
        self.id = secrets.token_hex(LEASE_ID_LEN // 2)
        self.pins = frozenset(pins)
        #: The run's own scratch folder (not created here), removed if the run dies.
        self.scratch = os.path.join(scratch_root, f"helix-run-{self.id}") if scratch_root else None
        self.run: dict[str, Any] = {}
        self.created = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = store._join(_RUNS, f"{self.id}.json")

    def _body(self) -> bytes:
        data = {
            "id": self.id,
            "host": this_host(),
            "pid": os.getpid(),
            "proc_start": process_start(os.getpid()),
            "created": self.created,
            "renewed": time.time(),
            "pins": sorted(self.pins),
            "scratch": self.scratch,
            "run": self.run,
        }
        return (json.dumps(data, sort_keys=True) + "\n").encode()

    def write(self) -> None:
        """Write (or renew) the lease file; failures are logged, never raised."""
        try:
            if self.store.is_local:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.store._write_bytes(self.path, self._body())
        except Exception as exc:
            logger.debug("could not write run lease %s: %s", self.path, exc)

    def update(self, **run: Any) -> None:
        """Record where the run is recorded (``run_id``, ``metadata``) in the lease."""
        self.run.update(run)
        self.write()

    def start(self) -> RunLease:
        self.write()
        self._thread = threading.Thread(target=self._renew, name="helix-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_RENEW):
            self.write()

    def close(self) -> None:
        """End the lease: stop renewing and remove its file."""
        self._stop.set()
        with contextlib.suppress(Exception):
            self.store._rm_file(self.path)
        if self.store.lease is self:
            self.store.lease = None

    def __enter__(self) -> RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Leases(_StoreFiles):
    """Leases of live runs on a store: the part of :class:`ArtifactStore` that tracks them."""

    lease: RunLease | None = None

    if TYPE_CHECKING:

        def _cat_many(self, paths: list[str]) -> dict[str, Any]: ...

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
        lease = RunLease(self, pins, scratch_root)
        self.lease = lease
        return lease.start()

    def _new_token(self) -> str:
        """A fresh 32-hex-digit token; it starts with this run's lease id, if any."""
        if self.lease is not None:
            return self.lease.id + secrets.token_hex((32 - LEASE_ID_LEN) // 2)
        return secrets.token_hex(16)

    def leases(self) -> list[LeaseInfo]:
        """Every lease file on the store, each judged live or dead."""
        base = self._join(_RUNS)
        try:
            names = [p for p in self.fs.ls(base, detail=False) if p.endswith(".json")]
        except (FileNotFoundError, NotADirectoryError):
            return []
        texts = self._cat_many([str(p) for p in names])
        out = []
        now = time.time()
        host = this_host()
        for path, text in sorted(texts.items()):
            if not isinstance(text, bytes):
                continue
            info = _parse_lease(text)
            if info is None:
                name = posixpath_basename(path)
                # Unreadable lease: a writer killed mid-write. Dead once old enough.
                info = LeaseInfo(
                    id=name.removesuffix(".json"),
                    host="?",
                    pid=0,
                    proc_start=None,
                    created=0.0,
                    renewed=self._age_base(path),
                    pins=frozenset(),
                    scratch=None,
                )
            if info.host == host:
                alive = process_alive(info.pid, info.proc_start)
            else:
                alive = now - info.renewed < LEASE_EXPIRY
            out.append(dataclasses.replace(info, alive=alive))
        return out

    def _age_base(self, path: str) -> float:
        with contextlib.suppress(Exception):
            return _mtime(self.fs.info(path))
        return 0.0

    def pinned(self, *, exclude: str | None = None) -> set[str]:
        """Fingerprints that live runs (other than lease ``exclude``) may still read."""
        out: set[str] = set()
        for info in self.leases():
            if info.alive and info.id != exclude:
                out.update(info.pins)
        return out

    def _drop_lease(self, info: LeaseInfo) -> None:
        """Remove a dead lease's file and (on this host) its scratch folder."""
        if info.scratch and info.host == this_host():
            shutil.rmtree(info.scratch, ignore_errors=True)
        self._rm_file(self._join(_RUNS, f"{info.id}.json"))


def owner_of(token: str) -> str:
    """The lease id a token or staging name starts with."""
    return token[:LEASE_ID_LEN]


def posixpath_basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _parse_lease(text: bytes) -> LeaseInfo | None:
    try:
        data = json.loads(text)
        return LeaseInfo(
            id=str(data["id"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            proc_start=None if data.get("proc_start") is None else int(data["proc_start"]),
            created=float(data["created"]),
            renewed=float(data["renewed"]),
            pins=frozenset(str(p) for p in data.get("pins") or ()),
            scratch=data.get("scratch"),
            run=dict(data.get("run") or {}),
        )
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None


def lease_summary(info: LeaseInfo) -> Mapping[str, Any]:
    """A JSON-able description of a lease (for ``helix-tf store`` commands)."""
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "alive": info.alive,
        "pins": len(info.pins),
        "run": info.run,
    }
