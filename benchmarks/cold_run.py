"""Cold ``helix-tf run`` of the census workflow against the same work written by hand.

Compared, each as a whole process timed from spawn to exit (imports, Beam
pipeline, Keras training, prediction, evaluation, everything):

- helix: ``helix-tf run configs/census.py --json --store <fresh empty folder>
  --materialize none`` (a first run: nothing to reuse, nothing kept);
- handwritten: ``python benchmarks/handwritten_census.py``: the same Beam
  preprocessing (one pipeline, in-process FnApiRunner, 1 worker, 50k-row pandas
  batches, Parquet out; the CSVs read with pyarrow, only the columns used, as
  helix_tf reads them) and the same Keras linear model, without helix_tf.

Both sides end the same way, and each way is measured (``--exit both``, the
default): *fast*, output flushed then ``os._exit`` (what the ``helix-tf``
console script does once TensorFlow or Beam is loaded; the script gets
``--fast-exit``), and *normal*, the interpreter's full teardown (helix through
``python -c "...sys.exit(run_cli(argv))"``, the script as is). The four kinds
of process run in an order that reverses every repeat (so drift hits all
alike) after one untimed warm-up of each; per exit mode the medians of
``--repeats`` runs each are reported with their ratio (target: helix /
handwritten <= 1.05x), the median of the per-repeat ratios and the CPU seconds
of each (both steadier than wall time when other work shares the machine), the
peak RSS of each process tree, the in-process time of the main phases, and
both test accuracies and AUCs (they should agree to ~0.01). The load average
at the start and end is recorded.

With ``--auto-server`` each helix run is a user's first run of the console script:
no server running, the run starts one (stopped before the next measurement); only
the fast exit is measured then.

Reproduce::

    .venv/bin/python -m benchmarks.cold_run [--repeats 5] [--exit both] [--auto-server]
                                            [--json cold_run.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from benchmarks._proc import REPO, Measured, median, run_helix_json, run_measured
from benchmarks._server import auto_server

TARGET_RATIO = 1.05
DEFAULT_DATA = REPO / ".." / "shared" / "data"


#: ``--auto-server``: each helix run is a user's first run — no server running, the
#: run starts one (which is stopped before the next measurement).
AUTO_SERVER = [False]
EXIT_MODES = ("fast", "normal")
SIDES = ("helix", "handwritten")
#: ``helix-tf`` ending with the interpreter's normal teardown (no console script).
HELIX_NORMAL_EXIT = [
    sys.executable,
    "-c",
    "import sys; from helix_tf.cli import run_cli; sys.exit(run_cli(sys.argv[1:]))",
]


def run_order(repeat: int) -> list[tuple[str, str]]:
    """The (side, exit mode) processes of one repeat, in the order they run.

    Every side and mode once; the order reverses from one repeat to the next.

    >>> run_order(0)
    [('helix', 'fast'), ('handwritten', 'fast'), ('handwritten', 'normal'), ('helix', 'normal')]
    >>> run_order(1)[0]
    ('helix', 'normal')
    """
    order = [
        ("helix", "fast"),
        ("handwritten", "fast"),
        ("handwritten", "normal"),
        ("helix", "normal"),
    ]
    return order if repeat % 2 == 0 else order[::-1]


def run_helix(data_dir: str, _work: str, exit_mode: str) -> tuple[Measured, dict[str, Any]]:
    # A fresh, empty store every run (run_helix_json makes and removes it).
    args = ["configs/census.py", "--materialize", "none", "--data-dir", data_dir]
    if AUTO_SERVER[0]:  # the console script's first run (main() allows only --exit fast)
        with auto_server() as env:
            m, out = run_helix_json(args, env=env)
        if "started a warm server" not in m.stderr:
            raise RuntimeError(f"the first run did not start a server:\n{m.stderr[-2000:]}")
    else:
        m, out = run_helix_json(args, command=HELIX_NORMAL_EXIT if exit_mode == "normal" else None)
    nodes = {n["name"]: n for n in out["nodes"]}
    pre = [n for n in out["nodes"] if n["kind"] in ("source", "preprocess")]
    info = {
        "accuracy": out["metrics"]["accuracy"],
        "auc": out["metrics"]["auc"],
        "run_wall_s": out["wall_seconds"],  # helix's own wall, from config load to the end
        "preprocess_s": sum(n["seconds"] for n in pre),
        "train_s": nodes["learner"]["seconds"],
        "predict_s": nodes["predictions"]["seconds"],
        "evaluate_s": nodes["evaluation"]["seconds"],
    }
    # Phases comparable with the handwritten script's (see record()).
    info["outside_s"] = m.wall_s - info["run_wall_s"]  # interpreter, CLI imports, exit
    info["setup_s"] = info["run_wall_s"] - sum(n["seconds"] for n in out["nodes"])
    info["train_total_s"] = info["train_s"]
    info["predict_total_s"] = info["predict_s"] + info["evaluate_s"]
    return m, info


def run_handwritten(data_dir: str, work: str, exit_mode: str) -> tuple[Measured, dict[str, Any]]:
    out_dir = tempfile.mkdtemp(prefix="hand-", dir=work)
    try:
        m = run_measured(
            [
                sys.executable,
                REPO / "benchmarks" / "handwritten_census.py",
                "--data-dir",
                os.path.join(data_dir, "census"),
                "--out",
                out_dir,
                *(["--fast-exit"] if exit_mode == "fast" else []),
            ],
            cwd=REPO,
        ).check()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    info = json.loads(m.stdout.strip().splitlines()[-1])
    info["outside_s"] = m.wall_s - info["in_process_s"]  # interpreter start, exit
    info["setup_s"] = info["imports_s"]
    info["predict_total_s"] = info["predict_s"]
    info["train_total_s"] = (
        info["in_process_s"] - info["imports_s"] - info["preprocess_s"] - info["predict_s"]
    )
    return m, info


def record(m: Measured, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "peak_tree_rss_mb": m.peak_tree_rss_bytes / 2**20,
        "maxrss_mb": m.maxrss_bytes / 2**20,
        **info,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    out = {f"median_{k}": median([r[k] for r in runs]) for k in keys}
    out["min_wall_s"] = min(r["wall_s"] for r in runs)
    out["max_wall_s"] = max(r["wall_s"] for r in runs)
    return out


def compare(helix: list[dict[str, Any]], hand: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios helix / handwritten of one exit mode: medians, per repeat, CPU, metrics.

    >>> runs = lambda *w: [{"wall_s": x, "cpu_s": x, "accuracy": 0.8, "auc": 0.9} for x in w]
    >>> c = compare(runs(2.0, 4.0, 3.0), runs(1.0, 2.0, 4.0))
    >>> c["ratio_median_wall"], c["ratio_pairs"], c["ratio_pairs_median"]
    (1.5, [2.0, 2.0, 0.75], 2.0)
    """
    h, w = summarise(helix), summarise(hand)
    pairs = [a["wall_s"] / b["wall_s"] for a, b in zip(helix, hand, strict=True)]
    return {
        "ratio_median_wall": h["median_wall_s"] / w["median_wall_s"],
        "ratio_pairs": pairs,
        "ratio_pairs_median": median(pairs),
        "ratio_median_cpu": h["median_cpu_s"] / w["median_cpu_s"],
        "accuracy_diff": h["median_accuracy"] - w["median_accuracy"],
        "auc_diff": h["median_auc"] - w["median_auc"],
        "helix": {"summary": h, "runs": helix},
        "handwritten": {"summary": w, "runs": hand},
    }


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for mode, block in result["exit_modes"].items():
        lines += ["", *_markdown_mode(result, mode, block).splitlines()]
    lines += [
        "",
        f"Load average (1 min) at the start {result['load_average_start'][0]:.2f}, "
        f"at the end {result['load_average_end'][0]:.2f}",
    ]
    return "\n".join(lines).strip("\n")


