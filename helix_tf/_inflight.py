"""A run waits for a colleague's run that is already computing what it would compute.

Team mode (issue 17): members sharing a store who start the same new node at once
would each compute it; the exclusive create of its manifest keeps the store right but
the work is done twice. So a run, once planned, announces in its store lease the
fingerprints it is about to compute (:meth:`RunLease.announce`); when a live run, on
any machine, announced some of them *before* it (``(time, lease id)`` order: never a
cycle), it waits, bounded, with a progress line, until each is stored (then the run is
planned again and loads it), or its announcer has ended or died, or the bound passes
(then it computes). Correctness does not depend on any of this: the second plan reads
the store exactly as the first did, and whatever was not stored is computed.

The bound: twice the last measured compute seconds of what this run would compute
(everyone's history) plus 30 s, at most ``HELIX_TF_WAIT_FOR_COLLEAGUES`` seconds
(default 600; ``0`` never waits). Without a measurement of every such node it is the
maximum. A run that is a stopped process of this machine (Ctrl-Z) is not waited for: it
computes nothing until continued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from helix_tf._env import env_seconds
from helix_tf.results import NodeDecision
from helix_tf.reuse.store import is_stopped
from helix_tf.roles import NodeState

__all__ = ["WAIT_ENV", "MAX_WAIT", "announce", "await_colleagues", "wait_bound"]

log = logging.getLogger(__name__)

#: Seconds at most a run waits for colleagues' computations (``0``: never waits).
WAIT_ENV = "HELIX_TF_WAIT_FOR_COLLEAGUES"
#: The default of :data:`WAIT_ENV`.
MAX_WAIT = 600.0
#: Seconds between looks at the store while waiting, and between progress lines.
POLL = 1.0
PROGRESS_EVERY = 15.0


def max_wait() -> float:
    """:data:`WAIT_ENV` in seconds (default :data:`MAX_WAIT`)."""
    return env_seconds(WAIT_ENV, MAX_WAIT, zero="never wait")


def announce(session: Any, decisions: Sequence[NodeDecision]) -> dict[str, str]:
    """Record in the run's lease what the plan computes; fingerprint → node name."""
    lease = session.store.lease
    computing = {
        session.compiled.node(d.name).fingerprint: d.name
        for d in decisions
        if d.state == NodeState.COMPUTE
    }
    if lease is not None:
        lease.announce(computing)
    return computing


def wait_bound(names: Sequence[str], history: Mapping[str, Any], limit: float) -> float:
    """How long to wait for a computation of ``names``: see the module's docstring."""
    seconds = [getattr(history.get(n), "compute_seconds", None) for n in names]
    if not names or any(s is None for s in seconds):
        return limit
    return min(limit, 2.0 * sum(float(s) for s in seconds if s is not None) + 30.0)


def await_colleagues(
    session: Any,
    decisions: Sequence[NodeDecision],
    history: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Announce the plan's computations; wait for earlier runs computing the same.

    Returns the names of the nodes a colleague stored meanwhile: the caller plans
    again when there are any (they are loaded), and computes the rest.
    """
    limit = max_wait()
    computing = announce(session, decisions)
    if not computing or limit <= 0:
        return []
    try:
        return _wait(session.store, computing, history, limit, clock, sleep)
    except Exception as exc:  # an optimisation: it never fails a run
        log.warning("could not follow colleagues' runs in flight (%s): computing here", exc)
        return []


def _wait(
    store: Any,
    computing: dict[str, str],
    history: Mapping[str, Any],
    limit: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> list[str]:
    pending = _running(store.in_flight(computing), computing)
    if not pending:
        return []
    bound = wait_bound(list(computing.values()), history, limit)
    log.warning(
        "waiting up to %.0fs for %s, already computing %s; loading them when stored "
        "(%s=0: never wait)",
        bound,
        _owners(pending),
        _names(pending, computing),
        WAIT_ENV,
    )
    start = last_note = clock()
    stored: list[str] = []
    while pending:
        if clock() - start >= bound:
            log.warning(
                "stopped waiting after %.0fs for %s: computing %s here",
                clock() - start,
                _owners(pending),
                _names(pending, computing),
            )
            break
        sleep(POLL)
        for fp in [fp for fp in pending if store.lookup(fp) is not None]:
            stored.append(computing[fp])
            del pending[fp]
        live = store.in_flight(pending)
        ended = [fp for fp in pending if fp not in live]
        if ended:
            log.warning(
                "%s ended without storing %s (or stopped computing it): computing it here",
                _owners({fp: pending[fp] for fp in ended}),
                _names(ended, computing),
            )
        pending = _running(live, computing)
        if pending and clock() - last_note >= PROGRESS_EVERY:
            last_note = clock()
            log.warning(
                "still waiting (%.0fs of %.0fs) for %s: %s",
                last_note - start,
                bound,
                _owners(pending),
                _names(pending, computing),
            )
    if stored:
        log.warning("another run stored %s meanwhile: loading it", ", ".join(sorted(stored)))
    return stored


def _running(in_flight: dict[str, Any], computing: Mapping[str, str]) -> dict[str, Any]:
    """``in_flight`` but for the runs that are stopped processes of this machine (Ctrl-Z):
    they compute nothing until continued, and a run waited the whole bound for one (600 s
    on a store without history; QA pass 26)."""
    stopped = {fp: info for fp, info in in_flight.items() if is_stopped(info)}
    if stopped:
        log.warning(
            "%s is stopped (Ctrl-Z; `fg` resumes it): computing %s here",
            _owners(stopped),
            _names(stopped, computing),
        )
    return {fp: info for fp, info in in_flight.items() if fp not in stopped}


def _owners(pending: Mapping[str, Any]) -> str:
    runs = sorted({f"{i.user}@{i.host} (pid {i.pid})" for i in pending.values()})
    return "the run of " + ", ".join(runs)


def _names(fingerprints: Any, computing: Mapping[str, str]) -> str:
    return ", ".join(sorted(computing[fp] for fp in fingerprints))
