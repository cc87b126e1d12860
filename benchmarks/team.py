"""Team mode: four people on one shared store and PostgreSQL database, against four alone.

Run ``python -m benchmarks.team --sequence census10 --scale 10 --json out.json``
(options: ``--members 4``, ``--iterations 0-10``, ``--data-dir DIR``).

Each simulated member runs the whole sequence (``benchmarks/sequences/<name>/it00.py``
… ``it10.py``, one ``helix-tf run`` process per iteration, as a person runs it, with
``HELIX_TF_USER=memberN``); the members start together and run side by side. With
``--order rotated`` (the default) member k starts at a different point of the
sequence (k × 11 / members iterations in, wrapping around), as colleagues working on
different versions of one pipeline do; ``--order lockstep`` runs the same iteration
at the same moment everywhere: a member that plans a node another member is already
computing waits for it and loads it (helix_tf._inflight); with
``HELIX_TF_WAIT_FOR_COLLEAGUES=0`` nothing coordinates computations in flight and
lockstep members compute the same nodes side by side (an upper bound on duplication).
``--setups team`` skips the members-alone setup.

- **team**: one store folder and one PostgreSQL database (a throwaway server started
  by the benchmark, as the tests start theirs: ``tests/_postgres.py``), named once
  through ``HELIX_TF_METADATA``;
- **alone**: each member has their own store and their own SQLite database (they
  still run side by side on this machine, so both setups share the same CPUs).

Reported per setup: the makespan (wall time until the last member is done), the sum
of every node's measured compute seconds (the compute the setup paid for), the node
executions (compute + load) and, for the team, the share of them served by another
member's work (a load of a result that this member had not itself materialized in an
earlier iteration). During the team setup a probe client measures the latency of the
metadata operations a run makes (the planner's reads: compute history, load
throughput, versions; a run's writes: start, record nodes, finish) against the same
database every 0.25 s: p50 and p95 under that load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.iterative import (
    REPO,
    BenchmarkError,
    find_data_dir,
    helix_tf_command,
    machine_info,
    parse_iterations,
)


def _run(config: Path, store: Path, env: dict[str, str], args: Sequence[str]) -> dict[str, Any]:
    cmd = [*helix_tf_command(), "run", str(config), "--json", "--store", str(store), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise BenchmarkError(f"`{' '.join(cmd)}` failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout[proc.stdout.find("{") :])
    # The run waited for a colleague's computation in flight (helix_tf._inflight).
    result["waited"] = "waiting up to" in proc.stderr
    return result


def _member(
    name: str, configs: list[Path], store: Path, env: dict[str, str], args: Sequence[str]
) -> list[dict[str, Any]]:
    """One member's sequence, in order: each run's nodes and process wall time."""
    runs = []
    for config in configs:
        t0 = time.perf_counter()
        result = _run(config, store, env, args)
        runs.append(
            {
                "member": name,
                "config": config.name,
                "wall_seconds": round(time.perf_counter() - t0, 3),
                "waited": result["waited"],
                "nodes": [
                    {k: n.get(k) for k in ("name", "state", "compute_seconds", "fingerprint")}
                    | {"materialized": bool(n.get("materialized"))}
                    for n in result["nodes"]
                ],
            }
        )
    return runs


def _together(jobs: dict[str, Callable[[], list[dict[str, Any]]]]) -> tuple[float, list[Any]]:
    """Run the members' jobs at once (threads driving processes); makespan and runs."""
    out: dict[str, list[dict[str, Any]]] = {}
    errors: list[BaseException] = []

    def work(name: str, job: Callable[[], list[dict[str, Any]]]) -> None:
        try:
            out[name] = job()
        except BaseException as exc:
            errors.append(exc)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0, [run for name in sorted(out) for run in out[name]]


