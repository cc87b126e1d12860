"""What the think-time agent is worth: quality, yield, throughput, reuse, robustness.

Usage::

    python -m benchmarks.agent_value [--config configs/census.py] [--scale 1]
        [--parts quality,yield,abba,kill] [--minutes 10] [--seeds 0 1 2]
        [--yield-starts 50] [--abba-pairs 10] [--kills 20] [--cores 1] [--json out.json]
        [--parts fidelity --scale 10 --fidelity-trials 30 [--exact-from TRIALS.jsonl]]

Every part uses its own fresh store (a temporary folder) and the shared data
(``--data-dir``, default ``../shared/data``); user runs never use a warm server.

quality
    Per seed: ``helix-tf agent start`` (``--cores``), ``--minutes`` of think
    time, ``agent stop``, ``agent report --json``. Met when a proposal is
    *better* (its paired-bootstrap interval on the test-AUC difference against
    the config as written excludes 0) with test AUC >= 0.905, for at least 2 of
    3 seeds. Also reported per seed: trials finished per minute (all, and
    learner-only: trials whose runs computed no preprocessing node), and the
    share of node executions in the study that were loads or prunes.
yield
    The agent runs with ``--resume-after 0.2``; ``--yield-starts`` times, while
    a trial is in progress, this process takes the user-run mark exactly as
    ``helix-tf run`` does (:func:`helix_tf.activity.user_run`) and waits until
    the agent reports the yield; the agent measures from the mark to its trial's
    process group reaped. Target: p95 <= 200 ms.
abba
    The user's run of the config (a new L2 each time, so the learner and
    downstream compute) with no agent (A) and with the agent in a trial when the
    run starts (B), in ABBA order, ``--abba-pairs`` times. Target: the median over
    pairs of each pair's B time over its A time <= 1.05 (the pair cancels the drift
    of the machine's load; the ratio of the medians over all runs is reported too).
kill
    ``--kills`` times: SIGKILL the agent at a random moment (0.5-6 s after it
    was seen in a trial or a verification), start it again. Then let the study resume
    (a trial completes after the last restart), stop it and check: no trial left
    running, every store entry verifies, and no "database is locked" in the agent's log.
throughput
    Learner-only trials a minute at x1: the config with a declared ``SEARCH`` of
    its learner's hyper-parameters only (L1, L2, learning rate, epochs, batch
    size; written beside a copy of it), the agent started (``--cores``), its
    baseline run first, then ``--minutes`` of trials, ``agent stop``. The rate
    counts the trials finished between the first trial's start and the last
    one's end (the baseline's preprocessing excluded); per trial it also reports
    the worker's time (the run through ``helix_tf.run``) against the agent's own
    (planning, the study) and how many worker processes served them, and the CPU
    all told (the agent's and its worker's processes over the window, verification
    included) per trial: the rate on a core of its own. Target: >= 20.
fidelity
    Kendall tau between approximate and exact validation AUC of random points of
    the space at ``-p scale=--scale`` (target >= 0.7 over >= 30 at x10), overall and
    per model family. The rung is the agent's (``--fidelity-sample``, default
    ``AgentOptions.approx_sample``; ``--fidelity-precision``, ``--fidelity-epochs-scale``).
    ``--exact-from TRIALS`` reuses an earlier run's points and exact AUCs (only the
    approximate runs are made), recomputing ``--exact-check`` of them to check they
    still agree; those pairs, run side by side, give the approximate/exact cost ratio.
ordering
    ``--ordering-trials`` trials drawn (seeded) from the config's space, run as
    the agent runs them (exact validation runs, tagged ``agent``) twice on fresh
    stores that hold the user's version: in the sampler's order, and in the
    reuse-aware order (each trial planned through ``helix_tf.plan``, then
    :func:`helix_tf.agent._order.reuse_order`; the planning is timed too). Once
    per ``--ordering-caps`` entry: the agent's entries capped at that many bytes
    (``none``: no cap), in batches of ``--ordering-batch`` (the agent's ``--batch``).
    Each order runs in its own long-lived worker, as the agent's (Keras trainers
    kept, only the scored outputs delivered), and each batch is planned just
    before it runs. The two orders run interleaved (one run of each in turn, which
    goes first alternating) so both see the same load. Target: reuse-aware wall
    time <= 0.75x the sampler's.
trial-cost
    CPU seconds of a learner-only trial's run in the agent's worker, delivering every
    output against only the scored ones (``--cost-trials``, interleaved): what the
    throughput costs on a core of its own, measured side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._proc import REPO, helix_command

QUALITY_AUC = 0.905


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "HELIX_TF_SERVER": "off",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "HELIX_TF_AGENT_REGISTRY": str(Path(tempfile.gettempdir()) / "helix-bench-agents"),
    }


def _helix(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [*helix_command(), *args], capture_output=True, text=True, env=_env(), cwd=REPO
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"helix-tf {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out


class _Agent:
    def __init__(self, config: Path, store: Path, data_dir: str, cores: int) -> None:
        self.config, self.store, self.data_dir, self.cores = config, store, data_dir, cores
        self.status_path = store / "agent" / "status.json"

    def common(self) -> list[str]:
        return ["--store", str(self.store), "--data-dir", self.data_dir]

    def start(self, *extra: str) -> None:
        _helix(
            "agent",
            "start",
            str(self.config),
            *self.common(),
            "--cores",
            str(self.cores),
            "--wait",
            "300",
            *extra,
        )

    def stop(self) -> None:
        _helix("agent", "stop", str(self.config), "--store", str(self.store), "--wait", "120")

    def status(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(self.status_path.read_text())
        return {}

    def wait(self, what: str, check: Any, timeout: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if check(st):
                return st
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for the agent: {what}; last status {self.status()}")

    def report(self) -> dict[str, Any]:
        out = _helix("agent", "report", str(self.config), *self.common(), "--json")
        return json.loads(out.stdout)


def _in_trial(st: dict[str, Any]) -> bool:
    return st.get("state") == "running" and bool(st.get("rung"))


def _study_trials(store: Path, report: dict[str, Any]) -> list[Any]:
    import optuna

    study = optuna.load_study(
        study_name=report["study"], storage=f"sqlite:///{store}/agent/study.db"
    )
    return study.get_trials(deepcopy=False)


def quality(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    per_seed = []
    for seed in args.seeds:
        store = root / f"quality-{seed}"
        agent = _Agent(args.config, store, args.data_dir, args.cores)
        t0 = time.monotonic()
        agent.start("--seed", str(seed))
        time.sleep(args.minutes * 60)
        agent.stop()
        think = time.monotonic() - t0
        report = agent.report()
        trials = _study_trials(store, report)
        finished = [t for t in trials if t.state.is_finished() and t.state.name != "FAIL"]
        states: dict[str, int] = {}
        learner_only = 0
        for t in finished:
            rung_states = [
                (t.user_attrs.get(k) or {}).get("states") or {}
                for k in ("rung_approx", "rung_exact")
            ]
            for s in rung_states:
                for k, v in s.items():
                    states[k] = states.get(k, 0) + v
            computed = sum(s.get("compute", 0) for s in rung_states)
            if computed and computed <= 3:  # learner, predictions, evaluation
                learner_only += 1
        total = sum(states.values()) or 1
        better = [
            p
            for p in report["proposals"]
            if p["better"] and (p["test"] or {}).get("metrics", {}).get("auc", 0) >= QUALITY_AUC
        ]
        best = report["proposals"][0] if report["proposals"] else None
        per_seed.append(
            {
                "seed": seed,
                "think_seconds": round(think, 1),
                "trials": {k: v for k, v in report["trials"].items()},
                "trials_per_minute": round(len(finished) / (think / 60), 2),
                "learner_only_trials_per_minute": round(learner_only / (think / 60), 2),
                "reuse_share": round((states.get("load", 0) + states.get("prune", 0)) / total, 3),
                "node_states": states,
                "baseline_test": (report.get("baseline_test") or {}).get("metrics"),
                "best": best
                and {
                    k: best[k] for k in ("overrides", "validation", "test", "difference", "better")
                },
                "met": bool(better),
            }
        )
        print(json.dumps(per_seed[-1], default=str), flush=True)
    met = sum(s["met"] for s in per_seed)
    return {
        "seeds": per_seed,
        "target": f"better proposal with test AUC >= {QUALITY_AUC} in >= 2 of 3 seeds",
        "met": met >= min(2, len(per_seed)) and len(per_seed) >= 3,
        "seeds_met": met,
    }


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100): the smallest value with at least
    ``q`` % of ``values`` at or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def yield_latency(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """``--yield-starts`` measured yields: a start that found the trial already over (the
    agent paused between runs, nothing to stop) is not a yield and is tried again, up to
    three times as many starts in all."""
    from helix_tf.activity import user_run

    store = root / "yield"
    agent = _Agent(args.config, store, args.data_dir, args.cores)
    agent.start("--resume-after", "0.2")
    rng = random.Random(0)
    latencies: list[float] = []
    starts = 0
    try:
        while len(latencies) < args.yield_starts and starts < 3 * args.yield_starts:
            starts += 1
            agent.wait("a trial in progress", _in_trial)
            time.sleep(rng.uniform(0.0, 0.5))
            before = agent.status().get("yields", {}).get("count", 0)
            with user_run(store):
                st = agent.wait("the pause", lambda s: s.get("state") == "paused", timeout=60)
            if st.get("yields", {}).get("count", 0) > before:
                latencies.append(st["yields"]["latencies_ms"][-1])
    finally:
        agent.stop()
    p95 = percentile(latencies, 95)
    return {
        "starts": starts,
        "measured": len(latencies),
        "latencies_ms": latencies,
        "latency_ms": {
            "p50": statistics.median(latencies) if latencies else None,
            "p95": p95,
            "max": max(latencies) if latencies else None,
        },
        "target": "p95 <= 200 ms",
        "met": p95 is not None and p95 <= 200 and len(latencies) >= 50,
    }


def abba(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    store = root / "abba"
    agent = _Agent(args.config, store, args.data_dir, args.cores)
    common = ["--store", str(store), "--data-dir", args.data_dir]
    _helix("run", str(args.config), *common)  # preprocessing stored: user runs retrain
    runs: dict[str, list[float]] = {"A": [], "B": []}
    k = 0

    def user_run(kind: str) -> None:
        nonlocal k
        k += 1
        if kind == "B":
            agent.wait("a trial in progress", _in_trial)
        t0 = time.perf_counter()
        _helix("run", str(args.config), *common, "-p", f"learner.l2={1e-4 * (1 + k / 100):.8g}")
        runs[kind].append(time.perf_counter() - t0)

    for _ in range(args.abba_pairs):
        for kind in ("A", "B", "B", "A"):
            stopped = agent.status().get("state") in (None, "stopped", "done", "failed")
            if kind == "B" and stopped:
                agent.start("--resume-after", "3")
            if kind == "A" and not stopped:
                agent.stop()
            user_run(kind)
    with contextlib.suppress(RuntimeError):
        agent.stop()
    a, b = statistics.median(runs["A"]), statistics.median(runs["B"])
    ratios = abba_pair_ratios(runs["A"], runs["B"])
    ratio = statistics.median(ratios)
    return {
        "pairs": args.abba_pairs,
        "seconds": runs,
        "median_idle": round(a, 3),
        "median_active": round(b, 3),
        "ratio_of_medians": round(b / a, 3),
        "pair_ratios": [round(r, 3) for r in ratios],
        "ratio": round(ratio, 3),
        "target": "median over ABBA pairs of active/idle <= 1.05 over >= 10 pairs",
        "met": ratio <= 1.05 and len(ratios) >= 10,
    }


def abba_pair_ratios(idle: list[float], active: list[float]) -> list[float]:
    """Per ABBA pair, its two active runs' time over its two idle runs' time.

    ``idle`` and ``active`` hold the runs in the order they ran, two of each per pair.
    Each pair's four runs lie minutes apart, so the load on a shared machine, which
    drifts over the part, cancels within the pair; medians over all idle and all
    active runs ignore the pairing.
    """
    if len(idle) != len(active) or len(idle) % 2:
        raise ValueError(
            f"abba_pair_ratios: two idle and two active runs a pair, but got "
            f"{len(idle)} idle and {len(active)} active"
        )
    return [(active[i] + active[i + 1]) / (idle[i] + idle[i + 1]) for i in range(0, len(idle), 2)]


def _completed_since(store: Path, study: str, since: float) -> int:
    """Trials of ``study`` that completed at or after ``since`` (``time.time()``)."""
    import optuna
    from optuna.trial import TrialState

    trials = optuna.load_study(
        study_name=study, storage=f"sqlite:///{store}/agent/study.db"
    ).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sum(t.datetime_complete.timestamp() >= since for t in trials if t.datetime_complete)


def _resumed(agent: _Agent, study: str, *, since: float, timeout: float) -> float | None:
    """Seconds from ``since`` until a trial of ``study`` completed; None if none in time.

    The study is read only when the agent's status shows trial counts it has not seen
    (the agent writes them after each trial): no polling of its database.
    """
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        counts = agent.status().get("trials")
        if counts is not None and counts != seen:
            seen = counts
            if _completed_since(agent.store, study, since):
                return round(time.time() - since, 1)
        time.sleep(0.5)
    return None


def kill(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from optuna.trial import TrialState

    from helix_tf.reuse.store import ArtifactStore

    store = root / "kill"
    agent = _Agent(args.config, store, args.data_dir, args.cores)
    rng = random.Random(1)
    recovered: list[list[int]] = []
    for i in range(args.kills):
        agent.start()
        st = agent.wait("recovery", lambda s: s.get("state") in ("running", "verifying"))
        if i:
            recovered.append(st.get("orphans_failed") or [])
        agent.wait(
            "a trial or a verification", lambda s: _in_trial(s) or s.get("state") == "verifying"
        )
        time.sleep(rng.uniform(0.5, 6.0))
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(agent.status()["pid"]), signal.SIGKILL)
        time.sleep(0.5)
    restarted = time.time()
    agent.start()
    st = agent.wait("recovery", lambda s: s.get("state") in ("running", "verifying"))
    recovered.append(st.get("orphans_failed") or [])
    # The study resumes: a trial completes after the last restart (the killed ones are
    # queued again, so it is one of them or a new one).
    resumed = _resumed(agent, st["study"], since=restarted, timeout=900)
    agent.stop()
    report = agent.report()
    trials = _study_trials(store, report)
    running = [t.number for t in trials if t.state == TrialState.RUNNING]
    artifacts = ArtifactStore(str(store))
    bad = [
        m.fingerprint for m in artifacts.entries() if artifacts.open_local(m, verify=True) is None
    ]
    log = (store / "agent" / "agent.log").read_text(errors="replace")
    locked = len(re.findall("database is locked", log))
    return {
        "kills": args.kills,
        "orphans_failed_per_restart": recovered,
        "trials": report["trials"],
        "running_after": running,
        "corrupt_entries": bad,
        "database_is_locked": locked,
        "resumed_after_seconds": resumed,
        "met": not running and not bad and locked == 0 and resumed is not None and args.kills >= 20,
    }


#: The learner-only space of the throughput part (appended to a copy of the config).
LEARNER_SEARCH = """

