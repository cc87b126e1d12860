"""Census preprocessing at scale: helix_tf's fused Beam pipeline against plain pandas.

Compared at census x10 and x100 (training rows replicated; the test split as is),
each as a whole process timed from spawn to exit:

- helix: ``helix-tf run benchmarks/configs/census_preprocess.py -p scale=N --json
  --store <fresh empty folder> --materialize none`` (DirectRunner, i.e. the
  in-process FnApiRunner with one worker; source + 8 features + examples, output
  the examples node only);
- pandas: ``python benchmarks/pandas_census_preprocess.py --scale N``: the same
  transforms in pandas/pyarrow (the CSVs read with pyarrow, only the columns
  used), same output.

The outputs are compared value for value at every scale: after the timed runs,
one untimed ``helix-tf run ... --materialize all`` of the same config and scale
keeps its examples in a store (the timed runs keep nothing), and every column
of both splits, in row order, must equal the pandas script's output of the last
timed run: vocabulary indices and labels exactly, the standardised float32
numbers to within ``FLOAT_TOLERANCE`` (the two compute the mean and standard
deviation in different orders of summation). Any difference fails the
benchmark, naming the scale, split and column.

Reported per scale: process wall seconds of both and their ratio (target:
helix / pandas <= 2x at x100); helix's own per-node seconds summed over the
source and preprocess nodes (they include the pipeline's launch and runner
overhead, shared out by measured work) against the pandas script's in-process
work seconds; CPU seconds (user + system) of each process, steadier than
wall time when other work shares the machine; and the peak RSS of each process
tree (psutil, polled every 50 ms; target for helix at x100: < 3 GB). With ``--repeats`` > 1 the runs alternate
and medians are reported.

Reproduce::

    .venv/bin/python -m benchmarks.preprocess_scale [--scales 10 100] [--repeats 1] [--json out.json]
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._proc import REPO, Measured, median, run_helix_json, run_measured
from helix_tf.engine import tables
from helix_tf.reuse.store import ArtifactStore
from helix_tf.types import LABEL, ROW_ID

TARGET_RATIO_X100 = 2.0
#: Largest absolute difference allowed between the two sides' standardised numbers.
FLOAT_TOLERANCE = 1e-5
SPLITS = ("train", "test")
TARGET_PEAK_RSS_BYTES_X100 = 3 * 10**9
DEFAULT_DATA = REPO / ".." / "shared" / "data"
CONFIG = "benchmarks/configs/census_preprocess.py"


def run_helix(scale: int, data_dir: str, batch_rows: int | None) -> dict[str, Any]:
    extra = ["--batch-rows", str(batch_rows)] if batch_rows else []
    # A fresh, empty store every run (run_helix_json makes and removes it).
    m, out = run_helix_json(
        [CONFIG, "-p", f"scale={scale}", "--materialize", "none", "--data-dir", data_dir, *extra]
    )
    nodes = {n["name"]: n for n in out["nodes"]}
    features = [n for n in out["nodes"] if n["kind"] == "preprocess" and n["name"] != "examples"]
    return {
        **_memory(m),
        "wall_s": m.wall_s,
        "run_wall_s": out["wall_seconds"],
        "nodes_s": sum(n["seconds"] for n in out["nodes"] if n["kind"] in ("source", "preprocess")),
        "source_s": nodes["rows"]["seconds"],
        "features_s": sum(n["seconds"] for n in features),
        "examples_s": nodes["examples"]["seconds"],
        "rows": nodes["examples"]["rows"],
        "bytes": nodes["examples"]["bytes"],
        "per_node_s": {n["name"]: n["seconds"] for n in out["nodes"]},
    }


def helix_examples(scale: int, data_dir: str, work: str) -> dict[str, pa.Table]:
    """The examples of an untimed run kept in a store: {split: table in row order}."""
    store = tempfile.mkdtemp(prefix="helix-verify-", dir=work)
    try:
        _, out = run_helix_json(
            [CONFIG, "-p", f"scale={scale}", "--materialize", "all", "--data-dir", data_dir],
            store=store,
        )
        node = next(n for n in out["nodes"] if n["name"] == "examples")
        artifacts = ArtifactStore(store)
        manifest = artifacts.lookup(node["fingerprint"])
        local = artifacts.open_local(manifest) if manifest is not None else None
        if local is None:
            raise RuntimeError(f"x{scale}: the examples of the verification run were not kept")
        found = {split: tables.read_split(local, split) for split in SPLITS}
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return {split: t.sort_by(ROW_ID) for split, t in found.items() if t is not None}


def pandas_examples(out_dir: str) -> dict[str, pa.Table]:
    """The pandas script's examples: {split: table in row order}."""
    return {
        split: pq.read_table(os.path.join(out_dir, "examples", f"{split}.parquet"))
        for split in SPLITS
    }


