"""Where the time of a ``helix-tf run`` goes: a cProfile, summarised by activity.

Profiles one preprocessing run of the census benchmark config (or summarises
an existing ``.prof`` file) and prints markdown: the top cumulative entries,
and the run's time split into non-overlapping parts:

- process start: interpreter and ``helix_tf.cli`` import;
- driver: config load, compile, fingerprints, plan, metadata (``api.run``
  outside ``execute_plan``);
- Beam import and pipeline construction (``Run.preprocess`` before the runner starts);
- inside the runner: helix's DoFns split into CSV reading, Parquet writes
  (source rows / examples), Parquet reads + ``to_pandas`` of the source batch,
  raw-column conversion, analyzers, transforms and other DoFn work; the rest of
  ``Pipeline.run`` is Beam's own overhead;
- and, across all of them, the time spent importing modules.

cProfile sees the main thread only; helix's CSV parser threads show up as the
main thread's wait for them (inside "CSV reading"). Profiling slows
Python-heavy code, so shares are more telling than seconds.

Reproduce (profiles census x100 preprocessing, ~1 min)::

    .venv/bin/python -m benchmarks.profile_summary --scale 100 [--prof out.prof] [--json out.json]
    .venv/bin/python -m benchmarks.profile_summary --from-prof existing.prof
"""

from __future__ import annotations

import argparse
import json
import pstats
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from benchmarks._proc import run_helix_json

CONFIG = "benchmarks/configs/census_preprocess.py"
Key = tuple[str, int, str]


class Profile:
    """Look-ups by (file suffix, function name) over a pstats table."""

    def __init__(self, path: str) -> None:
        self.stats = pstats.Stats(path)
        self.table: dict[Key, Any] = self.stats.stats  # type: ignore[attr-defined]
        self.total = self.stats.total_tt  # type: ignore[attr-defined]

    def keys(self, file: str, func: str) -> list[Key]:
        # A path ending in "/" names a package: any of its files.
        return [
            k
            for k in self.table
            if (k[0].endswith(file) or (file.endswith("/") and file in k[0])) and k[2] == func
        ]

    def cum(self, file: str, func: str) -> float:
        """Cumulative seconds of every function of that name in that file."""
        return sum(self.table[k][3] for k in self.keys(file, func))

    def cum_from(self, file: str, func: str, caller_file: str, caller_func: str = "") -> float:
        """Cumulative seconds of ``func`` in calls made from ``caller_file[:caller_func]``."""
        total = 0.0
        for k in self.keys(file, func):
            for caller, stats in self.table[k][4].items():
                if caller[0].endswith(caller_file) and caller_func in ("", caller[2]):
                    total += stats[3]
        return total

    def top(self, n: int, where: Sequence[str] = ()) -> list[dict[str, Any]]:
        rows = []
        for (file, line, func), (_, calls, tot, cum, _) in self.table.items():
            if where and not any(w in file for w in where):
                continue
            rows.append(
                {
                    "function": f"{_short(file)}:{line}({func})",
                    "calls": calls,
                    "tottime": tot,
                    "cumtime": cum,
                }
            )
        return sorted(rows, key=lambda r: -r["cumtime"])[:n]


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def attribute(p: Profile) -> dict[str, float]:
    """Non-overlapping parts of the run (seconds); missing functions count 0."""
    bp, bc, ft = "engine/beam_pipeline.py", "engine/batch_compute.py", "components/features/"
    cli_run = p.cum("helix_tf/cli.py", "run")
    api_run = p.cum("helix_tf/api.py", "run")
    execute = p.cum("engine/execute.py", "execute_plan")
    preprocess = p.cum("engine/_preprocess.py", "run")
    run_pre = p.cum(bp, "run_preprocessing")
    beam_run = p.cum("apache_beam/pipeline.py", "run")
    dofns = p.cum(bp, "process") + sum(
        p.cum(bp, f) for f in ("add_input", "merge_accumulators", "extract_output")
    )
    csv_read = p.cum_from("components/sources/_csv.py", "read", bp)
    write_source = p.cum_from("engine/tables.py", "write_batch", bp)
    write_examples = p.cum_from("engine/tables.py", "write_batch", bc)
    read_source = p.cum(bc, "source_frame") + p.cum_from("engine/tables.py", "read_batch", bc)
    read_source -= p.cum_from("engine/tables.py", "read_batch", bc, "source_frame")
    column = p.cum(bc, "column") - p.cum_from(bc, "source_frame", bc, "column")
    analyzers = p.cum_from(ft, "add", bc, "partials")
    transforms = p.cum_from(ft, "transform", bc)
    from_pandas = p.cum_from("pyarrow/pandas_compat.py", "dataframe_to_arrays", bp)
    parts = {
        "process start: interpreter, helix_tf.cli import": p.total - cli_run,
        "driver: load config, compile, plan, metadata": (cli_run - api_run) + (api_run - execute),
        "Beam import + pipeline construction": preprocess - run_pre + (run_pre - beam_run),
        "CSV reading (parse once, replicate batches)": csv_read,
        "Parquet write: source rows": write_source,
        "Parquet write: examples": write_examples,
        "Parquet read + to_pandas: source batch (per pass)": read_source,
        "raw column -> numpy (BatchComputer.column)": column,
        "analyzers (vocabulary counts, moments)": analyzers,
        "transforms (vocabulary lookup, numeric, label)": transforms,
        "other DoFn work (from_pandas, examples table, counters)": dofns
        - csv_read
        - write_source
        - write_examples
        - read_source
        - column
        - analyzers
        - transforms,
        "Beam runner overhead (Pipeline.run minus DoFns)": beam_run - dofns,
        "after preprocessing (rest of execute_plan)": execute - preprocess,
    }
    parts["(of these, DoFn from_pandas)"] = from_pandas
    parts["(across all, importing modules)"] = p.cum(
        "<frozen importlib._bootstrap>", "_find_and_load"
    )
    parts["(across all, vocabulary _strings())"] = p.cum(ft, "_strings")
    parts["total (profiled)"] = p.total
    return parts


