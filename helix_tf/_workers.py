"""The workers of one multi-worker ``helix-tf run`` (issue 14): who keeps the results,
and one decision for the learners they train together.

A workflow with a learner of ``strategy="multi-worker"`` runs the same command on every
worker of ``TF_CONFIG``, all on one shared store. Two rules keep that safe:

- **Only the chief writes.** TensorFlow's chief (the ``chief`` task, else ``worker 0``)
  runs as any run does. Every other worker runs *read-only*: it loads what the store
  holds, but commits nothing (its outputs stay in its scratch folder), opens no lease,
  reclaims nothing and records nothing in the metadata database (it plans from an
  empty history in memory); it says so in one warning line.
- **One decision for the learners.** A worker that trains a multi-worker learner
  waits inside TensorFlow for every other worker to train it too, without end and
  deaf to SIGTERM. So the workers agree before any work, through files in the store
  (``workers/KEY/``, KEY a digest of the cluster and of the multi-worker learners'
  fingerprints, so only workers of the same cluster running the same learners meet):

  1. the chief publishes its plan's decision for each such learner (compute, load or
     prune) under a fresh run id (``plan.json``);
  2. every other worker reads it, follows it (it plans again with the learner counted
     as not stored when the chief trains it; it cannot train what the chief does not)
     and answers with the run id and a nonce of its own (``ack-TASK.json``), or with
     the reason it cannot follow;
  3. once all answered for this run id, the chief writes ``go.json`` naming each
     worker's nonce; a worker proceeds only on a ``go`` that names its own nonce.

  Files a dead or earlier run left cannot mislead: an answer counts only with the
  chief's fresh run id, a ``go`` only with the worker's fresh nonce, and a plan that
  was confirmed before this worker answered belongs to an earlier run (ignored). A
  worker follows each new plan from its own first plan (``replan`` replaces, never
  adds to, what it counts as not stored). Every wait is
  bounded by ``HELIX_TF_WORKER_TIMEOUT`` (default 600 s) and fails with an error
  naming what it waited for; a worker that cannot follow fails at once, and so does
  the chief on reading its answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from helix_tf.compiler.graph import CompiledWorkflow
from helix_tf.components.distributed import ClusterTask, cluster_task, worker_timeout
from helix_tf.errors import ExecutionError
from helix_tf.results import NodeDecision
from helix_tf.roles import NodeState, Role

__all__ = [
    "FOLDER",
    "WorkerPlans",
    "agree",
    "check_agreed",
    "multi_worker_learners",
    "read_only_note",
    "role",
]

log = logging.getLogger(__name__)

#: The store's folder for the workers' agreement files.
FOLDER = "workers"
#: Seconds between looks at the store while waiting.
POLL = 0.5

P = TypeVar("P")


def multi_worker_learners(compiled: CompiledWorkflow) -> list[tuple[str, str]]:
    """(name, fingerprint) of each learner that trains with ``strategy="multi-worker"``."""
    return [
        (n.name, n.fingerprint)
        for n in compiled.nodes
        if n.role == Role.TRAIN and getattr(n.op, "strategy", None) == "multi-worker"
    ]


def role(compiled: CompiledWorkflow) -> ClusterTask | None:
    """This process's task when ``compiled`` trains over the workers of ``TF_CONFIG``;
    None for a run of one process (no multi-worker learner, a cluster of one, or no
    ``TF_CONFIG``: training then says that it needs one)."""
    if not multi_worker_learners(compiled) or not os.environ.get("TF_CONFIG"):
        return None
    task = cluster_task()
    return task if len(task.tasks) > 1 else None


def read_only_note(task: ClusterTask, store_url: str) -> str:
    """The one line a non-chief worker says about itself."""
    return (
        f"{task.name} of TF_CONFIG is not the chief ({task.chief_name}): it runs read-only "
        f"on the store {store_url} (loads what is stored, commits nothing, records no run; "
        "the chief keeps the results)"
    )


def _states(decisions: Sequence[NodeDecision], names: Sequence[str]) -> dict[str, str]:
    by_name = {d.name: str(d.state) for d in decisions}
    return {n: by_name[n] for n in names}


def _trains(state: str) -> bool:
    return state == NodeState.COMPUTE


def check_agreed(
    agreed: Mapping[str, str], decisions: Sequence[NodeDecision], task: ClusterTask
) -> None:
    """A later plan of the same run (stored results were lost) must train the same
    multi-worker learners as the workers agreed on; else the run stops, clearly."""
    now = _states(decisions, sorted(agreed))
    changed = sorted(n for n in agreed if _trains(agreed[n]) != _trains(now[n]))
    if changed:
        raise ExecutionError(
            f"{task.name}: stored results were lost after the workers agreed on the plan, "
            f"and training {', '.join(changed)} is no longer decided alike "
            f"({', '.join(f'{n}: {agreed[n]} agreed, {now[n]} now' for n in changed)}); "
            "run the workers again"
        )


class _Files:
    """The agreement folder of one cluster and set of learners in a store."""

    def __init__(self, store: Any, task: ClusterTask, learners: Sequence[tuple[str, str]]):
        key = hashlib.sha256(
            json.dumps({"cluster": task.cluster, "learners": sorted(learners)}).encode()
        ).hexdigest()[:20]
        self.files = store.files
        self.folder = store.paths.join(FOLDER, key)
        self.url = store.paths.to_url(self.folder)
        self._join = store.paths.join
        self._key = key

    def path(self, name: str) -> str:
        return str(self._join(FOLDER, self._key, name))

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            data = self.files.fs.cat_file(self.path(name))
        except FileNotFoundError:
            return None
        try:
            value = json.loads(data)
        except ValueError:  # written by something else, or torn: not an answer
            return None
        return value if isinstance(value, dict) else None

    def write(self, name: str, value: Mapping[str, Any]) -> None:
        if self.files.is_local:
            os.makedirs(self.folder, exist_ok=True)
        self.files.write_bytes(self.path(name), json.dumps(value, sort_keys=True).encode())


def agree(
    store: Any,
    task: ClusterTask,
    compiled: CompiledWorkflow,
    planned: P,
    decisions_of: Callable[[P], Sequence[NodeDecision]],
    replan: Callable[[frozenset[str]], P],
    *,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[P, dict[str, str]]:
    """The plan this worker runs, agreed with the chief, and the agreed learner states.

    The chief publishes ``planned``'s decisions for the multi-worker learners and waits
    for every worker's answer; another worker follows the chief (``replan(fingerprints)``
    plans again with those entries counted as not stored). See the module docstring.
    """
    learners = multi_worker_learners(compiled)
    files = _Files(store, task, learners)
    limit = worker_timeout() if timeout is None else timeout
    deadline = clock() + limit
    names = [n for n, _ in learners]
    if task.is_chief:
        states = _states(decisions_of(planned), names)
        _lead(files, task, states, deadline, limit, clock, sleep)
        return planned, states
    return _follow(
        files, task, learners, planned, decisions_of, replan, deadline, limit, clock, sleep
    )


def _lead(
    files: _Files,
    task: ClusterTask,
    states: dict[str, str],
    deadline: float,
    limit: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    run = secrets.token_hex(8)
    files.write("plan.json", {"run": run, "chief": task.name, "learners": states})
    others = [t for t in task.tasks if t != task.name]
    log.info("%s: published the plan for %s; waiting for %s", task.name, states, ", ".join(others))
    while True:
        answers = {t: files.read(f"ack-{t.replace(' ', '-')}.json") for t in others}
        fresh = {t: a for t, a in answers.items() if a is not None and a.get("run") == run}
        refused = {t: a for t, a in fresh.items() if not a.get("ok")}
        if refused:
            raise ExecutionError(
                "; ".join(
                    f"{t} cannot follow the chief's plan: {a.get('problem')}"
                    for t, a in sorted(refused.items())
                )
            )
        if len(fresh) == len(others):
            files.write(
                "go.json", {"run": run, "nonces": {t: a["nonce"] for t, a in fresh.items()}}
            )
            return
        if clock() >= deadline:
            missing = ", ".join(t for t in others if t not in fresh)
            raise ExecutionError(
                f"the chief ({task.name}) waited {limit:.0f}s for {missing} of TF_CONFIG to "
                f"take its plan in {files.url}: start the same `helix-tf run` (same config, "
                "parameters, data and --store: one store shared by every worker) on every "
                "worker (HELIX_TF_WORKER_TIMEOUT sets the wait)"
            )
        sleep(POLL)


def _follow(
    files: _Files,
    task: ClusterTask,
    learners: Sequence[tuple[str, str]],
    planned: P,
    decisions_of: Callable[[P], Sequence[NodeDecision]],
    replan: Callable[[frozenset[str]], P],
    deadline: float,
    limit: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[P, dict[str, str]]:
    nonce = secrets.token_hex(8)
    answered: str | None = None
    followed: tuple[P, dict[str, str]] | None = None
    while True:
        plan = files.read("plan.json")
        run = str(plan.get("run")) if plan is not None else None
        go = files.read("go.json")
        # A plan confirmed before this worker answered it is an earlier run's: not this one.
        earlier = go is not None and go.get("run") == run
        if plan is not None and run != answered and not earlier:
            chief = {str(k): str(v) for k, v in (plan.get("learners") or {}).items()}
            followed, problem = _obey(task, learners, chief, planned, decisions_of, replan)
            answered = run
            files.write(
                f"ack-{task.name.replace(' ', '-')}.json",
                {"run": answered, "nonce": nonce, "ok": not problem, "problem": problem},
            )
            if problem:
                raise ExecutionError(f"{task.name} cannot follow the chief's plan: {problem}")
            continue
        if answered is not None and followed is not None:
            mine = (go or {}).get("nonces") or {}
            if go is not None and go.get("run") == answered and mine.get(task.name) == nonce:
                return followed
        if clock() >= deadline:
            what = "confirm its plan" if answered else "publish its plan"
            raise ExecutionError(
                f"{task.name} of TF_CONFIG waited {limit:.0f}s for the chief "
                f"({task.chief_name}) to {what} in {files.url}: start the chief with the "
                "same config, parameters, data and --store (one store shared by every "
                "worker) (HELIX_TF_WORKER_TIMEOUT sets the wait)"
            )
        sleep(POLL)


def _obey(
    task: ClusterTask,
    learners: Sequence[tuple[str, str]],
    chief: Mapping[str, str],
    planned: P,
    decisions_of: Callable[[P], Sequence[NodeDecision]],
    replan: Callable[[frozenset[str]], P],
) -> tuple[tuple[P, dict[str, str]] | None, str]:
    """This worker's plan following the chief's learner decisions, or why it cannot."""
    names = [n for n, _ in learners]
    if sorted(chief) != sorted(names):
        return None, (
            f"the chief trains the multi-worker learners {sorted(chief)}, this worker "
            f"{sorted(names)}: run the same config and parameters on every worker"
        )
    mine = _states(decisions_of(planned), names)
    must_train = frozenset(fp for n, fp in learners if _trains(chief[n]) and not _trains(mine[n]))
    if must_train:  # the chief trains what this worker would load: train it too
        planned = replan(must_train)
        mine = _states(decisions_of(planned), names)
    wrong = sorted(n for n in names if _trains(chief[n]) != _trains(mine[n]))
    if wrong:
        return None, (
            "its plan does not match the chief's for "
            + ", ".join(f"{n} (chief: {chief[n]}, this worker: {mine[n]})" for n in wrong)
            + ": give every worker the chief's --store (one shared store) and the same "
            "config and data"
        )
    return (planned, dict(chief)), ""


class WorkerPlans(Generic[P]):
    """How a run plans: as always for one process; in a multi-worker run the first plan
    agreed with the other workers (:func:`agree`; what the chief trains counted as not
    stored here too) and every later plan of the run checked against it.

    ``session`` is the run's :class:`helix_tf._session.Session`; ``plan(exclude)`` plans
    it with the fingerprints in ``exclude`` counted as not stored.
    """

    def __init__(
        self,
        session: Any,
        plan: Callable[[frozenset[str]], P],
        decisions_of: Callable[[P], Sequence[NodeDecision]],
    ) -> None:
        self.session, self._plan, self._decisions_of = session, plan, decisions_of
        #: Entries this worker counts as not stored because its chief trains them.
        self.forced: frozenset[str] = frozenset()
        self.agreed: dict[str, str] | None = None
        worker = session.worker
        #: The one line a worker that is not the chief says (None: this process writes).
        self.note = (
            read_only_note(worker, session.store_url)
            if worker is not None and not worker.is_chief
            else None
        )
        if self.note is not None:
            log.warning("%s", self.note)

    def plan(self, lost: Iterable[str]) -> P:
        """A plan with ``lost`` (and what the chief trains) counted as not stored."""
        return self._plan(frozenset(lost) | self.forced)

    def settle(self, planned: P, lost: Iterable[str]) -> P:
        """``planned``, agreed with the other workers (the first time) or checked."""
        worker = self.session.worker
        if worker is None:
            return planned
        if self.agreed is not None:
            check_agreed(self.agreed, self._decisions_of(planned), worker)
            return planned
        lost = frozenset(lost)

        def replan(fingerprints: frozenset[str]) -> P:
            self.forced = fingerprints
            return self.plan(lost)

        planned, self.agreed = agree(
            self.session.store, worker, self.session.compiled, planned, self._decisions_of, replan
        )
        return planned