def compare_examples(
    helix: dict[str, pa.Table], pandas: dict[str, pa.Table], *, tolerance: float = FLOAT_TOLERANCE
) -> list[str]:
    """Every difference between the two sides' examples, one sentence each (none: equal).

    Splits, row counts and columns must match (helix's label column ``__label`` is the
    pandas ``label``; helix's row ids are left out); integer columns must be equal,
    floating-point ones within ``tolerance``.

    >>> h = {"test": pa.table({"__row": [1, 2], "age": pa.array([0.5, 1.0], pa.float32()),
    ...                        "sex": pa.array([0, 1], pa.int32()), "__label": [0, 1]})}
    >>> p = {"test": pa.table({"age": pa.array([0.5, 1.0], pa.float32()),
    ...                        "sex": pa.array([1, 1], pa.int32()), "label": [0, 1]})}
    >>> compare_examples(h, p)
    ['test/sex: 1 of 2 values differ (first at row 0: helix 0, pandas 1)']
    """
    problems = []
    for split in sorted(set(helix) | set(pandas)):
        if split not in helix or split not in pandas:
            problems.append(f"{split}: only {'helix' if split in helix else 'pandas'} has it")
            continue
        h = (
            helix[split]
            .drop_columns([ROW_ID])
            .rename_columns(
                [
                    "label" if c == LABEL else c
                    for c in helix[split].drop_columns([ROW_ID]).column_names
                ]
            )
        )
        p = pandas[split]
        if h.num_rows != p.num_rows:
            problems.append(f"{split}: helix has {h.num_rows} rows, pandas {p.num_rows}")
            continue
        if set(h.column_names) != set(p.column_names):
            problems.append(
                f"{split}: columns differ: helix {sorted(h.column_names)}, "
                f"pandas {sorted(p.column_names)}"
            )
            continue
        for column in p.column_names:
            a = h.column(column).to_numpy()
            b = p.column(column).to_numpy()
            if np.issubdtype(b.dtype, np.floating):
                bad = ~(np.abs(a.astype(np.float64) - b.astype(np.float64)) <= tolerance)
            else:
                bad = a.astype(np.int64) != b.astype(np.int64)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                problems.append(
                    f"{split}/{column}: {int(bad.sum())} of {len(b)} values differ "
                    f"(first at row {i}: helix {a[i].item()!r}, pandas {b[i].item()!r})"
                )
    return problems


def run_pandas(scale: int, data_dir: str, work: str, keep: str | None = None) -> dict[str, Any]:
    """One timed run of the pandas script; its output is kept in ``keep`` when given."""
    out_dir = keep or tempfile.mkdtemp(prefix="pandas-", dir=work)
    try:
        m = run_measured(
            [
                sys.executable,
                REPO / "benchmarks" / "pandas_census_preprocess.py",
                "--scale",
                str(scale),
                "--data-dir",
                os.path.join(data_dir, "census"),
                "--out",
                out_dir,
            ],
            cwd=REPO,
        ).check()
    finally:
        if keep is None:
            shutil.rmtree(out_dir, ignore_errors=True)
    info = json.loads(m.stdout.strip().splitlines()[-1])
    return {
        **_memory(m),
        "wall_s": m.wall_s,
        "work_s": info["work_s"],
        "rows": info["train_rows"] + info["test_rows"],
        "bytes": info["bytes"],
        "steps_s": {k: v for k, v in info.items() if k.endswith("_s")},
    }


def _memory(m: Measured) -> dict[str, float]:
    """Memory and CPU of a finished process."""
    return {
        "peak_tree_rss_bytes": m.peak_tree_rss_bytes,
        "maxrss_bytes": m.maxrss_bytes,
        "cpu_s": m.cpu_s,
    }


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in runs[0].items():
        if isinstance(v, int | float):
            out[k] = median([r[k] for r in runs])
    return out


