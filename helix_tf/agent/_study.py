"""The agent's files beside the store, and its Optuna study (Optuna's RDB storage).

The study is kept in SQLite beside the store, or, when the metadata database is a
server (``--metadata``/``HELIX_TF_METADATA``/``helix_tf.toml`` name e.g. a team's
PostgreSQL), in that same database: on PostgreSQL in a schema of its own,
``helix_optuna`` (Optuna's tables never mix with helix_tf's), created under an
advisory lock so that agents starting at once do not race to create it.

One study per base version: its name is the workflow's name and the digest of
the config as written (no ``-p``), so an edit of the config starts a new study
in the same database. Only the agent process writes to the database (its
trial children return results through a pipe), and the database is in WAL
mode: readers (``agent status``/``report``, ``optuna-dashboard``) never block
the writer and are never blocked, so SQLite's "database is locked" has no
second writer to come from.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from helix_tf._atomic import atomic_write
from helix_tf._database_files import create_database_file
from helix_tf.activity import home_of
from helix_tf.errors import StoreError
from helix_tf.search import Choice, Float, Int, SearchSpace
from helix_tf.settings import (
    database_url,
    is_server_url,
    mask_password,
    metadata_setting,
    sqlite_url,
)

__all__ = [
    "AgentPaths",
    "open_study",
    "study_name",
    "suggest",
    "requeue",
    "AS_WRITTEN",
    "fail_orphans",
    "rebase",
    "LOWER_IS_BETTER",
]

#: The PostgreSQL schema holding Optuna's tables in a shared metadata database.
OPTUNA_SCHEMA = "helix_optuna"
_OPTUNA_LOCK = 0x4F5054554E41  # advisory lock key while the schema and tables are made

#: Metric keys where smaller is better (the study minimises them).
LOWER_IS_BETTER = ("loss", "error", "rmse", "mae", "mse")


@dataclasses.dataclass(frozen=True, slots=True)
class AgentPaths:
    """Where one config's agent keeps its study, status, pid and log.

    ``metadata``: a database server's URL holds the study (team mode); None keeps it
    in SQLite in ``home``.
    """

    home: Path
    metadata: str | None = None

    @classmethod
    def of(
        cls,
        config: str | os.PathLike[str],
        store: str | None = None,
        metadata: str | None = None,
    ) -> AgentPaths:
        url = metadata_setting(metadata, config).value
        return cls(home=home_of(config, store), metadata=url if is_server_url(url) else None)

    @property
    def folder(self) -> Path:
        return self.home / "agent"

    @property
    def study_db(self) -> Path:
        return self.folder / "study.db"

    @property
    def storage_url(self) -> str:
        if self.metadata is None:
            return sqlite_url(self.study_db)
        url = database_url(self.metadata)
        if url.startswith("postgresql"):
            sep = "&" if "?" in url else "?"
            return f"{url}{sep}options=-csearch_path%3D{OPTUNA_SCHEMA}"
        return url

    @property
    def storage_label(self) -> str:
        """Where the study is, for messages (a server URL's password hidden)."""
        if self.metadata is None:
            return str(self.study_db)
        return f"{mask_password(self.metadata)} (schema {OPTUNA_SCHEMA})"

    @property
    def has_storage(self) -> bool:
        """Whether a study may exist (a server always may; SQLite once its file does)."""
        return self.metadata is not None or self.study_db.exists()

    @property
    def status(self) -> Path:
        return self.folder / "status.json"

    @property
    def lock(self) -> Path:
        return self.folder / "agent.lock"

    @property
    def log(self) -> Path:
        return self.folder / "agent.log"

    def read_status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.status.read_text())
        except (OSError, ValueError):
            return None

    def write_status(self, status: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({**status, "updated": time.time()}, sort_keys=True, default=str)
        atomic_write(self.status, text)


def study_name(workflow: str, digest: str, space: Any = None) -> str:
    """The study of ``workflow``'s validation version ``digest``; a declared search space
    (``space.declared``: the config's ``SEARCH``) names it too, as ``SEARCH`` is no part
    of the workflow: an edit of it alone is a new study (QA 27: a running agent went on
    with the old space; and Optuna refuses a Choice whose values change in one study).
    A derived space follows from the workflow, so its study is named by the digest."""
    name = f"{workflow}@{digest[:12]}"
    if space is None or not space.declared:
        return name
    import hashlib

    dims = {k: d.to_dict() for k, d in space.dimensions.items()}
    text = json.dumps(dims, sort_keys=True, default=repr)
    return f"{name}~{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _storage(paths: AgentPaths, *, create: bool) -> Any:
    import optuna

    if paths.metadata is not None:
        return _server_storage(paths)
    if not create and not paths.study_db.exists():
        return None
    try:
        if create:
            paths.folder.mkdir(parents=True, exist_ok=True)
            create_database_file(paths.study_db)
            with sqlite3.connect(paths.study_db, timeout=60) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        return optuna.storages.RDBStorage(
            paths.storage_url,
            engine_kwargs={"connect_args": {"timeout": 60}},
            skip_compatibility_check=False,
        )
    except Exception as exc:  # sqlite3's or SQLAlchemy's error: say which file, and the fix
        raise StoreError(_study_db_problem(paths.study_db, exc)) from exc


def check_study_storage(paths: AgentPaths) -> None:
    """Raise :class:`StoreError` saying what to do when an existing SQLite study database
    of ``paths`` cannot be opened (damaged, say); nothing is created."""
    if paths.metadata is None and paths.study_db.exists():
        storage = _storage(paths, create=False)
        storage.engine.dispose()


def _study_db_problem(path: Path, exc: BaseException) -> str:
    """What an error opening the agent's SQLite study says: the file, and what to do."""
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split()).split(" [SQL:")[0]
    if "malformed" in detail or "not a database" in detail:
        return (
            f"the agent's study database {path} is damaged ({detail}): move it aside "
            f"(`mv {path} {path}.damaged`); `helix-tf agent start` then begins a new study "
            "(your runs, their history and the store are not affected)"
        )
    return f"cannot open the agent's study database {path}: {detail}"


