"""The warm server: `helix-tf run` handed to a preloaded process gives the same results,
the same output and exit codes, falls back when stale, forwards Ctrl-C, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helix_tf.native_output import is_chatter
from helix_tf.server._memory import file_pages, parse_smaps
from tests.conftest import TINY_CENSUS, write_config

# Real processes: slow; CI runs those marked ci (README lists the rest).
pytestmark = [pytest.mark.slow]

CLIENT = [sys.executable, "-c", "from helix_tf.cli import console_main; console_main()"]


def _env(server_dir: Path, **extra: str) -> dict[str, str]:
    # TensorFlow's own log level as a user has it: its native lines must not reach them.
    drop = ("HELIX_TF_SERVER", "TF_CPP_MIN_LOG_LEVEL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "HELIX_TF_SERVER_DIR": str(server_dir), **extra}


def _helix(server_dir: Path, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLIENT, *map(str, args)],
        env=_env(server_dir, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _status(server_dir: Path) -> dict[str, object]:
    done = _helix(server_dir, "server", "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("server")
    server_dir = folder / "sock"
    log = open(folder / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "helix_tf.server", "--idle-timeout", "600"],
        env=_env(server_dir),
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 120
    while not _status(server_dir)["running"]:
        assert proc.poll() is None, (folder / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    yield server_dir
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=60)
    log.close()


def test_a_served_run_equals_a_run_in_its_own_process(
    server: Path, config: Path, tmp_path: Path
) -> None:
    before = _status(server)["runs"]
    served = _helix(server, "run", config, "--store", tmp_path / "a", "--json")
    assert served.returncode == 0, served.stderr
    assert _status(server)["runs"] == before + 1
    alone = _helix(server, "run", config, "--store", tmp_path / "b", "--json", "--no-server")
    assert alone.returncode == 0, alone.stderr
    assert _status(server)["runs"] == before + 1
    a, b = json.loads(served.stdout), json.loads(alone.stdout)
    assert a["metrics"] == b["metrics"]  # floats through JSON: bit for bit
    keys = ("name", "state", "rows", "fingerprint")
    assert [[n[k] for k in keys] for n in a["nodes"]] == [[n[k] for k in keys] for n in b["nodes"]]
    # Every stored table (sources, features, predictions) holds the same values, bit for bit.
    stored = {
        p.relative_to(tmp_path / "a" / "artifacts").parts[0]: p
        for p in (tmp_path / "a" / "artifacts").rglob("*.parquet")
    }
    assert stored
    for p in stored.values():
        twins = list((tmp_path / "b" / "artifacts").glob(f"{p.parts[-4]}/*/{p.parts[-2]}/{p.name}"))
        assert len(twins) == 1, p
        assert pq.read_table(p).equals(pq.read_table(twins[0])), p


#: The tiny census workflow whose "age" is the hour of a time in the local zone.
ZONED = "import datetime\n" + TINY_CENSUS.replace(
    '    age = wf.feature("age", F.Numeric("age"))\n',
    '    @wf.udf("age")\n'
    "    def age(row):\n"
    '        return float(datetime.datetime.fromtimestamp(row["age"] * 3600).hour)\n',
)


def test_a_served_run_converts_local_times_in_the_callers_zone(
    server: Path, census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    """The fork took the caller's TZ into its environment but kept the server's zone (no
    tzset): a UDF's ``fromtimestamp(...).hour`` was the server's hour, stored under the
    caller's zone's fingerprint."""
    assert "fromtimestamp" in ZONED  # the census workflow still declares age so
    config = write_config(tmp_path, ZONED, train=census_like[0], test=census_like[1])
    zone = "Asia/Kathmandu" if os.environ.get("TZ") != "Asia/Kathmandu" else "UTC"
    runs = [
        _helix(
            server,
            "run",
            config,
            "--store",
            tmp_path / store,
            "--json",
            "--materialize",
            "all",
            *flags,
            TZ=zone,
        )
        for store, flags in (("served", ()), ("alone", ("--no-server",)))
    ]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    served, alone = (json.loads(r.stdout) for r in runs)
    assert served["metrics"] == alone["metrics"]
    assert [n["fingerprint"] for n in served["nodes"]] == [n["fingerprint"] for n in alone["nodes"]]
    (fingerprint,) = [n["fingerprint"] for n in alone["nodes"] if n["name"] == "age"]
    hours = [
        [
            pq.read_table(p)
            for p in sorted((tmp_path / store / "artifacts" / fingerprint).rglob("*.parquet"))
        ]
        for store in ("served", "alone")
    ]
    assert hours[0] and len(hours[0]) == len(hours[1])
    assert all(a.equals(b) for a, b in zip(*hours, strict=True))


@pytest.mark.ci
def test_a_served_run_writes_with_the_callers_umask_and_temporary_folder(
    server: Path, census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    """The fork kept the server's umask and the temporary folder the server's imports had
    cached: under the caller's umask 027 a served run's store (the model file the trainer
    writes too) was readable by everyone, and its TMPDIR was ignored (QA 24)."""
    body = (
        'import sys, tempfile\nprint("temporary folder:", tempfile.gettempdir(), file=sys.stderr)\n'
    )
    config = write_config(tmp_path, body + TINY_CENSUS, train=census_like[0], test=census_like[1])
    (tmp_path / "tmp").mkdir()
    before = _status(server)["runs"]
    done = subprocess.run(
        [*CLIENT, "run", str(config), "--store", str(tmp_path / "s"), "--materialize", "all"],
        env=_env(server, TMPDIR=str(tmp_path / "tmp")),
        capture_output=True,
        text=True,
        timeout=300,
        umask=0o027,
    )
    assert done.returncode == 0, done.stderr
    assert _status(server)["runs"] == before + 1
    assert f"temporary folder: {tmp_path / 'tmp'}" in done.stderr
    written = list((tmp_path / "s").rglob("*"))
    assert any(p.name == "model.keras" for p in written)  # saved by the server's trainer
    assert [p for p in written if p.stat().st_mode & 0o027] == []


def test_a_config_turning_warnings_into_errors_fails_a_served_run_as_a_local_one(
    server: Path, census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    """The trainer, another process, ignored the warning filters a config set: a served
    run trained where a local one failed on a library's warning (QA 24)."""
    body = 'import warnings\nwarnings.simplefilter("error")\n' + TINY_CENSUS
    config = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    before = _status(server)["runs"]
    runs = [
        _helix(server, "run", config, "--store", tmp_path / store, *flags)
        for store, flags in (("served", ()), ("alone", ("--no-server",)))
    ]
    assert _status(server)["runs"] == before + 1
    errors = [[line for line in r.stderr.splitlines() if line.startswith("error")] for r in runs]
    assert [r.returncode for r in runs] == [1, 1], errors
    assert errors[0] == errors[1] and "Warning" in errors[0][-1]


