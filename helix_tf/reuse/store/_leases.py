"""Run leases: which live runs use a store, what they will read, what they own.

A run registers itself in ``<root>/runs/<lease id>.json`` before it plans, and removes
the file when it ends. The lease names the process (host, user, pid, the process's start
time, so a recycled pid is not mistaken for it, and the pid's scope: the kernel's boot
id and the pid namespace, where a pid means that process), the fingerprints the run may read
(pins: eviction by another run never deletes them), the run's scratch folder and its
run id in the metadata database. Everything the run writes into the store carries its
lease id: staging and data directories are named by tokens whose first 16 hex digits
are the lease id.

A lease is *live* when its process still runs, where that can be checked (same host
and same pid scope), or else, for a process on another machine or in another
container, when it was renewed within :data:`LEASE_EXPIRY` seconds (a daemon thread
renews it every :data:`LEASE_RENEW` seconds): a pid says nothing about a process
elsewhere, so a store shared by several machines never takes another machine's live
run for dead. (The clocks of the machines sharing a store must agree to well within
:data:`LEASE_EXPIRY`.) Leftovers whose owner's lease is dead are reclaimed at once;
leftovers of no known owner only after an age limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from helix_tf.identity import (
    current_host,
    current_user,
    process_alive,
    process_start,
    process_stopped,
)
from helix_tf.reuse.store._fs import _RUNS, StoreFiles, _mtime

logger = logging.getLogger(__name__)

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
    host, user : str
        The machine (host name) and the person that run it, as
        :mod:`helix_tf.identity` names them (``HELIX_TF_USER``, else the login name;
        the run's record in the metadata database names the same), ``"?"`` where
        unknown.
    pid, proc_start
        The process holding it (``proc_start``: its start time in clock ticks since
        boot on Linux, ``None`` where unknown).
    pid_scope : str or None
        Where ``pid`` names that process: the kernel's boot id and the pid namespace
        (``None`` where unknown, e.g. a lease written by an older helix_tf).
    created, renewed : float
        POSIX times of creation and of the last renewal.
    pins : frozenset of str
        Fingerprints the run may read.
    scratch : str or None
        The run's scratch folder on ``host``.
    run : dict
        Where the run is recorded (``run_id``, ``metadata`` URL), once known.
    computing : frozenset of str
        Fingerprints the run announced it is computing (:meth:`RunLease.announce`).
    announced : float or None
        When it announced them (``None``: it announced nothing); with the lease id,
        the order in which runs wait for each other (:meth:`Leases.in_flight`).
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
    user: str = "?"
    pid_scope: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    computing: frozenset[str] = frozenset()
    announced: float | None = None
    alive: bool = True

    def announced_before(self, other: LeaseInfo | RunLease) -> bool:
        """Whether this lease announced its computations before ``other`` did.

        ``(announced, id)`` orders every pair of announcing runs the same way on every
        machine (clocks may differ; the comparison is of the recorded values), so runs
        that wait only for earlier ones never wait in a cycle.
        """
        if self.announced is None or other.announced is None:
            return False
        return (self.announced, self.id) < (other.announced, other.id)


def pid_scope() -> str | None:
    """Where this process's pids are meaningful: ``<boot id>/<pid namespace>``.

    Two processes with the same host name (containers, cloned machines) can check
    each other's pids only when both match. ``None`` where ``/proc`` does not say.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def judge_alive(info: LeaseInfo, *, now: float) -> bool:
    """Whether a lease's run is live: its pid where checkable here, else its renewal.

    A pid is checked only for a lease written on this host and in this pid scope (a
    lease without a scope, from an older helix_tf, is taken at its host name).
    Anything else counts as live until :data:`LEASE_EXPIRY` seconds after its last
    renewal.
    """
    if is_here(info):
        return process_alive(info.pid, info.proc_start)
    return now - info.renewed < LEASE_EXPIRY


def is_here(info: LeaseInfo) -> bool:
    """Whether a lease was written on this machine, in this pid scope.

    Only then does its pid name a process this one can check, and its scratch folder
    a folder this one sees.
    """
    scope = pid_scope()
    return info.host == current_host() and (
        info.pid_scope is None or scope is None or info.pid_scope == scope
    )


def is_stopped(info: LeaseInfo) -> bool:
    """Whether a lease's run is a stopped process of this machine (Ctrl-Z): alive (what it
    owns stays), but computing nothing until continued."""
    return is_here(info) and process_stopped(info.pid)


