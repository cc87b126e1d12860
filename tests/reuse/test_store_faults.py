"""The store under faults, with real processes: corrupt entries are replaced by fresh
data, dead runs' leftovers are reclaimed at once (live runs' never), and budget eviction
never deletes what another live run pinned."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helix_tf.reuse.materialize import MaterializationPolicy
from helix_tf.reuse.store import ArtifactStore, process_alive, process_start
from helix_tf.reuse.store._leases import LEASE_EXPIRY

WORKER = str(Path(__file__).with_name("_store_worker.py"))


def _spawn(store: ArtifactStore, fingerprint: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, store.url, fingerprint, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _staged(proc: subprocess.Popen[str]) -> str:
    """Wait for a ``--hold`` worker to report its staged token; it must still run."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.communicate(timeout=10)
    assert proc.poll() is None
    return json.loads(line)["staged"]


def _kill(proc: subprocess.Popen[str]) -> None:
    assert proc.poll() is None, "the worker must be alive when killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _staging(store: ArtifactStore) -> set[str]:
    return {p.name for p in Path(store.root, "staging").iterdir()}


def _leases(store: ArtifactStore) -> set[str]:
    return {p.name for p in Path(store.root, "runs").glob("*.json")}


def test_commit_replaces_a_same_size_corrupt_entry_with_its_fresh_data(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    first = _spawn(store, "fp", "--files=2")
    out, err = first.communicate(timeout=300)
    assert json.loads(out)["outcome"] == "won", err
    bad = store.lookup("fp")
    assert bad is not None
    part = Path(store.paths.data_dir("fp", bad.token), "part-000.bin")
    part.write_bytes(b"X" * part.stat().st_size)  # same size: lookup cannot tell
    assert store.lookup("fp") == bad

    again = _spawn(store, "fp", "--files=2")
    out, err = again.communicate(timeout=300)
    assert json.loads(out)["outcome"] == "won", (out, err)
    good = store.lookup("fp")
    assert good is not None and good.token != bad.token
    assert store.open_local(good, verify=True) is not None
    assert not Path(store.paths.data_dir("fp", bad.token)).exists()


@pytest.mark.slow
def test_a_dead_runs_leftovers_go_at_once_a_live_runs_stay(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    scratch = tmp_path / "scratch"
    live = _spawn(store, "live", "--lease", "--hold=120", f"--scratch-root={scratch}")
    dead = _spawn(store, "dead", "--lease", "--hold=120", f"--scratch-root={scratch}")
    # Killed mid-commit: data moved under artifacts/, manifest not yet written.
    midway = _spawn(store, "midway", "--lease", "--files=1", "--slow-commit=4")
    try:
        live_token, dead_token = _staged(live), _staged(dead)
        midway_dir = Path(store.root, "artifacts", "midway")
        deadline = time.monotonic() + 60
        while not (midway_dir.is_dir() and any(p.is_dir() for p in midway_dir.iterdir())):
            assert midway.poll() is None and time.monotonic() < deadline, midway.communicate()
            time.sleep(0.01)
        _kill(dead)
        _kill(midway)
        assert len(_leases(store)) == 3
        assert len(list(scratch.iterdir())) == 2

        report = store.collect()  # default age limit: an hour; these are seconds old
        assert _staging(store) == {f"live.{live_token}"}
        assert f"dead.{dead_token}" not in _staging(store)
        assert not midway_dir.exists()
        assert len(_leases(store)) == 1
        assert [p.name for p in scratch.iterdir()] == [f"helix-run-{live_token[:16]}"]
        assert len(report.dead_runs) == 2
        assert store.collect().removed == 0  # nothing else to reclaim; live run untouched
        assert _staging(store) == {f"live.{live_token}"}
    finally:
        for proc in (live, dead, midway):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def room_for_newcomer(store: ArtifactStore) -> bool:
    """Whether a 4000-byte newcomer gets in under a 9500-byte budget (by eviction)."""
    policy = MaterializationPolicy(
        policy="all",
        load_cost=lambda role, nbytes: 0.0,
        ancestors={},
        history_compute={},
        budget=9_500,
        store=store,
    )

    class Node:
        name, role = "new", "feature"

    class Measure:
        state, compute_seconds, bytes = "compute", 50.0, 4000

    new = Measure()
    return policy.decide(Node(), new, {"new": new})


def test_budget_eviction_spares_what_another_live_run_pinned(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    for fp, size in (("cheap", 6000), ("dear", 3000)):
        proc = _spawn(store, fp, "--files=1", f"--size={size}")
        assert proc.communicate(timeout=300)[0]
    reader = _spawn(store, "reader", "--lease", "--pin=cheap", "--hold=120", "--no-commit")
    try:
        _staged(reader)

        assert not room_for_newcomer(store)
        assert store.lookup("cheap") is not None  # pinned by the live reader
        assert store.lookup("dear") is not None  # evicting it alone would not make room
        _kill(reader)
        assert room_for_newcomer(store)
        assert store.lookup("cheap") is None  # its reader is dead: evictable again
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()


def test_data_no_manifest_names_is_collected(tmp_path: Path) -> None:
    """A garbage manifest replaced by a fresh commit leaves its data: gc reclaims it."""
    store = ArtifactStore(str(tmp_path / "store"))
    assert _spawn(store, "fp").communicate(timeout=300)[0]
    old = store.lookup("fp")
    assert old is not None
    Path(store.paths.manifest("fp")).write_bytes(b"garbage")
    assert json.loads(_spawn(store, "fp").communicate(timeout=300)[0])["outcome"] == "won"
    assert Path(store.paths.data_dir("fp", old.token)).exists()  # nothing names it any more
    report = store.collect(older_than=0)
    assert store.paths.data_dir("fp", old.token) in report.paths
    assert not Path(store.paths.data_dir("fp", old.token)).exists()
    assert store.verify().clean


def test_verify_finds_and_repairs_a_corrupt_entry(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    for fp in ("a", "b"):
        assert _spawn(store, fp).communicate(timeout=300)[0]
    bad = store.lookup("b")
    assert bad is not None
    part = Path(store.paths.data_dir("b", bad.token), "part-000.bin")
    part.write_bytes(b"Y" * part.stat().st_size)
    report = store.verify()
    assert [fp for fp, _ in report.bad] == ["b"] and "sha256" in report.bad[0][1]
    assert not report.clean
    assert store.verify(repair=True).bad == [("b", report.bad[0][1])]
    assert store.verify().clean
    assert [m.fingerprint for m in store.entries()] == ["a"]


def test_process_liveness_tells_a_recycled_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start(proc.pid)
        assert process_alive(proc.pid, start)
        if start is not None:
            assert not process_alive(proc.pid, start + 1)  # same pid, another process
    finally:
        proc.kill()
        proc.wait()
    assert not process_alive(proc.pid, start)


def test_a_lease_of_another_host_expires(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    runs = Path(store.root, "runs")
    runs.mkdir(exist_ok=True)
    now = time.time()
    for name, renewed in (("0" * 16, now), ("1" * 16, now - LEASE_EXPIRY - 1)):
        body = {
            "id": name,
            "host": socket.gethostname() + "-elsewhere",
            "pid": os.getpid(),
            "proc_start": None,
            "created": renewed,
            "renewed": renewed,
            "pins": [name],
            "scratch": None,
            "run": {},
        }
        (runs / f"{name}.json").write_text(json.dumps(body))
    alive = {info.id: info.alive for info in store.run_leases.all()}
    assert alive == {"0" * 16: True, "1" * 16: False}
    assert store.run_leases.pinned() == {"0" * 16}


def test_an_unreachable_gs_store_fails_in_seconds_with_one_line(tmp_path: Path) -> None:
    from helix_tf.sample_data import write_census_like
    from tests.engine.test_concurrent_runs import CONFIG

    train, test = write_census_like(tmp_path / "data", train_rows=50, test_rows=20, seed=1)
    folder = tmp_path / "project"
    folder.mkdir()
    config = folder / "concurrent.py"
    config.write_text(CONFIG)
    with socket.socket() as s:  # a port nothing listens on: the endpoint refuses at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"}
    env["HELIX_TF_SERVER"] = "off"
    t0 = time.monotonic()
    args = ["--store", "gs://bucket/p", "-p", f"train={train}", "-p", f"test={test}"]
    out = subprocess.run(
        [sys.executable, "-m", "helix_tf.cli", "run", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    # Without the probe, gcsfs looks for credentials (~15 s) and then retries for about two
    # minutes; the bound tells that apart with room for a busy machine's start-up.
    assert time.monotonic() - t0 < 60
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be reached" in lines[0], out.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["concurrent.py"]
