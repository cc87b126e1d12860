"""Tests of the metadata database (helix_tf.reuse.metadata), on SQLite and on PostgreSQL.

Every test that takes ``url``, ``store`` or ``new_url`` runs twice: against a SQLite
file and against a fresh database on a real PostgreSQL server started for the session
(tests/_postgres.py; those runs skip when the server binaries are absent).
"""

from __future__ import annotations

import math
import socket
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata import (
    MIN_THROUGHPUT_BYTES,
    NODE_STATES,
    SCHEMA_VERSION,
    MetadataStore,
    NodeRecord,
    fit_load_throughput,
)
from helix_tf.reuse.store import pid_scope


class FakeClock:
    """A clock that advances one second per reading."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def dag(**fingerprints: str) -> dict:
    return {
        "nodes": [
            {"name": name, "kind": "op", "fingerprint": fp, "params": {}, "inputs": []}
            for name, fp in fingerprints.items()
        ]
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    """A factory of URLs of new, empty databases of the backend under test."""
    if backend == "sqlite":
        count = iter(range(10**9))
        return lambda: f"sqlite:///{tmp_path}/db{next(count)}/helix.db"
    server = request.getfixturevalue("postgres_server")
    return server.create_database


@pytest.fixture
def url(new_url) -> str:
    return new_url()


@pytest.fixture
def store(url: str):
    with MetadataStore(url, clock=FakeClock()) as s:
        yield s


def execute(url: str, *statements: str) -> list[tuple]:
    """Run SQL statements in one transaction on ``url``; the rows of the last one."""
    from helix_tf.reuse.metadata._database import Database

    db = Database(url)
    try:
        with db.engine.begin() as conn:
            for statement in statements:
                result = conn.exec_driver_sql(statement)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        db.close()


def node(name: str, state: str = "compute", **kw) -> NodeRecord:
    return NodeRecord(name=name, kind="op", fingerprint=f"fp-{name}", state=state, **kw)


def test_sqlite_file_and_folder_are_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "helix.db"
    MetadataStore(f"sqlite:///{path}").close()
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT value FROM helix_meta WHERE key='schema_version'")
        assert version.fetchone()[0] == str(SCHEMA_VERSION)


def test_plain_path_is_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with MetadataStore(str(path)) as s:
        assert s.url.startswith("sqlite:///")
    assert path.exists()


def test_versions_roundtrip(store: MetadataStore) -> None:
    d1, d2 = dag(a="1", b="1"), dag(a="1", b="2")
    assert store.record_version("census", "configs/census.py", d1, "digest1") == 1
    assert store.record_version("census", "configs/census.py", d1, "digest1") == 1
    assert store.record_version("census", "configs/census.py", d2, "digest2") == 2
    assert store.record_version("census", "configs/census.py", d1, "digest1") == 1
    assert store.record_version("other", "configs/other.py", d1, "digest1") == 1

    versions = store.versions("census")
    assert [(v.number, v.digest, v.parent) for v in versions] == [
        (1, "digest1", None),
        (2, "digest2", 1),
    ]
    assert versions[0].dag == d1
    assert versions[1].created > versions[0].created
    assert store.version("census", 2).dag == d2
    assert store.versions("unknown") == []


def test_missing_version_names_workflow_and_known_numbers(store: MetadataStore) -> None:
    store.record_version("census", "c.py", dag(a="1"), "d1")
    store.record_version("census", "c.py", dag(a="2"), "d2")
    with pytest.raises(StoreError, match=r"'census' has no version 7; recorded versions: 1, 2"):
        store.version("census", 7)
    with pytest.raises(StoreError, match=r"no workflow 'censsu'.*did you mean 'census'"):
        store.version("censsu", 1)


def test_unserialisable_dag_is_refused(store: MetadataStore) -> None:
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.record_version("census", "c.py", {"nodes": [object()]}, "d1")


def test_runs_newest_first_with_nodes_metrics_and_intervals(store: MetadataStore) -> None:
    store.record_version("census", "c.py", dag(a="1"), "d1")
    first = store.start_run(
        "census", 1, approx=False, policy="helix", store_url="/s", params={"l1": 0.01}
    )
    store.record_nodes(first, [node("rows", rows=100, bytes=4000), node("model")])
    store.finish_run(first, status="ok", wall_seconds=3.5, metrics={"auc": 0.8, "acc": 0.7})

    second = store.start_run(
        "census", 1, approx=True, policy="all", store_url="/s", params={"l1": 0.001}
    )
    store.record_nodes(second, [node("rows", "load", load_seconds=0.1, bytes=4000)])
    store.record_nodes(second, [node("model", reason="params changed")])
    store.finish_run(
        second,
        status="ok",
        wall_seconds=1.0,
        metrics={"auc": 0.81, "loss": math.nan},
        intervals={"auc": (0.78, 0.84)},
    )
    third = store.start_run("census", 1, approx=False, policy="none", store_url="/s", params={})

    runs = store.runs("census")
    assert [r.id for r in runs] == [third, second, first]
    assert runs[0].status == "running" and runs[0].finished is None
    assert runs[0].wall_seconds is None and runs[0].metrics == {} and runs[0].nodes == ()

    r2 = runs[1]
    assert (r2.status, r2.approx, r2.policy, r2.version, r2.wall_seconds) == (
        "ok",
        True,
        "all",
        1,
        1.0,
    )
    assert r2.params == {"l1": 0.001}
    assert r2.metrics["auc"] == 0.81 and math.isnan(r2.metrics["loss"])
    assert r2.intervals == {"auc": (0.78, 0.84)}
    assert [(n.name, n.state) for n in r2.nodes] == [("rows", "load"), ("model", "compute")]
    assert r2.nodes[1].reason == "params changed"
    assert r2.finished is not None and r2.finished > r2.started

    r1 = runs[2]
    assert r1.metrics == {"auc": 0.8, "acc": 0.7} and r1.intervals == {}
    assert r1.nodes[0] == node("rows", rows=100, bytes=4000)

    assert [r.id for r in store.runs("census", limit=2)] == [third, second]
    assert store.runs("unknown") == []


def test_recording_a_node_again_replaces_it(store: MetadataStore) -> None:
    run = store.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
    store.record_nodes(run, [node("a", materialized=False)])
    store.record_nodes(run, [node("a", materialized=True, write_seconds=0.5)])
    (recorded,) = store.runs("w")[0].nodes
    assert recorded.materialized and recorded.write_seconds == 0.5


def test_failed_run_keeps_its_error(store: MetadataStore) -> None:
    run = store.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
    store.finish_run(run, status="failed", wall_seconds=0.2, metrics={}, error="boom")
    (record,) = store.runs("w")
    assert (record.status, record.error) == ("failed", "boom")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s, r: s.record_nodes(r, [node("a", "cached")]), ValueError, "must be one of"),
        (lambda s, r: s.record_nodes(r, [node("a"), node("a")]), ValueError, "once per call"),
        (lambda s, r: s.record_nodes(r + 99, [node("a")]), StoreError, "start_run first"),
        (
            lambda s, r: s.finish_run(r, status="done", wall_seconds=1, metrics={}),
            ValueError,
            "status must be one of",
        ),
        (
            lambda s, r: s.finish_run(
                r, status="ok", wall_seconds=1, metrics={}, intervals={"auc": (0, 1)}
            ),
            ValueError,
            r"\['auc'\] not in metrics",
        ),
        (
            lambda s, r: s.finish_run(r + 99, status="ok", wall_seconds=1, metrics={}),
            StoreError,
            "run .* is not in metadata database",
        ),
    ],
)
def test_bad_calls_are_refused(store: MetadataStore, call, error, match) -> None:
    run = store.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
    with pytest.raises(error, match=match):
        call(store, run)


def test_last_compute_and_compute_history(store: MetadataStore) -> None:
    assert store.last_compute("census", "model") is None
    assert store.compute_history("census") == {}
    for seconds, approx in [(5.0, False), (7.0, False), (0.5, True)]:
        run = store.start_run("census", 1, approx=approx, policy="helix", store_url="", params={})
        store.record_nodes(
            run,
            [
                node("rows", "load", load_seconds=0.1, bytes=10),
                node("model", compute_seconds=seconds, rows=10),
                node("dead", "prune"),
            ],
        )
    other = store.start_run("other", 1, approx=False, policy="helix", store_url="", params={})
    store.record_nodes(other, [node("model", compute_seconds=99.0)])

    assert store.last_compute("census", "model").compute_seconds == 0.5
    assert store.last_compute("census", "model", approx=False).compute_seconds == 7.0
    assert store.last_compute("census", "rows") is None
    assert store.last_compute("other", "model").compute_seconds == 99.0

    history = store.compute_history("census")
    assert set(history) == {"model"}
    assert history["model"].compute_seconds == 0.5
    assert store.compute_history("census", approx=False)["model"].compute_seconds == 7.0
    assert store.compute_history("nothing") == {}


def test_re_recording_a_compute_as_load_falls_back_to_the_previous_compute(
    store: MetadataStore,
) -> None:
    first = store.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
    store.record_nodes(first, [node("a", compute_seconds=1.0)])
    second = store.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
    store.record_nodes(second, [node("a", compute_seconds=2.0)])
    store.record_nodes(second, [node("a", compute_seconds=3.0, materialized=True)])
    assert store.last_compute("w", "a").compute_seconds == 3.0
    store.record_nodes(second, [node("a", "load")])
    assert store.last_compute("w", "a").compute_seconds == 1.0
    assert store.compute_history("w")["a"].compute_seconds == 1.0
    store.record_nodes(first, [node("a", "prune")])
    assert store.last_compute("w", "a") is None
    assert store.compute_history("w") == {}


_record = st.tuples(
    st.integers(0, 3),  # which run
    st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(NODE_STATES)), max_size=3),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(approx=st.lists(st.booleans(), min_size=4, max_size=4), calls=st.lists(_record))
def test_compute_history_equals_a_scan_of_all_records(
    new_url, approx: list[bool], calls: list[tuple[int, list[tuple[str, str]]]]
) -> None:
    with MetadataStore(new_url()) as s:
        runs = [
            s.start_run("w", 1, approx=a, policy="helix", store_url="", params={}) for a in approx
        ]
        recorded: dict[tuple[int, str], tuple[str, int]] = {}  # (run, name) -> state, seq
        for seq, (run, nodes) in enumerate(calls):
            unique = dict(nodes)
            s.record_nodes(
                runs[run], [node(n, st_, compute_seconds=seq) for n, st_ in unique.items()]
            )
            recorded.update({(run, n): (st_, seq) for n, st_ in unique.items()})
        for flag in (None, True, False):
            expected: dict[str, int] = {}
            for (run, name), (state, seq) in recorded.items():
                if state == "compute" and flag in (None, approx[run]):
                    expected[name] = max(seq, expected.get(name, -1))
            history = s.compute_history("w", approx=flag)
            assert {n: r.compute_seconds for n, r in history.items()} == expected
            for name in "abc":
                last = s.last_compute("w", name, approx=flag)
                assert (last and last.compute_seconds) == expected.get(name)


def test_load_throughput_defaults_without_history(store: MetadataStore) -> None:
    assert store.load_throughput() == (200e6, 0.01)
    assert store.load_throughput(default=1e6, default_latency=0.5) == (1e6, 0.5)


def test_load_throughput_fitted_from_loads(store: MetadataStore) -> None:
    latency, throughput = 0.05, 100e6
    run = store.start_run("w", 1, approx=False, policy="helix", store_url="/s", params={})
    loads = [
        node(f"n{i}", "load", bytes=size, load_seconds=latency + size / throughput)
        for i, size in enumerate([10**4, 10**5, 10**6, 10**7, 10**8] * 4)
    ]
    loads.append(node("stall", "load", bytes=10**6, load_seconds=30.0))  # an outlier
    loads.append(node("zero", "load", bytes=0, load_seconds=0.0))  # ignored
    store.record_nodes(run, loads)
    fitted, fitted_latency = store.load_throughput()
    assert fitted == pytest.approx(throughput, rel=0.01)
    assert fitted_latency == pytest.approx(latency, rel=0.01)
    assert store.load_throughput(store_url="gs://elsewhere") == (200e6, 0.01)


def test_small_loads_measure_latency_not_throughput() -> None:
    # Many tiny metric files read in 0.3 ms and one 491 KB table in 0.7 ms: the store is
    # fast with some latency, not a 300 KB/s store.
    samples = [(89, 0.0003)] * 8 + [(491_367, 0.0007)]
    throughput, latency = fit_load_throughput(samples)
    assert throughput >= 100e6
    assert latency == pytest.approx(0.0003, rel=0.5)


def test_fit_of_equal_sizes_attributes_all_time_to_throughput() -> None:
    samples = [(10**6, 0.02)] * 10
    assert fit_load_throughput(samples) == pytest.approx((50e6, 0.0))


@settings(max_examples=50, deadline=None)
@given(
    latency=st.floats(0.0, 1.0),
    throughput=st.floats(1e5, 1e10),
    sizes=st.lists(st.integers(1, 10**10), min_size=5, max_size=60),
)
def test_fit_recovers_exact_loads(latency: float, throughput: float, sizes: list[int]) -> None:
    ordered = sorted(sizes)
    large = ordered[-max(1, len(ordered) // 3) :]
    # Throughput is only fitted from loads large enough to measure it.
    assume(statistics.median(large) >= MIN_THROUGHPUT_BYTES)  # the median the fit uses
    samples = [(b, latency + b / throughput) for b in sizes]
    fitted, fitted_latency = fit_load_throughput(samples)
    assert fitted > 0 and 0 <= fitted_latency <= latency + 1e-9
    # Whatever split between latency and throughput, predictions stay close.
    for b, seconds in samples:
        assert fitted_latency + b / fitted == pytest.approx(seconds, rel=0.6)


def test_change_counts_over_three_versions(store: MetadataStore) -> None:
    store.record_version("census", "c.py", dag(rows="r1", feat="f1", model="m1"), "d1")
    store.record_version("census", "c.py", dag(rows="r1", feat="f2", model="m2"), "d2")
    store.record_version("census", "c.py", dag(rows="r1", feat="f2", model="m3", extra="e1"), "d3")
    assert store.change_counts("census") == {
        "rows": (0, 3),
        "feat": (1, 3),
        "model": (2, 3),
        "extra": (0, 1),
    }
    assert store.change_counts("unknown") == {}


def test_change_counts_accepts_name_keyed_nodes(store: MetadataStore) -> None:
    store.record_version("w", "c.py", {"nodes": {"a": {"fingerprint": "1"}}}, "d1")
    store.record_version("w", "c.py", {"nodes": {"a": {"fingerprint": "2"}}}, "d2")
    assert store.change_counts("w") == {"a": (1, 2)}


def test_newer_schema_is_refused(url: str) -> None:
    MetadataStore(url).close()
    newer = SCHEMA_VERSION + 1
    execute(url, f"UPDATE helix_meta SET value='{newer}' WHERE key='schema_version'")
    with pytest.raises(
        StoreError,
        match=rf"was written by a newer helix_tf \(schema {newer} > {SCHEMA_VERSION}\); "
        r"upgrade helix_tf or use another --metadata URL",
    ):
        MetadataStore(url)


def test_database_without_schema_version_is_migrated(url: str) -> None:
    with MetadataStore(url) as s:
        s.record_version("w", "c.py", dag(a="1"), "d1")
        run = s.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
        s.record_nodes(run, [node("a", compute_seconds=2.0), node("b", "load")])
    execute(url, "DROP TABLE helix_meta", "DELETE FROM latest_compute")
    with MetadataStore(url) as s:
        assert [v.number for v in s.versions("w")] == [1]
        assert {n: r.compute_seconds for n, r in s.compute_history("w").items()} == {"a": 2.0}
    assert execute(url, "SELECT value FROM helix_meta") == [(str(SCHEMA_VERSION),)]


def test_schema_1_gains_the_process_user_and_host_columns(url: str) -> None:
    with MetadataStore(url) as s:
        s.record_version("w", "c.py", dag(a="1"), "d1", user="ann")
        old = s.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
    execute(
        url,
        "ALTER TABLE runs DROP COLUMN process",
        "ALTER TABLE runs DROP COLUMN user_name",
        "ALTER TABLE runs DROP COLUMN host_name",
        "ALTER TABLE versions DROP COLUMN user_name",
        "UPDATE helix_meta SET value='1' WHERE key='schema_version'",
    )
    with MetadataStore(url) as s:
        new = s.start_run(
            "w", 1, approx=False, policy="helix", store_url="", params={}, user="bob", host="h"
        )
        # The old run's process is unknown: it stays "running"; ours is alive.
        assert {r.id: r.status for r in s.runs("w")} == {old: "running", new: "running"}
        # The old run and version name nobody: they are everyone's.
        assert {r.id: (r.user, r.host) for r in s.runs("w")} == {old: ("", ""), new: ("bob", "h")}
        assert [r.id for r in s.runs("w", user="ann")] == [old]
        assert [v.number for v in s.versions("w", user="carl")] == [1]
    assert execute(url, "SELECT value FROM helix_meta") == [(str(SCHEMA_VERSION),)]


def test_runs_and_versions_by_user(store: MetadataStore) -> None:
    def run(user: str, version: int) -> int:
        return store.start_run(
            "w", version, approx=False, policy="helix", store_url="", params={}, user=user
        )

    for number, user in [(1, "ann"), (2, "bob"), (3, "ann"), (4, "bob")]:
        store.record_version("w", "c.py", dag(a=str(number)), f"d{number}", user=user)
    ann1, bob2, bob1 = run("ann", 1), run("bob", 2), run("bob", 1)
    assert [r.id for r in store.runs("w")] == [bob1, bob2, ann1]
    assert [r.id for r in store.runs("w", user="ann")] == [ann1]
    assert [r.id for r in store.runs("w", user="bob", limit=1)] == [bob1]
    assert {r.user for r in store.runs("w")} == {"ann", "bob"}
    assert all(r.host for r in store.runs("w"))  # this host by default
    # A person's versions: those they recorded or ran.
    assert [v.number for v in store.versions("w", user="ann")] == [1, 3]
    assert [v.number for v in store.versions("w", user="bob")] == [1, 2, 4]
    assert [v.number for v in store.versions("w", user="carl")] == []
    assert [(v.number, v.user) for v in store.versions("w")][:2] == [(1, "ann"), (2, "bob")]


def test_the_cost_model_reads_everyones_history(store: MetadataStore) -> None:
    ann = store.start_run(
        "w", 1, approx=False, policy="helix", store_url="/s", params={}, user="ann"
    )
    store.record_nodes(ann, [node("a", compute_seconds=4.0)])
    bob = store.start_run(
        "w", 1, approx=False, policy="helix", store_url="/s", params={}, user="bob"
    )
    store.record_nodes(bob, [node("b", compute_seconds=2.0)])
    history = store.compute_history("w")
    assert {n: r.compute_seconds for n, r in history.items()} == {"a": 4.0, "b": 2.0}


def test_a_run_whose_process_died_reads_as_killed(url: str) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from helix_tf.reuse.metadata import MetadataStore
        s = MetadataStore({url!r})
        s.record_version("w", "c.py", {{"nodes": []}}, "d1")
        run = s.start_run("w", 1, approx=False, policy="helix", store_url="", params={{}})
        print(run, flush=True)
        time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = int(proc.stdout.readline())
    with MetadataStore(url) as s:
        assert [r.status for r in s.runs("w")] == ["running"]
        assert proc.poll() is None
        proc.kill()
        proc.wait()
        assert [r.status for r in s.runs("w")] == ["killed"]
        s.mark_killed([run_id])
    assert execute(url, "SELECT status FROM runs") == [("killed",)]


def test_a_run_of_another_machine_with_our_host_name_is_not_judged_here(url: str) -> None:
    # A container or cloned machine with the same host name: its pids are not ours.
    with MetadataStore(url) as s:
        run = s.start_run("w", 1, approx=False, policy="helix", store_url="", params={})
        host = socket.gethostname()
        for scope, expected in [("other-boot/pid:[1]", "running"), (pid_scope(), "killed")]:
            execute(url, f"UPDATE runs SET process = '{host} 999999 1 {scope}' WHERE id = {run}")
            assert [r.status for r in s.runs("w")] == [expected], scope
        execute(url, f"UPDATE runs SET process = '{host} 999999 1' WHERE id = {run}")  # schema 2
        assert [r.status for r in s.runs("w")] == ["killed"]


def test_bad_urls_raise_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a SQLAlchemy URL"):
        MetadataStore("not a url://")
    with pytest.raises(StoreError, match=r"cannot open metadata database nonsense://.*driver"):
        MetadataStore("nonsense://")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the folder"):
        MetadataStore(f"sqlite:///{blocker}/sub/helix.db")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        # No server listens (port 1, tcpmux, is served nowhere; a port freed at collection
        # could be some server's by the time the test runs, and it named the test): the
        # message names the URL, hides the password, says how to fix.
        (
            "postgresql://ann:s3cret@127.0.0.1:1/helix",
            r"postgresql\+psycopg://ann:\*\*\*@127.0.0.1:\d+/helix: .*is the database "
            r"server running and reachable.*--metadata, HELIX_TF_METADATA or the project's "
            r"helix_tf.toml",
        ),
        # A host name that does not resolve.
        (
            "postgresql://ann:s3cret@no-such-host.invalid/helix",
            r"ann:\*\*\*@no-such-host.invalid/helix.*is the database server running",
        ),
        # Not a URL at all: the password is hidden there too.
        (
            "postgres://ann:s3cret@host:port/helix",
            r"'postgresql(\+psycopg)?://ann:\*\*\*@host:port/helix'",
        ),
    ],
    ids=["refused", "unresolved", "not-a-url"],
)
def test_unreachable_server_is_named_quickly_without_its_password(
    url: str, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quickly: every connection attempt is bounded by a connect timeout. (A stopwatch
    here depended on the machine's resolver: where DNS is configured but unreachable,
    resolving the ``.invalid`` host alone takes its retries.)"""
    psycopg = pytest.importorskip("psycopg")
    from helix_tf.reuse.metadata._database import CONNECT_TIMEOUT_S

    attempts: list[dict[str, Any]] = []
    real_connect = psycopg.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        attempts.append(kwargs)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(psycopg, "connect", connect)
    with pytest.raises(StoreError, match=match) as caught:
        MetadataStore(url)
    assert "s3cret" not in str(caught.value)
    assert bool(attempts) == url.startswith("postgresql://"), attempts  # a URL: it tried
    assert all(a.get("connect_timeout") == CONNECT_TIMEOUT_S for a in attempts), attempts


