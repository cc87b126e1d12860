"""The iterative benchmark: a person's edit sequence under each materialization policy.

Run ``python -m benchmarks.iterative --sequence census10 --scale 10 --json out.json``
(options: ``--policies helix,all,none,helix_budget``, ``--iterations 0-10``,
``--budget-fraction 0.25``, ``--out-dir DIR``, ``--data-dir DIR``).

A sequence is an initial workflow and ten edits (``benchmarks/sequences/<name>/
it00.py … it10.py``, one complete config module per version; the edits are the
ones of the project's SEQUENCES.md). For each policy in turn, starting from an
empty store and a fresh metadata database (a new temporary folder per policy),
every iteration is one ``helix-tf run ITER.py --json --store S --materialize P
-p scale=N`` in a fresh process, as a person runs it; the benchmark times the
whole process (``time.perf_counter`` around ``subprocess.run``).

Policies:

- ``helix``: the max-flow reuse plan with online materialization (default).
- ``all``: materialize every intermediate, load whatever is valid.
- ``none``: materialize nothing, recompute every iteration.
- ``helix_budget``: ``helix`` with ``--budget`` set to ``--budget-fraction`` of the
  bytes that ``all`` has stored at its end (so ``all`` runs first).
- ``oracle`` is computed, not run: the sum over iterations of the compute seconds
  of the nodes whose fingerprint is new in that iteration (seen in no earlier one),
  as measured in the ``helix`` run, less the seconds those nodes spent reading their
  inputs from files (``read_seconds``: the examples a training or prediction node
  reads, the source columns of an evaluation, stored batches in the Beam pipeline),
  with no load or write cost and without process start, imports, config loading or
  planning (the Keras/TensorFlow import is not part of a training node's
  ``compute_seconds``; the Beam pipeline's launch overhead is shared out to the
  preprocessing nodes). Definition 2; definition 1 (reports before issue 18) did not
  subtract the reads, which inflated the oracle: the report gives both side by side
  (``oracle_with_reads``).

Every iteration's metrics must be identical under every policy (reuse never
changes a result): the benchmark exits non-zero naming the iteration, the
policies and the metric when they are not.

Writes ``OUT`` (JSON), ``OUT.md`` (tables) and ``OUT.png`` (cumulative run time
per policy against iteration, log scale, markers coloured by iteration type, in
the manner of Helix's Figure 4), where ``OUT`` is the ``--json`` path without
its ``.json`` suffix.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._server import auto_server, warm_server

REPO = Path(__file__).resolve().parents[1]
SEQUENCES_DIR = Path(__file__).resolve().parent / "sequences"

RUN_POLICIES = ("helix", "all", "none")
BUDGET_POLICY = "helix_budget"
ALL_POLICIES = (*RUN_POLICIES, BUDGET_POLICY)
DEFAULT_POLICIES = ALL_POLICIES
ITERATION_TYPES = ("DPR", "L/I", "PPR")

#: The oracle's definition, recorded in every report (1: before issue 18, reads included).
ORACLE_DEFINITION = 2
ORACLE_NOTE = (
    "oracle (definition 2) = sum over iterations of the compute seconds of the nodes whose "
    "fingerprint is new in that iteration, measured in the helix run, less the seconds "
    "those nodes spent reading their inputs from files (read_seconds); it has no load or "
    "write cost and excludes process start, imports, config loading, fingerprinting, "
    "planning and metadata, which every run policy pays in each iteration (the "
    "Keras/TensorFlow import is not in a training node's compute_seconds; the Beam "
    "pipeline's launch overhead is shared out to the preprocessing nodes, so the oracle "
    "includes that). oracle_with_reads is definition 1 (reports before issue 18): the "
    "same without subtracting the reads"
)

#: Targets from the project brief (checked at scale >= 10; reported at every scale).
TARGETS = {
    "helix/oracle": "<= 1.2 (cumulative, scale 10)",
    "helix_budget/all": "<= 1.15 (cumulative)",
    "PPR none/helix": ">= 10 (each evaluation-only iteration, scale 10)",
}


@dataclasses.dataclass(frozen=True)
class Iteration:
    """One version of a sequence: its type (DPR, L/I, PPR; "init" for 0) and its edit."""

    type: str
    edit: str


#: The two sequences of SEQUENCES.md: dataset and the edit of each iteration.
SEQUENCES: dict[str, dict[str, Any]] = {
    "census10": {
        "dataset": "census",
        "iterations": [
            Iteration(
                "init",
                "numeric age, hours_per_week, capital_gain; vocabularies for education, "
                "occupation, marital_status, relationship, sex; linear, L2 1e-4, Adam lr 0.01, "
                "5 epochs; accuracy",
            ),
            Iteration("PPR", "add AUC, precision and recall"),
            Iteration("L/I", "regulariser: L1 1e-4 instead of L2"),
            Iteration("DPR", "numeric age -> age bucketised at 18..65"),
            Iteration("L/I", "learning rate 0.01 -> 0.003, 5 -> 8 epochs"),
            Iteration("PPR", "add accuracy sliced by sex and by race"),
            Iteration("DPR", "add hashed cross education x occupation, 1,000 buckets"),
            Iteration("L/I", "linear -> wide & deep (64-32 ReLU, 8-dim embeddings)"),
            Iteration("PPR", "decision threshold 0.5 -> 0.35 for precision/recall"),
            Iteration("DPR", "capital_gain -> log1p(capital_gain) through a UDF, add capital_loss"),
            Iteration("L/I", "back to linear, L1 1e-2 (FTRL: a sparse model)"),
        ],
    },
    "sms10": {
        "dataset": "sms_spam",
        "iterations": [
            Iteration(
                "init",
                "lower-case, tokenise, unigram vocabulary (min count 2), bag-of-words counts; "
                "linear, L2 1e-4, 5 epochs; accuracy",
            ),
            Iteration("L/I", "L2 1e-4 -> 1e-3"),
            Iteration("DPR", "add bigrams to the vocabulary"),
            Iteration("PPR", "add precision/recall for spam and a confusion matrix"),
            Iteration("DPR", "counts -> TF-IDF weighting"),
            Iteration("L/I", "5 -> 10 epochs"),
            Iteration(
                "DPR",
                "add hand-written UDF features: length, digit count, has-URL, upper-case words",
            ),
            Iteration("PPR", "add accuracy sliced by message length (short/long)"),
            Iteration("DPR", "vocabulary min count 2 -> 5"),
            Iteration("L/I", "linear -> small MLP (64 ReLU)"),
            Iteration("PPR", "decision threshold 0.5 -> 0.3"),
        ],
    },
}


class BenchmarkError(Exception):
    """A failed run or a metric that differs between policies."""


# --------------------------------------------------------------------------- helpers


def parse_iterations(text: str, count: int) -> list[int]:
    """``"0-10"``, ``"0,1,2"`` or ``"3"`` → sorted iteration numbers within ``[0, count)``."""
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise BenchmarkError(
                f"--iterations {text!r}: expected a range like 0-10 or a list like 0,1,2"
            ) from None
        if first > last:
            raise BenchmarkError(f"--iterations {text!r}: range {part} is empty")
        chosen.update(range(first, last + 1))
    bad = sorted(i for i in chosen if not 0 <= i < count)
    if bad or not chosen:
        raise BenchmarkError(
            f"--iterations {text!r}: iterations must lie in 0-{count - 1}"
            + (f", but got {bad}" if bad else "")
        )
    return sorted(chosen)


def parse_policies(text: str) -> list[str]:
    """``"helix,all,none"`` → the policies to run, in order; ``helix_budget`` after ``all``."""
    policies = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in policies if p not in ALL_POLICIES]
    if unknown or not policies:
        raise BenchmarkError(
            f"--policies {text!r}: unknown {unknown}; choose from {', '.join(ALL_POLICIES)}"
        )
    if len(set(policies)) != len(policies):
        raise BenchmarkError(f"--policies {text!r}: a policy is listed twice")
    if BUDGET_POLICY in policies:
        if "all" not in policies:
            raise BenchmarkError(
                f"--policies {text!r}: {BUDGET_POLICY} needs the bytes that 'all' stores, "
                "so 'all' must be run too"
            )
        policies.remove(BUDGET_POLICY)
        policies.append(BUDGET_POLICY)
    return policies


def machine_info() -> dict[str, Any]:
    """Platform, CPU model, cores and RAM of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_bytes": ram,
        "ram_gib": None if ram is None else round(ram / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }


def find_data_dir(explicit: str | None) -> Path | None:
    """``--data-dir``, ``$HELIX_TF_DATA``, or ``../shared/data`` beside the repository."""
    if explicit:
        p = Path(explicit).expanduser().resolve()
        if not p.is_dir():
            raise BenchmarkError(f"--data-dir {explicit!r} is not a folder")
        return p
    env = os.environ.get("HELIX_TF_DATA")
    if env and Path(env).is_dir():
        return Path(env).resolve()
    shared = (REPO / ".." / "shared" / "data").resolve()
    return shared if shared.is_dir() else None


def stored_bytes(store: Path) -> int:
    """Bytes of every file under the store's ``artifacts/`` folder."""
    root = store / "artifacts"
    if not root.is_dir():
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


def snapshot_helix_tf(dest: Path) -> dict[str, Any]:
    """Copy the helix_tf package to ``dest/helix_tf``; return its content hash.

    Every run of the benchmark then imports this copy (``PYTHONPATH=dest``), so
    edits made to the working tree while the benchmark runs (which change
    implementation fingerprints and behaviour) cannot leak into it.

    The copy's bytecode is compiled here, untimed, as an installed package's is (pip
    compiles it; Python writes it at the first import): with ``PYTHONDONTWRITEBYTECODE``
    set, as on this machine, every timed process compiled the modules it imported
    (~0.3 s of the first run, ~20 ms of every served run's client).
    """
    import compileall
    import hashlib

    import helix_tf

    src = Path(helix_tf.__file__).resolve().parent
    target = dest / "helix_tf"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    files = sorted(p for p in target.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(target)).encode() + b"\0" + f.read_bytes() + b"\0")
    compileall.compile_dir(target, quiet=1)
    return {"source": str(src), "files": len(files), "sha256": digest.hexdigest()[:16]}


def helix_tf_command(snapshot: bool = False) -> list[str]:
    """How to start ``helix-tf``.

    With a snapshot, ``python -m helix_tf.cli`` (run from a folder without a
    helix_tf package, so the snapshot on PYTHONPATH is imported): the installed
    console script names an entry point of the working tree, which may not exist
    in the snapshot. Otherwise the console script of this interpreter's
    environment.
    """
    script = Path(sys.executable).parent / "helix-tf"
    if not snapshot and script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "helix_tf"]


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _same(a: Any, b: Any) -> bool:
    """Exact equality, NaN equal to NaN (a metric that is undefined under both)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare_metrics(per_policy: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences naming each metric whose value differs between two policies."""
    problems: list[str] = []
    names = list(per_policy)
    if not names:
        return problems
    ref_name = names[0]
    ref = per_policy[ref_name]
    for other in names[1:]:
        got = per_policy[other]
        for key in sorted(set(ref) | set(got)):
            if key not in ref or key not in got:
                missing_in = ref_name if key not in ref else other
                problems.append(f"metric {key!r} is missing under {missing_in}")
            elif not _same(ref[key], got[key]):
                problems.append(f"metric {key!r}: {ref_name}={ref[key]!r} but {other}={got[key]!r}")
    return problems


