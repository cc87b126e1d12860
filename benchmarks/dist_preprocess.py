"""Census preprocessing on remote-style workers: the in-process FnApiRunner against
PortableRunner with an external Beam worker pool (issue 14).

Each side is a whole ``helix-tf run benchmarks/configs/census_preprocess.py -p scale=N
--json --materialize all --store <fresh folder>`` process:

- local: ``--runner direct`` (FnApiRunner, one worker, in process);
- pool: ``--runner portable --beam-option=--environment_type=EXTERNAL
  --beam-option=--environment_config=localhost:PORT --beam-option=--direct_num_workers=W``,
  every DoFn in worker processes of ``python -m apache_beam.runners.worker.worker_pool_main``
  (started by this script with this interpreter first on PATH: the pool starts workers as
  ``python``).

Both runs must give the same node rows and fingerprints and the same stored examples
(every column of both splits, in row order, exactly); the script fails otherwise.
Reported: wall seconds of both, their ratio, peak RSS of each process tree (the pool's
workers are not in the run's tree: their peak is reported apart).

Reproduce::

    .venv/bin/python -m benchmarks.dist_preprocess --scale 100 --workers 2 [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks._proc import REPO, emit_report, machine_facts, run_helix_json
from helix_tf.engine import tables
from helix_tf.reuse.store import ArtifactStore

CONFIG = REPO / "benchmarks" / "configs" / "census_preprocess.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_pool(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                f"--service_port={port}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the worker pool did not start: {log.read_text()[-2000:]}")


def _examples(store: Path, fingerprint: str) -> dict[str, Any]:
    artifacts = ArtifactStore(str(store))
    manifest = artifacts.lookup(fingerprint)
    assert manifest is not None, "examples not kept"
    local = artifacts.open_local(manifest)
    return {s: tables.read_split(local, s).to_pydict() for s in ("train", "test")}  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="helix-dist-bench-"))
    env = {**os.environ, "HELIX_TF_SERVER": "off", "TF_CPP_MIN_LOG_LEVEL": "2"}
    common = [str(CONFIG), "-p", f"scale={a.scale}", "--materialize", "all"]
    pool, port = start_pool(work / "pool.log")
    pool_peak = 0
    try:
        local_m, local = run_helix_json(common, store=work / "local", env=env)
        t = time.perf_counter()
        pool_args = [
            "--runner",
            "portable",
            "--beam-option=--environment_type=EXTERNAL",
            f"--beam-option=--environment_config=localhost:{port}",
            f"--beam-option=--direct_num_workers={a.workers}",
        ]
        pool_m, remote = run_helix_json([*common, *pool_args], store=work / "pool", env=env)
        pool_wall = time.perf_counter() - t
        children = psutil.Process(pool.pid).children(recursive=True)
        pool_peak = sum(c.memory_info().rss for c in children if c.is_running())
        rows = {n["name"]: n["rows"] for n in local["nodes"]}
        fps = {n["name"]: n["fingerprint"] for n in local["nodes"]}
        assert rows == {n["name"]: n["rows"] for n in remote["nodes"]}, "rows differ"
        assert fps == {n["name"]: n["fingerprint"] for n in remote["nodes"]}, "fingerprints differ"
        ex = fps["examples"]
        same = _examples(work / "local", ex) == _examples(work / "pool", ex)
        assert same, "the stored examples differ"
        out = {
            "scale": a.scale,
            "workers": a.workers,
            "rows": rows,
            "examples_equal": same,
            "local_wall_s": round(local_m.wall_s, 2),
            "pool_wall_s": round(pool_m.wall_s, 2),
            "pool_over_local": round(pool_m.wall_s / local_m.wall_s, 3),
            "local_peak_rss_mb": round(local_m.peak_tree_rss_bytes / 2**20),
            "pool_driver_peak_rss_mb": round(pool_m.peak_tree_rss_bytes / 2**20),
            "pool_workers_rss_at_end_mb": round(pool_peak / 2**20),
            "pool_measured_wall_s": round(pool_wall, 2),
            **machine_facts(),
        }
    finally:
        pool.terminate()
        try:
            pool.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pool.kill()
        shutil.rmtree(work, ignore_errors=True)
    emit_report(out, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
