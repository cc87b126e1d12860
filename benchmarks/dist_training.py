"""One training process against two local workers (MultiWorkerMirroredStrategy), issue 14.

Same data (seeded, generated: a numeric and a 5-valued categorical input, a binary
label), same DNN learner (hidden 8, batch 256, seed 1), trained by
``keras_models.train_model``:

- one: ``strategy="one-device"``, one process;
- two: ``strategy="multi-worker"``, two processes on 127.0.0.1 (TF_CONFIG), each
  replica computing half of every global batch.

Reported: wall seconds of each (process spawn to exit; the two workers' slower one),
the largest absolute weight difference, the per-epoch losses. On one machine two
workers share the same cores, so this measures correctness and the coordination
overhead, not a speed-up.

Reproduce::

    .venv/bin/python -m benchmarks.dist_training --rows 200000 --epochs 2 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._proc import emit_report, machine_facts

REPO = Path(__file__).resolve().parents[1]


def train_worker(out: str, strategy: str, rows: int, epochs: int) -> None:
    """Train in this process; task 0 writes the weights (npz) and losses (json)."""
    from helix_tf.components import keras_models
    from helix_tf.components.learners import DNN

    rng = np.random.default_rng(0)
    x = {
        "a": rng.normal(size=(rows, 1)).astype(np.float32),
        "c": rng.integers(0, 5, size=(rows, 1)).astype(np.int32),
    }
    y = ((x["a"][:, 0] + (x["c"][:, 0] == 2)) > 0.5).astype(np.float32)
    features = [{"name": "a", "kind": "numeric"}, {"name": "c", "kind": "categorical", "size": 5}]
    learner = DNN(hidden=(8,), epochs=epochs, batch_size=256, seed=1, strategy=strategy)
    losses: list[float] = []
    model, _ = keras_models.train_model(
        learner, features, x, y, on_epoch=lambda e, t, loss, s: losses.append(loss)
    )
    task = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
    if task == 0:
        np.savez(out, *model.get_weights())
        Path(out + ".json").write_text(json.dumps({"losses": losses}), encoding="utf-8")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(tf_config: dict[str, Any] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def run_workers(out: Path, strategy: str, n: int, rows: int, epochs: int) -> float:
    """Start ``n`` worker processes (TF_CONFIG when n > 1); the wall seconds of all."""
    cmd = [sys.executable, "-m", "benchmarks.dist_training", "--worker", str(out), strategy]
    cmd += ["--rows", str(rows), "--epochs", str(epochs)]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(n)]}
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            cmd,
            cwd=REPO,
            env=_env(
                {"cluster": cluster, "task": {"type": "worker", "index": i}} if n > 1 else None
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        for p in procs:
            _, err = p.communicate(timeout=1200)
            if p.returncode != 0:
                raise RuntimeError(f"a training worker failed:\n{err[-3000:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return time.perf_counter() - t0


def load_weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as found:
        return [found[k] for k in sorted(found.files, key=lambda k: int(k.split("_")[1]))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", nargs=2, metavar=("OUT", "STRATEGY"), default=None)
    a = ap.parse_args(argv)
    if a.worker:
        train_worker(a.worker[0], a.worker[1], a.rows, a.epochs)
        return 0
    work = Path(tempfile.mkdtemp(prefix="helix-dist-train-"))
    one_s = run_workers(work / "one.npz", "one-device", 1, a.rows, a.epochs)
    two_s = run_workers(work / "two.npz", "multi-worker", 2, a.rows, a.epochs)
    w1, w2 = load_weights(work / "one.npz"), load_weights(work / "two.npz")
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(w1, w2, strict=True))
    out = {
        "rows": a.rows,
        "epochs": a.epochs,
        "one_process_wall_s": round(one_s, 2),
        "two_workers_wall_s": round(two_s, 2),
        "max_abs_weight_difference": diff,
        "losses_one": json.loads((work / "one.npz.json").read_text())["losses"],
        "losses_two": json.loads((work / "two.npz.json").read_text())["losses"],
        **machine_facts(),
    }
    emit_report(out, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
