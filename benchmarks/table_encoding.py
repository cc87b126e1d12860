"""Stored tables' encoding: writing and reading every table of a store both ways, alternated.

Run ``python -m benchmarks.table_encoding --scale 10 --repeats 5 --json out.json``.

It fills a fresh store with census10's first run (``helix-tf run it00.py -p scale=N``,
no server), or takes ``--store DIR``, reads every stored Parquet file once, then
writes each table to memory and reads it back under two encodings, alternating
them file by file and repeat by repeat so that the machine's load falls on both
alike: ``parquet_defaults`` (what helix_tf wrote before issue 9's session 11:
Parquet's dictionary encoding on every column, Snappy:
:data:`helix_tf.engine.tables.PARQUET_DEFAULTS`) and ``helix_tf`` (what it writes
now: :func:`helix_tf.engine.tables.encoding_options`). Reports,
per encoding, the seconds summed over the files (median of the repeats), the bytes,
and whether every table read back equals the one written; per entry kind too
(source table, feature, examples, predictions); the load average before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.iterative import SEQUENCES_DIR, find_data_dir

ENCODINGS = ("parquet_defaults", "helix_tf")


def _options(name: str) -> Callable[[Any], Mapping[str, Any]]:
    from helix_tf.engine.tables import PARQUET_DEFAULTS, encoding_options

    if name == "parquet_defaults":
        return lambda schema: PARQUET_DEFAULTS
    return encoding_options


def stored_tables(store: Path) -> list[tuple[str, Path]]:
    """(entry kind, file) of every Parquet file committed in ``store``."""
    found = []
    for manifest in sorted((store / "artifacts").glob("*/MANIFEST.json")):
        entry = json.loads(manifest.read_text())
        folder = manifest.parent / entry["token"]
        found += [(entry["kind"], folder / f["path"]) for f in entry["files"]]
    return [(kind, path) for kind, path in found if path.suffix == ".parquet"]


def fill_store(store: Path, scale: int, data_dir: Path | None) -> None:
    """census10's first run into ``store`` (a plain local run: no server)."""
    cmd = [sys.executable, "-m", "helix_tf", "run", str(SEQUENCES_DIR / "census10" / "it00.py")]
    cmd += ["--json", "--store", str(store), "-p", f"scale={scale}"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    env = {**os.environ, "HELIX_TF_SERVER": "off"}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def measure(files: Sequence[tuple[str, Path]], repeats: int) -> dict[str, dict[str, Any]]:
    """Seconds writing and reading each table under each encoding, alternated; per
    encoding the totals and, under ``kinds``, the same per entry kind."""
    import pyarrow.parquet as pq

    tables = [(kind, pq.read_table(f)) for kind, f in files]
    keys = [(name, kind) for name in ENCODINGS for kind in ("all", *sorted({k for k, _ in files}))]
    seconds: dict[tuple[str, str], dict[str, list[float]]] = {
        key: {"write": [], "read": []} for key in keys
    }
    sizes = dict.fromkeys(keys, 0)
    same = dict.fromkeys(ENCODINGS, True)
    for r in range(repeats):
        totals = {key: {"write": 0.0, "read": 0.0} for key in keys}
        for i, (kind, table) in enumerate(tables):
            order = ENCODINGS if (r + i) % 2 == 0 else ENCODINGS[::-1]
            for name in order:
                options = _options(name)(table.schema)
                sink = io.BytesIO()
                t0 = time.perf_counter()
                pq.write_table(table, sink, **options)
                t1 = time.perf_counter()
                back = pq.read_table(io.BytesIO(sink.getvalue()))
                t2 = time.perf_counter()
                for key in ((name, "all"), (name, kind)):
                    totals[key]["write"] += t1 - t0
                    totals[key]["read"] += t2 - t1
                    if r == 0:
                        sizes[key] += len(sink.getvalue())
                if r == 0:
                    same[name] = same[name] and back.equals(table)
        for key in keys:
            for what in ("write", "read"):
                seconds[key][what].append(totals[key][what])

    def summary(key: tuple[str, str]) -> dict[str, Any]:
        return {
            "write_seconds": round(statistics.median(seconds[key]["write"]), 4),
            "read_seconds": round(statistics.median(seconds[key]["read"]), 4),
            "bytes": sizes[key],
        }

    return {
        name: {
            **summary((name, "all")),
            "reads_back_equal": same[name],
            "kinds": {k: summary((n, k)) for n, k in keys if n == name and k != "all"},
        }
        for name in ENCODINGS
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", default=None, help="measure this store's tables instead")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="helix-encoding-") as tmp:
        store = Path(args.store) if args.store else Path(tmp) / "store"
        if args.store is None:
            fill_store(store, args.scale, find_data_dir(args.data_dir))
        files = stored_tables(store)
        result = measure(files, args.repeats)
    report = {
        "benchmark": "table_encoding",
        "command": "python -m benchmarks.table_encoding " + " ".join(argv or sys.argv[1:]),
        "scale": args.scale,
        "files": len(files),
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "encodings": result,
    }
    for name, r in result.items():
        print(
            f"{name:17s} write {r['write_seconds']:.3f} s  read {r['read_seconds']:.3f} s  "
            f"{r['bytes'] / 1e6:.1f} MB  reads back equal: {r['reads_back_equal']}"
        )
        for kind, k in r["kinds"].items():
            print(
                f"  {kind:15s} write {k['write_seconds']:.3f} s  read {k['read_seconds']:.3f} s  "
                f"{k['bytes'] / 1e6:.1f} MB"
            )
    print(f"{len(files)} files; load {load_before[0]:.2f} -> {report['load_average_after'][0]:.2f}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["reads_back_equal"] for r in result.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
