"""``helix-tf run`` with ``strategy=multi-worker`` on two local processes (TF_CONFIG):
the launch recipe README gives (every worker on one shared store), checked end to end;
only the chief writes, and the workers take the same decision for the learner."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helix_tf import api
from helix_tf.errors import ExecutionError
from helix_tf.reuse.store import ArtifactStore

#: Seconds a worker waits for the others (the test's bound on any wait).
WAIT = "120"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _run(config: Path, store: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helix_tf.cli",
            "run",
            str(config),
            "-p",
            "learner.strategy=multi-worker",
            "--json",
            "--no-server",
            "--store",
            str(store),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _run_workers(config: Path, store: Path) -> list[dict[str, Any]]:
    """Both workers on the one store; each one's JSON result (none may hang: the waits
    are bounded by ``WAIT`` and the test by ``communicate``'s timeout)."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": _tf_config(workers, index),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "HELIX_TF_WORKER_TIMEOUT": WAIT,
        }
        procs.append(_run(config, store, env))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, err.decode()[-3000:]
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return outputs


def _recorded_runs(store: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(store / "metadata.db") as db:
        return [(int(r[0]), str(r[1])) for r in db.execute("SELECT id, status FROM runs")]


@pytest.mark.slow
def test_two_workers_share_one_store_and_only_the_chief_keeps_results(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    """Both workers run the same ``helix-tf run`` on one store: training is one
    synchronous job over both (both report the chief's metrics); only the chief commits
    and records. A second run, whose learner the chief loads, ends on both workers
    (before, the other worker trained alone and waited forever) and loads it there too."""
    store = tmp_path / "store"
    chief, other = _run_workers(tiny_census_config, store)
    assert chief["metrics"] == other["metrics"] and chief["metrics"]
    states = {n["name"]: n["state"] for n in chief["nodes"]}
    assert states["learner"] == "compute"
    assert {n["name"]: n["state"] for n in other["nodes"]}["learner"] == "compute"
    assert not any(n["materialized"] for n in other["nodes"])
    assert any("worker 1 of TF_CONFIG is not the chief" in note for note in other["notes"])
    assert not any("read-only" in note for note in chief["notes"])
    assert _recorded_runs(store) == [(chief["run_id"], "ok")]

    # The model stays stored, what scores it does not: the next run loads the learner.
    shared = ArtifactStore(str(store))
    for node in chief["nodes"]:
        if node["name"] in ("predictions", "evaluation") and node["materialized"]:
            shared.delete(node["fingerprint"])
    chief2, other2 = _run_workers(tiny_census_config, store)
    for result in (chief2, other2):
        states2 = {n["name"]: n["state"] for n in result["nodes"]}
        assert states2["learner"] == "load" and states2["predictions"] == "compute", states2
    assert chief2["metrics"] == other2["metrics"] == chief["metrics"]
    assert _recorded_runs(store) == [(chief["run_id"], "ok"), (chief2["run_id"], "ok")]
    # Everything stored: the chief prunes the learner, and so does the other worker.
    chief3, other3 = _run_workers(tiny_census_config, store)
    for result in (chief3, other3):
        assert {n["name"]: n["state"] for n in result["nodes"]}["learner"] == "prune"
    assert len(_recorded_runs(store)) == 3


def _lone(config: Path, store: Path, index: int, monkeypatch: pytest.MonkeyPatch) -> ExecutionError:
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    monkeypatch.setenv("TF_CONFIG", _tf_config(workers, index))
    monkeypatch.setenv("HELIX_TF_WORKER_TIMEOUT", "1")
    with pytest.raises(ExecutionError) as caught:
        api.run(config, params=["learner.strategy=multi-worker"], store=str(store))
    return caught.value


def test_a_lone_chief_stops_before_any_work_naming_the_missing_worker(
    tiny_census_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    error = _lone(tiny_census_config, store, 0, monkeypatch)
    assert "chief (worker 0) waited 1s for worker 1 of TF_CONFIG" in str(error)
    assert _recorded_runs(store) == [(1, "failed")]


def test_a_worker_that_is_not_the_chief_writes_nothing(
    tiny_census_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its chief it waits (bounded), and it never wrote the store: no metadata
    database, no lease, no entry; only its answer to the chief's plan would be there."""
    store = tmp_path / "store"
    error = _lone(tiny_census_config, store, 1, monkeypatch)
    assert "worker 1 of TF_CONFIG waited 1s for the chief (worker 0) to publish" in str(error)
    written = (
        sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
        if store.exists()
        else []
    )
    assert not [p for p in written if p != "helix_store.json" and not p.startswith("content")], (
        written
    )


_CONNECT = (
    "from helix_tf.components import distributed\n"
    "try:\n"
    "    distributed.make_strategy('multi-worker')\n"
    "except Exception as exc:\n"
    "    print(type(exc).__name__, exc)\n"
    "    raise SystemExit(3)\n"
)


@pytest.mark.slow
def test_tensorflows_own_wait_for_the_workers_is_bounded(tmp_path: Path) -> None:
    """A lone worker entering MultiWorkerMirroredStrategy (what the agreement prevents)
    no longer waits forever: without its chief it fails with an error naming the wait;
    a chief without its worker (TensorFlow keeps it waiting regardless, deaf to threads
    and signal handlers) is killed by the sentinel process after printing the same
    message (before: both hung for good)."""
    procs = {}
    for index in range(2):  # two clusters, each missing the other task
        workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
        env = {
            **os.environ,
            "TF_CONFIG": _tf_config(workers, index),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "HELIX_TF_WORKER_TIMEOUT": "5",
        }
        procs[index] = subprocess.Popen(
            [sys.executable, "-c", _CONNECT],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    try:
        outputs = {i: p.communicate(timeout=300) for i, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    chief_err = outputs[0][1]
    assert procs[0].returncode == -signal.SIGKILL, chief_err.decode()[-2000:]
    assert "worker 0 of TF_CONFIG waited 5s for worker 1 to connect" in chief_err.decode()
    other_out, other_err = outputs[1]
    assert procs[1].returncode == 3, other_err.decode()[-2000:]
    assert "ExecutionError worker 1 of TF_CONFIG waited 5s for worker 0" in other_out.decode()