def markdown(result: dict[str, Any]) -> str:
    gb = 1e9
    lines = [
        f"Census preprocessing only, whole processes (median of {result['repeats']})",
        "",
        "| scale | rows | helix wall (s) | pandas wall (s) | **helix / pandas** | "
        "helix CPU (s) | pandas CPU (s) | CPU ratio | "
        "helix preprocess nodes (s) | pandas work (s) | nodes / work | "
        "helix peak RSS (GB) | pandas peak RSS (GB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["scales"]:
        h, p = s["helix"]["median"], s["pandas"]["median"]
        lines.append(
            f"| x{s['scale']} | {int(h['rows']):,} | {h['wall_s']:.2f} | {p['wall_s']:.2f} | "
            f"**{s['ratio_wall']:.2f}x** | {h['cpu_s']:.2f} | {p['cpu_s']:.2f} | "
            f"{h['cpu_s'] / p['cpu_s']:.2f}x | {h['nodes_s']:.2f} | {p['work_s']:.2f} | "
            f"{s['ratio_work']:.2f}x | {h['peak_tree_rss_bytes'] / gb:.2f} | "
            f"{p['peak_tree_rss_bytes'] / gb:.2f} |"
        )
    lines += [
        "",
        "helix per node (s, median): "
        + "; ".join(
            f"x{s['scale']}: source {s['helix']['median']['source_s']:.2f}, "
            f"features {s['helix']['median']['features_s']:.2f}, "
            f"examples {s['helix']['median']['examples_s']:.2f}, "
            f"run wall {s['helix']['median']['run_wall_s']:.2f}"
            for s in result["scales"]
        ),
    ]
    top = next((s for s in result["scales"] if s["scale"] == 100), None)
    if top is not None:
        rss = top["helix"]["median"]["peak_tree_rss_bytes"]
        ratio_met = top["ratio_wall"] <= TARGET_RATIO_X100
        lines.append(
            f"Targets at x100: helix / pandas wall {top['ratio_wall']:.2f}x "
            f"(target <= {TARGET_RATIO_X100}x: {'met' if ratio_met else 'NOT met'}); "
            f"helix peak RSS {rss / gb:.2f} GB "
            f"(target < 3 GB: {'met' if rss < TARGET_PEAK_RSS_BYTES_X100 else 'NOT met'})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each per scale")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder holding census/")
    parser.add_argument("--batch-rows", type=int, help="helix --batch-rows (default: its own)")
    parser.add_argument("--json", dest="json_path", help="write the results here as JSON")
    args = parser.parse_args(argv)
    data_dir = os.path.abspath(args.data_dir)
    scales = []
    with tempfile.TemporaryDirectory(prefix="helix-preprocess-scale-") as work:
        for scale in args.scales:
            runs: dict[str, list[dict[str, Any]]] = {"helix": [], "pandas": []}
            pandas_out = os.path.join(work, f"pandas-x{scale}")
            for i in range(args.repeats):
                order = ["helix", "pandas"] if i % 2 == 0 else ["pandas", "helix"]
                for name in order:
                    if name == "helix":
                        r = run_helix(scale, data_dir, args.batch_rows)
                    else:
                        shutil.rmtree(pandas_out, ignore_errors=True)
                        r = run_pandas(scale, data_dir, work, keep=pandas_out)
                    runs[name].append(r)
                    print(f"x{scale} {name}: {r['wall_s']:.2f}s", file=sys.stderr)
            h, p = _medians(runs["helix"]), _medians(runs["pandas"])
            if h["rows"] != p["rows"]:
                raise RuntimeError(f"x{scale}: helix wrote {h['rows']} rows, pandas {p['rows']}")
            print(f"x{scale}: comparing the outputs value for value", file=sys.stderr)
            problems = compare_examples(
                helix_examples(scale, data_dir, work), pandas_examples(pandas_out)
            )
            shutil.rmtree(pandas_out, ignore_errors=True)
            if problems:
                raise RuntimeError(
                    f"x{scale}: helix's and pandas's examples differ:\n  " + "\n  ".join(problems)
                )
            scales.append(
                {
                    "scale": scale,
                    "ratio_wall": h["wall_s"] / p["wall_s"],
                    "ratio_work": h["nodes_s"] / p["work_s"],
                    "outputs_identical": True,  # compare_examples found no difference
                    "helix": {"median": h, "runs": runs["helix"]},
                    "pandas": {"median": p, "runs": runs["pandas"]},
                }
            )
    result = {
        "benchmark": "preprocess_scale",
        "repeats": args.repeats,
        "scales": scales,
        "float_tolerance": FLOAT_TOLERANCE,
        "load_average_end": os.getloadavg(),
        "targets": {
            "ratio_wall_x100": TARGET_RATIO_X100,
            "peak_rss_bytes_x100": TARGET_PEAK_RSS_BYTES_X100,
        },
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