def test_wrong_database_on_a_real_server_says_how_to_fix(postgres_server) -> None:
    url = postgres_server.url("no_such_database")
    with pytest.raises(StoreError, match=r'database "no_such_database" does not exist.*Fix'):
        MetadataStore(url)


def test_in_memory_database() -> None:
    with MetadataStore("sqlite://") as s:
        assert s.record_version("w", "c.py", dag(a="1"), "d1") == 1
        assert [v.number for v in s.versions("w")] == [1]


_WRITER = textwrap.dedent(
    """
    import sys, time
    from helix_tf.reuse.metadata import MetadataStore, NodeRecord
    url, tag, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    store = MetadataStore(url)
    for i in range(50):
        version = store.record_version("shared", "c.py", {"nodes": [{"name": tag}]}, tag)
        run = store.start_run(
            "shared", version, approx=False, policy="helix", store_url="", params={"i": i}
        )
        store.record_nodes(run, [NodeRecord(
            name="n", kind="op", fingerprint=tag, state="compute", compute_seconds=i
        )])
        store.finish_run(run, status="ok", wall_seconds=0.01, metrics={"i": i})
    store.close()
    """
)


@pytest.mark.parametrize("writers", [2, 4])
def test_processes_write_concurrently(url: str, writers: int) -> None:
    # The database is empty (SQLite: not even its folder exists): the writers create
    # the schema concurrently, then write.
    start = str(time.time() + 1.5)
    tags = [f"p{i}" for i in range(1, writers + 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, tag, start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in tags
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "database is locked" not in err

    with MetadataStore(url) as s:
        runs = s.runs("shared")
        assert len(runs) == 50 * writers
        assert all(r.status == "ok" and len(r.nodes) == 1 for r in runs)
        assert sorted(r.metrics["i"] for r in runs) == sorted(list(range(50)) * writers)
        assert sorted(v.digest for v in s.versions("shared")) == tags
        assert len(s.compute_history("shared")) == 1


def test_a_damaged_sqlite_file_says_how_to_recover_and_is_left_alone(tmp_path: Path) -> None:
    """A metadata file that is not a database: the error names the file and the fix
    (move it aside, artifacts are kept), and the file itself is not touched."""
    from helix_tf.errors import StoreError

    path = tmp_path / "metadata.db"
    junk = b"not a database " * 100
    path.write_bytes(junk)
    with pytest.raises(StoreError, match=r"metadata\.db.*damaged: move it aside"):
        MetadataStore(f"sqlite:///{path}")
    assert path.read_bytes() == junk


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("folder", r"metadata\.db is a folder, not a SQLite file: move it away"),
        ("dangling link", r"metadata\.db links to .*gone\.db, which does not exist: fix the link"),
    ],
)
def test_a_sqlite_path_that_cannot_be_opened_says_why(tmp_path: Path, how: str, said: str) -> None:
    """Before: "unable to open database file", and nothing on what to do."""
    path = tmp_path / "metadata.db"
    if how == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "gone" / "gone.db")  # into a folder that is not there
    with pytest.raises(StoreError, match=said) as info:
        MetadataStore(f"sqlite:///{path}")
    assert "unable to open database file" in str(info.value)  # the read-only fallbacks key
    assert "--metadata FILE" in str(info.value)


