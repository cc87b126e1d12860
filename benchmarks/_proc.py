"""Run a command as a child process: wall time, peak RSS of its process tree, output.

Shared by the benchmarks that time whole processes (``cold_run``,
``preprocess_scale``). Peak RSS is measured two ways: psutil polling the sum of
the RSS of the child and all its descendants every ``poll_s`` seconds, and the
kernel's ``ru_maxrss`` of the child from ``wait4`` (exact, but the largest
single process rather than the tree's sum). CPU seconds (user + system, from
``wait4``) are recorded too: on a shared machine they are less disturbed by
other load than wall time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

__all__ = ["REPO", "Measured", "helix_command", "median", "run_helix_json", "run_measured"]

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One finished child process."""

    cmd: list[str]
    returncode: int
    wall_s: float
    peak_tree_rss_bytes: int  # psutil polling: max over polls of the tree's summed RSS
    maxrss_bytes: int  # wait4 ru_maxrss: the largest single process
    cpu_s: float  # user + system CPU seconds of the child and its waited-for descendants
    stdout: str
    stderr: str

    def check(self) -> Measured:
        """Raise with the tail of stderr when the process failed."""
        if self.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.cmd)} exited with {self.returncode}:\n{self.stderr[-4000:]}"
            )
        return self


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in members:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_measured(
    cmd: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    poll_s: float = 0.05,
) -> Measured:
    """Run ``cmd`` to completion; time it from spawn to reap and track its memory.

    Without ``env``, a warm helix-tf server the user may be running is not used.
    """
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=dict(env or {**os.environ, "HELIX_TF_SERVER": "off"}),
        )
        peak = 0
        stop = threading.Event()

        def poll() -> None:
            nonlocal peak
            try:
                proc = psutil.Process(child.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                peak = max(peak, _tree_rss(proc))
                stop.wait(poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        poller.join()
        out.seek(0)
        err.seek(0)
        return Measured(
            cmd=cmd,
            returncode=child.returncode,
            wall_s=wall,
            peak_tree_rss_bytes=peak,
            maxrss_bytes=int(usage.ru_maxrss) * 1024,  # KiB on Linux
            cpu_s=usage.ru_utime + usage.ru_stime,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def helix_command() -> list[str]:
    """The ``helix-tf`` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "helix-tf"
    return [str(script)] if script.exists() else [sys.executable, "-m", "helix_tf"]


def run_helix_json(
    run_args: Sequence[str | os.PathLike[str]],
    *,
    store: str | os.PathLike[str] | None = None,
    template: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> tuple[Measured, dict[str, Any]]:
    """``helix-tf run RUN_ARGS --json --store S`` in a fresh process, and its JSON.

    ``S`` is ``store`` when given (kept), else a fresh temporary folder — a copy of
    ``template`` when given, copied before the clock starts — removed afterwards.
    ``command`` replaces the ``helix-tf`` command (e.g. to run it under cProfile).
    A run that a warm server (``env`` naming one) refuses fails here, so a benchmark
    never measures an unserved run as a served one.
    """
    folder = None if store is not None else Path(tempfile.mkdtemp(prefix="helix-bench-"))
    target = Path(store) if store is not None else folder / "store"  # type: ignore[operator]
    if template is not None:
        shutil.copytree(template, target)
    cmd = [*(command or helix_command()), "run", *map(str, run_args), "--json"]
    try:
        m = run_measured([*cmd, "--store", str(target)], cwd=REPO, env=env).check()
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    if (
        env is not None
        and env.get("HELIX_TF_SERVER_DIR")
        and "not using the helix-tf server" in m.stderr
    ):
        raise RuntimeError(
            f"{' '.join(m.cmd)}: the warm server refused the run:\n{m.stderr[-2000:]}"
        )
    return m, json.loads(m.stdout)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge a timing: the cores and the load when it ended."""
    return {"cpus": os.cpu_count(), "load_1min_at_end": round(os.getloadavg()[0], 2)}


def emit_report(report: Mapping[str, Any], path: str | None) -> None:
    """Print ``report`` as JSON and, with ``path``, write the same text there."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")