from helix_tf import search as _search

SEARCH = {
    "learner.l1": _search.Float(1e-6, 1e-2, log=True),
    "learner.l2": _search.Float(1e-6, 1e-2, log=True),
    "learner.learning_rate": _search.Float(1e-3, 0.1, log=True),
    "learner.epochs": _search.Int(2, 10),
    "learner.batch_size": _search.Choice(256, 512, 1024),
}
"""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    store = root / "throughput"
    config = root / f"learner_only_{args.config.name}"
    config.write_text(args.config.read_text() + LEARNER_SEARCH)
    agent = _Agent(config, store, args.data_dir, args.cores)
    agent.start(*args.agent_args)
    st = agent.wait("the first trial", lambda s: s.get("trial") is not None, timeout=900)
    pid = int(st["pid"])
    wpid = (st.get("worker") or {}).get("pid")
    cpu0, load0 = _cpu_seconds(pid), os.getloadavg()
    wcpu0 = _cpu_seconds(int(wpid)) if wpid else None
    time.sleep(args.minutes * 60)
    cpu1 = _cpu_seconds(pid)
    wcpu1 = _cpu_seconds(int(wpid)) if wpid else None
    stopped_at = time.time()
    st = agent.status()
    agent.stop()
    report = agent.report()
    trials = [
        t
        for t in _study_trials(store, report)
        if t.state.is_finished() and t.state.name != "FAIL" and t.datetime_complete
    ]
    if not trials:
        return {"trials": 0, "met": False}
    think = stopped_at - min(t.datetime_start for t in trials).timestamp()
    rungs = [
        t.user_attrs.get("rung_exact") or t.user_attrs.get("rung_approx") or {} for t in trials
    ]
    cpu = [r["cpu_seconds"] for r in rungs if r.get("cpu_seconds") is not None]
    rate = 60 * len(trials) / think
    worker = st.get("worker") or {}
    agent_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    # Everything the agent's processes spent in the window (its worker's search and
    # verification runs, its own planning and study), per trial finished.
    worker_cpu = None if wcpu0 is None or wcpu1 is None else wcpu1 - wcpu0
    all_told = None if agent_cpu is None or worker_cpu is None else agent_cpu + worker_cpu
    spent = worker.get("seconds") or {}
    return {
        "minutes": args.minutes,
        "trials": len(trials),
        "think_seconds": round(think, 1),
        "trials_per_minute": round(rate, 2),
        "run_seconds_per_trial": round(statistics.mean(r.get("seconds", 0.0) for r in rungs), 2),
        "run_cpu_seconds_per_trial": round(statistics.mean(cpu), 2) if cpu else None,
        "trials_per_minute_of_cpu": round(60 / statistics.mean(cpu), 1) if cpu else None,
        "agent_process_cpu_seconds": agent_cpu and round(agent_cpu, 1),
        "worker_cpu_seconds": worker_cpu and round(worker_cpu, 1),
        "all_told_cpu_seconds_per_trial": all_told and round(all_told / len(trials), 2),
        "trials_per_minute_of_cpu_all_told": all_told and round(60 * len(trials) / all_told, 1),
        "verify_share_of_worker_time": round(
            spent.get("verify", 0.0) / (sum(spent.values()) or 1.0), 3
        ),
        "approximate_rungs": sum(1 for t in trials if t.user_attrs.get("rung_approx")),
        "trainers": (rungs[-1].get("trainers") if rungs else None),
        "nodes_computed_per_trial": round(
            statistics.mean((r.get("states") or {}).get("compute", 0) for r in rungs), 2
        ),
        "worker": worker,
        "load_average": {"start": load0, "end": os.getloadavg()},
        "target": ">= 20 learner-only trials a minute at x1",
        "met": rate >= 20,
    }


def trial_cost(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """CPU seconds of a learner-only trial's run: every output against the scored ones.

    The throughput part's space (``LEARNER_SEARCH``), ``--cost-trials`` points drawn
    at random (seeded); each run as the agent's worker makes it (exact validation
    run, tagged, Keras trainers kept), once in a worker delivering every output of
    the workflow (the agent before issue 10's follow-up) and once in one delivering
    only the scored outputs (the agent now), on two stores; interleaved, which goes
    first alternating, so both see the same load. CPU seconds are the worker's own
    (what a trial costs on a core of its own, whatever else runs).
    """
    import optuna

    import helix_tf
    from helix_tf import history
    from helix_tf.agent._study import suggest
    from helix_tf.agent._trial_run import keep_trainers, scored_outputs
    from helix_tf.agent._worker import Finished, Worker, preload
    from helix_tf.search import search_space

    config = root / f"learner_only_{args.config.name}"
    config.write_text(args.config.read_text() + LEARNER_SEARCH)
    preload()
    space = search_space(config, data_dir=args.data_dir)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.ordering_seed))
    trials = [suggest(study.ask(), space) for _ in range(args.cost_trials)]
    validation = helix_tf.Validation()
    dag = history.describe(config, data_dir=args.data_dir, validation=validation).dag
    kinds = {"all_outputs": None, "scored_outputs": scored_outputs(dag)}
    stores = {kind: str(root / f"cost-{kind}") for kind in kinds}
    workers = {
        kind: Worker(_ordering_run, home=stores[kind], max_rss=None, on_start=keep_trainers)
        for kind in kinds
    }
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    trainers: dict[str, Any] = {}
    try:
        for step, params in enumerate([{}, *trials]):  # the user's version first
            order = list(kinds) if step % 2 == 0 else list(reversed(list(kinds)))
            for kind in order:
                kwargs = {
                    "data_dir": args.data_dir,
                    "validation": validation,
                    "outputs": kinds[kind],
                    "params": params,
                    "store": stores[kind],
                }
                out = workers[kind].call({"config": config, "kwargs": kwargs}, stop=lambda: False)
                if not isinstance(out, Finished) or out.result is None:
                    raise RuntimeError(f"trial-cost run failed: {getattr(out, 'error', out)}")
                trainers[kind] = out.result["trainers"]
                if step:
                    cpu[kind].append(out.cpu_seconds or 0.0)
                    wall[kind].append(out.seconds)
    finally:
        for worker in workers.values():
            worker.close()
    mean = {kind: statistics.mean(v) for kind, v in cpu.items()}
    return {
        "trials": len(trials),
        "cpu_seconds_per_trial": {k: round(v, 3) for k, v in mean.items()},
        "cpu_seconds": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "wall_seconds_per_trial": {k: round(statistics.mean(v), 3) for k, v in wall.items()},
        "ratio": round(mean["scored_outputs"] / mean["all_outputs"], 3),
        "trials_per_minute_of_cpu": {k: round(60 / v, 1) for k, v in mean.items()},
        "trainers": trainers,
        "load_average": os.getloadavg(),
    }


def _kendall_tau(a: list[float], b: list[float]) -> float | None:
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    concordant = discordant = 0
    for i, j in pairs:
        s = (a[i] - a[j]) * (b[i] - b[j])
        concordant += s > 0
        discordant += s < 0
    return (concordant - discordant) / len(pairs) if pairs else None


def _fidelity_family(overrides: dict[str, Any]) -> str:
    """The model family a point trains: its ``model:`` swap, or the config's own."""
    swaps = [v for k, v in sorted(overrides.items()) if k.startswith("model:") and v]
    return str(swaps[0]) if swaps else "as written"


def _fidelity_taus(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Kendall τ between the rungs over all points and per model family (with counts)."""

    def tau(ps: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "n": len(ps),
            "tau": _kendall_tau([p["approx"] for p in ps], [p["exact"] for p in ps]),
        }

    families = sorted({_fidelity_family(p["overrides"]) for p in points})
    return {
        "all": tau(points),
        **{f: tau([p for p in points if _fidelity_family(p["overrides"]) == f]) for f in families},
    }


def _stored_exact(path: Path) -> list[dict[str, Any]]:
    """The points of an earlier fidelity run with their exact validation AUCs.

    Reads a trials file (one ``{"fidelity_trial": overrides, "approx": ..., "exact": ...}``
    per line, as the part prints them) or a result file (``{"fidelity": {"points": [...]}}``).
    """
    text = path.read_text()
    if path.suffix == ".json":
        points = json.loads(text)["fidelity"]["points"]
        return [{"overrides": p["overrides"], "exact": p["exact"]} for p in points]
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [
        {"overrides": r["fidelity_trial"], "exact": r["exact"]}
        for r in rows
        if "fidelity_trial" in r
    ]


def fidelity(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Kendall tau between the lowest rung (approximate validation) and exact validation.

    ``--fidelity-trials`` points drawn at random (seeded) from the config's search
    space, each run as the agent runs its rungs: approximately (the agent's sample,
    ``--fidelity-sample``; ``--fidelity-precision``, ``--fidelity-epochs-scale``) and
    exactly, on the validation split, at ``-p scale=--scale``. The approximate runs
    share one store and the exact runs another, so what one rung stored never decides
    the other's (an approximate run on a store holding the exact examples would
    sample them at training instead of at the source).

    ``--exact-from FILE`` takes the points, in order, and their exact AUCs from an
    earlier run (an exact run does not change when only the approximate rung does):
    only the first ``--exact-check`` points are run exactly again, side by side with
    their approximate runs (which goes first alternating, after the imports a warm
    worker makes), each compared with the stored AUC (``exact_check``: reused only when all agree within ``--exact-tolerance``;
    otherwise the part raises). Those side-by-side pairs give the cost ratio, in wall
    seconds and in CPU seconds (``os.times`` of this process and its children: on a
    loaded machine the wall time measures the load more than the run).
    """
    import helix_tf

    params = [f"scale={args.scale}"]
    if args.exact_from:
        stored = _stored_exact(Path(args.exact_from))
        if len(stored) < args.fidelity_trials:
            raise SystemExit(
                f"--exact-from {args.exact_from} holds {len(stored)} points, "
                f"fewer than --fidelity-trials {args.fidelity_trials}"
            )
        stored = stored[: args.fidelity_trials]
        draws = [p["overrides"] for p in stored]
    else:
        import optuna

        from helix_tf.agent._study import suggest
        from helix_tf.search import search_space

        space = search_space(args.config, params=params, data_dir=args.data_dir)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        stored, draws = [], [suggest(study.ask(), space) for _ in range(args.fidelity_trials)]
    from helix_tf.agent._options import AgentOptions

    sample = args.fidelity_sample
    setting = helix_tf.Approx(
        sample=AgentOptions(config=str(args.config)).approx_sample if sample is None else sample,
        precision=args.fidelity_precision,
        epochs_scale=args.fidelity_epochs_scale,
    )
    stores = {"approx": str(root / "fidelity-approx"), "exact": str(root / "fidelity-exact")}
    from helix_tf.warm import preload

    preload()  # as the agent's worker: no run's time includes the imports

    def run(kind: str, overrides: dict[str, Any]) -> tuple[float, float, float]:
        """The run's AUC, wall seconds and CPU seconds (all its threads, and children)."""
        t0 = os.times()
        r = helix_tf.run(
            args.config,
            params=[*params, *(f"{k}={v!r}" for k, v in overrides.items())],
            data_dir=args.data_dir,
            store=stores[kind],
            approx=setting if kind == "approx" else None,
            validation=helix_tf.Validation(),
            tag="agent",
        )
        t1 = os.times()
        cpu = sum(b - a for a, b in zip(t0[:4], t1[:4], strict=True))
        return r.metrics["auc"], r.wall_seconds, cpu

    points: list[dict[str, Any]] = []
    for i, overrides in enumerate(draws):
        reuse = bool(stored) and i >= args.exact_check
        kinds = ["approx"] if reuse else ["approx", "exact"][:: 1 if i % 2 == 0 else -1]
        point: dict[str, Any] = {"overrides": overrides, "seconds": {}, "cpu_seconds": {}}
        for kind in kinds:
            point[kind], point["seconds"][kind], point["cpu_seconds"][kind] = run(kind, overrides)
        if stored:
            point["stored_exact"] = stored[i]["exact"]
            point["exact_source"] = "stored" if reuse else "recomputed"
            point.setdefault("exact", stored[i]["exact"])
        points.append(point)
        print(json.dumps({"fidelity_trial": overrides, **point}, default=str), flush=True)
    checked = [p for p in points if p.get("exact_source") == "recomputed"]
    diffs = [abs(p["exact"] - p["stored_exact"]) for p in checked]
    if stored and diffs and max(diffs) > args.exact_tolerance:
        raise SystemExit(
            f"exact AUCs recomputed differ from {args.exact_from} by up to {max(diffs):.5f} "
            f"(> --exact-tolerance {args.exact_tolerance}): the exact runs changed, so they "
            "cannot be reused; run without --exact-from"
        )
    paired = [p for p in points if {"approx", "exact"} <= p["seconds"].keys()]
    cost = {
        "pairs": len(paired),
        "approx_seconds": sum(p["seconds"]["approx"] for p in paired),
        "exact_seconds": sum(p["seconds"]["exact"] for p in paired),
    }
    cost["ratio"] = cost["approx_seconds"] / cost["exact_seconds"] if paired else None
    cpu = {k: sum(p["cpu_seconds"][k] for p in paired) for k in ("approx", "exact")}
    cost["approx_cpu_seconds"], cost["exact_cpu_seconds"] = cpu["approx"], cpu["exact"]
    cost["cpu_ratio"] = cpu["approx"] / cpu["exact"] if cpu["exact"] > 0 else None
    taus = _fidelity_taus(points)
    tau = taus["all"]["tau"]
    n = len(points)
    return {
        "scale": args.scale,
        "trials": n,
        "approx": dataclasses.asdict(setting),
        "approx_auc": [p["approx"] for p in points],
        "exact_auc": [p["exact"] for p in points],
        "kendall_tau": tau,
        "kendall_tau_by_family": taus,
        "points": points,
        "exact_from": args.exact_from,
        "exact_check": {"points": len(checked), "max_abs_diff": max(diffs) if diffs else None},
        "approx_seconds_all": sum(p["seconds"]["approx"] for p in points),
        "cost_side_by_side": cost,
        "target": "tau >= 0.7 over >= 30 trials at x10",
        "met": tau is not None and tau >= 0.7 and n >= 30 and args.scale >= 10,
    }


def _ordering_run(request: dict[str, Any]) -> dict[str, Any]:
    """In an ordering worker: one exact validation run, as the agent's worker makes it."""
    import helix_tf
    from helix_tf.components.trainers import TRAINERS

    r = helix_tf.run(request["config"], tag="agent", **request["kwargs"])
    states: dict[str, int] = {}
    for n in r.nodes:
        states[n.state] = states.get(n.state, 0) + 1
    return {"states": states, "trainers": TRAINERS.stats()}


def _ordering_call(
    worker: Any, config: Path, kwargs: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """One run in an ordering worker: its result and wall seconds."""
    from helix_tf.agent._worker import Finished

    t0 = time.perf_counter()
    out = worker.call({"config": config, "kwargs": kwargs}, stop=lambda: False)
    seconds = time.perf_counter() - t0
    if not isinstance(out, Finished) or out.result is None:
        raise RuntimeError(f"ordering run failed: {getattr(out, 'error', out)}")
    return out.result, seconds


def ordering(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The study's wall time in the sampler's order against the reuse-aware order.

    Each order runs in its own long-lived worker forked from this process (the
    agent's :class:`~helix_tf.agent._worker.Worker`, keeping Keras trainers as the
    agent's does), delivering only the scored outputs (as the agent's search runs do).
    """
    import optuna

    import helix_tf
    from helix_tf import history
    from helix_tf.agent._order import compute_costs, kept_after, reuse_order, trainer_shape
    from helix_tf.agent._study import suggest
    from helix_tf.agent._trial_run import KEPT_TRAINERS, keep_trainers, scored_outputs
    from helix_tf.agent._worker import Worker, preload
    from helix_tf.api import parse_budget
    from helix_tf.roles import Role
    from helix_tf.search import search_space

    preload()  # imports only: the workers fork warm, before any TensorFlow thread exists
    space = search_space(args.config, data_dir=args.data_dir)
    sampler = optuna.samplers.RandomSampler(seed=args.ordering_seed)
    study = optuna.create_study(sampler=sampler)
    trials = [suggest(study.ask(), space) for _ in range(args.ordering_trials)]
    validation = helix_tf.Validation()
    dag = history.describe(args.config, data_dir=args.data_dir, validation=validation).dag
    outputs = scored_outputs(dag)
    learners = [n["name"] for n in dag["nodes"] if n.get("role") == Role.TRAIN]
    shapes = [trainer_shape(t, learners) for t in trials]
    common = {"data_dir": args.data_dir, "validation": validation, "outputs": outputs}
    regimes = []
    for cap_text in args.ordering_caps.split(","):
        cap = None if cap_text == "none" else parse_budget(cap_text)
        stores = {kind: str(root / f"ordering-{cap_text}-{kind}") for kind in ("sampler", "reuse")}
        workers = {
            kind: Worker(_ordering_run, home=stores[kind], max_rss=None, on_start=keep_trainers)
            for kind in stores
        }

        try:
            for kind in stores:
                _ordering_call(
                    workers[kind],
                    args.config,
                    {**common, "params": {}, "store": stores[kind], "tag_budget": cap},
                )  # the user's version, in the worker: its trainer kept too
            k = args.ordering_batch  # the agent orders each batch it asks for, planned then
            orders: dict[str, list[int]] = {"sampler": list(range(len(trials))), "reuse": []}
            recent: list[Any] = [trainer_shape({}, learners)]
            planning = 0.0
            seconds = {"sampler": 0.0, "reuse": 0.0}
            states: dict[str, dict[str, int]] = {"sampler": {}, "reuse": {}}
            trainers: dict[str, dict[str, int]] = {}
            # Interleaved, one run of each order in turn, which goes first alternating (ABBA):
            # both see the same machine load and neither always follows the other.
            for step in range(len(trials)):
                if step % k == 0:  # the next batch, planned on the reuse store as it is now
                    t0 = time.perf_counter()
                    batch = range(step, min(step + k, len(trials)))
                    computes = [
                        compute_costs(
                            helix_tf.plan(
                                args.config, params=trials[i], store=stores["reuse"], **common
                            )
                        )
                        for i in batch
                    ]
                    ordered = reuse_order(
                        computes, [shapes[i] for i in batch], kept=KEPT_TRAINERS, recent=recent
                    )
                    orders["reuse"] += [step + i for i in ordered]
                    for i in ordered:
                        recent = kept_after(recent, shapes[step + i], KEPT_TRAINERS)
                    planning += time.perf_counter() - t0
                    seconds["reuse"] += time.perf_counter() - t0  # planning counts against it
                for kind in ("sampler", "reuse") if step % 2 == 0 else ("reuse", "sampler"):
                    params = trials[orders[kind][step]]
                    kwargs = {**common, "params": params, "store": stores[kind], "tag_budget": cap}
                    result, took = _ordering_call(workers[kind], args.config, kwargs)
                    seconds[kind] += took
                    for state, count in result["states"].items():
                        states[kind][state] = states[kind].get(state, 0) + count
                    trainers[kind] = result["trainers"]
        finally:
            for worker in workers.values():
                worker.close()
        row: dict[str, Any] = {
            "cap": cap_text,
            "planning_seconds": round(planning, 2),
            "load_average": os.getloadavg(),
            "distinct_trainer_shapes": len(set(shapes)),
        }
        for kind in ("sampler", "reuse"):
            row[kind] = {
                "order": orders[kind],
                "wall_seconds": round(seconds[kind], 2),
                "node_states": states[kind],
                "trainers": trainers.get(kind),
            }
        row["ratio"] = round(seconds["reuse"] / seconds["sampler"], 3)
        print(json.dumps({"ordering": row}), flush=True)
        regimes.append(row)
    return {
        "trials": trials,
        "regimes": regimes,
        "target": "reuse-aware wall time <= 0.75x the sampler's order on the same trials",
        "met": all(r["ratio"] <= 0.75 for r in regimes),
    }


class _LoadSampler:
    """The 1-minute load average every ``every`` seconds while a part runs (a shared machine)."""

    def __init__(self, every: float = 15.0) -> None:
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> _LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        s = self.samples
        return {
            "start": round(s[0], 2),
            "end": round(s[-1], 2),
            "min": round(min(s), 2),
            "max": round(max(s), 2),
            "mean": round(statistics.mean(s), 2),
        }


PARTS = {
    "quality": quality,
    "yield": yield_latency,
    "abba": abba,
    "kill": kill,
    "fidelity": fidelity,
    "throughput": throughput,
    "ordering": ordering,
    "trial-cost": trial_cost,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.agent_value")
    p.add_argument("--config", type=Path, default=REPO / "configs" / "census.py")
    p.add_argument("--data-dir", default=str((REPO / ".." / "shared" / "data").resolve()))
    p.add_argument("--parts", default="quality,yield,abba,kill")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--yield-starts", type=int, default=50)
    p.add_argument("--abba-pairs", type=int, default=10)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--scale", type=int, default=10, help="fidelity: -p scale=N")
    p.add_argument("--fidelity-trials", type=int, default=30)
    p.add_argument(
        "--fidelity-sample",
        type=float,
        default=None,
        help="fidelity: the rung's sample (default: the agent's, AgentOptions.approx_sample)",
    )
    p.add_argument(
        "--fidelity-precision", default="auto", help="fidelity: the rung's precision (auto, fp32)"
    )
    p.add_argument(
        "--fidelity-epochs-scale", type=float, default=1.0, help="fidelity: the rung's epochs"
    )
    p.add_argument(
        "--exact-from",
        default=None,
        help="fidelity: reuse the points and exact AUCs of an earlier run (trials .jsonl or .json)",
    )
    p.add_argument(
        "--exact-check",
        type=int,
        default=2,
        help="fidelity, --exact-from: points run exactly again",
    )
    p.add_argument(
        "--exact-tolerance", type=float, default=1e-3, help="fidelity: stored vs recomputed AUC"
    )
    p.add_argument("--ordering-trials", type=int, default=12)
    p.add_argument("--cost-trials", type=int, default=12, help="trial-cost: trials drawn")
    p.add_argument("--ordering-seed", type=int, default=0)
    p.add_argument("--ordering-batch", type=int, default=4, help="ordering: the agent's --batch")
    p.add_argument(
        "--ordering-caps", default="none,3MB", help="ordering: caps on the agent's entries"
    )
    p.add_argument(
        "--agent-arg",
        dest="agent_args",
        action="append",
        default=[],
        help="throughput: an extra `agent start` argument (repeat it)",
    )
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)
    args.config = args.config.resolve()
    root = Path(tempfile.mkdtemp(prefix="helix-agent-bench-"))
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        for part in args.parts.split(","):
            t0 = time.monotonic()
            with _LoadSampler() as load:
                results[part] = PARTS[part](args, root)
            results[part]["part_seconds"] = round(time.monotonic() - t0, 1)
            results[part]["load_1min"] = {**load.summary(), "cpus": os.cpu_count()}
            print(json.dumps({part: results[part]}, default=str), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
