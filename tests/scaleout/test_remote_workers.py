"""The fused pipeline on workers in other processes (issue 14): PortableRunner with an
external worker pool, the closest offline stand-in for Dataflow's workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helix_tf import api
from helix_tf.engine import preprocess_steps
from tests.reuse.conftest import _free_port, _wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def _pool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The pool starts workers as ``python`` from PATH: this interpreter's folder first
    (with another python first on PATH the job hangs instead of failing)."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def start_pool(
    log: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                f"--service_port={port}",
            ],
            env=_pool_env(extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if not _wait_for_port(port, proc, timeout=60.0):
        proc.kill()
        pytest.fail(f"the Beam worker pool did not start; its log:\n{log.read_text()}")
    return proc, port


def stop_pool(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def worker_pool(tmp_path: Path) -> Iterator[int]:
    proc, port = start_pool(tmp_path / "pool.log")
    try:
        yield port
    finally:
        stop_pool(proc)


def pool_args(port: int) -> list[str]:
    return ["--environment_type=EXTERNAL", f"--environment_config=localhost:{port}"]


def _forbid_local_dofns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any DoFn that runs in this process fails the run: the work must happen elsewhere."""

    def here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a DoFn ran in the test process, not on a worker")

    for name in ("compute_batch", "read_split", "batch_partials"):
        monkeypatch.setattr(preprocess_steps, name, here)
    from helix_tf.engine import beam_pipeline, read_steps

    for name in ("compute_batch", "batch_partials"):
        monkeypatch.setattr(beam_pipeline, name, here)
    for name in ("plan", "shard", "finish", "split"):  # planning, reading, numbering shards
        monkeypatch.setattr(read_steps.SourceRead, name, here)


def _facts(result: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    return (
        {n.name: n.rows for n in result.nodes},
        {n.name: n.fingerprint for n in result.nodes},
        result.metrics,
    )


@pytest.mark.slow
@pytest.mark.ci
def test_census_pipeline_on_an_external_worker_pool_equals_the_local_run(
    udf_census_config: Path, store: str, worker_pool: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DoFns run in the pool's processes (the in-process ones are booby-trapped), rows,
    fingerprints and metrics equal the local runner's; the config's own function and the
    helper module beside it (importable nowhere on the workers) travel by value."""
    local = api.run(udf_census_config, store=store + "-local", runner="direct")
    with monkeypatch.context() as mp:
        _forbid_local_dofns(mp)
        remote = api.run(
            udf_census_config,
            store=store + "-pool",
            runner="portable",
            pipeline_args=pool_args(worker_pool),
        )
    assert {n.state for n in remote.nodes} == {"compute"}
    assert _facts(remote) == _facts(local)
    assert _facts(remote)[0]["examples"] == 900


@pytest.mark.slow
def test_a_whole_run_on_a_gs_store_with_remote_workers(
    tiny_census_config: Path,
    store: str,
    gcs_emulator: str,
    emulator_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gs:// store (the local GCS emulator) for the whole run: workers in other
    processes read the source and write every batch there; a second run loads it all."""
    from tests.scaleout.conftest import GCS_BUCKET

    pool_env = {
        k: v
        for k, v in emulator_env.items()
        if k not in os.environ or k.startswith(("STORAGE", "GCSFS", "NO_GCE"))
    }
    proc, port = start_pool(tmp_path / "pool.log", pool_env)
    try:
        local = api.run(tiny_census_config, store=store + "-local", runner="direct")
        url = f"gs://{GCS_BUCKET}/dist-run"
        with monkeypatch.context() as mp:
            _forbid_local_dofns(mp)
            remote = api.run(
                tiny_census_config,
                store=url,
                metadata=str(tmp_path / "meta.db"),
                runner="portable",
                pipeline_args=pool_args(port),
                materialize="all",
            )
        assert _facts(remote) == _facts(local)
        again = api.run(tiny_census_config, store=url, metadata=str(tmp_path / "meta.db"))
        assert {n.state for n in again.nodes} <= {"load", "prune"}
        assert again.metrics == local.metrics
    finally:
        stop_pool(proc)
