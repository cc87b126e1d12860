"""A served run's fixed cost, side by side: two code trees, each with its own warm server.

Run ``python -m benchmarks.profile_served --base /work/main --repeats 10``.

For each side (``--base`` and ``--mine``, folders put first on ``PYTHONPATH``) it
runs iterations ``0 … i-1`` of a sequence into a store with that side's code (no
server), starts that side's private warm server (:func:`benchmarks._server.warm_server`),
then runs iteration ``i`` ``--repeats`` times per side, alternating base, mine, mine,
base, each on a fresh copy of the side's store (the copy is not timed): the process
wall seconds of the ``helix-tf run`` client, helix's own timer (``wall_seconds`` of
``--json``) and the 1-minute load average before each run. With ``--profile DIR`` one
more run per side writes a cProfile of the served process (``HELIX_TF_PROFILE``) to
``DIR/{base,mine}.prof`` and prints a breakdown (:data:`PHASES`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._server import warm_server
from benchmarks.iterative import SEQUENCES_DIR, find_data_dir

#: (label, file suffix, function name): cumulative seconds reported from a profile.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("whole command (served process)", "helix_tf/cli.py", "_run_cli"),
    ("  run (api)", "helix_tf/api.py", "run"),
    ("    config load", "helix_tf/config.py", "load_config"),
    ("    compile", "helix_tf/compiler/graph.py", "compile_workflow"),
    ("    open metadata database", "helix_tf/reuse/metadata/_database.py", "__init__"),
    ("    plan", "helix_tf/api.py", "_plan"),  # before the split of api.py
    ("    plan", "helix_tf/_planning.py", "plan_session"),
    ("    execute", "helix_tf/engine/execute.py", "execute_plan"),
    ("    metadata: start run", "helix_tf/reuse/metadata/_store.py", "start_run"),
    ("    metadata: record run", "helix_tf/_recording.py", "record_run"),
    ("  SQLAlchemy statement compilation", "sqlalchemy/sql/compiler.py", "__init__"),
    ("  rich tables (every console print)", "rich/console.py", "print"),
    ("  imports during the run", "<frozen importlib._bootstrap>", "_find_and_load"),
)


def _env(pythonpath: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HELIX_TF_SERVER"}
    env["PYTHONPATH"] = str(pythonpath)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _command(
    config: Path, store: Path, scale: int, data_dir: Path | None, *, as_json: bool = True
) -> list[str]:
    cmd = [sys.executable, "-m", "helix_tf", "run", str(config), *(["--json"] * as_json)]
    cmd += ["--store", str(store), "-p", f"scale={scale}"]
    return cmd + (["--data-dir", str(data_dir)] if data_dir is not None else [])


#: helix's own timer in the last line of a run's tables ("… pruned in 0.16s").
_OWN_TIMER = re.compile(r"pruned in ([0-9.]+)s")


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of ``cmd`` and its result: the ``--json`` output, or the own timer."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or "not using the helix-tf server" in proc.stderr:
        raise RuntimeError(
            f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    if "--json" in cmd:
        return wall, json.loads(proc.stdout)
    found = _OWN_TIMER.findall(proc.stdout + proc.stderr)
    return wall, {"wall_seconds": float(found[-1]) if found else None, "nodes": []}


def phase_times(prof: Path) -> dict[str, float]:
    """Cumulative seconds of each of :data:`PHASES` in the cProfile file ``prof``."""
    table = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    out = {}
    for label, suffix, func in PHASES:
        total = 0.0
        for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in table.items():
            if name == func and filename.replace(os.sep, "/").endswith(suffix):
                total += ct
        out[label] = round(out.get(label, 0.0) + total, 3)
    return out


@contextlib.contextmanager
def _side(
    name: str, code: Path, prior: list[Path], work: Path, scale: int, data_dir: Path | None
) -> Iterator[tuple[dict[str, str], Path]]:
    """The side's prepared store and its warm server's environment."""
    env = _env(code)
    store = work / f"{name}-store"
    for config in prior:  # the store the measured iteration finds, built without a server
        _run(_command(config, store, scale, data_dir), {**env, "HELIX_TF_SERVER": "off"}, work)
    with warm_server(extra_env={"PYTHONPATH": str(code)}, cwd=work) as server_env:
        yield server_env, store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=Path("/work/main"))
    parser.add_argument("--mine", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--sequence", default="census10")
    parser.add_argument("--iteration", type=int, default=1)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--profile", type=Path, default=None, help="folder for the cProfiles")
    parser.add_argument(
        "--profile-clock",
        choices=["wall", "cpu"],
        default="cpu",
        help="what the cProfiles count (cpu: the served process' CPU seconds, which load "
        "does not inflate as it does wall seconds)",
    )
    parser.add_argument("--sides", default="base,mine", help="which sides to run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--tables", action="store_true", help="measured runs print tables (not --json)"
    )
    args = parser.parse_args(argv)

    configs = sorted((SEQUENCES_DIR / args.sequence).glob("it*.py"))
    prior, measured = configs[: args.iteration], configs[args.iteration]
    data_dir = find_data_dir(args.data_dir)
    sides = [s for s in args.sides.split(",") if s]
    code = {"base": args.base.resolve(), "mine": args.mine.resolve()}
    work = Path(tempfile.mkdtemp(prefix="helix-bench-served-"))
    rows: list[dict[str, Any]] = []
    profiles: dict[str, dict[str, float]] = {}
    try:
        with contextlib.ExitStack() as stack:
            ready = {
                s: stack.enter_context(_side(s, code[s], prior, work, args.scale, data_dir))
                for s in sides
            }
            order = [sides[0], *sides[1:], *sides[1:], sides[0]] if len(sides) > 1 else sides
            for round_ in range(-(-args.repeats * len(sides) // len(order))):
                for side in order:
                    env, store = ready[side]
                    copy = work / f"copy-{side}-{round_}-{len(rows)}"
                    shutil.copytree(store, copy)
                    load = os.getloadavg()[0]
                    cmd = _command(measured, copy, args.scale, data_dir, as_json=not args.tables)
                    wall, result = _run(cmd, env, work)
                    rows.append(
                        {
                            "side": side,
                            "wall_seconds": round(wall, 4),
                            "helix_wall_seconds": result.get("wall_seconds"),
                            "load_average": round(load, 2),
                            "states": sorted({n["state"] for n in result["nodes"]}),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
                    shutil.rmtree(copy, ignore_errors=True)
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                for side in sides:
                    env, store = ready[side]
                    copy = work / f"copy-{side}-profile"
                    shutil.copytree(store, copy)
                    prof = (args.profile / f"{side}.prof").resolve()
                    _run(
                        _command(measured, copy, args.scale, data_dir, as_json=not args.tables),
                        {
                            **env,
                            "HELIX_TF_PROFILE": str(prof),
                            "HELIX_TF_PROFILE_CLOCK": args.profile_clock,
                        },
                        work,
                    )
                    profiles[side] = phase_times(prof)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {}
    for side in sides:
        walls = [r["wall_seconds"] for r in rows if r["side"] == side]
        own = [r["helix_wall_seconds"] for r in rows if r["side"] == side]
        loads = [r["load_average"] for r in rows if r["side"] == side]
        summary[side] = {
            "runs": len(walls),
            "wall_median": round(statistics.median(walls), 3),
            "wall_min": round(min(walls), 3),
            "helix_median": round(statistics.median(own), 3),
            "load_range": [min(loads), max(loads)],
        }
        print(f"{side}: {json.dumps(summary[side])}")
    for label in dict.fromkeys(label for label, _s, _f in PHASES) if profiles else ():
        print(f"{label:<40}" + "".join(f"{profiles[s][label]:>10.3f}" for s in sides))
    if args.json is not None:
        report = {
            "args": vars(args)
            | {
                "base": str(args.base),
                "mine": str(args.mine),
                "profile": str(args.profile),
                "json": str(args.json),
            },
            "runs": rows,
            "summary": summary,
            "profiles": profiles,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