def _server_storage(paths: AgentPaths) -> Any:
    """Optuna's storage in the metadata server; on PostgreSQL in its own schema.

    Schema and tables are created while holding an advisory lock: Optuna's own
    creation is not safe when several agents start at once.
    """
    import optuna
    import sqlalchemy as sa

    url = database_url(str(paths.metadata))
    if not url.startswith("postgresql"):
        return optuna.storages.RDBStorage(url)
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        conn = engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise StoreError(
            f"cannot open the agent's study in {paths.storage_label}: {detail}; is the "
            "database server running and reachable? Fix the URL (--metadata, "
            "HELIX_TF_METADATA or the project's helix_tf.toml)"
        ) from exc
    try:
        with conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _OPTUNA_LOCK})
            try:
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
                conn.commit()
                return optuna.storages.RDBStorage(
                    paths.storage_url, engine_kwargs={"connect_args": {"connect_timeout": 5}}
                )
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _OPTUNA_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def open_study(
    paths: AgentPaths, name: str, *, direction: str = "maximize", seed: int = 0, create: bool
) -> Any:
    """The study ``name`` (created with ``create``), TPE-sampled, successive-halving pruned."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(paths, create=create)
    if storage is None:
        return None
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if create:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    try:
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        return None


#: A trial's user attribute: the dimensions it leaves as the config writes them (no
#: override, nothing sampled), e.g. the changes an ablation found not to matter.
AS_WRITTEN = "as_written"


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """One value per dimension, named by its ``-p`` key (none for its ``AS_WRITTEN`` ones).

    A dimension left as written is not suggested at all: the config's own value may lie
    outside the range searched (e.g. an L1 of 0 under a log range), where the sampler
    could not take it.
    """
    out: dict[str, Any] = {}
    as_written = set(trial.user_attrs.get(AS_WRITTEN) or ())
    for key, dim in space.dimensions.items():
        if key in as_written:
            continue
        if isinstance(dim, Float):
            out[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Int):
            out[key] = trial.suggest_int(key, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Choice):
            out[key] = trial.suggest_categorical(key, list(dim.values))
    return out


def requeue(study: Any, trial: Any) -> None:
    """Queue ``trial``'s parameters again (and what it leaves as written)."""
    attrs: dict[str, Any] = {"requeued_from": trial.number}
    if trial.user_attrs.get(AS_WRITTEN):
        attrs[AS_WRITTEN] = list(trial.user_attrs[AS_WRITTEN])
    study.enqueue_trial(trial.params, user_attrs=attrs)


def fail_orphans(study: Any) -> list[int]:
    """Trials left running by a killed agent: failed, and their parameters queued again."""
    from optuna.trial import TrialState

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        if t.params:
            requeue(study, t)
        failed.append(t.number)
    return failed


def _fits(dim: Any, value: Any) -> bool:
    if isinstance(dim, Choice):
        return value in dim.values
    if isinstance(dim, Int) and (isinstance(value, bool) or not isinstance(value, int)):
        return False
    return isinstance(value, int | float) and dim.low <= value <= dim.high


def rebase(
    study: Any, paths: AgentPaths, workflow: str, space: SearchSpace, top: int = 3
) -> list[str]:
    """A new study starts from the best trials of the previous one (the user's version moved).

    Their values that still fit this space are queued first; the rest is sampled.
    Returns where each queued trial came from (``study#trial``).
    """
    import optuna
    from optuna.trial import TrialState

    if study.get_trials(deepcopy=False):
        return []
    others = [
        s.study_name
        for s in optuna.get_all_study_summaries(paths.storage_url)
        if s.study_name.startswith(f"{workflow}@") and s.study_name != study.study_name
    ]
    if not others:
        return []
    previous = optuna.load_study(study_name=others[-1], storage=paths.storage_url)
    sign = -1 if previous.direction.name == "MAXIMIZE" else 1
    best = sorted(
        previous.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
        key=lambda t: sign * t.value,
    )[:top]
    queued = []
    for t in best:
        params = {
            k: v
            for k, v in t.params.items()
            if k in space.dimensions and _fits(space.dimensions[k], v)
        }
        if params:
            origin = f"{previous.study_name}#{t.number}"
            study.enqueue_trial(params, user_attrs={"rebased_from": origin})
            queued.append(origin)
    return queued
