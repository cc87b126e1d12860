"""A store shared by several machines (issue 17): one writer wins each entry, on an
object store through the create-if-absent precondition and on a shared folder through
exclusive create; a run on another machine is live until its lease expires, so its
files and the entries it will read are never reclaimed under it.

The object-store tests run against ``_generation_fs``, an in-memory fake that enforces
GCS's ``ifGenerationMatch=0`` (the emulator ignores it); what only the real service can
prove is said in docs/ARCHITECTURE.md ("Shared stores").
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helix_tf.identity import USER_ENV
from helix_tf.reuse.store import ArtifactStore, Manifest
from helix_tf.reuse.store._leases import LEASE_EXPIRY, pid_scope

from . import _generation_fs as gfs
from .test_store import _race, staging_dirs, token_dirs
from .test_store_faults import room_for_newcomer

# --------------------------------------------------------------------------- object store


@pytest.fixture
def fake_gcs() -> Iterator[str]:
    """A fresh store URL on the precondition-enforcing fake object store."""
    gfs.reset()
    yield f"{gfs.PROTOCOL}://bucket/shared-{uuid.uuid4().hex}"
    gfs.reset()


def _race_commits(url: str, tmp_path: Path, n: int) -> tuple[list[ArtifactStore], list]:
    """``n`` writers (one store object each, as on ``n`` machines) commit one entry.

    Each stages its own bytes; all reach the manifest's exclusive create together and
    go through it one at a time, each after the previous read the manifest back.
    """
    stores = [ArtifactStore(url, cache_dir=str(tmp_path / f"cache{i}")) for i in range(n)]
    stagings = []
    for i, store in enumerate(stores):
        staging = store.begin("fp")
        with staging.open("part.bin") as f:
            f.write(f"writer {i} ".encode() * 50)
        stagings.append(staging)
    gfs.GenerationFileSystem.turnstile = gfs.Turnstile("/artifacts/fp/MANIFEST.json", n)
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: stores[i].commit(stagings[i], kind="blob"), range(n)))
    gfs.GenerationFileSystem.turnstile = None
    return stores, results


def _bytes_of(store: ArtifactStore, manifest: Manifest) -> bytes:
    local = store.open_local(manifest)
    assert local is not None
    return Path(local, "part.bin").read_bytes()


def test_racing_writers_on_an_object_store_exactly_one_wins(fake_gcs: str, tmp_path: Path) -> None:
    stores, results = _race_commits(fake_gcs, tmp_path, n=4)
    winners = [i for i, m in enumerate(results) if m is not None]
    assert len(winners) == 1, results
    won = results[winners[0]]
    for store in stores:  # every loser finds the winner's entry and reads its bytes
        assert store.lookup("fp") == won
        assert _bytes_of(store, won) == f"writer {winners[0]} ".encode() * 50
    assert token_dirs(stores[0], "fp") == {won.token}  # losers removed their data
    assert staging_dirs(stores[0]) == set()
    assert stores[0].verify().clean


def test_without_the_precondition_the_same_race_has_several_winners(
    fake_gcs: str, tmp_path: Path
) -> None:
    """What a backend that ignores the precondition (the emulator) can and cannot give.

    Every writer's read-back sees its own manifest, so several believe they won; the
    manifest still names complete data, and the others' data is an orphan for gc.
    """
    gfs.reset(enforce=False)
    stores, results = _race_commits(fake_gcs, tmp_path, n=3)
    assert sum(m is not None for m in results) > 1
    current = stores[0].lookup("fp")
    assert current is not None and current in results
    assert _bytes_of(stores[0], current) == (f"writer {results.index(current)} ".encode() * 50)
    stores[0].collect(older_than=0)
    assert token_dirs(stores[0], "fp") == {current.token}


def test_a_create_whose_reply_was_lost_is_still_ours(fake_gcs: str, tmp_path: Path) -> None:
    """The create reached the store, the client retried, the retry met the precondition.

    The manifest there names our token: we won. Taking it for a loss would delete the
    data the published manifest names.
    """
    store = ArtifactStore(fake_gcs, cache_dir=str(tmp_path / "cache"))
    gfs.GenerationFileSystem.lose_reply = {store.paths.manifest("fp")}
    staging = store.begin("fp")
    with staging.open("part.bin") as f:
        f.write(b"data" * 100)
    manifest = store.commit(staging, kind="blob")
    assert not gfs.GenerationFileSystem.lose_reply, "the fault was never triggered"
    assert manifest is not None
    assert store.lookup("fp") == manifest
    assert _bytes_of(store, manifest) == b"data" * 100


# --------------------------------------------------------------------------- shared folder


def test_runs_racing_on_a_shared_folder_exactly_one_wins(tmp_path: Path) -> None:
    """Four processes, each a run with its own lease, commit one entry at once."""
    url = str(tmp_path / "store")
    store = ArtifactStore(url)
    for round_ in range(2):
        fingerprint = f"shared{round_}"
        results = _race(url, tmp_path, fingerprint, 4, "--lease")
        winners = [r["token"] for r in results if r["outcome"] == "won"]
        assert len(winners) == 1, results
        manifest = store.lookup(fingerprint)
        assert manifest is not None and manifest.token == winners[0]
        assert all(r["seen"] == winners[0] for r in results if r["outcome"] == "lost")
        assert token_dirs(store, fingerprint) == {manifest.token}
    assert staging_dirs(store) == set()
    assert store.verify().clean


# --------------------------------------------------------------------------- leases


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lease(
    store: ArtifactStore, lease_id: str, *, host: str, scope: str | None, renewed: float, **kw
) -> None:
    body = {
        "id": lease_id,
        "host": host,
        "user": "colleague",
        "pid": _dead_pid(),  # no such process here: only its renewal can say it lives
        "proc_start": 12345,
        "pid_scope": scope,
        "created": renewed,
        "renewed": renewed,
        "pins": kw.get("pins", []),
        "scratch": kw.get("scratch"),
        "run": {},
        "computing": kw.get("computing", []),
        "announced": kw.get("announced"),
    }
    runs = Path(store.root, "runs")
    runs.mkdir(exist_ok=True)
    (runs / f"{lease_id}.json").write_text(json.dumps(body))


def test_a_lease_records_host_user_and_pid_scope(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(USER_ENV, raising=False)
    store = ArtifactStore(str(tmp_path / "store"))
    with store.open_lease(["fp"]) as lease:
        (info,) = store.run_leases.all()
        assert (info.id, info.host, info.user) == (
            lease.id,
            socket.gethostname(),
            getpass.getuser(),
        )
        assert info.pid == os.getpid() and info.pid_scope == pid_scope() and info.alive
    assert store.run_leases.all() == []


def test_a_lease_names_the_person_a_run_record_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One identity for both records: HELIX_TF_USER (a service account, an agent, a
    # simulated member) names the person in the lease as in the run's row.
    from helix_tf import settings

    monkeypatch.setenv(USER_ENV, "zoe")
    store = ArtifactStore(str(tmp_path / "store"))
    with store.open_lease(["fp"]):
        (info,) = store.run_leases.all()
    assert info.user == "zoe" == settings.current_user()
    assert info.host == settings.current_host()


def test_a_run_on_another_machine_with_our_host_name_is_live_until_its_lease_expires(
    tmp_path: Path,
) -> None:
    """Same host name, another pid scope (a container, a cloned machine): its pid names
    no process here, so only its renewal says whether it lives; its staging, its pins
    and its scratch folder (a path on its own machine) are left alone."""
    store = ArtifactStore(str(tmp_path / "store"))
    lease_id = "ab" * 8
    staged = Path(store.root, "staging", f"fp.{lease_id}{'0' * 16}")
    staged.mkdir()
    (staged / "part.bin").write_bytes(b"being written on the other machine")
    scratch = tmp_path / f"helix-run-{lease_id}"  # a folder of the same name here
    scratch.mkdir()
    other = dict(host=socket.gethostname(), scope="another-boot/pid:[4026531836]")
    _write_lease(
        store, lease_id, renewed=time.time(), pins=["entry"], scratch=str(scratch), **other
    )

    (info,) = store.run_leases.all()
    assert info.alive and info.user == "colleague"
    assert store.run_leases.pinned() == {"entry"}
    report = store.collect(older_than=0)
    assert report.dead_runs == [] and str(staged) not in report.paths
    assert staged.is_dir() and scratch.is_dir()

    _write_lease(
        store, lease_id, renewed=time.time() - LEASE_EXPIRY - 1, scratch=str(scratch), **other
    )
    assert not store.run_leases.all()[0].alive
    report = store.collect()
    assert [d.id for d in report.dead_runs] == [lease_id]
    assert not staged.exists() and store.run_leases.all() == []
    assert scratch.is_dir()  # not ours to remove: it names a folder on the other machine


def test_budget_eviction_spares_the_pins_of_a_run_on_another_host(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    for fp, size in (("cheap", 6000), ("dear", 3000)):
        staging = store.begin(fp)
        with staging.open("part.bin") as f:
            f.write(b"x" * size)
        assert store.commit(staging, kind="blob") is not None
    _write_lease(
        store, "cd" * 8, host="elsewhere.example", scope=None, renewed=time.time(), pins=["cheap"]
    )

    assert not room_for_newcomer(store)
    assert store.lookup("cheap") is not None  # pinned by the run on the other host
    _write_lease(
        store,
        "cd" * 8,
        host="elsewhere.example",
        scope=None,
        renewed=time.time() - LEASE_EXPIRY - 1,
        pins=["cheap"],
    )
    assert room_for_newcomer(store)
    assert store.lookup("cheap") is None  # its lease expired: evictable again


# --------------------------------------------------------------- work in flight


def test_only_a_run_that_announced_later_waits_for_a_computation(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    first, second = ArtifactStore(root), ArtifactStore(root)
    with first.open_lease([]) as a, second.open_lease([]) as b:
        a.announce(["examples", "model"])
        assert second.in_flight(["model"]) == {}  # b announced nothing yet
        b.announce(["model", "other"])
        found = second.in_flight(["model", "other"])
        assert list(found) == ["model"] and found["model"].id == a.id
        assert found["model"].computing == {"examples", "model"}
        # a came first: it never waits for b (so two runs never wait for each other)
        assert first.in_flight(["model", "other"]) == {}
        b.announce(["other"])  # b replanned: its place in the order is unchanged
        assert first.in_flight(["other"]) == {}
    assert second.in_flight(["model"]) == {}  # a's lease is gone with its run


@pytest.mark.parametrize("how", ["dead here", "expired elsewhere", "announced later"])
def test_a_run_that_ended_or_came_later_is_not_waited_for(tmp_path: Path, how: str) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    with store.open_lease([]) as mine:
        mine.announce(["model"])
        renewed, scope, host = time.time(), pid_scope(), socket.gethostname()
        announced = mine.announced - 10
        if how == "expired elsewhere":
            host, renewed = "elsewhere", time.time() - LEASE_EXPIRY - 1
        if how == "announced later":
            host, announced = "elsewhere", mine.announced + 10
        _write_lease(
            store, "cd" * 8, host=host, scope=scope, renewed=renewed,
            computing=["model"], announced=announced,
        )  # fmt: skip
        assert store.in_flight(["model"]) == {}
        # The same lease, live on another machine and announced first: waited for.
        _write_lease(
            store, "cd" * 8, host="elsewhere", scope=scope, renewed=time.time(),
            computing=["model"], announced=mine.announced - 10,
        )  # fmt: skip
        assert list(store.in_flight(["model"])) == ["model"]