def test_served_trainings_reuse_the_servers_trainer_bit_for_bit(
    server: Path, config: Path, tmp_path: Path
) -> None:
    """A learning-rate, epochs and L2 edit is trained by the server's trainer on the model
    it built and traced for the first run, and gives a run in its own process' bits."""
    l2 = ("-p", "learner.l2=0.001")
    base = _helix(server, "run", config, "--store", tmp_path / "base", "--json", *l2)
    assert base.returncode == 0, base.stderr
    before = _status(server)["trainer"]["trainers"]
    edit = ("-p", "learner.learning_rate=0.2", "-p", "epochs=2", "-p", "learner.l2=0.01")
    edit += ("--materialize", "all")
    served = _helix(server, "run", config, "--store", tmp_path / "a", "--json", *edit)
    assert served.returncode == 0, served.stderr
    after = _status(server)["trainer"]["trainers"]
    assert (after["builds"], after["reuses"]) == (before["builds"], before["reuses"] + 1)
    alone = _helix(server, "run", config, "--store", tmp_path / "b", "--json", "--no-server", *edit)
    assert alone.returncode == 0, alone.stderr
    a, b = json.loads(served.stdout), json.loads(alone.stdout)
    assert a["metrics"] == b["metrics"]  # floats through JSON: bit for bit
    # Every stored table (predictions too: --materialize all), bit for bit.
    stored = sorted((tmp_path / "a" / "artifacts").rglob("*.parquet"))
    assert len(stored) == len(list((tmp_path / "b" / "artifacts").rglob("*.parquet")))
    for p in stored:
        twins = list((tmp_path / "b" / "artifacts").glob(f"{p.parts[-4]}/*/{p.parts[-2]}/{p.name}"))
        assert len(twins) == 1, p
        assert pq.read_table(p).equals(pq.read_table(twins[0])), p


