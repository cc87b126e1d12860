"""Fidelity and speed of approximate runs: does ``--approx`` rank variants as exact runs do?

Usage::

    python -m benchmarks.approx_fidelity [--workload census|sms|both] [--scales 1 10]
                                         [--json out.json] [--approx-args "--sample 0.2"]

For each workload (census, SMS spam) this takes eight variants a person would
compare (regularisation, optimiser, learning rate, epochs, and feature edits
written as one-edit copies of the config under ``benchmarks/fidelity_configs/``),
and for each variant and scale runs ``helix-tf run CONFIG -p ... --json`` twice:
exactly, and with ``--approx`` (default approximate settings unless
``--approx-args`` says otherwise). Every run is a fresh process with its own
empty store, so both are cold; the whole process is timed from spawn to reap
(wall and CPU seconds), and the run's own ``wall_seconds`` (from its JSON) is
recorded too. Exact and approximate runs of a variant run back to back, in
alternating order, so slow drifts in machine load hit both alike.

Fidelity (per metric: accuracy and AUC)
---------------------------------------
- *Half-width* of variant i: ``h_i = (hi_i - lo_i) / 2`` where ``[lo_i, hi_i]``
  is the 95% bootstrap interval that the approximate run of variant i reports
  for the metric (``"intervals"`` of its JSON).
- A pair of variants (i, j) is *decisive* when the exact metrics differ by more
  than the approximate run's uncertainty of either variant:
  ``|exact_i - exact_j| > max(h_i, h_j)``. Otherwise the pair is a *tie*: the
  approximate run cannot be expected to order it, so it is counted, reported,
  and left out of the ranking score.
- Over the D decisive pairs, a pair is *concordant* when the approximate metrics
  order it as the exact metrics do, *discordant* when they order it the other
  way, and contributes 0 when the approximate metrics are equal.
  ``tau = (concordant - discordant) / D`` (Kendall's tau-a restricted to the
  decisive pairs). With D < 2, tau is undefined (reported as null).
- Because a noisier approximation widens the intervals and so turns more pairs
  into ties that drop out of that score, two figures are reported beside it:
  the *share of pairs kept* (D / all pairs) and plain Kendall *tau-b over all
  pairs* of the approximate metrics against the exact ones, with no pair left
  out: ``(C - D') / sqrt((P - Tx) (P - Ty))`` over the P pairs without a NaN, where
  C and D' count the pairs ordered alike and oppositely, Tx and Ty those tied
  (exactly equal) in the exact and in the approximate metrics; undefined (null)
  when either is constant.
- Also reported: how many exact metrics lie inside their variant's approximate
  interval (the interval covers test-set noise only, not the bias of training
  on a sample), and the mean signed gap approx - exact.

Speed
-----
``speedup = sum(exact process wall) / sum(approx process wall)`` over the
variants of a workload and scale, and per variant ``exact wall / approx wall``.
The same ratio over CPU seconds and over the runs' own ``wall_seconds`` is
reported as well. Targets (census at scale 10): speedup >= 5x, tau >= 0.8.

Protocols
---------
``--store-state cold`` (default): every run starts from an empty store.
``--store-state warm``: the person's usual state — the base config has been run
exactly once (``--materialize all``) into a template store, and every run, exact
or approximate, starts from its own copy of it (copying is not timed); exact
variants reuse what they can, approximate ones sample on top of the stored
exact examples when their examples are stored.
``--server``: every run is handed to a warm ``helix-tf server`` started for the
benchmark (TensorFlow, Keras and Beam imported once); the timed process is the
client, so CPU seconds count only the client and are not comparable.

``--rescore PREVIOUS.json`` runs nothing: it recomputes every summary of an earlier
run's JSON output (the stored metrics and intervals) under the current definitions,
prints the tables and, with ``--json``, writes the rescored report.

``--exact-from PREVIOUS.json`` reuses the exact measurements of an earlier run
of this benchmark (same variants and scales) so other approximate settings can
be measured without rerunning the exact runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import itertools
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._proc import REPO, run_helix_json
from benchmarks._server import auto_server, warm_server

__all__ = ["VARIANTS", "Variant", "fidelity", "kendall_tau_b", "main", "rescore"]

METRICS = ("accuracy", "auc")
FIDELITY_CONFIGS = Path(__file__).resolve().parent / "fidelity_configs"
TARGETS = {"workload": "census", "scale": 10, "speedup": 5.0, "tau": 0.8}


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    """One variant: a config file plus ``-p`` overrides."""

    name: str
    config: Path
    params: tuple[str, ...] = ()


def _census(name: str, *params: str, config: str | None = None) -> Variant:
    path = FIDELITY_CONFIGS / config if config else REPO / "configs" / "census.py"
    return Variant(name, path, params)


def _sms(name: str, *params: str, config: str | None = None) -> Variant:
    path = FIDELITY_CONFIGS / config if config else REPO / "configs" / "sms_spam.py"
    return Variant(name, path, params)


VARIANTS: dict[str, tuple[Variant, ...]] = {
    # configs/census.py: linear, L2 1e-4, Adam lr 0.01, 5 epochs, batch 1024.
    "census": (
        _census("base (l2 1e-4)"),
        _census("l2 1e-3", "learner.l2=0.001"),
        _census("l2 1e-2", "learner.l2=0.01"),
        _census("ftrl l1 1e-4", "learner.optimizer=ftrl", "learner.l1=0.0001", "learner.l2=0.0"),
        _census("ftrl l1 1e-3", "learner.optimizer=ftrl", "learner.l1=0.001", "learner.l2=0.0"),
        _census("lr 0.003", "learner.learning_rate=0.003"),
        _census("+age buckets", config="census_age_buckets.py"),
        _census("+edu x occ cross", config="census_cross.py"),
    ),
    # configs/sms_spam.py: TF-IDF unigrams (min count 2), linear, L2 1e-4, lr 0.05, 10 epochs.
    "sms": (
        _sms("base (l2 1e-4)"),
        _sms("l2 1e-3", "learner.l2=0.001"),
        _sms("l2 1e-2", "learner.l2=0.01"),
        _sms("lr 0.01", "learner.learning_rate=0.01"),
        _sms("lr 0.2", "learner.learning_rate=0.2"),
        _sms("epochs 5", "learner.epochs=5"),
        _sms("+bigrams", config="sms_bigrams.py"),
        _sms("min count 5", config="sms_min_count5.py"),
    ),
}


# --------------------------------------------------------------------------- fidelity


def half_width(interval: Sequence[float] | None) -> float:
    """Half the width of a bootstrap interval (nan when there is none)."""
    if not interval or len(interval) != 2:
        return float("nan")
    lo, hi = float(interval[0]), float(interval[1])
    return (hi - lo) / 2


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of ``y`` against ``x`` over every pair (ties adjusted; module docs).

    Pairs with a NaN on either side are left out; None when ``x`` or ``y`` has no
    untied pair (the coefficient is undefined).

    >>> kendall_tau_b([1, 2, 3], [10, 20, 30]), kendall_tau_b([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    >>> round(kendall_tau_b([1, 2, 3, 4], [1, 1, 2, 3]), 4)  # (5 - 0) / sqrt(6 * 5)
    0.9129
    >>> kendall_tau_b([1, 2, 3], [5, 5, 5]) is None
    True
    """
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    score = untied_x = untied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = x[i] - x[j], y[i] - y[j]
        if math.isnan(dx) or math.isnan(dy):
            continue
        score += _sign(dx) * _sign(dy)
        untied_x += dx != 0
        untied_y += dy != 0
    if not untied_x or not untied_y:
        return None
    return score / math.sqrt(untied_x * untied_y)