def _markdown_mode(result: dict[str, Any], mode: str, block: dict[str, Any]) -> str:
    h, w = block["helix"]["summary"], block["handwritten"]["summary"]
    how = {
        "fast": "both end with os._exit after flushing (helix-tf's console script)",
        "normal": "both end with the interpreter's full teardown",
    }[mode]
    lines = [
        f"Cold census run, whole processes, {mode} exit: {how}; median of "
        f"{result['repeats']} each (order reversed every repeat, {result['warmup']} "
        "warm-up each)",
        "",
        "| measure | helix-tf run | handwritten | helix / handwritten |",
        "|---|---:|---:|---:|",
        f"| wall, median (s) | {h['median_wall_s']:.2f} | {w['median_wall_s']:.2f} | "
        f"**{block['ratio_median_wall']:.3f}x** (target <= {TARGET_RATIO}x) |",
        f"| wall, min (s) | {h['min_wall_s']:.2f} | {w['min_wall_s']:.2f} | "
        f"{h['min_wall_s'] / w['min_wall_s']:.3f}x |",
        f"| wall, max (s) | {h['max_wall_s']:.2f} | {w['max_wall_s']:.2f} | |",
        f"| wall ratio of each repeat, median | | | {block['ratio_pairs_median']:.3f}x |",
        f"| CPU user+sys, median (s) | {h['median_cpu_s']:.2f} | {w['median_cpu_s']:.2f} | "
        f"{block['ratio_median_cpu']:.3f}x |",
        f"| peak RSS of process tree, median (MB) | {h['median_peak_tree_rss_mb']:.0f} | "
        f"{w['median_peak_tree_rss_mb']:.0f} | "
        f"{h['median_peak_tree_rss_mb'] / w['median_peak_tree_rss_mb']:.2f}x |",
        f"| phase: outside the timed code: interpreter start and exit; helix: + CLI imports "
        f"(s) | {h['median_outside_s']:.2f} | {w['median_outside_s']:.2f} | |",
        f"| phase: helix: run() outside its nodes (config, compile, plan, metadata, Beam "
        f"import); hand: imports (s) | {h['median_setup_s']:.2f} | {w['median_setup_s']:.2f} | |",
        f"| phase: preprocessing pipeline (s) | {h['median_preprocess_s']:.2f} | "
        f"{w['median_preprocess_s']:.2f} | |",
        f"| phase: training incl. Keras import (s) | {h['median_train_total_s']:.2f} | "
        f"{w['median_train_total_s']:.2f} | |",
        f"| phase: predict + evaluate (s) | {h['median_predict_total_s']:.2f} | "
        f"{w['median_predict_total_s']:.2f} | |",
        f"| test accuracy | {h['median_accuracy']:.4f} | {w['median_accuracy']:.4f} | "
        f"diff {block['accuracy_diff']:+.4f} |",
        f"| test AUC | {h['median_auc']:.4f} | {w['median_auc']:.4f} | "
        f"diff {block['auc_diff']:+.4f} |",
        "",
        "Per run (s): helix "
        + ", ".join(f"{r['wall_s']:.2f}" for r in block["helix"]["runs"])
        + "; handwritten "
        + ", ".join(f"{r['wall_s']:.2f}" for r in block["handwritten"]["runs"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument(
        "--exit",
        choices=(*EXIT_MODES, "both"),
        default="both",
        help="how both sides end: fast (os._exit), normal (teardown), or both (default)",
    )
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder holding census/")
    parser.add_argument("--json", dest="json_path", help="write the results here as JSON")
    parser.add_argument(
        "--auto-server",
        action="store_true",
        help="each helix run starts a warm server, as a user's first run does "
        "(the console script: fast exit only)",
    )
    args = parser.parse_args(argv)
    if args.auto_server and args.exit == "normal":
        parser.error("--auto-server measures the helix-tf console script, which exits fast")
    AUTO_SERVER[0] = args.auto_server
    data_dir = os.path.abspath(args.data_dir)
    modes = ("fast",) if args.auto_server else EXIT_MODES if args.exit == "both" else (args.exit,)
    runners = {"helix": run_helix, "handwritten": run_handwritten}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {
        (side, mode): [] for side in SIDES for mode in modes
    }
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="helix-cold-run-") as work:
        for _ in range(args.warmup):
            for side, mode in run_order(0):
                if mode in modes:
                    runners[side](data_dir, work, mode)
        for i in range(args.repeats):
            for side, mode in run_order(i):
                if mode not in modes:
                    continue
                m, info = runners[side](data_dir, work, mode)
                runs[side, mode].append(record(m, info))
                print(
                    f"run {i + 1}/{args.repeats} {side} ({mode} exit): {m.wall_s:.2f}s",
                    file=sys.stderr,
                )
    result: dict[str, Any] = {
        "benchmark": "cold_run",
        "repeats": args.repeats,
        "warmup": args.warmup,
        "auto_server": args.auto_server,
        "target_ratio": TARGET_RATIO,
        "exit_modes": {
            mode: compare(runs["helix", mode], runs["handwritten", mode]) for mode in modes
        },
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()},
        "platform": platform.platform(),
    }
    print(markdown(result))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    return result


if __name__ == "__main__":
    main()
