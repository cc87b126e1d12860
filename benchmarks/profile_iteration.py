"""Where one iteration's time goes: profile a ``helix-tf run`` of the iterative benchmark.

Run ``python -m benchmarks.profile_iteration --sequence census10 --iteration 8 --scale 1``.

It replays iterations ``0 … i-1`` of the sequence into an empty store (plain
``helix-tf run`` processes, as :mod:`benchmarks.iterative` runs them), copies the
store, runs iteration ``i`` once plainly (its wall time) and once under cProfile
(``cProfile.run`` around ``helix_tf.cli.run_cli(["run", …])``) on the copy, and times
the bare imports in fresh processes. It prints and writes (``--json``) a
breakdown: interpreter start, imports (TensorFlow/Keras, Beam, helix_tf), config
loading, planning, Beam pipeline, training, inference, evaluation, loading and
writing artifacts, next to the oracle's compute seconds for the iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.iterative import (
    SEQUENCES,
    SEQUENCES_DIR,
    find_data_dir,
    oracle_seconds,
    run_iteration,
    snapshot_helix_tf,
    summarize_run,
)

#: (label, file suffix, function name) of the profiled functions reported.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("all imports (cumulative, every module)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("helix-tf run command", "helix_tf/cli.py", "run"),
    ("  api.run", "helix_tf/api.py", "run"),
    (
        "    open session (config load, compile, fingerprints, store, metadata)",
        "helix_tf/_session.py",
        "open_loaded",
    ),
    ("      load config module", "helix_tf/config.py", "load_config"),
    ("    plan (cost model + max-flow)", "helix_tf/_planning.py", "plan_session"),
    ("    execute plan", "helix_tf/engine/execute.py", "execute_plan"),
    ("      preprocessing (one Beam pipeline)", "helix_tf/engine/_preprocess.py", "run"),
    ("        run_preprocessing", "helix_tf/engine/beam_pipeline.py", "run_preprocessing"),
    ("      train", "helix_tf/engine/_learning.py", "train"),
    (
        "        Keras/TensorFlow import (keras_models._k)",
        "helix_tf/components/keras_models.py",
        "_k",
    ),
    (
        "        train_model (build, compile, fit)",
        "helix_tf/components/keras_models.py",
        "train_model",
    ),
    ("        save_model", "helix_tf/components/keras_models.py", "save_model"),
    ("      load model", "helix_tf/components/keras_models.py", "load_model"),
    ("      predict", "helix_tf/engine/_learning.py", "predict"),
    ("        predict_scores", "helix_tf/components/keras_models.py", "predict_scores"),
    ("      load predictions", "helix_tf/engine/_inputs.py", "predictions"),
    ("      evaluate", "helix_tf/engine/_learning.py", "evaluate"),
    ("      artifact load (verify + open)", "helix_tf/engine/execute.py", "load"),
    ("      store commit (hash, move, manifest)", "helix_tf/reuse/store/_store.py", "commit"),
    ("      run cleanup", "helix_tf/engine/execute.py", "cleanup"),
)

IMPORTS = {
    "interpreter start (python -c pass)": "pass",
    "import helix_tf.cli": "import helix_tf.cli",
    "import helix_tf.api": "import helix_tf.api",
    "import apache_beam": "import apache_beam",
    "import tensorflow": "import tensorflow",
    "import keras": "import keras",
}


def time_imports(pythonpath: Path | None, cwd: Path, repeats: int = 2) -> dict[str, float]:
    """Best-of-``repeats`` wall seconds of each bare import in a fresh interpreter."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = {}
    for label, code in IMPORTS.items():
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, check=True
            )
            best = min(best, time.perf_counter() - t0)
        out[label] = round(best, 3)
    return out