def new_token(lease: RunLease | None) -> str:
    """A fresh 32-hex-digit token; it starts with the lease id of ``lease``, if any."""
    if lease is not None:
        return lease.id + secrets.token_hex((32 - LEASE_ID_LEN) // 2)
    return secrets.token_hex(16)


class RunLease:
    """This process's lease on a store (from :meth:`ArtifactStore.open_lease`).

    Parameters
    ----------
    files : StoreFiles
        The store's files.
    pins : iterable of str
        Fingerprints the run may read.
    scratch_root : str or None
        Where the run's scratch folder goes.
    on_close : callable, optional
        Called with the lease once it is closed (the store forgets it).
    """

    def __init__(
        self,
        files: StoreFiles,
        pins: Iterable[str],
        scratch_root: str | None,
        on_close: Callable[[RunLease], None] | None = None,
    ) -> None:
        self.files = files
        self.id = secrets.token_hex(LEASE_ID_LEN // 2)
        self.pins = frozenset(pins)
        #: The run's own scratch folder (not created here), removed if the run dies.
        self.scratch = os.path.join(scratch_root, f"helix-run-{self.id}") if scratch_root else None
        self.run: dict[str, Any] = {}
        self.created = time.time()
        #: Fingerprints this run announced it computes, and when (:meth:`announce`).
        self.computing: frozenset[str] = frozenset()
        self.announced: float | None = None
        self._on_close = on_close
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = files.paths.join(_RUNS, f"{self.id}.json")

    def _body(self) -> bytes:
        data = {
            "id": self.id,
            "host": current_host(),
            "user": current_user(),
            "pid": os.getpid(),
            "proc_start": process_start(os.getpid()),
            "pid_scope": pid_scope(),
            "created": self.created,
            "renewed": time.time(),
            "pins": sorted(self.pins),
            "scratch": self.scratch,
            "run": self.run,
            "computing": sorted(self.computing),
            "announced": self.announced,
        }
        return (json.dumps(data, sort_keys=True) + "\n").encode()

    def write(self) -> None:
        """Write (or renew) the lease file; failures are logged, never raised."""
        try:
            if self.files.is_local:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.files.write_bytes(self.path, self._body())
        except Exception as exc:
            logger.debug("could not write run lease %s: %s", self.path, exc)

    def update(self, **run: Any) -> None:
        """Record where the run is recorded (``run_id``, ``metadata``) in the lease."""
        self.run.update(run)
        self.write()

    def announce(self, fingerprints: Iterable[str]) -> None:
        """Say that this run is about to compute ``fingerprints`` (runs elsewhere may wait).

        The first announcement's time stays the run's place in the order of waiting
        (:meth:`LeaseInfo.announced_before`); a later call only changes the set.
        """
        self.computing = frozenset(fingerprints)
        if self.announced is None:
            self.announced = time.time()
        self.write()

    def start(self) -> RunLease:
        """Write the lease and renew it every :data:`LEASE_RENEW` seconds until closed."""
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
            self.files.rm_file(self.path)
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> RunLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Leases:
    """The leases on a store, of every run on any machine: read, judge, drop."""

    def __init__(self, files: StoreFiles) -> None:
        self.files = files

    def all(self) -> list[LeaseInfo]:
        """Every lease file on the store, each judged live or dead (:func:`judge_alive`)."""
        base = self.files.paths.join(_RUNS)
        try:
            names = [p for p in self.files.fs.ls(base, detail=False) if p.endswith(".json")]
        except (FileNotFoundError, NotADirectoryError):
            return []
        texts = self.files.cat_many([str(p) for p in names])
        out = []
        now = time.time()
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
            out.append(dataclasses.replace(info, alive=judge_alive(info, now=now)))
        return out

    def _age_base(self, path: str) -> float:
        with contextlib.suppress(Exception):
            return _mtime(self.files.fs.info(path))
        return 0.0

    def pinned(self, *, exclude: str | None = None) -> set[str]:
        """Fingerprints that live runs (other than lease ``exclude``) may still read."""
        out: set[str] = set()
        for info in self.all():
            if info.alive and info.id != exclude:
                out.update(info.pins)
        return out

    def in_flight(self, fingerprints: Iterable[str], lease: RunLease) -> dict[str, LeaseInfo]:
        """Which of ``fingerprints`` a live run that announced before ``lease`` computes.

        Fingerprint → the earliest such run's lease. Later announcers are never
        returned: of runs computing the same fingerprint, only later ones wait.
        """
        wanted = set(fingerprints)
        out: dict[str, LeaseInfo] = {}
        earlier = [
            info
            for info in self.all()
            if info.alive and info.id != lease.id and info.announced_before(lease)
        ]
        for info in sorted(earlier, key=lambda i: (i.announced or 0.0, i.id)):
            for fp in sorted(wanted & info.computing):
                out.setdefault(fp, info)
        return out

    def drop(self, info: LeaseInfo) -> None:
        """Remove a dead lease's file and (written here, :func:`is_here`) its scratch folder."""
        if info.scratch and is_here(info):
            shutil.rmtree(info.scratch, ignore_errors=True)
        self.files.rm_file(self.files.paths.join(_RUNS, f"{info.id}.json"))

    def stray_files(self) -> list[tuple[str, float]]:
        """Files in ``runs/`` that are not leases (a lease write killed halfway)."""
        found = self.files.files_in(self.files.paths.join(_RUNS))
        return [(path, mtime) for path, mtime in found if not path.endswith(".json")]


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
            user=str(data.get("user") or "?"),
            pid_scope=None if data.get("pid_scope") is None else str(data["pid_scope"]),
            run=dict(data.get("run") or {}),
            computing=frozenset(str(p) for p in data.get("computing") or ()),
            announced=None if data.get("announced") is None else float(data["announced"]),
        )
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
