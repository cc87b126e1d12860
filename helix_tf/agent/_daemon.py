"""The agent process: think-time search for one config, yielding to every user run.

Loop: wait until no user run is in progress (and ``resume_after`` seconds have
passed since the last one ended) → ask the study for a trial → run it on the
validation split, first approximately when the planner says that is cheaper
(rung 0, pruned by successive halving), then exactly (rung 1) → verify the best
trials that beat the user's version on the test split (:mod:`._search`,
:mod:`._verification`, :mod:`._runs`). This module is the process around it: one agent
per store (a lock), the lowest priority on cores no other agent holds, signals to stop.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
from pathlib import Path
from typing import Any

from helix_tf.agent._options import TAG, AgentBusyError, AgentOptions, preferred_metric
from helix_tf.agent._registry import claim_cpus, register, unregister
from helix_tf.agent._search import Agent
from helix_tf.agent._study import AgentPaths

__all__ = ["AgentOptions", "AgentBusyError", "serve", "preferred_metric", "TAG"]

log = logging.getLogger(__name__)


def _lower_priority(pid: int, cores: int, home: Path) -> list[int]:
    """Lowest CPU and I/O priority; pinned to ``cores`` cores no other agent holds.

    Registers the agent (:func:`claim_cpus`: two agents with ``--cores 1`` take two
    different cores, not both the last one). Returns the cores, [] where unpinned.
    """
    with contextlib.suppress(OSError):
        os.nice(19)
    with contextlib.suppress(OSError):  # the lowest I/O priority too (idle class)
        os.system(f"ionice -c 3 -p {pid} >/dev/null 2>&1")
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        register(pid, home)
        return []
    chosen = claim_cpus(pid, home, allowed, cores)
    try:
        os.sched_setaffinity(0, chosen)
    except OSError:
        register(pid, home)
        return []
    return chosen


def serve(opts: AgentOptions) -> None:
    """Run the agent for ``opts.config`` until stopped (SIGTERM) or ``max_trials`` finish."""
    paths = AgentPaths.of(opts.config, opts.store)
    paths.folder.mkdir(parents=True, exist_ok=True)
    lock = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise AgentBusyError(
            f"an agent is already running for the store {paths.home}; "
            "`helix-tf agent stop` it first"
        ) from None
    # A trial trains with the threads a user's run would (the CPUs it may use before the
    # agent pins itself to opts.cores), not opts.cores: a matrix product split over other
    # threads sums in another order, and the user's run must be able to reuse (and equal)
    # what the agent verified. The pinning still keeps the agent on its cores.
    from helix_tf._env import intra_op_threads  # read before the pinning

    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(intra_op_threads()))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    agent = Agent(opts, paths)
    agent.lock_fd = lock  # a store deleted under the agent stops it
    chosen = _lower_priority(os.getpid(), opts.cores, paths.home)

    def request_stop(signum: int, frame: Any) -> None:
        agent.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    agent.update(state="starting", cpus=chosen, nice=os.nice(0))
    try:
        while agent.search():
            # The config changed: the next study's runs start in a fresh worker.
            agent.worker.close()
    except Exception as exc:
        log.exception("the agent failed")
        agent.update(state="failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        agent.worker.close()
        unregister(os.getpid())
        os.close(lock)