def phase_times(prof: Path) -> tuple[float, dict[str, float], list[tuple[str, float]]]:
    """Profiled total, cumulative seconds per phase, and the top functions by cumulative time."""
    stats = pstats.Stats(str(prof))
    table = stats.stats  # type: ignore[attr-defined]
    phases: dict[str, float] = {}
    for label, suffix, func in PHASES:
        total = 0.0
        for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in table.items():
            if name == func and filename.replace(os.sep, "/").endswith(suffix):
                total += ct
        phases[label] = round(total, 3)
    top = sorted(
        (
            (f"{Path(fn).name}:{line}({name})", ct)
            for (fn, line, name), (_cc, _nc, _tt, ct, _c) in table.items()
        ),
        key=lambda x: -x[1],
    )[:40]
    return round(stats.total_tt, 3), phases, [(n, round(t, 3)) for n, t in top]  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_iteration")
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default="census10")
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--policy", choices=("helix", "all", "none"), default="helix")
    parser.add_argument("--out-dir", default=None, help="keep stores, logs and the .prof here")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)

    n = len(SEQUENCES[args.sequence]["iterations"])
    if not 0 <= args.iteration < n:
        print(f"error: --iteration must be in 0-{n - 1}", file=sys.stderr)
        return 2
    root = Path(args.out_dir or tempfile.mkdtemp(prefix="helix-profile-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    snap_dir = root / "snapshot"
    snapshot = snapshot_helix_tf(snap_dir)
    data_dir = find_data_dir(args.data_dir)
    store = root / "store"
    if store.exists():
        shutil.rmtree(store)
    store.mkdir()
    common = {
        "materialize": args.policy,
        "scale": args.scale,
        "data_dir": data_dir,
        "budget": None,
        "timeout": args.timeout,
        "log_dir": logs,
        "pythonpath": snap_dir,
        "cwd": root,
    }
    configs = [SEQUENCES_DIR / args.sequence / f"it{i:02d}.py" for i in range(n)]
    history = []
    for i in range(args.iteration):
        wall, result = run_iteration(configs[i], store=store, tag=f"replay-it{i:02d}", **common)
        history.append(summarize_run(wall, result, store))
        print(f"replayed it{i:02d}: {wall:.2f} s", flush=True)

    copy = root / "store-profiled"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(store, copy)
    wall, result = run_iteration(
        configs[args.iteration], store=store, tag=f"plain-it{args.iteration:02d}", **common
    )
    plain = summarize_run(wall, result, store)
    history.append(plain)
    oracle = oracle_seconds(history)[-1]

    prof = root / f"{args.sequence}-it{args.iteration:02d}-scale{args.scale}.prof"
    # cwd is the work folder, so helix_tf comes from the snapshot. run_cli rather than
    # `-m cProfile -m helix_tf.cli`: the console entry ends with os._exit once
    # TensorFlow is loaded, before cProfile could write its file.
    profiled_cmd = [
        sys.executable,
        "-c",
        "import cProfile, sys; from helix_tf.cli import run_cli; "
        f"cProfile.run('run_cli(sys.argv[1:])', {str(prof)!r})",
        "run",
        str(configs[args.iteration]),
        "--json",
        "--store",
        str(copy),
        "--materialize",
        args.policy,
        "-p",
        f"scale={args.scale}",
        *(["--data-dir", str(data_dir)] if data_dir else []),
    ]
    env = dict(os.environ, PYTHONPATH=str(snap_dir))
    t0 = time.perf_counter()
    proc = subprocess.run(profiled_cmd, cwd=root, env=env, capture_output=True, text=True)
    profiled_wall = time.perf_counter() - t0
    (logs / "profiled.stderr.txt").write_text(proc.stderr)
    if proc.returncode != 0:
        print(f"error: the profiled run failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return 2
    total, phases, top = phase_times(prof)
    imports = time_imports(snap_dir, root)

    report: dict[str, Any] = {
        "sequence": args.sequence,
        "iteration": args.iteration,
        "type": SEQUENCES[args.sequence]["iterations"][args.iteration].type,
        "scale": args.scale,
        "policy": args.policy,
        "helix_tf": snapshot,
        "plain_wall_seconds": round(wall, 3),
        "plain_helix_wall_seconds": plain["helix_wall_seconds"],
        "plain_states": plain["states"],
        "plain_node_seconds": {
            nd["name"]: {
                k: nd[k] for k in ("state", "compute_seconds", "load_seconds", "write_seconds")
            }
            for nd in plain["nodes"]
        },
        "oracle_seconds": oracle,
        "profiled_wall_seconds": round(profiled_wall, 3),
        "profiled_total_seconds": total,
        "phases_cumulative_seconds": phases,
        "bare_imports_seconds": imports,
        "top_cumulative": top,
        "profile": str(prof),
    }
    print(
        f"{args.sequence} it{args.iteration:02d} ({report['type']}) scale {args.scale}, "
        f"policy {args.policy}: process wall {wall:.2f} s (helix-tf's own wall "
        f"{plain['helix_wall_seconds']:.2f} s), oracle {oracle:.2f} s"
    )
    print(f"profiled process: wall {profiled_wall:.2f} s, inside the profiler {total:.2f} s")
    for label, secs in phases.items():
        print(f"  {label:<72} {secs:8.2f} s")
    print("bare imports in a fresh process (best of 2):")
    for label, secs in imports.items():
        print(f"  {label:<72} {secs:8.2f} s")
    print("per node (plain run):")
    for name, v in report["plain_node_seconds"].items():
        if v["state"] != "prune":
            print(
                f"  {name:<20} {v['state']:<8} compute {v['compute_seconds']:.2f} s, "
                f"load {v['load_seconds']:.2f} s, write {v['write_seconds']:.2f} s"
            )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json_path}")
    print(f"profile: {prof}  (python -m pstats {prof})")
    if not args.out_dir:
        for p in (store, copy, snap_dir):
            shutil.rmtree(p, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
