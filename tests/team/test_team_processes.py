"""Real processes on one store and one real PostgreSQL database (team mode, issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from helix_tf.reuse.metadata import MetadataStore, NodeRecord
from tests.conftest import ROOT, TINY_CENSUS, write_config


def _env(user: str, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "HELIX_TF_USER": user,
        "HELIX_TF_METADATA": url,
        "HELIX_TF_SERVER": "off",
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _start(config: Path, store: Path, user: str, url: str, epochs: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "helix_tf.cli", "run", str(config), "--store", str(store)]
    return subprocess.Popen(
        [*cmd, "-p", f"epochs={epochs}", "--json", "--no-server"],
        env=_env(user, url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out)


def _computed(payload: dict[str, Any]) -> list[str]:
    return [n["name"] for n in payload["nodes"] if n["state"] == "compute"]


@pytest.mark.slow
def test_four_people_at_once_then_reruns_and_a_fifth_compute_nothing(
    tmp_path: Path, census_like: tuple[Path, Path], postgres_server: Any
) -> None:
    url = postgres_server.create_database("four")  # empty: the four create the schema at once
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = tmp_path / "store"
    people = {f"member{i}": i for i in range(1, 5)}  # user -> epochs: four variants
    first = {u: _start(config, store, u, url, e) for u, e in people.items()}
    results = {u: _finish(p) for u, p in first.items()}
    assert all(r["metrics"] for r in results.values())

    verify = subprocess.run(
        [sys.executable, "-m", "helix_tf.cli", "store", "verify", "--store", str(store), "--json"],
        env=_env("checker", url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stderr[-3000:]
    report = json.loads(verify.stdout)
    assert report["bad"] == [] and report["ok"] > 0

    reruns = {u: _start(config, store, u, url, e) for u, e in people.items()}
    for user, proc in reruns.items():
        assert _computed(_finish(proc)) == [], user
    fifth = _finish(_start(config, store, "fifth", url, 3))
    assert _computed(fifth) == []

    with MetadataStore(url) as md:
        runs = md.runs("tiny_census")
        assert len(runs) == 9 and all(r.status == "ok" for r in runs)
        assert {r.user for r in runs} == {*people, "fifth"}
        assert [r.user for r in md.runs("tiny_census", user="member2")] == ["member2"] * 2
        assert len(md.versions("tiny_census")) == 4


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from helix_tf.reuse.metadata import MetadataStore, NodeRecord
    store = MetadataStore(sys.argv[1])
    run = int(sys.argv[2])
    with store._db.transaction("hold a transaction", write=True) as conn:
        runs = store._db.tables.runs
        conn.execute(runs.update().where(runs.c.id == run).values(status="failed", error="x"))
        conn.execute(store._db.tables.node_runs.insert().values(
            run_id=run, name="half", kind="op", fingerprint="f", state="compute",
            compute_seconds=1.0, load_seconds=0.0, write_seconds=0.0, materialized=False,
            reason="",
        ))
        print("holding", flush=True)
        time.sleep(300)
    """
)


def test_kill_9_of_a_process_holding_a_transaction_leaves_the_database_consistent(
    postgres_url: str,
) -> None:
    with MetadataStore(postgres_url) as md:
        md.record_version("w", "c.py", {"nodes": []}, "d1", user="ann")
        run = md.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, postgres_url, str(run)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"  # it holds the run's row lock
        holder.kill()  # SIGKILL: no rollback from the client
        holder.wait()
        began = time.monotonic()
        # The server rolled the transaction back and released its locks: this write of
        # the same row goes through at once, and nothing of the dead one is visible.
        md.record_nodes(run, [NodeRecord(name="a", kind="op", fingerprint="f", state="compute")])
        md.finish_run(run, status="ok", wall_seconds=1.0, metrics={"auc": 0.5})
        assert time.monotonic() - began < 60  # a held row lock would block it for good
        (record,) = md.runs("w")
        assert (record.status, record.error) == ("ok", None)
        assert [n.name for n in record.nodes] == ["a"]
        assert set(md.compute_history("w")) == {"a"}
    with MetadataStore(postgres_url) as again:  # a new client opens it as usual
        assert [r.status for r in again.runs("w")] == ["ok"]


def _announced(store: Path) -> set[str]:
    """What the runs on ``store`` announced they are computing (their leases)."""
    out: set[str] = set()
    for path in (store / "runs").glob("*.json"):
        try:
            out.update(json.loads(path.read_text()).get("computing") or ())
        except (OSError, ValueError):
            continue
    return out


def _announcers(store: Path) -> int:
    """How many runs on ``store`` have announced their computations."""
    count = 0
    for path in (store / "runs").glob("*.json"):
        try:
            count += json.loads(path.read_text()).get("announced") is not None
        except (OSError, ValueError):
            continue
    return count


def _start_colleagues(
    tmp_path: Path, census_like: tuple[Path, Path], url: str
) -> tuple[Path, subprocess.Popen[str], subprocess.Popen[str]]:
    """Ann starts a long training; Bob starts the same variant once hers is in flight."""
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = tmp_path / "store"
    ann = _start(config, store, "ann", url, 400)
    deadline = time.monotonic() + 300
    while not _announced(store) and ann.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _announced(store), "ann's run never announced what it computes"
    return store, ann, _start(config, store, "bob", url, 400)


@pytest.mark.slow
def test_a_run_waits_for_a_colleagues_computation_in_flight_then_loads_it(
    tmp_path: Path, census_like: tuple[Path, Path], postgres_server: Any
) -> None:
    url = postgres_server.create_database("inflight")
    _, ann, bob = _start_colleagues(tmp_path, census_like, url)
    ann_result = _finish(ann)
    out, err = bob.communicate(timeout=600)
    assert bob.returncode == 0, err[-3000:]
    # Bob planned while Ann trained: without waiting he would have trained too.
    assert "waiting up to" in err and "the run of ann@" in err, err[-3000:]
    assert "learner" in _computed(ann_result)
    bob_result = json.loads(out)
    # What Ann trained Bob loads (or prunes, when her stored outputs make it unneeded).
    assert not {"examples", "learner"} & set(_computed(bob_result)), _computed(bob_result)
    assert any(n["state"] == "load" for n in bob_result["nodes"])


@pytest.mark.slow
def test_a_run_stops_waiting_when_the_colleague_dies_and_computes(
    tmp_path: Path, census_like: tuple[Path, Path], postgres_server: Any
) -> None:
    url = postgres_server.create_database("inflight_dead")
    store, ann, bob = _start_colleagues(tmp_path, census_like, url)
    deadline = time.monotonic() + 300
    while _announcers(store) < 2 and bob.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # Bob has planned and announced: he waits for Ann from now on
    assert ann.poll() is None, "ann's run ended before bob planned: make it train longer"
    ann.kill()  # SIGKILL mid-training: her lease stays behind, her pid is gone
    ann.communicate()
    out, err = bob.communicate(timeout=600)
    assert bob.returncode == 0, err[-3000:]
    assert "ended without storing" in err, err[-3000:]
    assert "learner" in _computed(json.loads(out))
