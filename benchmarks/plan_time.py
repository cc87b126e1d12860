"""Time the max-flow reuse planner on random layered DAGs.

Run ``python -m benchmarks.plan_time [--sizes 100 1000 10000 100000] [--json out.json]``.

Each graph is a seeded random layered DAG: about ``sqrt(n)`` layers, every node
reads 1-3 nodes of earlier layers (in-degree <= 3), ~30% of nodes have a stored
artifact (are loadable) and a few nodes of the last layer are outputs. The time
measured is one call of :func:`helix_tf.reuse.solver.solve_reuse_plan`, validation
included; the median of 3 runs is reported for graphs up to 10k nodes, one run
above.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np

from helix_tf.reuse.solver import PlanNode, solve_reuse_plan

DEFAULT_SIZES = (100, 1000, 10_000, 100_000)
#: Seconds the planner should take at a size (targets from the project brief).
TARGETS_S = {10_000: 0.5, 100_000: 10.0}


def make_layered_dag(n: int, *, seed: int = 0) -> list[PlanNode]:
    """Build a random layered DAG of ``n`` nodes.

    Parameters
    ----------
    n : int
        Number of nodes.
    seed : int, default 0
        Seed of the random generator; the same seed gives the same graph.

    Returns
    -------
    list of PlanNode
        Nodes in layer order; first-layer nodes are sources.
    """
    rng = np.random.default_rng(seed)
    n_layers = max(2, round(math.sqrt(n)))
    layer_of = np.sort(rng.integers(0, n_layers, size=n))
    layer_of[0] = 0
    first_of_layer = np.searchsorted(layer_of, np.arange(n_layers + 1))
    compute = rng.lognormal(mean=0.0, sigma=1.5, size=n)
    loadable = rng.random(n) < 0.3
    load = rng.lognormal(mean=-1.0, sigma=1.5, size=n)
    n_outputs = max(1, min(10, n // 100))
    last = int(layer_of[-1])
    outputs = set(
        rng.choice(np.arange(first_of_layer[last], n), size=n_outputs, replace=False).tolist()
        if n - first_of_layer[last] >= n_outputs
        else range(n - n_outputs, n)
    )
    nodes = []
    for i in range(n):
        earlier = int(first_of_layer[layer_of[i]])  # nodes 0..earlier-1 are in earlier layers
        if earlier == 0:
            inputs: tuple[str, ...] = ()
        else:
            k = int(rng.integers(1, 4))
            # Mostly read the previous layer or two, sometimes anything earlier.
            low = max(0, earlier - 3 * max(1, n // n_layers)) if rng.random() < 0.8 else 0
            picks = rng.integers(low, earlier, size=k)
            inputs = tuple(f"n{p}" for p in sorted(set(picks.tolist())))
        nodes.append(
            PlanNode(
                name=f"n{i}",
                inputs=inputs,
                compute_cost=float(compute[i]),
                load_cost=float(load[i]) if loadable[i] else None,
                output=i in outputs,
            )
        )
    return nodes


def time_plan(nodes: Sequence[PlanNode], *, repeats: int) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``solve_reuse_plan``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        solve_reuse_plan(nodes)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    rows = []
    for n in args.sizes:
        nodes = make_layered_dag(n, seed=args.seed)
        repeats = 3 if n <= 10_000 else 1
        seconds = time_plan(nodes, repeats=repeats)
        plan = solve_reuse_plan(nodes)
        counts = {s: sum(v == s for v in plan.states.values()) for s in ("compute", "load")}
        target = TARGETS_S.get(n)
        rows.append(
            {
                "nodes": n,
                "edges": sum(len(nd.inputs) for nd in nodes),
                "seconds": seconds,
                "repeats": repeats,
                "target_s": target,
                "meets_target": None if target is None else seconds < target,
                "compute": counts["compute"],
                "load": counts["load"],
            }
        )

    out = sys.stdout
    out.write("| nodes | edges | seconds | target | compute | load |\n")
    out.write("|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        target = "—" if r["target_s"] is None else f"< {r['target_s']:g} s"
        mark = "" if r["meets_target"] is None else (" ✓" if r["meets_target"] else " ✗")
        out.write(
            f"| {r['nodes']} | {r['edges']} | {r['seconds']:.4f} | {target}{mark} "
            f"| {r['compute']} | {r['load']} |\n"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"benchmark": "plan_time", "python": platform.python_version(), "results": rows},
                f,
                indent=2,
                sort_keys=True,
            )
    return 0 if all(r["meets_target"] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
