"""The census at scale end to end on this machine (issue 14): preprocessing, training
under a tf.distribute strategy (examples streamed from Parquet when they are large),
prediction and evaluation, in one ``helix-tf run`` process.

Reported: wall seconds, peak RSS of the run's process tree (psutil polling every 50 ms),
rows per node, and the share of the run's node seconds spent in preprocessing (source,
features, examples) vs training (the learner) vs the rest (predictions, evaluation).

Reproduce (×1000 = 32.6M training rows by ``replicate``)::

    nice -n 10 .venv/bin/python -m benchmarks.dist_scale --scale 1000 [--epochs N] [--json out.json]

Without ``--epochs`` the learner trains the config's epochs (5 in ``configs/census.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from benchmarks._proc import REPO, emit_report, machine_facts, run_helix_json

CONFIG = REPO / "configs" / "census.py"
PREPROCESSING = {"source", "preprocess"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=1000)
    ap.add_argument(
        "--epochs", type=int, default=None, help="learner epochs (default: the config's)"
    )
    ap.add_argument("--strategy", default="one-device")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="helix-scale-bench-"))
    env = {**os.environ, "HELIX_TF_SERVER": "off", "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [str(CONFIG), "-p", f"scale={a.scale}", "-p", f"learner.strategy={a.strategy}"]
    if a.epochs is not None:
        args += ["-p", f"learner.epochs={a.epochs}"]
    try:
        measured, result = run_helix_json(args, store=work / "store", env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds: dict[str, float] = {"preprocessing": 0.0, "training": 0.0, "other": 0.0}
    for node in result["nodes"]:
        part = (
            "preprocessing"
            if node["kind"] in PREPROCESSING
            else "training"
            if node["kind"] == "train"
            else "other"
        )
        seconds[part] += float(node["seconds"])
    total = sum(seconds.values()) or 1.0
    out = {
        "scale": a.scale,
        "epochs": a.epochs if a.epochs is not None else "the config's",
        "strategy": a.strategy,
        "rows": {n["name"]: n["rows"] for n in result["nodes"]},
        "wall_s": round(measured.wall_s, 1),
        "peak_rss_mb": round(measured.peak_tree_rss_bytes / 2**20),
        "node_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "share": {k: round(v / total, 3) for k, v in seconds.items()},
        "metrics": result.get("metrics"),
        **machine_facts(),
    }
    emit_report(out, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
