"""A config opened for a command: loaded, compiled, its store and metadata opened.

:func:`open_session` is the one way into a config's stored results: ``run`` and
``plan`` (:mod:`helix_tf.api`), the history functions (:mod:`helix_tf.history`)
and the CLI's reading commands open a :class:`Session` and close it afterwards.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helix_tf.approx.settings import Approx
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import CompiledWorkflow, compile_workflow
from helix_tf.config import LoadedConfig, load_config
from helix_tf.errors import StoreError

if TYPE_CHECKING:
    from helix_tf.components.distributed import ClusterTask
    from helix_tf.reuse.metadata import MetadataStore
    from helix_tf.reuse.store import ArtifactStore
    from helix_tf.settings import Setting
from helix_tf.roles import Role

__all__ = [
    "EXACT_INSTEAD",
    "NothingRecordedError",
    "Session",
    "default_home",
    "open_recorded",
    "open_session",
]

log = logging.getLogger(__name__)

#: Said when an approximate run or plan uses the stored exact results instead.
EXACT_INSTEAD = (
    "approximate run requested, but every output of this workflow is stored exactly: "
    "loaded the exact results instead (not approximate)"
)


@dataclasses.dataclass(slots=True, kw_only=True)
class Session:
    """A loaded, compiled config with its store and metadata opened."""

    config: LoadedConfig
    compiled: CompiledWorkflow
    store: ArtifactStore
    metadata: MetadataStore
    store_url: str
    #: An approximate run was asked for, but every exact output is stored, or the
    #: sample would save too little: this session is the exact workflow instead.
    exact_instead: bool = False
    #: Why (said in the run's notes).
    exact_note: str = ""
    #: Whose versions are the baseline of plan reasons ("previous version"): this
    #: person's (helix_tf.settings.current_user), or None for the whole team's.
    baseline_user: str | None = None
    #: This process's task when the run trains over the workers of TF_CONFIG (issue 14):
    #: only the chief writes; the others run read-only (:mod:`helix_tf._workers`).
    worker: ClusterTask | None = None
    #: What hashed the data files (it knows each one's stamp when it was hashed).
    hasher: ContentHasher | None = None
    #: The store's local folder (its content-hash memo, its known sample failures).
    home: Path | None = None
    #: Why an approximate run draws its sample at training where it would draw it at the
    #: source: that sample failed a data check before (:mod:`helix_tf._sample_failures`).
    sample_note: str = ""

    def data_changed(self) -> list[str]:
        """The data files written since the compiler hashed them (see
        :meth:`~helix_tf.compiler.content.ContentHasher.changed_files`)."""
        return self.hasher.changed_files() if self.hasher is not None else []

    @property
    def read_only(self) -> bool:
        """A worker that is not the chief: it commits nothing and records no run."""
        return self.worker is not None and not self.worker.is_chief

    def close(self) -> None:
        self.metadata.close()


def default_home(config_path: Path) -> Path:
    """Where a config's store and metadata go by default: ``.helix/`` beside it."""
    return config_path.parent / ".helix"


def open_session(
    config: str | os.PathLike[str],
    *,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
    approx: Approx | None = None,
    rehash: bool = False,
    existing: bool = False,
    team: bool = False,
) -> Session:
    """Load and compile ``config``; open its store and metadata database to read them
    (on a read-only mount too: see :func:`open_loaded`).

    ``rehash=True`` re-reads every data file instead of trusting the content-hash memo.
    ``existing=True`` is for commands that only read what runs recorded (history, diff,
    report): a local store folder that does not exist is an error, and none is created.
    ``metadata`` defaults to ``HELIX_TF_METADATA``, else the project's ``helix_tf.toml``
    (:mod:`helix_tf.settings`). ``team=True``: the plan's "previous version" is the
    team's latest, not this person's.
    """
    from helix_tf.settings import metadata_setting

    loaded = load_config(config, params, data_dir=data_dir)
    if existing:
        _require_recorded(metadata_setting(metadata, loaded.path), loaded.path, store)
    return open_loaded(
        loaded, store=store, metadata=metadata, approx=approx, rehash=rehash, team=team
    )


