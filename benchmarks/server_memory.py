"""The warm server's resident memory when idle, and its growth over many served runs.

Run ``python -m benchmarks.server_memory --runs 200 [--scale 1] [--json out.json]``.

Starts a private server (``HELIX_TF_SERVER_DIR`` in a temporary folder), runs the
census config once exactly (served) so the store holds everything, then ``--runs``
more served runs of it: evaluation-only runs alternating with plans, each a fresh
client process. The server's RSS (``helix-tf server status --json``) is read when
it is ready, after the first run, and every ``--every`` runs; growth is the last
reading against the one after the first run (no leak: < 10%). Each run is a fork,
so the server itself should not grow at all. The server's trainer process (issue 9)
is read too; with ``--train`` every served run is a learning-rate edit, so the
trainer trains each time (its kept trainers are bounded: it should not grow either).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._server import warm_server

ROOT = Path(__file__).resolve().parents[1]
CLIENT = [sys.executable, "-c", "from helix_tf.cli import console_main; console_main()"]


def _helix(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CLIENT, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"helix-tf {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def _rss(env: dict[str, str]) -> int:
    return int(json.loads(_helix(env, "server", "status", "--json").stdout)["rss_bytes"])


def _reading(env: dict[str, str], runs: int) -> dict[str, Any]:
    """The server's RSS and its trainer's (0: no trainer) after ``runs`` runs."""
    status = json.loads(_helix(env, "server", "status", "--json").stdout)
    trainer = status.get("trainer") or {}
    return {
        "runs": runs,
        "rss_bytes": int(status["rss_bytes"]),
        "trainer_rss_bytes": int(trainer.get("rss_bytes", 0)),
        "trainers": trainer.get("trainers"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.server_memory")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument(
        "--train", action="store_true", help="every run a learning-rate edit (the trainer trains)"
    )
    args = ap.parse_args(argv)
    config = str(ROOT / "configs" / "census.py")
    with tempfile.TemporaryDirectory(prefix="helix-server-memory-") as tmp, warm_server() as env:
        store = ["--store", str(Path(tmp) / "store"), "-p", f"scale={args.scale}"]
        readings: list[dict[str, Any]] = [_reading(env, 0)]
        t0 = time.perf_counter()
        _helix(env, "run", config, *store)
        readings.append(_reading(env, 1))
        walls = []
        for i in range(2, args.runs + 1):
            t = time.perf_counter()
            if args.train:  # a new learning rate each time: trained, never loaded
                _helix(env, "run", config, *store, "-p", f"learner.learning_rate={0.01 + i * 1e-4}")
            else:
                _helix(env, "run" if i % 2 else "plan", config, *store)
            walls.append(time.perf_counter() - t)
            if i % args.every == 0 or i == args.runs:
                readings.append(_reading(env, i))
        after_first = readings[1]["rss_bytes"]
        report = {
            "runs": args.runs,
            "scale": args.scale,
            "load_avg": os.getloadavg(),
            "idle_rss_mb": round(readings[0]["rss_bytes"] / 2**20, 1),
            "rss_after_first_run_mb": round(after_first / 2**20, 1),
            "rss_last_mb": round(readings[-1]["rss_bytes"] / 2**20, 1),
            "growth": round(readings[-1]["rss_bytes"] / after_first - 1, 4),
            "trainer_rss_after_first_run_mb": round(readings[1]["trainer_rss_bytes"] / 2**20, 1),
            "trainer_rss_last_mb": round(readings[-1]["trainer_rss_bytes"] / 2**20, 1),
            "median_served_wall_s": round(sorted(walls)[len(walls) // 2], 3) if walls else None,
            "total_s": round(time.perf_counter() - t0, 1),
            "readings": readings,
        }
    print(
        f"server RSS idle {report['idle_rss_mb']} MB, after the first run "
        f"{report['rss_after_first_run_mb']} MB, after {args.runs} runs {report['rss_last_mb']} MB "
        f"(growth {report['growth']:+.1%}); trainer RSS after the first run "
        f"{report['trainer_rss_after_first_run_mb']} MB, last {report['trainer_rss_last_mb']} MB; "
        f"median served run {report['median_served_wall_s']} s"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
