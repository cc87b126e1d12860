"""Wall time per edit type with reuse against the same edit run from scratch.

For each edit (evaluation-only, learner parameter, one feature) on census ×N:

- reuse: run the base config to fill a store (not timed), then the edited config
  against that store;
- scratch: the edited config against an empty store.

Every timed run is a whole ``helix-tf run`` process, timed from spawn to exit
(``benchmarks._proc``). The two sides alternate within the invocation: repeat 0
runs reuse first, repeat 1 scratch first, and so on, so a drift in machine load
hits both alike. Reuse must never change a result: the metrics of the two sides
must be identical (to the bit) in every repeat, or the benchmark fails naming the
edit and the metric. Runs never use a warm ``helix-tf server`` the user may be
running (``HELIX_TF_SERVER=off``); with ``--server`` every run is handed to a
private one started for the benchmark.

    python -m benchmarks.edit_types --scale 10 --repeats 2 [--server] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._proc import REPO, run_helix_json
from benchmarks._server import warm_server

CONFIG = REPO / "benchmarks" / "configs" / "census_edits.py"

EDITS = {
    "evaluation-only (threshold 0.5 → 0.35)": ["-p", "threshold=0.35"],
    "learner parameter (l1 0 → 0.003)": ["-p", "learner.l1=0.003"],
    "one feature (education min_count 1 → 50)": ["-p", "education.min_count=50"],
}

SIDES = ("reuse", "scratch")

#: One timed run: (store folder, extra args) -> (process wall seconds, the run's JSON).
Runner = Callable[[str, list[str]], tuple[float, dict[str, Any]]]


class MetricsDiffer(Exception):
    """Reuse changed a result: the two sides' metrics differ."""


def side_order(repeat: int) -> tuple[str, str]:
    """Which side runs first in repeat ``repeat``: they alternate, reuse first in repeat 0.

    >>> [side_order(i) for i in range(3)]
    [('reuse', 'scratch'), ('scratch', 'reuse'), ('reuse', 'scratch')]
    """
    return SIDES if repeat % 2 == 0 else SIDES[::-1]


def metric_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Each metric that is not identical between the reuse (a) and scratch (b) sides.

    >>> metric_differences({"acc": 0.5, "f1": float("nan")}, {"acc": 0.5, "f1": float("nan")})
    []
    >>> metric_differences({"acc": 0.5}, {"acc": 0.5000001, "auc": 0.7})
    ['acc: reuse 0.5, scratch 0.5000001', 'auc: missing under reuse']
    """
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            out.append(f"{key}: missing under {'reuse' if key not in a else 'scratch'}")
            continue
        x, y = a[key], b[key]
        both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        if x != y and not both_nan:
            out.append(f"{key}: reuse {x!r}, scratch {y!r}")
    return out


def summarise(label: str, reuse: list[float], scratch: list[float]) -> dict[str, Any]:
    """Medians of both sides and their ratio (scratch / reuse: how much faster reuse is).

    >>> r = summarise("e", [1.0, 3.0, 2.0], [8.0, 6.0, 7.0])
    >>> r["reuse_s"], r["scratch_s"], r["speedup"]
    (2.0, 7.0, 3.5)
    """
    r, s = statistics.median(reuse), statistics.median(scratch)
    return {
        "edit": label,
        "reuse_s": r,
        "scratch_s": s,
        "speedup": s / r,
        "reuse_runs_s": reuse,
        "scratch_runs_s": scratch,
    }


def measure_edit(
    label: str, extra: list[str], repeats: int, run: Runner, base_args: list[str]
) -> dict[str, Any]:
    """Both sides of one edit, ``repeats`` times, alternating; metrics compared each time."""
    walls: dict[str, list[float]] = {side: [] for side in SIDES}
    states: dict[str, str] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as base_store, tempfile.TemporaryDirectory() as empty:
            got: dict[str, dict[str, Any]] = {}
            for side in side_order(i):
                if side == "reuse":
                    run(base_store, base_args)  # the version before the edit (not timed)
                    wall, result = run(base_store, extra)
                    states = {n["name"]: n["state"] for n in result["nodes"]}
                else:
                    wall, result = run(empty, extra)
                walls[side].append(wall)
                got[side] = result["metrics"]
            problems = metric_differences(got["reuse"], got["scratch"])
            if problems:
                raise MetricsDiffer(f"{label}, repeat {i}: " + "; ".join(problems))
            metrics = got["reuse"]
        print(
            f"  {label} (repeat {i}, {' first, '.join(side_order(i))} second): "
            f"reuse {walls['reuse'][-1]:.2f}s, scratch {walls['scratch'][-1]:.2f}s, "
            f"metrics identical",
            file=sys.stderr,
            flush=True,
        )
    row = summarise(label, walls["reuse"], walls["scratch"])
    row["computed"] = sorted(n for n, st in states.items() if st == "compute")
    row["metrics"] = metrics
    return row


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--server", action="store_true", help="hand every run to a warm server")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    common = ["--data-dir", args.data_dir, "-p", f"scale={args.scale}"]

    with contextlib.ExitStack() as stack:
        env = stack.enter_context(warm_server()) if args.server else None

        def run(store: str, extra: list[str]) -> tuple[float, dict[str, Any]]:
            m, out = run_helix_json([CONFIG, *common, *extra], store=store, env=env)
            return m.wall_s, out

        try:
            rows = [
                measure_edit(label, extra, args.repeats, run, []) for label, extra in EDITS.items()
            ]
        except MetricsDiffer as exc:
            print(f"error: reuse changed a result: {exc}", file=sys.stderr)
            return 3
    load = os.getloadavg()
    how = "warm server" if args.server else "a process per run, no server"
    print(
        f"\n### Edit types, census x{args.scale} (median of {args.repeats}, whole processes, "
        f"{how}; sides alternate; metrics identical; load average at the end "
        f"{load[0]:.1f})\n"
    )
    print("| edit | with reuse (s) | from scratch (s) | speedup | recomputed |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['edit']} | {row['reuse_s']:.2f} | {row['scratch_s']:.2f} | "
            f"{row['speedup']:.1f}x | {', '.join(row['computed'])} |"
        )
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "scale": args.scale,
                    "repeats": args.repeats,
                    "server": args.server,
                    "load_average_end": load,
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