def open_recorded(
    config: str | os.PathLike[str], *, store: str | None, metadata: str | None
) -> MetadataStore:
    """The metadata database ``config``'s runs recorded into, found without loading the
    config (``helix-tf history`` and ``diff`` while the config does not load).

    The same database :func:`open_session` opens; a local store that no run has written
    is an error, and none is created.
    """
    from helix_tf.settings import metadata_setting

    path = Path(config).resolve()
    setting = metadata_setting(metadata, path)
    _require_recorded(setting, path, store)
    return open_metadata_to_read(setting.value or _local_metadata_url(path, store), setting)


def open_metadata_to_read(url: str, setting: Setting | None = None) -> MetadataStore:
    """The metadata database at ``url`` for a command that only reads it: a SQLite file
    in a folder that cannot be written is opened read-only."""
    return open_metadata(url, setting, to_read=True)


def _unwritable_sqlite(exc: StoreError) -> bool:
    """Whether SQLite refused to open a file because it (or its folder, where its journal
    goes) cannot be written: an immutable folder or a read-only mount says "unable to
    open database file", a file and folder without write permission "attempt to write a
    readonly database" (as it reads the schema version: WAL needs its index beside it)."""
    return any(s in str(exc) for s in ("unable to open database file", "readonly database"))


def _read_only_sqlite(url: str) -> str | None:
    """The read-only, immutable URL of the existing SQLite file at ``url``; None when
    ``url`` is no SQLite file or the file does not exist."""
    from helix_tf.reuse.metadata import read_only_url, sqlite_file

    file = sqlite_file(url)
    if file is None or not file.is_file():
        return None
    return read_only_url(file)


def _local_home(config_path: Path, store: str | None) -> Path:
    """Where a local store's files go: the store folder, else ``.helix/`` beside the config
    (also for a remote store: its content-hash memo and metadata stay local)."""
    from helix_tf.activity import local_store_folder

    folder = local_store_folder(store) if store else None
    return default_home(config_path) if folder is None else folder


def _local_metadata_url(config_path: Path, store: str | None) -> str:
    """The default metadata database: SQLite in the local store folder."""
    from helix_tf.reuse.metadata import sqlite_url

    return sqlite_url(_local_home(config_path, store) / "metadata.db")


class NothingRecordedError(StoreError):
    """No run of the config has been recorded where the reading commands would look."""


def _require_recorded(setting: Setting, config_path: Path, store: str | None) -> None:
    """Refuse to read runs where none can have been recorded: a local store no run has
    written, or a SQLite database file that does not exist (a mistyped ``--metadata``
    would be created empty, and show an empty history)."""
    from helix_tf.reuse.metadata import sqlite_file

    if setting.value is None:
        _require_local_store(config_path, store)
        database = _local_home(config_path, store) / "metadata.db"
        if not database.exists():  # a folder the config's own sample data made, say
            raise NothingRecordedError(
                f"no runs recorded for {config_path} yet ({database} does not exist), so "
                f"there is nothing to show. Run `helix-tf run {config_path}` first, or pass "
                "--store with the folder your runs used"
            )
        return
    file = sqlite_file(setting.value)
    if file is not None and not file.exists():
        raise StoreError(
            f"no metadata database at {file}{setting.describe()}: no run has recorded "
            "anything there, so there is nothing to show. Check the URL (a run creates the "
            "file), or leave the setting out to read the store's own database"
        )


