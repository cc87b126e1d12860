"""Wall time per edit type with reuse against the same edit run from scratch.

For each edit (evaluation-only, learner parameter, one feature) on census ×N:
run the base config to fill a store, then the edited config against that store
(reuse), and the edited config against an empty store (scratch). Every run is a
whole `helix-tf run` process, timed from outside; both sides run in the same
invocation, alternating, median of --repeats.

    python -m benchmarks.edit_types --scale 10 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "configs" / "census_edits.py"

EDITS = {
    "evaluation-only (threshold 0.5 → 0.35)": ["-p", "threshold=0.35"],
    "learner parameter (l1 0 → 0.003)": ["-p", "learner.l1=0.003"],
    "one feature (education min_count 1 → 50)": ["-p", "education.min_count=50"],
}


def _run(store: str, scale: int, data_dir: str, extra: list[str]) -> tuple[float, dict]:
    cmd = [
        sys.executable,
        "-m",
        "helix_tf.cli",
        "run",
        str(CONFIG),
        "--json",
        "--store",
        store,
        "--data-dir",
        data_dir,
        "-p",
        f"scale={scale}",
        *extra,
    ]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return wall, json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)

    rows = []
    for label, extra in EDITS.items():
        reuse, scratch, states = [], [], {}
        for _ in range(args.repeats):
            with (
                tempfile.TemporaryDirectory() as base_store,
                tempfile.TemporaryDirectory() as empty,
            ):
                _run(base_store, args.scale, args.data_dir, [])  # the version before the edit
                wall, result = _run(base_store, args.scale, args.data_dir, extra)
                reuse.append(wall)
                states = {n["name"]: n["state"] for n in result["nodes"]}
                wall, _ = _run(empty, args.scale, args.data_dir, extra)
                scratch.append(wall)
            print(f"  {label}: reuse {reuse[-1]:.2f}s, scratch {scratch[-1]:.2f}s", flush=True)
        r, s = statistics.median(reuse), statistics.median(scratch)
        computed = sorted(n for n, st in states.items() if st == "compute")
        rows.append(
            {"edit": label, "reuse_s": r, "scratch_s": s, "speedup": s / r, "computed": computed}
        )

    print(f"\n### Edit types, census x{args.scale} (median of {args.repeats}, whole processes)\n")
    print("| edit | with reuse (s) | from scratch (s) | speedup | recomputed |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['edit']} | {row['reuse_s']:.2f} | {row['scratch_s']:.2f} | "
            f"{row['speedup']:.1f}x | {', '.join(row['computed'])} |"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"scale": args.scale, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