def test_a_sqlite_file_locked_by_another_process_says_who_may_hold_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that outwaits the busy timeout names the lock and how to end it, and the
    database is intact afterwards (before: a bare "database is locked")."""
    from helix_tf.reuse.metadata import _database

    path = tmp_path / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as s:
        s.record_version("wf", "c.py", dag(a="1"), "d1")
    monkeypatch.setattr(_database, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with (
            MetadataStore(f"sqlite:///{path}") as s,
            pytest.raises(StoreError, match=r"locked; another process held a write lock"),
        ):
            s.record_version("wf", "c.py", dag(a="2"), "d2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with MetadataStore(f"sqlite:///{path}") as s:
        assert [v.digest for v in s.versions("wf")] == ["d1"]


def test_a_sqlite_file_missing_one_of_its_tables_is_called_damaged(tmp_path: Path) -> None:
    """Before: a bare "no such table: runs" (or metrics, at the end  of a run that had computed)."""
    path = tmp_path / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as s:
        s.record_version("wf", "c.py", dag(a="1"), "d1")
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE runs")
    with (
        MetadataStore(f"sqlite:///{path}") as s,
        pytest.raises(StoreError, match=r"no such table: runs; the file is damaged: move it"),
    ):
        s.runs("wf")


def test_closing_deferred_keeps_a_written_sqlite_file_open_until_asked(tmp_path: Path) -> None:
    """A served run closes its databases after giving its client the exit code: closing
    a SQLite file after a write checkpoints its write-ahead log (and syncs), which the
    client need not wait for. Until then what was written is committed and readable."""
    from helix_tf.reuse.metadata import close_deferred, defer_closing

    path = tmp_path / "m.db"
    wal = tmp_path / "m.db-wal"
    try:
        defer_closing()
        store = MetadataStore(f"sqlite:///{path}")
        store.record_version("w", "c.py", {"nodes": []}, "d1")
        store.close()
        assert wal.exists()  # not checkpointed: the connection is still open
        other = MetadataStore(f"sqlite:///{path}")  # another process' view, meanwhile
        assert [v.number for v in other.versions("w")] == [1]
        other.close()
        assert wal.exists()
    finally:
        close_deferred()
    assert not wal.exists()  # the last connection closed: the log is folded in
    store = MetadataStore(f"sqlite:///{path}")
    store.record_version("w", "c.py", {"nodes": [1]}, "d2")
    store.close()  # at once again
    assert not wal.exists()