# --------------------------------------------------------------------------- running


def run_iteration(
    config: Path,
    *,
    store: Path,
    materialize: str,
    scale: int,
    data_dir: Path | None,
    budget: int | None,
    timeout: float,
    log_dir: Path,
    tag: str,
    pythonpath: Path | None = None,
    cwd: Path = REPO,
    server_env: dict[str, str] | None = None,
) -> tuple[float, dict[str, Any]]:
    """One ``helix-tf run`` in a fresh process: (process wall seconds, its --json result).

    With ``server_env`` the run is handed to a warm server (the timed process is the
    client); a run the server refuses fails the benchmark rather than run unserved.
    """
    cmd = [
        *helix_tf_command(snapshot=pythonpath is not None),
        "run",
        str(config),
        "--json",
        "--store",
        str(store),
        "--materialize",
        materialize,
        "-p",
        f"scale={scale}",
    ]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    env = {**os.environ, "HELIX_TF_SERVER": "off"}  # every run pays its own imports
    if server_env is not None:
        env = dict(server_env)  # already has the snapshot's PYTHONPATH
    elif pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(pythonpath), *filter(None, [env.get("PYTHONPATH")])]
        )
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{tag}: helix-tf run timed out after {timeout:.0f}s") from exc
    wall = time.perf_counter() - t0
    (log_dir / f"{tag}.stderr.txt").write_text(proc.stderr)
    if server_env is not None and "not using the helix-tf server" in proc.stderr:
        raise BenchmarkError(f"{tag}: the warm server refused the run:\n{proc.stderr[-2000:]}")
    (log_dir / f"{tag}.stdout.json").write_text(proc.stdout)
    if proc.returncode != 0:
        raise BenchmarkError(
            f"{tag}: `{' '.join(cmd)}` exited with {proc.returncode}:\n"
            + (proc.stderr.strip()[-3000:] or proc.stdout.strip()[-3000:])
        )
    text = proc.stdout
    start = text.find("{")
    try:
        result = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{tag}: helix-tf --json printed no valid JSON ({exc})") from exc
    if not isinstance(result, dict) or "nodes" not in result:
        raise BenchmarkError(f"{tag}: helix-tf --json printed no run result:\n{text[-2000:]}")
    result["_load_average_before"] = load_before
    return wall, result


def summarize_run(wall: float, result: dict[str, Any], store: Path) -> dict[str, Any]:
    """What the benchmark keeps of one iteration's run."""
    nodes = result["nodes"]
    counts = {s: sum(1 for n in nodes if n["state"] == s) for s in ("compute", "load", "prune")}
    return {
        "wall_seconds": round(wall, 4),
        "helix_wall_seconds": result.get("wall_seconds"),
        "load_average_before": result.get("_load_average_before"),
        "states": {n["name"]: n["state"] for n in nodes},
        "state_counts": counts,
        "compute_seconds": round(sum(n.get("compute_seconds", 0.0) for n in nodes), 4),
        "load_seconds": round(sum(n.get("load_seconds", 0.0) for n in nodes), 4),
        "write_seconds": round(sum(n.get("write_seconds", 0.0) for n in nodes), 4),
        # Of those, what the run waited for (a background writer's overlapped the rest).
        "write_wait_seconds": round(sum(_waited_write(n) for n in nodes), 4),
        "bytes_stored": stored_bytes(store),
        "metrics": result.get("metrics", {}),
        "nodes": [
            {
                k: n.get(k)
                for k in (
                    "name",
                    "kind",
                    "state",
                    "seconds",
                    "compute_seconds",
                    "load_seconds",
                    "write_seconds",
                    "write_wait_seconds",
                    "read_seconds",
                    "rows",
                    "bytes",
                    "materialized",
                    "fingerprint",
                )
            }
            for n in nodes
        ],
    }


def _waited_write(node: dict[str, Any]) -> float:
    """The seconds a run waited for ``node``'s writes (all of them when written in line,
    and from a helix_tf that reports no ``write_wait_seconds``)."""
    waited = node.get("write_wait_seconds")
    return float(node.get("write_seconds", 0.0) if waited is None else waited)


def oracle_seconds(
    helix_runs: Sequence[dict[str, Any]], *, subtract_reads: bool = True
) -> list[float]:
    """Per iteration: compute seconds of the nodes whose fingerprint is new there.

    With ``subtract_reads`` (definition 2) less each such node's ``read_seconds``, the
    part of its compute time spent reading its inputs from files; without it,
    definition 1. Each new fingerprint counts once. A node that is new in an iteration
    but was not computed there (loaded or pruned: it can be loaded only if stored
    earlier under another name) adds its compute seconds, which are 0.

    >>> runs = [
    ...     {"nodes": [{"fingerprint": "a", "compute_seconds": 2.0, "read_seconds": 0.5}]},
    ...     {"nodes": [{"fingerprint": "a", "compute_seconds": 2.0, "read_seconds": 0.5},
    ...                {"fingerprint": "b", "compute_seconds": 1.0, "read_seconds": 0.25}]},
    ... ]
    >>> oracle_seconds(runs), oracle_seconds(runs, subtract_reads=False)
    ([1.5, 0.75], [2.0, 1.0])
    """
    seen: set[str] = set()
    out = []
    for run in helix_runs:
        total = 0.0
        fingerprints = set()
        for n in run["nodes"]:
            fp = n.get("fingerprint")
            if fp not in seen and fp not in fingerprints:
                compute = float(n.get("compute_seconds") or 0.0)
                reads = float(n.get("read_seconds") or 0.0) if subtract_reads else 0.0
                total += max(compute - reads, 0.0)
            fingerprints.add(fp)
        seen |= fingerprints
        out.append(round(total, 4))
    return out


