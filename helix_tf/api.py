"""The public run API: ``run`` and ``plan`` (the CLI and the agent both call these).

run = load config → compile → look up what is stored → plan (max-flow) →
execute → record the version, the run and every node's measurements.
TensorFlow and Beam are imported only when a node that needs them computes.

This module is the entry points and their arguments; the steps live beside it:
planning in :mod:`helix_tf._planning`, one run (start it, plan and execute it,
record it) in :mod:`helix_tf._running`. What earlier runs recorded is read through :mod:`helix_tf.history`, whose typed
functions (history, versions, diff, comparison of two runs) are exported here too.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from helix_tf._planning import plan_session
from helix_tf._running import RunOptions, retrain_without_zero as _retrain_without_zero, run_once
from helix_tf._session import EXACT_INSTEAD, Session, default_home, open_loaded, open_session
from helix_tf.activity import home_of, local_store_folder, user_run
from helix_tf.approx.settings import Approx
from helix_tf.config import LoadedConfig, load_config
from helix_tf.errors import ConfigError
from helix_tf.events import ProgressCallback
from helix_tf.history import TAG_KEY as _TAG_KEY
from helix_tf.results import PlanResult, RunResult
from helix_tf.reuse.materialize import parse_budget
from helix_tf.roles import NodeState
from helix_tf.validation import Validation, holdout_workflow
from helix_tf.workflow import Workflow

__all__ = [
    "EXACT_INSTEAD",
    "Approx",
    "Validation",
    "Session",
    "open_session",
    "run",
    "plan",
    "TAG_KEY",
    "parse_budget",
]

TAG_KEY = _TAG_KEY  # a run's tag is kept with its parameters under this key


def plan(
    config: str | os.PathLike[str],
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
    approx: Approx | None = None,
    validation: Validation | None = None,
    rehash: bool = False,
    team: bool = False,
    outputs: Sequence[str] | None = None,
    baseline: int | None = None,
) -> PlanResult:
    """What a run would compute, load and prune, and why — without running anything.

    ``validation``: plan the validation run (see :func:`run`). ``outputs`` names the
    nodes the run must deliver instead of the workflow's own outputs (``wf.output``,
    else its evaluate nodes); what only other outputs need is pruned, and the plan
    says so. The agent scores its search trials with ``outputs`` set to the
    workflow's evaluate outputs: a trial computes the metric it is scored on, not
    the explanations nobody reads. The nodes' fingerprints do not change, so what
    such a run stores is reused by every later run. ``rehash=True``
    re-reads every data file instead of trusting the content-hash memo. The reasons
    compare with this person's previous version; ``team=True``: with the team's;
    ``baseline``: with that recorded version (``helix-tf status``: the last run's).
    """
    _check_settings(approx, validation)
    loaded = _load(config, params, data_dir, validation, outputs)
    with _nothing_created(loaded.path, store, metadata) as (store, metadata):
        session = open_loaded(
            loaded, store=store, metadata=metadata, approx=approx, rehash=rehash, team=team
        )
        return _plan_result(session, approx, baseline)


@contextlib.contextmanager
def _nothing_created(
    config_path: Path, store: str | None, metadata: str | None
) -> Iterator[tuple[str | None, str | None]]:
    """The store and metadata a plan reads: where no run has made the local store (a new
    folder, a mistyped ``--store``) an empty one in a temporary folder, and where the
    SQLite file of the metadata setting does not exist an empty one in memory, so that a
    plan creates neither (it made the store's folders and database there)."""
    from helix_tf.reuse.metadata import sqlite_file
    from helix_tf.reuse.store import holds_a_store
    from helix_tf.settings import metadata_setting

    value = metadata_setting(metadata, config_path).value
    file = sqlite_file(value) if value else None
    if file is not None and not file.exists():
        metadata = "sqlite://"
    url = store or str(default_home(config_path))
    folder = local_store_folder(url)
    if folder is None or holds_a_store(folder):
        yield store, metadata
        return
    with tempfile.TemporaryDirectory(prefix="helix-plan-") as empty:
        yield empty, metadata


def _plan_result(session: Session, approx: Approx | None, baseline: int | None) -> PlanResult:
    """Plan ``session`` (closed after) into the :class:`PlanResult` of :func:`plan`."""
    notes: tuple[str, ...] = ()
    if session.exact_instead:
        approx, notes = None, (session.exact_note,)
    elif session.sample_note:
        notes = (session.sample_note,)
    try:
        decisions, _, _ = plan_session(session, baseline=baseline)
        est = sum(
            d.compute_cost
            if d.state == NodeState.COMPUTE
            else (d.load_cost or 0.0)
            if d.state == NodeState.LOAD
            else 0.0
            for d in decisions
        )
        return PlanResult(
            workflow=session.compiled.name,
            approx=approx is not None,
            nodes=tuple(decisions),
            estimated_seconds=est,
            notes=notes,
        )
    finally:
        session.close()


def run(
    config: str | os.PathLike[str] | Workflow,
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
    runner: str = "direct",
    pipeline_args: Sequence[str] = (),
    materialize: str = "helix",
    budget: str | int | None = None,
    approx: Approx | None = None,
    batch_rows: int = 50_000,
    prune_zero_weight: bool = True,
    retrain_without_zero: bool = False,
    progress: ProgressCallback | None = None,
    validation: Validation | None = None,
    tag: str | None = None,
    tag_budget: str | int | None = None,
    scratch: str | None = None,
    rehash: bool = False,
    outputs: Sequence[str] | None = None,
) -> RunResult:
    """Run a config: reuse what is valid, compute the rest, record everything.

    ``rehash=True`` re-reads every data file instead of trusting the content-hash
    memo (path, inode, size, mtime, ctime): the escape hatch for a file changed in a
    way the memo cannot see. ``outputs``: the nodes to deliver (see :func:`plan`).

    With ``validation``, the model trains on the sources' training rows minus a
    seeded held-out fraction and is evaluated on that fraction; the test split is
    not read (see :mod:`helix_tf.validation`). ``tag`` marks the run in the
    history (the agent tags its runs ``"agent"``; ``history`` hides tagged runs
    unless asked) and every store entry it keeps: tagged entries are evicted before
    the user's, and ``tag_budget`` (e.g. ``"500MB"``) caps what all entries of runs
    with that tag hold together (see :mod:`helix_tf.reuse.tagged`).

    With ``retrain_without_zero=True``, learners whose models give some features
    only zero weights are trained again without those features, and the result
    is that second run, with ``retrained`` comparing its metrics to the first.

    ``progress`` is called with each step as it happens, a typed :mod:`helix_tf.events`
    event (plan made, preprocessing started, epoch or node done; JSON: ``to_dict()``).

    ``scratch`` is the folder for the run's scratch data (default ``$HELIX_TF_SCRATCH``,
    else the system's temporary folder); when the store cannot take more data, the
    run's outputs go there and the run goes on without materializing them.

    Examples
    --------
    >>> result = run("configs/census.py", params=["learner.l1=0.001"])  # doctest: +SKIP
    >>> result.metrics["accuracy"]  # doctest: +SKIP
    0.85
    >>> result.predictions(pandas=True).head()  # __row, __label, __score  # doctest: +SKIP
    >>> model = result.model()  # the trained Keras model                # doctest: +SKIP
    >>> helix_tf.views.figure(result, "roc")  # a matplotlib Figure      # doctest: +SKIP
    """
    if isinstance(config, Workflow):
        raise ConfigError("run() takes the path of a config module; save the workflow in one")
    _check_settings(approx, validation)
    opts = RunOptions(
        store=store,
        metadata=metadata,
        runner=runner,
        pipeline_args=tuple(pipeline_args),
        materialize=materialize,
        budget=budget,
        approx=approx,
        batch_rows=batch_rows,
        prune_zero_weight=prune_zero_weight,
        progress=progress,
        tag=tag,
        tag_budget=tag_budget,
        scratch=scratch,
        rehash=rehash,
    )
    with _user_mark(config, store, tag):
        loaded = _load(config, params, data_dir, validation, outputs)
        first, facts = run_once(loaded, opts, need_models=retrain_without_zero)
        return _retrain_without_zero(loaded, opts, first, facts) if retrain_without_zero else first


def _user_mark(
    config: str | os.PathLike[str], store: str | None, tag: str | None
) -> contextlib.AbstractContextManager[None]:
    """A user's run (untagged: the CLI's, a notebook's) holds the store's user-run mark:
    the think-time agent yields the machine while it runs (:mod:`helix_tf.activity`)."""
    return user_run(home_of(config, store)) if tag is None else contextlib.nullcontext()


def _check_settings(approx: Any, validation: Any) -> None:
    """``approx`` and ``validation`` are settings objects or None: ``approx=True`` (or a
    fraction, or a dict) failed deep in the planner with ``'bool' object has no attribute
    'resolved'`` (QA 27)."""
    problems = [
        f"{name} must be helix_tf.{kind.__name__}(...) or None, but got {value!r}: e.g. {example}"
        for name, value, kind, example in (
            (
                "approx",
                approx,
                Approx,
                "approx=helix_tf.Approx() (the CLI's --approx), approx=helix_tf.Approx(sample=0.1)",
            ),
            ("validation", validation, Validation, "validation=helix_tf.Validation()"),
        )
        if value is not None and not isinstance(value, kind)
    ]
    if problems:
        raise ConfigError(problems)


def _load(
    config: str | os.PathLike[str],
    params: Sequence[str] | Mapping[str, Any],
    data_dir: str | None,
    validation: Validation | None,
    outputs: Sequence[str] | None = None,
) -> LoadedConfig:
    """Load ``config``; with ``validation``, its hold-out workflow; with ``outputs``, those
    outputs instead of the workflow's (see :func:`run`; the compiler names unknown ones)."""
    loaded = load_config(config, params, data_dir=data_dir)
    workflow = loaded.workflow
    if validation is not None:
        workflow = holdout_workflow(workflow, validation)
    if outputs is not None:
        if isinstance(outputs, str) or not outputs:
            raise ConfigError(
                f"outputs must be a non-empty list of node names, but got {outputs!r}; "
                "e.g. outputs=['evaluation']"
            )
        workflow = copy.copy(workflow)
        workflow.outputs = list(dict.fromkeys(outputs))
    if workflow is loaded.workflow:
        return loaded
    return dataclasses.replace(loaded, workflow=workflow)