def fidelity(
    exact: Sequence[float], approx: Sequence[float], half_widths: Sequence[float]
) -> dict[str, Any]:
    """Kendall tau of ``approx`` against ``exact`` over the decisive pairs (module docs),
    the share of pairs that are decisive, and plain tau-b over all pairs.

    >>> r = fidelity([0.80, 0.85, 0.90], [0.70, 0.75, 0.80], [0.01, 0.01, 0.01])
    >>> r["tau"], r["decisive_pairs"], r["ties"]
    (1.0, 3, 0)
    >>> r = fidelity([0.80, 0.805, 0.90], [0.75, 0.70, 0.80], [0.01, 0.01, 0.01])
    >>> r["tau"], r["decisive_pairs"], r["ties"], r["tie_pairs"]
    (1.0, 2, 1, [[0, 1]])
    >>> round(r["decisive_share"], 4), round(r["tau_b_all_pairs"], 4)  # the tie counts: (2-1)/3
    (0.6667, 0.3333)
    >>> fidelity([0.8, 0.801], [0.7, 0.6], [0.01, 0.01])["tau"] is None
    True
    """
    n = len(exact)
    if not (len(approx) == len(half_widths) == n):
        raise ValueError("exact, approx and half_widths must have the same length")
    concordant = discordant = approx_equal = 0
    ties: list[list[int]] = []
    discordant_pairs: list[list[int]] = []
    for i, j in itertools.combinations(range(n), 2):
        gap = exact[i] - exact[j]
        h = max(half_widths[i], half_widths[j])
        if math.isnan(gap) or math.isnan(h) or abs(gap) <= h:
            ties.append([i, j])
            continue
        s = _sign(gap) * _sign(approx[i] - approx[j])
        if s > 0:
            concordant += 1
        elif s < 0:
            discordant += 1
            discordant_pairs.append([i, j])
        else:
            approx_equal += 1
    decisive = concordant + discordant + approx_equal
    covered = sum(
        1
        for e, a, h in zip(exact, approx, half_widths, strict=True)
        if not math.isnan(h) and abs(e - a) <= h
    )
    gaps = [a - e for e, a in zip(exact, approx, strict=True)]
    pairs = n * (n - 1) // 2
    return {
        "pairs": pairs,
        "decisive_pairs": decisive,
        "decisive_share": decisive / pairs if pairs else float("nan"),
        "tau_b_all_pairs": kendall_tau_b(exact, approx),
        "ties": len(ties),
        "tie_pairs": ties,
        "concordant": concordant,
        "discordant": discordant,
        "discordant_pairs": discordant_pairs,
        "approx_equal": approx_equal,
        "tau": (concordant - discordant) / decisive if decisive >= 2 else None,
        "exact_within_half_width": covered,
        "mean_gap_approx_minus_exact": sum(gaps) / n if n else float("nan"),
        "max_half_width": max(half_widths) if n else float("nan"),
    }