def markdown(
    parts: dict[str, float], top: list[dict[str, Any]], top_lib: list[dict[str, Any]]
) -> str:
    total = parts["total (profiled)"]
    lines = ["| part of the run | seconds | share |", "|---|---:|---:|"]
    for name, secs in parts.items():
        lines.append(f"| {name} | {secs:.2f} | {secs / total:.0%} |")
    for title, rows in (
        ("Top cumulative", top),
        ("Top cumulative in helix_tf, pandas, pyarrow", top_lib),
    ):
        lines += [
            "",
            f"{title}:",
            "",
            "| cumtime (s) | tottime (s) | calls | function |",
            "|---:|---:|---:|---|",
        ]
        lines += [
            f"| {r['cumtime']:.2f} | {r['tottime']:.2f} | {r['calls']} | `{r['function']}` |"
            for r in rows
        ]
    return "\n".join(lines)


def profile_run(scale: int, prof: str, data_dir: str | None) -> float:
    extra = ["--data-dir", data_dir] if data_dir else []
    m, _ = run_helix_json(
        [CONFIG, "-p", f"scale={scale}", "--materialize", "none", *extra],
        # run_cli, not the console script: the script ends with os._exit once TensorFlow
        # is loaded, before cProfile could write its file.
        command=[
            sys.executable,
            "-c",
            "import cProfile, sys; from helix_tf.cli import run_cli; "
            f"cProfile.run('run_cli(sys.argv[1:])', {prof!r})",
        ],
    )
    return m.wall_s


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100, help="census scale to profile")
    parser.add_argument("--prof", help="where to keep the .prof file (default: a temporary one)")
    parser.add_argument("--from-prof", help="summarise this .prof instead of running")
    parser.add_argument("--data-dir", help="folder holding census/ (default: helix's own)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", dest="json_path", help="write the results here as JSON")
    args = parser.parse_args(argv)
    wall = None
    with tempfile.TemporaryDirectory() as tmp:
        prof = args.from_prof or args.prof or f"{tmp}/run.prof"
        if not args.from_prof:
            wall = profile_run(args.scale, prof, args.data_dir)
        p = Profile(prof)
        parts = attribute(p)
        top = p.top(args.top)
        top_lib = p.top(args.top, where=("helix_tf/", "pandas/", "pyarrow/"))
    header = f"cProfile of helix-tf run {CONFIG} -p scale={args.scale} --materialize none"
    if wall is not None:
        header += f" (process wall under the profiler: {wall:.1f} s)"
    print(header + "\n\n" + markdown(parts, top, top_lib))
    result = {"scale": args.scale, "wall_s": wall, "parts": parts, "top": top, "top_lib": top_lib}
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