def _require_local_store(config_path: Path, store: str | None) -> None:
    """Refuse to read a local store that no run has written (it would be created empty)."""
    from helix_tf.activity import local_store_folder

    url = store or str(default_home(config_path))
    folder = local_store_folder(url)
    if folder is None or folder.is_dir():
        return
    if folder.exists():
        raise StoreError(
            f"store {url} is a file, not a store folder; pass --store with the folder your "
            f"runs used (`helix-tf run {config_path}` makes .helix/ beside the config)"
        )
    raise StoreError(
        f"no store at {url}: nothing has run into it yet, so there is nothing to show. "
        f"Run `helix-tf run {config_path}` first, or pass --store with the folder your "
        "runs used"
    )


def open_loaded(
    loaded: LoadedConfig,
    *,
    store: str | None,
    metadata: str | None,
    approx: Approx | None,
    rehash: bool = False,
    team: bool = False,
    workers: bool = False,
    writing: bool = False,
    sample_at: str | None = None,
) -> Session:
    """A session of ``loaded``. ``workers=True`` (a run): when its learners train over the
    workers of TF_CONFIG, the session knows this process's task, and a worker that is
    not the chief plans from an empty history in memory and records nothing.
    ``writing=True`` (a run): the store must take data, and one on a read-only mount is
    refused; otherwise (plan, status, report) an existing store and its SQLite database
    are opened there too, to be read. ``sample_at``: where an approximate run draws its
    sample (``"source"`` or ``"train"``); None: where it saves most."""
    from helix_tf._workers import role
    from helix_tf.reuse.metadata import MetadataStore
    from helix_tf.reuse.store import ArtifactStore
    from helix_tf.settings import current_user, metadata_setting

    store_url = store or str(default_home(loaded.path))
    local_home = _local_home(loaded.path, store)
    # The store first: an unreachable one fails before anything is written beside the config.
    artifact_store = ArtifactStore(store_url, writing=writing)
    hasher = ContentHasher(local_home / "content-hashes.json", rehash=rehash)
    compiled = compile_workflow(loaded.workflow, config_path=str(loaded.path), hasher=hasher)
    worker = role(compiled) if workers else None
    setting = metadata_setting(metadata, loaded.path)
    if worker is not None and not worker.is_chief:
        meta = MetadataStore("sqlite://")  # read-only: the chief records the run
    else:
        opener = open_metadata if writing else open_metadata_to_read
        meta = opener(setting.value or _local_metadata_url(loaded.path, store), setting)
    note = sample_note = ""
    if approx is not None:
        approx = approx.resolved(_training_rows(compiled))
        stored = {n.name for n in compiled.nodes if artifact_store.lookup(n.fingerprint)}
        # Sample where it saves most: on stored exact examples if there are any, else at
        # the source (so preprocessing shrinks too).
        placement = sample_at or (
            "train"
            if any(n.role == Role.EXAMPLES and n.name in stored for n in compiled.nodes)
            else "source"
        )
        if placement == "source" and sample_at is None:
            sample_note = _failed_at_source(loaded, hasher, approx, local_home)
            placement = "train" if sample_note else placement
        if all(o in stored for o in compiled.outputs):
            note = EXACT_INSTEAD
        else:
            note = _too_little_to_save(compiled, stored, meta, approx, placement)
        if not note:
            compiled = compile_workflow(
                loaded.workflow,
                config_path=str(loaded.path),
                hasher=hasher,
                approx=approx.for_compiler(placement=placement),
            )
    return Session(
        config=loaded,
        compiled=compiled,
        store=artifact_store,
        metadata=meta,
        store_url=store_url,
        exact_instead=bool(note),
        exact_note=note,
        baseline_user=None if team else current_user(),
        worker=worker,
        hasher=hasher,
        home=local_home,
        sample_note="" if note else sample_note,
    )