# --------------------------------------------------------------------------- running


def _run_one(
    variant: Variant,
    scale: int,
    *,
    approx_args: Sequence[str] | None,
    data_dir: str,
    env: dict[str, str] | None = None,
    template: Path | None = None,
) -> dict[str, Any]:
    """One run of ``variant`` in a fresh process (or server fork) with its own store.

    The store starts empty, or as a copy of ``template`` (copied before the clock starts).
    """
    args = [
        str(variant.config),
        *itertools.chain.from_iterable(("-p", p) for p in variant.params),
        "-p",
        f"scale={scale}",
        "--data-dir",
        data_dir,
    ]
    if approx_args is not None:
        args += ["--approx", *approx_args]
    m, out = run_helix_json(args, template=template, env=env)
    notes = out.get("notes") or []
    intervals = out.get("intervals") or {}
    # An approximate request whose exact results are stored loads those instead: its
    # answer is exact, with no uncertainty.
    exact_instead = approx_args is not None and any("exact results instead" in n for n in notes)
    if exact_instead:
        intervals = {k: [v, v] for k, v in out["metrics"].items()}
    elif bool(out.get("approx")) != (approx_args is not None):
        raise RuntimeError(f"{' '.join(m.cmd)}: JSON says approx={out.get('approx')!r}")
    train = next((n for n in out["nodes"] if n["kind"] == "train"), None)
    return {
        "exact_instead": exact_instead,
        "cmd": m.cmd,
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "peak_tree_rss_bytes": m.peak_tree_rss_bytes,
        "wall_seconds_json": out["wall_seconds"],
        "metrics": out["metrics"],
        "intervals": intervals,
        "train_rows": train["rows"] if train else None,
        "train_seconds": train["seconds"] if train else None,
        "nodes": {
            n["name"]: {"state": n["state"], "seconds": n["seconds"], "rows": n["rows"]}
            for n in out["nodes"]
        },
        "notes": notes,
    }