def reads_measured(helix_runs: Sequence[dict[str, Any]]) -> bool:
    """Whether every node of these runs reports ``read_seconds`` (runs since issue 18)."""
    return all("read_seconds" in n for run in helix_runs for n in run["nodes"])


# --------------------------------------------------------------------------- report


def build_report(
    *,
    sequence: str,
    scale: int,
    iterations: list[int],
    policies: list[str],
    runs: dict[str, list[dict[str, Any]]],
    budget_fraction: float,
    budget_bytes: int | None,
    data_dir: Path | None,
    argv: Sequence[str],
    started: str,
    problems: list[str],
    snapshot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document: per iteration and policy, cumulative times, ratios, targets."""
    spec = SEQUENCES[sequence]
    done = {p: len(runs.get(p, [])) for p in policies}
    oracle = oracle_seconds(runs["helix"]) if "helix" in runs else []
    oracle_with_reads = (
        oracle_seconds(runs["helix"], subtract_reads=False) if "helix" in runs else []
    )
    rows = []
    for k, it in enumerate(iterations):
        entry: dict[str, Any] = {
            "iteration": it,
            "type": spec["iterations"][it].type,
            "edit": spec["iterations"][it].edit,
            "config": str((SEQUENCES_DIR / sequence / f"it{it:02d}.py").relative_to(REPO)),
            "policies": {p: runs[p][k] for p in policies if done[p] > k},
        }
        if k < len(oracle):
            entry["oracle_seconds"] = oracle[k]
            entry["oracle_with_reads_seconds"] = oracle_with_reads[k]
        helix = entry["policies"].get("helix")
        none = entry["policies"].get("none")
        if helix and none:
            entry["speedup_none_over_helix"] = round(
                none["wall_seconds"] / helix["wall_seconds"], 3
            )
        rows.append(entry)

    complete = [p for p in policies if done[p] == len(iterations)]
    cumulative: dict[str, float] = {
        p: round(sum(r["wall_seconds"] for r in runs[p]), 3) for p in complete
    }
    oracle_with_reads_total = None
    if "helix" in complete:
        cumulative["oracle"] = round(sum(oracle), 3)
        oracle_with_reads_total = round(sum(oracle_with_reads), 3)
    bytes_end = {p: runs[p][-1]["bytes_stored"] for p in complete}

    ratios = {
        "none/helix": _ratio(cumulative.get("none"), cumulative.get("helix")),
        "helix/oracle": _ratio(cumulative.get("helix"), cumulative.get("oracle")),
        "helix/oracle_with_reads": _ratio(cumulative.get("helix"), oracle_with_reads_total),
        "all/helix": _ratio(cumulative.get("all"), cumulative.get("helix")),
        "helix_budget/all": _ratio(cumulative.get(BUDGET_POLICY), cumulative.get("all")),
        "helix_budget/helix": _ratio(cumulative.get(BUDGET_POLICY), cumulative.get("helix")),
    }
    ratios = {k: round(v, 3) for k, v in ratios.items() if v is not None}

    speedups: dict[str, Any] = {}
    for t in ITERATION_TYPES:
        values = [
            r["speedup_none_over_helix"]
            for r in rows
            if r["type"] == t and r.get("speedup_none_over_helix")
        ]
        if values:
            speedups[t] = {
                "mean": round(statistics.fmean(values), 3),
                "min": round(min(values), 3),
                "iterations": [r["iteration"] for r in rows if r["type"] == t],
            }

    # Where each policy's wall time goes, summed over iterations: outside helix-tf's own
    # timer (interpreter start, imports before the run starts, exit), node compute, load
    # and write, and the rest of the run (session, fingerprints, plan, metadata).
    breakdown: dict[str, dict[str, float]] = {}
    for p in complete:
        wall = sum(r["wall_seconds"] for r in runs[p])
        inner = sum(r["helix_wall_seconds"] or 0.0 for r in runs[p])
        parts = {k: sum(r[k] for r in runs[p]) for k in ("compute_seconds", "load_seconds")}
        # The writing the runs waited for; a background writer's own seconds apart.
        write = sum(r.get("write_wait_seconds", r["write_seconds"]) for r in runs[p])
        breakdown[p] = {
            "wall": round(wall, 2),
            "outside_helix_timer": round(wall - inner, 2),
            "compute": round(parts["compute_seconds"], 2),
            "load": round(parts["load_seconds"], 2),
            "write": round(write, 2),
            "write_by_writer": round(sum(r["write_seconds"] for r in runs[p]), 2),
            "other_inside": round(
                inner - parts["compute_seconds"] - parts["load_seconds"] - write, 2
            ),
        }

    targets: dict[str, Any] = {}
    if "helix/oracle" in ratios:
        targets["helix/oracle"] = {
            "target": TARGETS["helix/oracle"],
            "measured": ratios["helix/oracle"],
            "met": ratios["helix/oracle"] <= 1.2,
        }
    if "helix_budget/all" in ratios:
        targets["helix_budget/all"] = {
            "target": TARGETS["helix_budget/all"],
            "measured": ratios["helix_budget/all"],
            "met": ratios["helix_budget/all"] <= 1.15,
        }
    if "PPR" in speedups:
        targets["PPR none/helix"] = {
            "target": TARGETS["PPR none/helix"],
            "measured": speedups["PPR"]["min"],
            "mean": speedups["PPR"]["mean"],
            "met": speedups["PPR"]["min"] >= 10,
        }

    return {
        "benchmark": "iterative",
        "sequence": sequence,
        "dataset": spec["dataset"],
        "scale": scale,
        "iterations_run": iterations,
        "policies": policies,
        "started": started,
        "command": " ".join(argv),
        "data_dir": None if data_dir is None else str(data_dir),
        "data": "real" if data_dir is not None else "generated (data folder not found)",
        "machine": machine_info(),
        "helix_tf": snapshot or "live working tree (--no-snapshot)",
        "budget_fraction": budget_fraction if BUDGET_POLICY in policies else None,
        "budget_bytes": budget_bytes,
        "oracle_note": ORACLE_NOTE,
        "oracle_definition": ORACLE_DEFINITION,
        "oracle_reads_measured": reads_measured(runs.get("helix", [])),
        "oracle_with_reads_seconds": oracle_with_reads_total,
        "iterations": rows,
        "cumulative_seconds": cumulative,
        "bytes_stored_end": bytes_end,
        "ratios": ratios,
        "time_breakdown_seconds": breakdown,
        "speedup_none_over_helix_by_type": speedups,
        "targets": targets,
        "metrics_identical": not problems and bool(runs),
        "metrics_compared": {p: len(r) for p, r in runs.items()},
        "complete_policies": complete,
        "metric_differences": problems,
    }


def _fmt_s(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def markdown(report: dict[str, Any]) -> str:
    """Tables of the report: per iteration wall time per policy, cumulative, summary."""
    policies = [p for p in report["policies"] if p in report["cumulative_seconds"]]
    cols = [*policies, "oracle"] if "oracle" in report["cumulative_seconds"] else policies
    m = report["machine"]
    lines = [
        f"# Iterative benchmark: {report['sequence']}, scale {report['scale']}",
        "",
        f"{report['started']} · {m['cpu']} · {m['cores']} cores · {m['ram_gib']} GiB RAM · "
        f"{m['platform']} · data: {report['data']}",
        "",
        f"Command: `{report['command']}`",
        "",
        "helix_tf: "
        + (
            f"snapshot of {report['helix_tf']['source']} taken at the start "
            f"(sha256 {report['helix_tf']['sha256']})"
            if isinstance(report["helix_tf"], dict)
            else str(report["helix_tf"])
        )
        + f"; load average at the end {m.get('load_average')}",
        "",
        "Wall seconds of each `helix-tf run` process (start to exit); cumulative in "
        "brackets. " + ORACLE_NOTE[0].upper() + ORACLE_NOTE[1:] + ".",
        "",
        "| # | type | edit | " + " | ".join(cols) + " | none/helix |",
        "|---|---|---|" + "---:|" * (len(cols) + 1),
    ]
    cum = dict.fromkeys(cols, 0.0)
    for r in report["iterations"]:
        cells = []
        for p in cols:
            v = (
                r.get("oracle_seconds")
                if p == "oracle"
                else (r["policies"].get(p, {}).get("wall_seconds"))
            )
            if v is None:
                cells.append("")
                continue
            cum[p] += v
            cells.append(f"{v:.2f} ({cum[p]:.1f})")
        sp = r.get("speedup_none_over_helix")
        lines.append(
            f"| {r['iteration']} | {r['type']} | {r['edit']} | "
            + " | ".join(cells)
            + f" | {'' if sp is None else f'{sp:.1f}x'} |"
        )
    lines += [
        "",
        "## Summary",
        "",
        "| | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
        "| cumulative seconds | "
        + " | ".join(_fmt_s(report["cumulative_seconds"].get(p)) for p in cols)
        + " |",
        "| bytes stored at the end | "
        + " | ".join(
            human_bytes(report["bytes_stored_end"][p]) if p in report["bytes_stored_end"] else ""
            for p in cols
        )
        + " |",
        "",
    ]
    if report["budget_bytes"] is not None:
        lines += [
            f"helix_budget ran with --budget {report['budget_bytes']} "
            f"({human_bytes(report['budget_bytes'])} = {report['budget_fraction']} of what "
            "`all` stored at its end).",
            "",
        ]
    lines += ["| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in report["ratios"].items()]
    if report.get("time_breakdown_seconds"):
        lines += [
            "",
            "Where the wall time goes (seconds, all iterations): outside = outside helix-tf's "
            "own timer (interpreter start, imports, exit); other = inside the run but in no "
            "node (config, fingerprints, plan, metadata, cleanup).",
            "",
            "| policy | wall | outside | compute | load | write | other |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for p, b in report["time_breakdown_seconds"].items():
            lines.append(
                f"| {p} | {b['wall']:.1f} | {b['outside_helix_timer']:.1f} | {b['compute']:.1f} "
                f"| {b['load']:.1f} | {b['write']:.1f} | {b['other_inside']:.1f} |"
            )
        if "oracle" in report["cumulative_seconds"]:
            lines.append(f"| oracle | {report['cumulative_seconds']['oracle']:.1f} | | | | | |")
            if report.get("oracle_with_reads_seconds") is not None:
                lines.append(
                    "| oracle, definition 1 (input reads included) | "
                    f"{report['oracle_with_reads_seconds']:.1f} | | | | | |"
                )
    if "oracle" in report["cumulative_seconds"] and not report.get("oracle_reads_measured"):
        lines += [
            "",
            "**The helix runs reported no read_seconds: the oracle is definition 1 "
            "(input reads included).**",
        ]
    if report["speedup_none_over_helix_by_type"]:
        lines += [
            "",
            "| iteration type | mean none/helix | min | iterations |",
            "|---|---:|---:|---|",
        ]
        for t, s in report["speedup_none_over_helix_by_type"].items():
            lines.append(
                f"| {t} | {s['mean']:.2f}x | {s['min']:.2f}x | "
                f"{', '.join(map(str, s['iterations']))} |"
            )
    if report["targets"]:
        lines += ["", "| target | goal | measured | met |", "|---|---|---:|---|"]
        for k, t in report["targets"].items():
            lines.append(
                f"| {k} | {t['target']} | {t['measured']:.2f} | {'yes' if t['met'] else 'no'} |"
            )
    for e in report.get("errors", []):
        msg = e["message"].strip().splitlines()
        lines += [
            "",
            f"**{e['policy']} failed at iteration {e['iteration']}:** "
            + (f"`{msg[-1][:500]}`" if msg else ""),
        ]
    lines += [
        "",
        f"Metrics identical across policies: **{report['metrics_identical']}** "
        "(iterations compared per policy: "
        + ", ".join(f"{p} {n}" for p, n in report["metrics_compared"].items())
        + ")",
    ]
    for p in report["metric_differences"]:
        lines.append(f"- {p}")
    return "\n".join(lines) + "\n"


TYPE_COLOURS = {"init": "#7f7f7f", "DPR": "#1f77b4", "L/I": "#ff7f0e", "PPR": "#2ca02c"}
POLICY_STYLE = {
    "helix": {"color": "#000000", "linestyle": "-", "marker": "o", "label": "helix"},
    "all": {"color": "#6a3d9a", "linestyle": "--", "marker": "s", "label": "all"},
    "none": {"color": "#d62728", "linestyle": "-.", "marker": "^", "label": "none"},
    BUDGET_POLICY: {
        "color": "#8c564b",
        "linestyle": ":",
        "marker": "D",
        "label": "helix (budget)",
    },
    "oracle": {"color": "#17becf", "linestyle": (0, (1, 3)), "marker": "v", "label": "oracle"},
}


def plot(report: dict[str, Any], path: Path) -> None:
    """Cumulative run time per policy against iteration (log y), markers by iteration type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = report["iterations"]
    xs = [r["iteration"] for r in rows]
    types = [r["type"] for r in rows]
    cols = [p for p in report["policies"] if p in report["cumulative_seconds"]]
    if "oracle" in report["cumulative_seconds"]:
        cols.append("oracle")
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=130)
    ends: list[tuple[float, str]] = []
    for p in cols:
        if p == "oracle":
            per = [r["oracle_seconds"] for r in rows]
        else:
            per = [r["policies"][p]["wall_seconds"] for r in rows]
        cum, total = [], 0.0
        for v in per:
            total += v
            cum.append(max(total, 1e-3))
        st = POLICY_STYLE[p]
        ax.plot(xs, cum, color=st["color"], linestyle=st["linestyle"], linewidth=1.6, zorder=2)
        ax.scatter(
            xs,
            cum,
            marker=st["marker"],
            s=58,
            c=[TYPE_COLOURS.get(t, "#7f7f7f") for t in types],
            edgecolors=st["color"],
            linewidths=1.0,
            zorder=3,
        )
        ends.append((cum[-1], p))
    # Final values beside the last markers, nudged apart so that none overlap.
    placed: list[float] = []
    for value, p in sorted(ends):
        y = value if not placed else max(value, placed[-1] * 1.09)
        placed.append(y)
        ax.annotate(
            f"{value:.0f} s",
            (xs[-1], value),
            xytext=(xs[-1] + 0.22, y),
            textcoords="data",
            va="center",
            fontsize=8,
            color=POLICY_STYLE[p]["color"],
        )
    ax.set_yscale("log")
    if placed:
        ax.set_ylim(top=max(placed) * 1.15)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x}\n{t if t != 'init' else ''}" for x, t in zip(xs, types, strict=True)])
    ax.set_xlabel("iteration (and its type)")
    ax.set_ylabel("cumulative run time (s, log scale)")
    ax.set_title(
        f"{report['sequence']} at scale {report['scale']}: cumulative run time per policy",
        fontsize=11,
    )
    ax.grid(True, which="major", axis="y", alpha=0.35)
    ax.grid(True, which="minor", axis="y", alpha=0.12)
    ax.set_xlim(min(xs) - 0.4, max(xs) + 1.1)
    policy_handles = [
        Line2D(
            [],
            [],
            color=POLICY_STYLE[p]["color"],
            linestyle=POLICY_STYLE[p]["linestyle"],
            marker=POLICY_STYLE[p]["marker"],
            markerfacecolor="white",
            label=POLICY_STYLE[p]["label"],
        )
        for p in cols
    ]
    type_handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            markersize=8,
            markerfacecolor=TYPE_COLOURS[t],
            markeredgecolor="#333333",
            label={
                "init": "initial",
                "DPR": "DPR (pre-processing)",
                "L/I": "L/I (learning)",
                "PPR": "PPR (evaluation)",
            }[t],
        )
        for t in ("init", *ITERATION_TYPES)
        if t in types
    ]
    first = ax.legend(handles=policy_handles, title="policy", loc="upper left", fontsize=8)
    ax.add_artist(first)
    ax.legend(handles=type_handles, title="iteration type", loc="lower right", fontsize=8)
    fig.text(
        0.01,
        0.005,
        "oracle: compute time of the nodes new in each iteration (helix run), less their "
        "input reads; excludes process start, imports before the run, planning, loads, writes",
        fontsize=7,
        color="#555555",
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def run_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> tuple[dict[str, Any], int]:
    """Run every policy over the chosen iterations; return (report, exit status)."""
    spec = SEQUENCES[args.sequence]
    iterations = parse_iterations(args.iterations, len(spec["iterations"]))
    policies = parse_policies(args.policies)
    data_dir = find_data_dir(args.data_dir)
    configs = [SEQUENCES_DIR / args.sequence / f"it{i:02d}.py" for i in iterations]
    for c in configs:
        if not c.is_file():
            raise BenchmarkError(f"iteration config {c} is missing")
    if not 0 < args.budget_fraction <= 1:
        raise BenchmarkError(f"--budget-fraction must be in (0, 1], got {args.budget_fraction}")

    started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    root = (
        Path(args.out_dir).resolve()
        if args.out_dir
        else Path(tempfile.mkdtemp(prefix="helix-iter-"))
    )
    root.mkdir(parents=True, exist_ok=True)
    log_dir = root / "logs"
    log_dir.mkdir(exist_ok=True)
    snapshot = None
    snapshot_dir = None
    if args.snapshot:
        snapshot_dir = root / "snapshot"
        snapshot = snapshot_helix_tf(snapshot_dir)
    print(
        f"iterative benchmark: {args.sequence} scale {args.scale}, iterations "
        f"{iterations[0]}-{iterations[-1]}, policies {', '.join(policies)}; data "
        f"{data_dir or 'generated'}; stores and logs under {root}",
        flush=True,
    )
    if snapshot:
        print(
            f"helix_tf: a snapshot of {snapshot['source']} ({snapshot['files']} files, "
            f"sha256 {snapshot['sha256']})",
            flush=True,
        )
    if data_dir is None:
        print(
            "warning: the shared data folder was not found; configs use generated data", flush=True
        )

    runs: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    budget_bytes: int | None = None
    status = 0

    def report() -> dict[str, Any]:
        return build_report(
            sequence=args.sequence,
            scale=args.scale,
            iterations=iterations,
            policies=policies,
            runs=runs,
            budget_fraction=args.budget_fraction,
            budget_bytes=budget_bytes,
            data_dir=data_dir,
            argv=argv,
            started=started,
            problems=problems,
            snapshot=snapshot,
        )

    errors: list[dict[str, Any]] = []
    stack = contextlib.ExitStack()
    extra = {}
    if snapshot_dir is not None:
        extra["PYTHONPATH"] = os.pathsep.join(
            [str(snapshot_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    if args.server:
        print("each policy's runs are handed to a warm helix-tf server of its own", flush=True)
    elif args.auto_server:
        print("each policy's first run starts a helix-tf server, as a user's does", flush=True)
    try:
        for policy in policies:
            runs[policy] = []
            # Its own server: no policy's runs find the models another's left in the trainer.
            args.server_env = stack.enter_context(policy_server(args, extra=extra, root=root))
            try:
                budget_bytes = run_policy(
                    policy,
                    args,
                    spec,
                    iterations,
                    configs,
                    root,
                    log_dir,
                    snapshot_dir,
                    data_dir,
                    runs,
                    budget_bytes,
                )
            except BenchmarkError as exc:
                failed_at = (
                    iterations[len(runs[policy])] if len(runs[policy]) < len(iterations) else None
                )
                errors.append({"policy": policy, "iteration": failed_at, "message": str(exc)})
                print(f"error: {exc}", file=sys.stderr, flush=True)
            finally:
                stack.close()  # the policy's server stops before the next policy starts
            problems[:] = all_metric_differences(runs, iterations)
            if problems and not args.keep_going:
                break
    finally:
        stack.close()
        if not args.out_dir and not args.keep_stores:
            shutil.rmtree(root, ignore_errors=True)

    out = report()
    out["server"] = "auto" if args.auto_server else bool(args.server)
    out["errors"] = errors
    if errors:
        status = 2
    elif problems:
        status = 3
    return out, status


def all_metric_differences(
    runs: dict[str, list[dict[str, Any]]], iterations: list[int]
) -> list[str]:
    """Every metric that differs between policies, per iteration (run policies only)."""
    problems = []
    for k, it in enumerate(iterations):
        per = {p: r[k]["metrics"] for p, r in runs.items() if len(r) > k}
        problems += [f"iteration {it}: {msg}" for msg in compare_metrics(per)]
    return problems


def policy_server(
    args: argparse.Namespace, *, extra: dict[str, str], root: Path
) -> contextlib.AbstractContextManager[dict[str, str] | None]:
    """The server one policy's runs are handed to (``None``: every run pays its imports).

    Each policy gets its own (``--server``: started by hand; ``--auto-server``: started
    by the policy's first run): with one server for all, the trainer kept the models
    of one policy's runs for the next policy's (a later policy's learner edits then
    trained without building or tracing, ~1-2 s each at sms10 x1).
    """
    if args.server:
        return warm_server(extra_env=extra, cwd=root)
    if args.auto_server:
        return auto_server(extra_env=extra, cwd=root)
    return contextlib.nullcontext(None)


def run_policy(
    policy: str,
    args: argparse.Namespace,
    spec: dict[str, Any],
    iterations: list[int],
    configs: list[Path],
    root: Path,
    log_dir: Path,
    snapshot_dir: Path | None,
    data_dir: Path | None,
    runs: dict[str, list[dict[str, Any]]],
    budget_bytes: int | None,
) -> int | None:
    """Run every iteration under one policy from an empty store; returns the budget used."""
    store = root / f"store-{policy}"
    if store.exists():
        shutil.rmtree(store)
    store.mkdir(parents=True)
    materialize = "helix" if policy == BUDGET_POLICY else policy
    budget = None
    if policy == BUDGET_POLICY:
        if len(runs.get("all", [])) != len(iterations):
            raise BenchmarkError(
                f"{BUDGET_POLICY}: 'all' did not finish, so there is no budget to derive"
            )
        all_bytes = runs["all"][-1]["bytes_stored"]
        budget_bytes = budget = max(1, int(all_bytes * args.budget_fraction))
        print(
            f"{BUDGET_POLICY}: --budget {budget} ({human_bytes(budget)} = "
            f"{args.budget_fraction} of the {human_bytes(all_bytes)} that 'all' stored)",
            flush=True,
        )
    total = 0.0
    for it, config in zip(iterations, configs, strict=True):
        wall, result = run_iteration(
            config,
            store=store,
            materialize=materialize,
            scale=args.scale,
            data_dir=data_dir,
            budget=budget,
            timeout=args.timeout,
            log_dir=log_dir,
            tag=f"{policy}-it{it:02d}",
            pythonpath=snapshot_dir,
            cwd=root,
            server_env=getattr(args, "server_env", None),
        )
        summary = summarize_run(wall, result, store)
        runs[policy].append(summary)
        total += wall
        c = summary["state_counts"]
        print(
            f"{policy:>12}  it{it:02d}  {spec['iterations'][it].type:>4}  "
            f"wall {wall:7.2f} s  cumulative {total:8.1f} s  "
            f"[{c['compute']} compute, {c['load']} load, {c['prune']} prune; "
            f"stored {human_bytes(summary['bytes_stored'])}]",
            flush=True,
        )
    return budget_bytes


def write_outputs(report: dict[str, Any], json_path: Path) -> tuple[Path, Path, Path]:
    """Write OUT.json, OUT.md and OUT.png; return their paths."""
    base = json_path.with_suffix("") if json_path.suffix == ".json" else json_path
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md = base.with_name(base.name + ".md")
    md.write_text(markdown(report))
    png = base.with_name(base.name + ".png")
    if report["cumulative_seconds"]:
        plot(report, png)
    return json_path, md, png


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.iterative",
        description="Time a sequence of workflow edits under the helix, all and none "
        "materialization policies (and a budgeted helix), against the oracle.",
    )
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default="census10")
    parser.add_argument("--scale", type=int, default=1, help="data replication factor")
    parser.add_argument("--json", dest="json_path", default=None, help="write the report here")
    parser.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        help=f"comma-separated, from {', '.join(ALL_POLICIES)} (default: all of them)",
    )
    parser.add_argument("--iterations", default="0-10", help="e.g. 0-10, 0-2 or 0,3,5")
    parser.add_argument(
        "--server",
        action="store_true",
        help="hand every run to a warm helix-tf server (TensorFlow/Beam imported once)",
    )
    parser.add_argument(
        "--auto-server",
        action="store_true",
        help="the server as a user gets it: the first run starts one, later runs use it",
    )
    parser.add_argument(
        "--budget-fraction",
        type=float,
        default=0.25,
        help="helix_budget's --budget as a fraction of the bytes 'all' stores (default 0.25)",
    )
    parser.add_argument(
        "--out-dir",
        default=None,
        help="folder for the per-policy stores and run logs (kept); default: a temporary "
        "folder, removed at the end",
    )
    parser.add_argument("--data-dir", default=None, help="folder holding census/ and sms_spam/")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds allowed per helix-tf run"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every policy even when metrics differ (still exits non-zero)",
    )
    parser.add_argument(
        "--keep-stores", action="store_true", help="keep the temporary stores and logs"
    )
    parser.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="import helix_tf from the working tree in every run instead of from a copy "
        "taken at the start (edits made meanwhile then leak into the benchmark)",
    )
    args = parser.parse_args(argv)
    try:
        report, status = run_benchmark(args, ["python -m benchmarks.iterative", *argv])
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    print_summary(report)
    if args.json_path:
        paths = write_outputs(report, Path(args.json_path))
        print("wrote " + ", ".join(str(p) for p in paths), flush=True)
    if status == 3:
        print(
            "error: metrics differ between policies (reuse must never change a result):\n  "
            + "\n  ".join(report["metric_differences"]),
            file=sys.stderr,
            flush=True,
        )
    return status


def print_summary(report: dict[str, Any]) -> None:
    cum = report["cumulative_seconds"]
    print(
        "cumulative seconds: "
        + ", ".join(f"{p} {v:.1f}" for p, v in cum.items())
        + " (the oracle excludes process start, imports, planning, loads and writes)",
        flush=True,
    )
    if report["bytes_stored_end"]:
        print(
            "bytes stored at the end: "
            + ", ".join(f"{p} {human_bytes(v)}" for p, v in report["bytes_stored_end"].items()),
            flush=True,
        )
    if report["ratios"]:
        print(
            "ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in report["ratios"].items()),
            flush=True,
        )
    for t, s in report["speedup_none_over_helix_by_type"].items():
        print(f"none/helix on {t} iterations: mean {s['mean']:.2f}x, min {s['min']:.2f}x")
    print(f"metrics identical: {report['metrics_identical']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