def summarize(runs: list[dict[str, Any]], makespan: float) -> dict[str, Any]:
    """Compute paid, node executions, and those served by another member's work."""
    executions = served = loads = computes = 0
    own: dict[str, set[str]] = {}  # member -> fingerprints it materialized so far
    compute_seconds = 0.0
    for run in runs:  # each member's runs are in its own order
        mine = own.setdefault(run["member"], set())
        for n in run["nodes"]:
            if n["state"] == "compute":
                computes += 1
                compute_seconds += n["compute_seconds"] or 0.0
                if n["materialized"]:
                    mine.add(n["fingerprint"])
            elif n["state"] == "load":
                loads += 1
                served += n["fingerprint"] not in mine
        executions = computes + loads
    return {
        "makespan_seconds": round(makespan, 1),
        "process_seconds": round(sum(r["wall_seconds"] for r in runs), 1),
        "compute_seconds": round(compute_seconds, 1),
        "runs": len(runs),
        "node_computes": computes,
        "node_loads": loads,
        "served_by_another_member": served,
        "share_served_by_another": round(served / executions, 3) if executions else 0.0,
        "runs_that_waited_for_a_colleague": sum(bool(r.get("waited")) for r in runs),
    }


class _Probe:
    """Times a run's metadata operations against ``url`` every ``every`` seconds."""

    def __init__(self, url: str, workflow: str, every: float = 0.25) -> None:
        self.url, self.workflow, self.every = url, workflow, every
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _time(self, op: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        self.samples.setdefault(op, []).append(time.perf_counter() - t0)
        return value

    def _loop(self) -> None:
        from helix_tf.reuse.metadata import MetadataStore, NodeRecord

        nodes = [
            NodeRecord(name=f"n{i}", kind="op", fingerprint="f", state="load") for i in range(13)
        ]
        with MetadataStore(self.url) as md:
            while not self._stop.wait(self.every):
                self._time("read: compute_history", lambda: md.compute_history(self.workflow))
                self._time("read: load_throughput", md.load_throughput)
                self._time("read: versions", lambda: md.versions(self.workflow))
                run = self._time(
                    "write: start_run",
                    lambda: md.start_run(
                        "team-probe", 1, approx=False, policy="helix", store_url="", params={}
                    ),
                )
                self._time("write: record_nodes", lambda run=run: md.record_nodes(run, nodes))
                self._time(
                    "write: finish_run",
                    lambda run=run: md.finish_run(run, status="ok", wall_seconds=0.0, metrics={}),
                )

    def latencies(self) -> dict[str, dict[str, float]]:
        out = {}
        for op, values in sorted(self.samples.items()):
            ordered = sorted(values)
            out[op] = {
                "n": len(ordered),
                "p50_ms": round(statistics.median(ordered) * 1000, 2),
                "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
            }
        return out


def member_orders(configs: list[Path], members: int, order: str) -> list[list[Path]]:
    """Each member's iterations: all the same (lockstep) or rotated start points."""
    if order == "lockstep":
        return [list(configs) for _ in range(members)]
    step = len(configs) / members
    return [configs[round(k * step) :] + configs[: round(k * step)] for k in range(members)]


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from tests._postgres import find_binaries

    folder = REPO / "benchmarks" / "sequences" / args.sequence
    configs = [folder / f"it{i:02d}.py" for i in parse_iterations(args.iterations, 11)]
    orders = dict(
        zip(
            [f"member{i}" for i in range(1, args.members + 1)],
            member_orders(configs, args.members, args.order),
            strict=True,
        )
    )
    data_dir = find_data_dir(args.data_dir)
    run_args = ["-p", f"scale={args.scale}", *(["--data-dir", str(data_dir)] if data_dir else [])]
    members = [f"member{i}" for i in range(1, args.members + 1)]
    base_env = {**os.environ, "HELIX_TF_SERVER": "off"}
    base_env.pop("HELIX_TF_METADATA", None)
    binaries = find_binaries()
    if binaries is None:
        raise BenchmarkError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    work = Path(tempfile.mkdtemp(prefix="helix-team-"))
    report: dict[str, Any] = {
        "benchmark": "team",
        "sequence": args.sequence,
        "scale": args.scale,
        "members": args.members,
        "order": args.order,
        "iterations": {m: [c.name for c in cs] for m, cs in orders.items()},
        "command": " ".join([sys.executable, "-m", "benchmarks.team", *sys.argv[1:]]),
        # How long a run may wait for a colleague's computation in flight (0: never).
        "wait_for_colleagues": os.environ.get("HELIX_TF_WAIT_FOR_COLLEAGUES", "default (600 s)"),
        "machine": machine_info(),
    }
    try:
        return _both_setups(report, members, orders, work, base_env, run_args, binaries, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _both_setups(
    report: dict[str, Any],
    members: list[str],
    orders: dict[str, list[Path]],
    work: Path,
    base_env: dict[str, str],
    run_args: list[str],
    binaries: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    from tests._postgres import running_server

    # Alone first, then the team (the team's runs find the data files in the page cache).
    alone = {
        m: (
            lambda m=m: _member(
                m, orders[m], work / f"{m}-store", {**base_env, "HELIX_TF_USER": m}, run_args
            )
        )
        for m in members
    }
    if args.setups == "both":
        makespan, runs = _together(alone)
        report["alone"] = summarize(runs, makespan)
    with running_server(binaries) as server:
        url = server.create_database("team")
        env = {**base_env, "HELIX_TF_METADATA": url}
        team_store = work / "team-store"
        jobs = {
            m: (
                lambda m=m: _member(m, orders[m], team_store, {**env, "HELIX_TF_USER": m}, run_args)
            )
            for m in members
        }
        with _Probe(url, args.sequence) as probe:
            makespan, runs = _together(jobs)
        report["team"] = summarize(runs, makespan)
        report["metadata_latency_under_team_load"] = probe.latencies()
    return report


def markdown(r: dict[str, Any]) -> str:
    t = r["team"]
    a = r.get("alone") or {key: "-" for key in t}
    rows = [
        ("makespan (s)", "makespan_seconds"),
        ("sum of run processes (s)", "process_seconds"),
        ("compute paid: sum of node compute seconds", "compute_seconds"),
        ("node computes", "node_computes"),
        ("node loads", "node_loads"),
        ("executions served by another member", "served_by_another_member"),
        ("share served by another member", "share_served_by_another"),
        ("runs that waited for a colleague's computation", "runs_that_waited_for_a_colleague"),
    ]
    lines = [
        f"# Team mode: {r['members']} members × {r['sequence']} at ×{r['scale']} ({r['order']})",
        "",
        f"`{r['command']}`",
        "",
        f"HELIX_TF_WAIT_FOR_COLLEAGUES: {r.get('wait_for_colleagues')}",
        "",
        "| | team (one store, one PostgreSQL) | alone (own store, own SQLite) |",
        "|---|---:|---:|",
        *[f"| {label} | {t[key]} | {a[key]} |" for label, key in rows],
        "",
        "Metadata operations under the team's load (probe client, same database):",
        "",
        "| operation | n | p50 (ms) | p95 (ms) |",
        "|---|---:|---:|---:|",
        *[
            f"| {op} | {v['n']} | {v['p50_ms']} | {v['p95_ms']} |"
            for op, v in r["metadata_latency_under_team_load"].items()
        ],
        "",
        f"Machine: {r['machine'].get('cpu')}, {r['machine'].get('cores')} cores.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.team", description=__doc__)
    parser.add_argument("--sequence", default="census10")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--iterations", default="0-10")
    parser.add_argument("--order", choices=["rotated", "lockstep"], default="rotated")
    parser.add_argument(
        "--setups",
        choices=["both", "team"],
        default="both",
        help="team: skip the members-alone setup (e.g. to compare HELIX_TF_WAIT_FOR_COLLEAGUES)",
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", required=True, help="Where to write the report (and .md).")
    args = parser.parse_args(argv)
    try:
        report = run_benchmark(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = Path(args.json)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    path.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