def _progress(msg: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


def _summarise(workload: str, scale: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    fid = {}
    for metric in METRICS:
        exact = [r["exact"]["metrics"].get(metric, float("nan")) for r in rows]
        approx = [r["approx"]["metrics"].get(metric, float("nan")) for r in rows]
        hw = [half_width(r["approx"]["intervals"].get(metric)) for r in rows]
        fid[metric] = fidelity(exact, approx, hw)

    def ratio(key: str) -> float:
        a = sum(r["approx"][key] for r in rows)
        return sum(r["exact"][key] for r in rows) / a if a else float("nan")

    speed = {
        "exact_wall_s": sum(r["exact"]["wall_s"] for r in rows),
        "approx_wall_s": sum(r["approx"]["wall_s"] for r in rows),
        "speedup_wall": ratio("wall_s"),
        "speedup_cpu": ratio("cpu_s"),
        "speedup_wall_seconds_json": ratio("wall_seconds_json"),
        "per_variant_wall": {
            r["variant"]: r["exact"]["wall_s"] / r["approx"]["wall_s"] for r in rows
        },
    }
    out: dict[str, Any] = {"fidelity": fid, "speed": speed}
    if workload == TARGETS["workload"] and scale == TARGETS["scale"]:
        out["targets"] = {
            "speedup": TARGETS["speedup"],
            "tau": TARGETS["tau"],
            "speedup_met": speed["speedup_wall"] >= TARGETS["speedup"],
            "tau_met": {m: _at_least(fid[m]["tau"], TARGETS["tau"]) for m in METRICS},
            "tau_b_all_pairs_met": {
                m: _at_least(fid[m]["tau_b_all_pairs"], TARGETS["tau"]) for m in METRICS
            },
        }
    return out


def _at_least(value: float | None, target: float) -> bool:
    return value is not None and value >= target


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def render(block: dict[str, Any]) -> str:
    """A markdown table and summary lines for one workload and scale."""
    rows = block["variants"]
    lines = [
        f"### {block['workload']} ×{block['scale']} ({block.get('protocol', 'cold store, one process per run')})",
        "",
        "| variant | exact acc | approx acc ± hw | exact AUC | approx AUC ± hw "
        "| train rows exact/approx | exact s | approx s | approx s (JSON) | speedup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        e, a = r["exact"], r["approx"]
        cells = [r["variant"]]
        for metric in METRICS:
            hw = half_width(a["intervals"].get(metric))
            cells.append(_fmt(e["metrics"].get(metric)))
            cells.append(f"{_fmt(a['metrics'].get(metric))} ± {_fmt(hw)}")
        cells.append(f"{_fmt(e['train_rows'], ',')} / {_fmt(a['train_rows'], ',')}")
        cells += [
            _fmt(e["wall_s"], ".1f"),
            _fmt(a["wall_s"], ".1f"),
            _fmt(a["wall_seconds_json"], ".1f"),
            _fmt(e["wall_s"] / a["wall_s"], ".2f") + "x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    s = block["summary"]
    for metric in METRICS:
        f = s["fidelity"][metric]
        tau = "undefined (fewer than 2 decisive pairs)" if f["tau"] is None else f"{f['tau']:.3f}"
        disc = ", ".join(
            f"{rows[i]['variant']} vs {rows[j]['variant']}" for i, j in f["discordant_pairs"]
        )
        tau_b = f["tau_b_all_pairs"]
        lines.append(
            f"- {metric}: Kendall τ = {tau} over {f['decisive_pairs']} decisive pairs "
            f"({f['concordant']} concordant, {f['discordant']} discordant"
            + (f": {disc}" if disc else "")
            + f", {f['approx_equal']} equal in approx); "
            f"pairs kept {f['decisive_pairs']}/{f['pairs']} ({_fmt(f['decisive_share'], '.0%')}); "
            f"plain τ-b over all {f['pairs']} pairs = "
            + ("undefined" if tau_b is None else f"{tau_b:.3f}")
            + "; "
            f"{f['ties']} of {f['pairs']} pairs are ties (exact gap ≤ approx half-width, not ranked); "
            f"exact within approx ± hw for {f['exact_within_half_width']}/{len(rows)}; "
            f"mean approx − exact {f['mean_gap_approx_minus_exact']:+.4f}"
        )
    sp = s["speed"]
    lines.append(
        f"- speedup (Σ exact wall / Σ approx wall): {sp['speedup_wall']:.2f}x "
        f"({sp['exact_wall_s']:.1f}s / {sp['approx_wall_s']:.1f}s); CPU seconds "
        f"{sp['speedup_cpu']:.2f}x; runs' own wall_seconds {sp['speedup_wall_seconds_json']:.2f}x"
    )
    if any(r.get("exact_reused") for r in rows):
        lines.append(
            "- note: exact runs reused (--exact-from): the speedups compare runs made at "
            "different times, under possibly different machine load"
        )
    if "targets" in s:
        t = s["targets"]
        taus = ", ".join(f"{m} {'met' if ok else 'NOT met'}" for m, ok in t["tau_met"].items())
        taus_b = ", ".join(
            f"{m} {'met' if ok else 'NOT met'}"
            for m, ok in t.get("tau_b_all_pairs_met", {}).items()
        )
        lines.append(
            f"- targets: speedup ≥ {t['speedup']}x {'met' if t['speedup_met'] else 'NOT met'}; "
            f"τ ≥ {t['tau']} (decisive pairs): {taus}; plain τ-b ≥ {t['tau']}: {taus_b}"
        )
    return "\n".join(lines)


def _load_exact(path: str | None) -> dict[tuple[str, int, str], dict[str, Any]]:
    if not path:
        return {}
    old = json.loads(Path(path).read_text())
    return {
        (b["workload"], b["scale"], r["variant"]): r["exact"]
        for b in old["results"]
        for r in b["variants"]
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=("census", "sms", "both"), default="both")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--json", dest="json_out", default=None, help="write the results here")
    ap.add_argument(
        "--approx-args",
        default="",
        help='extra flags for the approximate runs, e.g. "--sample 0.2 --approx-epochs 0.5"',
    )
    ap.add_argument(
        "--exact-from", default=None, help="reuse exact runs from an earlier --json output"
    )
    ap.add_argument(
        "--rescore",
        default=None,
        metavar="PREVIOUS.json",
        help="run nothing: recompute the summaries of an earlier --json output",
    )
    ap.add_argument(
        "--variants", type=int, default=None, help="only the first N variants (smoke tests)"
    )
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("HELIX_TF_DATA") or str(REPO.parent / "shared" / "data"),
    )
    ap.add_argument(
        "--store-state",
        choices=("cold", "warm"),
        default="cold",
        help="cold: empty store per run; warm: a copy of a store holding the base run",
    )
    ap.add_argument(
        "--server", action="store_true", help="hand every run to a warm helix-tf server"
    )
    ap.add_argument(
        "--auto-server",
        action="store_true",
        help="the server as a user gets it: the first run starts one, later runs use it",
    )
    args = ap.parse_args(argv)
    if args.rescore:
        report = rescore(json.loads(Path(args.rescore).read_text()))
        report["rescored"] = {"from": args.rescore, "command": _command(argv)}
        for block in report["results"]:
            print(render(block), flush=True)
            print(flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=2, default=str))
        return 0
    with contextlib.ExitStack() as stack:
        env = (
            stack.enter_context(warm_server())
            if args.server
            else stack.enter_context(auto_server())
            if args.auto_server
            else None
        )
        return _main(args, argv, env, stack)


def rescore(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` (an earlier JSON output) with every summary recomputed from its runs."""
    out = copy.deepcopy(report)
    for block in out["results"]:
        block["summary"] = _summarise(block["workload"], block["scale"], block["variants"])
    return out


def _command(argv: Sequence[str] | None) -> str:
    return " ".join(["python -m benchmarks.approx_fidelity", *(argv or sys.argv[1:])])


def _template(workload: str, scale: int, data_dir: str, env: dict[str, str] | None) -> Path:
    """A store holding one exact run of the workload's base variant (everything kept)."""
    base = VARIANTS[workload][0]
    folder = Path(tempfile.mkdtemp(prefix="helix-fidelity-template-"))
    args = [
        str(base.config),
        *itertools.chain.from_iterable(("-p", p) for p in base.params),
        "-p",
        f"scale={scale}",
        "--data-dir",
        data_dir,
        "--materialize",
        "all",
    ]
    run_helix_json(args, store=folder / "store", env=env)
    return folder / "store"


def _main(
    args: argparse.Namespace,
    argv: Sequence[str] | None,
    env: dict[str, str] | None,
    stack: contextlib.ExitStack,
) -> int:
    approx_args = shlex.split(args.approx_args)
    workloads = ["census", "sms"] if args.workload == "both" else [args.workload]
    reused = _load_exact(args.exact_from)
    report: dict[str, Any] = {
        "benchmark": "approx_fidelity",
        "command": _command(argv),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "approx_args": ["--approx", *approx_args],
        "store_state": args.store_state,
        "server": "auto" if args.auto_server else bool(args.server),
        "targets": TARGETS,
        "results": [],
    }

    def save() -> None:
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=2, default=str))

    for workload in workloads:
        variants = VARIANTS[workload][: args.variants]
        for scale in args.scales:
            block: dict[str, Any] = {
                "workload": workload,
                "scale": scale,
                "protocol": f"{args.store_state} store, "
                + (
                    "warm server"
                    if args.server
                    else "auto-started server"
                    if args.auto_server
                    else "one process per run"
                ),
                "load_avg_start": os.getloadavg(),
                "variants": [],
            }
            report["results"].append(block)
            template = None
            if args.store_state == "warm":
                _progress(f"{workload} ×{scale}: template store (base, exact, materialize all)")
                template = _template(workload, scale, args.data_dir, env)
                stack.callback(shutil.rmtree, template.parent, True)
            for k, v in enumerate(variants):
                key = (workload, scale, v.name)
                exact = reused.get(key)
                approx = None
                order = ("exact", "approx") if k % 2 == 0 else ("approx", "exact")
                for which in order:
                    if which == "exact" and exact is not None:
                        continue
                    _progress(f"{workload} ×{scale} {v.name}: {which}")
                    result = _run_one(
                        v,
                        scale,
                        approx_args=approx_args if which == "approx" else None,
                        data_dir=args.data_dir,
                        env=env,
                        template=template,
                    )
                    if which == "exact":
                        exact = result
                    else:
                        approx = result
                assert exact is not None and approx is not None
                block["variants"].append(
                    {
                        "variant": v.name,
                        "config": str(v.config.relative_to(REPO)),
                        "params": list(v.params),
                        "exact": exact,
                        "approx": approx,
                        "exact_reused": key in reused,
                    }
                )
                save()
            block["load_avg_end"] = os.getloadavg()
            block["summary"] = _summarise(workload, scale, block["variants"])
            save()
            print(render(block), flush=True)
            print(flush=True)
    report["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