@pytest.mark.ci
def test_tables_and_progress_reach_the_callers_streams(
    server: Path, config: Path, tmp_path: Path
) -> None:
    done = _helix(server, "run", config, "--store", tmp_path / "s")
    assert done.returncode == 0, done.stderr
    assert "metrics" in done.stdout and "accuracy" in done.stdout
    assert "training learner" in done.stderr
    # None of TensorFlow's native start-up or graph-rewrite lines (issue 13).
    assert [line for line in done.stderr.splitlines() if is_chatter(line)] == []


@pytest.mark.ci
def test_a_failing_run_fails_the_same_way(
    server: Path, make_config: object, census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    body = TINY_CENSUS.replace('F.Numeric("age")', 'F.Numeric("agee")')
    bad = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    done = _helix(server, "run", bad, "--store", tmp_path / "s")
    assert done.returncode == 1
    assert "error:" in done.stderr and "agee" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stale_server_is_not_used(server: Path, config: Path, tmp_path: Path) -> None:
    before = _status(server)["runs"]
    # TensorFlow reads TF_* variables when it is imported: the server cannot honour a change.
    done = _helix(
        server, "run", config, "--store", tmp_path / "s", "--json", TF_CPP_MAX_VLOG_LEVEL="0"
    )
    assert done.returncode == 0, done.stderr
    assert "not using the helix-tf server" in done.stderr
    assert json.loads(done.stdout)["metrics"]
    assert _status(server)["runs"] == before


def _spare(server_dir: Path, *, other_than: object = None) -> int:
    """The pid of the server's spare (other than ``other_than``): forked between runs, so
    it may take a moment after a run has ended."""
    deadline = time.monotonic() + 120
    while True:
        pid = _status(server_dir)["spare_pid"]
        if isinstance(pid, int) and pid != other_than:
            os.kill(pid, 0)  # alive
            return pid
        assert time.monotonic() < deadline, f"no spare run process (status says {pid})"
        time.sleep(0.2)


@pytest.mark.ci
def test_a_run_is_handed_to_the_process_forked_for_it_ahead(
    server: Path, config: Path, tmp_path: Path
) -> None:
    """The server keeps the next run's process forked (its spare): a run goes to it, and
    a new spare is forked once no run is in progress; a spare that died is replaced by
    a fork at the request, and the run is served all the same."""
    spare = _spare(server)
    before = _status(server)["runs"]
    served = _helix(server, "run", config, "--store", tmp_path / "a", "--json")
    assert served.returncode == 0, served.stderr
    assert _status(server)["runs"] == before + 1
    deadline = time.monotonic() + 120  # the server logs a run's end once it has reaped it
    while f"run {spare} (run " not in (server.parent / "server.log").read_text():
        assert time.monotonic() < deadline, "the run was not the spare's"
        time.sleep(0.2)
    os.kill(_spare(server, other_than=spare), signal.SIGKILL)
    again = _helix(server, "run", config, "--store", tmp_path / "b", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["metrics"] == json.loads(served.stdout)["metrics"]
    assert _status(server)["runs"] == before + 2
    _spare(server)


@pytest.mark.ci
def test_two_runs_at_once_are_served_side_by_side(
    server: Path, config: Path, tmp_path: Path
) -> None:
    before = _status(server)["runs"]
    clients = [
        subprocess.Popen(
            [*CLIENT, "run", str(config), "--store", str(tmp_path / f"s{i}"), "--json"],
            env=_env(server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [c.communicate(timeout=300) for c in clients]
    assert [c.returncode for c in clients] == [0, 0], [err for _, err in outs]
    first, second = (json.loads(out) for out, _ in outs)
    assert first["metrics"] == second["metrics"]
    assert _status(server)["runs"] == before + 2


@pytest.mark.ci
def test_status_says_when_the_server_is_stale(server: Path) -> None:
    assert _status(server)["stale"] is False
    done = _helix(server, "server", "status", "--json", TF_CPP_MAX_VLOG_LEVEL="0")
    assert json.loads(done.stdout)["stale"] is True
    assert json.loads(done.stdout)["stale_reasons"] == ["environment"]
    text = _helix(server, "server", "status", TF_CPP_MAX_VLOG_LEVEL="0").stdout
    assert "would refuse runs from here: the TF_*/OMP_*/PYTHON* variables differ" in text


@pytest.mark.ci
def test_status_shows_pid_uptime_runs_memory_and_runs_in_progress(server: Path) -> None:
    status = _status(server)
    assert status["pid"] and status["uptime_seconds"] >= 0  # type: ignore[operator]
    assert 100 * 2**20 < status["rss_bytes"] < 8 * 2**30  # type: ignore[operator]
    assert status["user_run_in_progress"] is False and status["in_progress"] == []
    text = _helix(server, "server", "status").stdout
    assert f"pid {status['pid']}" in text and "run(s) served" in text and "RSS" in text


@pytest.mark.ci
def test_the_idle_server_maps_no_pages_of_tensorflows_libraries(server: Path) -> None:
    # Importing TensorFlow touched ~330 MB of its libraries' pages; the server gives
    # them back (its runs and trainer are forks, which never shared those mappings).
    smaps = Path(f"/proc/{_status(server)['pid']}/smaps").read_text()
    libraries = [m for m in parse_smaps(smaps) if "tensorflow" in m.path]
    assert sum(m.rss_kb for m in libraries if m.path.endswith(".so.2")) > 0  # mapped
    assert sum(m.rss_kb for m in file_pages(libraries)) < 16 * 1024


@pytest.mark.ci
def test_ctrl_c_reaches_the_served_run(server: Path, config: Path, tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()  # the user-run mark is taken in an existing store folder
    client = subprocess.Popen(
        [*CLIENT, "run", str(config), "--store", str(tmp_path / "s"), "-p", "epochs=100000"],
        env=_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _status(server)["active"] == 0:
        assert client.poll() is None, client.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # The server reports the run's user-run mark (helix_tf.activity), taken once the
    # served `run` command starts, not a count of its own.
    deadline = time.monotonic() + 120
    while not _status(server)["user_run_in_progress"]:
        assert client.poll() is None, client.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    status = _status(server)
    assert [r["argv"][0] for r in status["in_progress"]] == ["run"]  # type: ignore[union-attr]
    assert [r["user_run"] for r in status["in_progress"]] == [True]  # type: ignore[union-attr]
    time.sleep(2.0)  # let it get into training
    client.send_signal(signal.SIGINT)
    client.communicate(timeout=60)
    assert client.returncode != 0
    deadline = time.monotonic() + 60
    while _status(server)["active"]:
        assert time.monotonic() < deadline, "the served run kept running after Ctrl-C"
        time.sleep(0.2)


def test_stop_removes_the_socket(tmp_path: Path) -> None:
    server_dir = tmp_path / "sock"
    start = _helix(server_dir, "server", "start", "--idle-timeout", "60")
    assert start.returncode == 0, start.stderr
    assert "started" in start.stdout
    status = _status(server_dir)
    assert status["running"]
    stop = _helix(server_dir, "server", "stop")
    assert stop.returncode == 0 and "stopping" in stop.stdout
    deadline = time.monotonic() + 60
    while list(server_dir.glob("*.sock")):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not _status(server_dir)["running"]