def _failed_at_source(
    loaded: LoadedConfig, hasher: ContentHasher, approx: Approx, home: Path
) -> str:
    """The note for drawing the sample at training because the same sample at the source
    failed a data check before (:mod:`helix_tf._sample_failures`); ``""`` otherwise."""
    from helix_tf import _sample_failures

    known = _sample_failures.failures(home, loaded.workflow.name)
    if not known:  # the common case: no second compilation
        return ""
    at_source = compile_workflow(
        loaded.workflow,
        config_path=str(loaded.path),
        hasher=hasher,
        approx=approx.for_compiler(placement="source"),
    )
    found = _sample_failures.known_failure(known, (n.fingerprint for n in at_source.nodes))
    if found is None:
        return ""
    return (
        f"the sample drawn at the source failed a check the whole training split may pass "
        f"in an earlier run ({found}); drew the sample at training, from examples of every row"
    )


def _training_rows(compiled: CompiledWorkflow) -> int | None:
    """The training rows of the workflow's largest source, estimated without parsing
    (``Source.estimated_rows``); ``None`` when no source can tell."""
    found = []
    for node in compiled.nodes:
        if node.role != Role.SOURCE:
            continue
        try:
            found.append(node.op.estimated_rows("train"))  # type: ignore[union-attr]
        except Exception:  # an estimate only: a source of one's own may not have one
            continue
    known = [rows for rows in found if rows]
    return max(known) if known else None


def _too_little_to_save(
    compiled: CompiledWorkflow, stored: set[str], meta: Any, approx: Approx, placement: str
) -> str:
    """The note for running exact because a sample would save too little; ``""`` otherwise."""
    from helix_tf.approx.worth import approx_saving

    if approx.min_saving_seconds <= 0:
        return ""
    saving = approx_saving(
        [(n.name, n.role) for n in compiled.nodes if n.name not in stored],
        meta.compute_history(compiled.name, approx=False),
        fraction=approx.sample,
        # The rows' share (approx.worth): not the exact run's steps the sample trains.
        epochs_scale=approx.epochs_scale,
        placement=placement,
    )
    if saving is None or saving >= approx.min_saving_seconds:
        return ""
    return (
        f"approximate run requested, but by the last exact run a {approx.sample:g} sample "
        f"would save only {saving:.2f}s of work (less than {approx.min_saving_seconds:g}s): "
        "ran exact instead (not approximate)"
    )


def is_write_failure(exc: BaseException) -> bool:
    from helix_tf.reuse.store import is_write_failure

    return is_write_failure(exc)


def metadata_in_memory(url: str, exc: BaseException) -> MetadataStore:
    """A metadata database in memory, for a run whose database cannot take data."""
    from helix_tf.reuse.metadata import MetadataStore

    log.warning(
        "metadata database %s cannot take more data (%s); this run is not recorded in "
        "its history (planned from an empty history, in memory)",
        url,
        exc,
    )
    return MetadataStore("sqlite://")


def open_metadata(
    url: str, setting: Setting | None = None, *, to_read: bool = False
) -> MetadataStore:
    """The metadata database at ``url``; in memory if its disk cannot take data.

    ``to_read``: for a command that only reads it, a SQLite file that cannot be written
    (nor its folder) is opened read-only instead, with its recorded runs. Before, such a
    store (``chmod -R a-w``) read as an empty history: ``history`` listed no run and
    ``status`` said "last run: none yet".

    An error names where a URL that was not given as an option came from (``setting``).
    """
    from helix_tf.reuse.metadata import MetadataStore

    try:
        return MetadataStore(url)
    except StoreError as exc:
        read_only = _read_only_sqlite(url) if to_read and _unwritable_sqlite(exc) else None
        if read_only is not None:
            # A SQLite file in a folder this process cannot write (a read-only mount, an
            # immutable folder) cannot be opened as usual: its write-ahead log needs a
            # file beside it. What runs recorded can still be read, as an immutable file.
            log.warning(
                "metadata database %s is in a folder that cannot be written; reading it "
                "read-only (a run another process records meanwhile may not show)",
                url,
            )
            return MetadataStore(read_only)
        if not is_write_failure(exc):
            origin = setting.describe() if setting is not None else ""
            if not origin:
                raise
            raise StoreError(f"{exc}{origin}") from exc
        return metadata_in_memory(url, exc)
