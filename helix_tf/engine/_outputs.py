"""The files of a run's nodes: loading stored entries, staging, committing, scratch.

:class:`RunOutputs` is the one part of a run that talks to the artifact store:
it opens (and verifies) what the plan loads, stages what the run computes, asks
the materializer whether to keep each output and commits it, and, once the store
cannot take more data, puts every further output in the run's scratch folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TypeVar

from helix_tf.engine._artifacts import Artifact, folder_bytes
from helix_tf.engine._context import RunContext
from helix_tf.errors import ExecutionError, HelixError, StoreError, interrupted
from helix_tf.reuse.store import drop_if_damaged, is_write_failure
from helix_tf.roles import NodeState

__all__ = ["RunOutputs", "StoreEntriesLost", "no_room", "read_back"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class StoreEntriesLost(ExecutionError):
    """Stored entries the plan loads failed verification or vanished: plan again.

    ``nodes`` names them; the store no longer offers them (a corrupt entry is removed
    when it fails verification), so a new plan recomputes them and what depends on them.
    """

    def __init__(self, nodes: list[str], problem: str) -> None:
        self.nodes = sorted(nodes)
        #: What happened to them ("failed verification or vanished", "cannot be read back").
        self.problem = problem
        super().__init__(
            f"stored results of {', '.join(self.nodes)} {problem}; they are recomputed "
            "when this run plans again"
        )


class RunOutputs:
    """Where each node's output is during a run: a stored entry, staging or scratch."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.files: dict[str, Artifact] = {}
        #: Why this run stopped (or never started) writing to the store (None: it writes).
        self.store_failure: str | None = ctx.options.read_only

    def get(self, name: str) -> Artifact:
        """``name``'s files: staged or computed by this run, else loaded from the store."""
        return self.files.get(name) or self.load(name)

    def load(self, name: str) -> Artifact:
        """Resolve a loaded node's artifact (verified) and time it."""
        if name in self.files:
            return self.files[name]
        m = self.ctx.manifests[name]
        t0 = time.perf_counter()
        local = self.store.open_local(m)
        if local is None:
            raise StoreEntriesLost([name], "failed verification or vanished while loading")
        art = Artifact(root=self.store.data_url(m), local=local, meta=dict(m.meta), manifest=m)
        tally = self.ctx.tallies[name]
        tally.load_seconds += time.perf_counter() - t0
        tally.rows, tally.bytes = m.rows, m.bytes
        self.files[name] = art
        return art

    def verify_loads(self) -> None:
        """Open (and verify) every entry the plan loads before any work is done."""
        lost = []
        for node in self.ctx.compiled.nodes:
            if self.ctx.states[node.name] == NodeState.LOAD:
                try:
                    self.load(node.name)
                except StoreEntriesLost:
                    lost.append(node.name)
        if lost:
            raise StoreEntriesLost(lost, "failed verification or vanished")

    def lost_entries(self) -> list[str]:
        """Loaded (or to-be-loaded) entries that are no longer in the store as planned."""
        lost = []
        for name, m in self.ctx.manifests.items():
            if self.ctx.states.get(name) == NodeState.COMPUTE:
                continue
            try:
                now = self.store.lookup(m.fingerprint)
            except StoreError:
                continue
            if now is None or now.token != m.token:
                lost.append(name)
        return lost

    def stage(self, name: str) -> Artifact:
        """Where a computed node writes its output: store staging, or scratch if it cannot."""
        node = self.ctx.nodes[name]
        if self.store_failure is None:
            try:
                staging = self.store.begin(node.fingerprint)
            except (StoreError, OSError) as exc:
                self.stop_store_writes(exc)
            else:
                art = Artifact(root=staging.url, local=staging.local_path, meta={}, staging=staging)
                self.files[name] = art
                return art
        folder = os.path.join(self.ctx.scratch, "out", f"{name}.{node.fingerprint}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        art = Artifact(root=folder, local=folder, meta={})
        self.files[name] = art
        return art

    def write_output(self, name: str, write: Callable[[Artifact], None]) -> Artifact:
        """Stage ``name`` and ``write`` its files; if the store cannot take them, use scratch."""
        art = self.stage(name)
        try:
            write(art)
        except Exception as exc:
            if art.staging is None or not is_write_failure(exc):
                raise
            self.stop_store_writes(exc)
            self.unstage(name)
            art = self.stage(name)
            write(art)
        return art

    def save_json(self, name: str, filename: str, text: str) -> None:
        """Write a node's one JSON file where its output goes (the store, else scratch)."""

        def write(art: Artifact) -> None:
            if art.staging is not None:
                with art.staging.open(filename, "w") as f:
                    f.write(text)
            elif art.local is not None:
                with open(os.path.join(art.local, filename), "w") as f:
                    f.write(text)

        self.write_output(name, write)

    def write_beside(self, name: str, filename: str, data: Any, *, sort_keys: bool) -> None:
        """Write JSON beside a computed node's files (a feature's state, value names)."""
        art = self.files[name]
        try:
            with open(os.path.join(art.local or "", filename), "w") as f:
                json.dump(data, f, sort_keys=sort_keys)
        except OSError as exc:
            if art.staging is None or not is_write_failure(exc):
                raise
            self.stop_store_writes(exc)  # the staged columns stay readable; not committed

    def unstage(self, name: str) -> None:
        """Drop what ``name`` staged (its files are written again elsewhere)."""
        art = self.files.pop(name, None)
        if art is not None and art.staging is not None:
            self._abort(art)

    def stop_store_writes(self, exc: BaseException) -> None:
        """The store cannot take more data: this run goes on without materializing."""
        if self.store_failure is not None:
            log.debug("store write failed again: %s", exc)
            return
        self.store_failure = f"{type(exc).__name__}: {exc}"
        log.warning(
            "the artifact store %s cannot take more data (%s); this run goes on without "
            "materializing, its outputs in %s",
            self.store.url,
            self.store_failure,
            self.ctx.scratch,
        )

    def finish(self, name: str, *, kind: str, rows: int | None, meta: dict[str, Any]) -> None:
        """A computed node is done: decide whether to keep its output in the store."""
        tally = self.ctx.tallies[name]
        art = self.files[name]
        art.meta = meta
        tally.rows = rows
        tally.meta = {**tally.meta, **meta}
        if art.local is not None and os.path.isdir(art.local):
            tally.bytes = folder_bytes(art.local)
        if art.staging is None or self.store_failure is not None:
            return  # not materialized: its files are read where they are
        if rows == 0 or _holds_no_file(art.local):
            # Nothing to keep (a source or table without rows): the store refuses an entry
            # without files, which read as "cannot take more data" and stopped every
            # later write of the run. An empty output is recomputed at no cost.
            return
        if not self._keep(name):
            return  # aborted at the end of the run (the files are still needed until then)
        recompute = self.ctx.materializer.recompute_cost(name, self.ctx.results())
        if recompute is not None:
            meta = {**meta, "recompute_seconds": round(float(recompute), 6)}
        meta = {**meta, **self.ctx.materializer.entry_meta()}  # a tagged run's tag
        t0 = time.perf_counter()
        try:
            manifest = self.store.commit(
                art.staging,
                kind=kind,
                rows=rows,
                meta=meta,
                compute_seconds=tally.compute_seconds,
            )
            tally.add_write(time.perf_counter() - t0)
            # None: someone else committed the same fingerprint meanwhile: use theirs.
            # (None again: that entry vanished too; ours is not stored.)
            stored = manifest or self.store.lookup(self.ctx.nodes[name].fingerprint)
            tally.materialized = stored is not None
            if stored is not None:
                art.manifest = stored
                art.root = self.store.data_url(stored)
                art.local = self.store.open_local(stored, verify=False)
                art.staging = None
        except (StoreError, OSError) as exc:
            tally.materialized = False
            self.stop_store_writes(exc)

    def _keep(self, name: str) -> bool:
        """The materializer's decision on keeping ``name``'s output; False if it fails."""
        results = self.ctx.results()
        try:
            return self.ctx.materializer.decide(self.ctx.nodes[name], results[name], results)
        except Exception:
            log.exception("materialization policy failed for %s; not materializing", name)
            return False

    def cleanup(self) -> None:
        """Abort what is still staged; remove the run's scratch folders."""
        for art in self.files.values():
            if art.staging is not None:
                self._abort(art)
        shutil.rmtree(self.ctx.scratch, ignore_errors=True)
        try:
            import fsspec

            fs, path = fsspec.core.url_to_fs(self.ctx.store_scratch)
            if fs.exists(path):
                fs.rm(path, recursive=True)
        except Exception as exc:
            log.debug("scratch cleanup failed: %s", exc)

    def _abort(self, art: Artifact) -> None:
        try:
            self.store.abort(art.staging)  # type: ignore[arg-type]
        except Exception as exc:
            log.debug("abort failed: %s", exc)


def _holds_no_file(folder: str | None) -> bool:
    """Whether the local ``folder`` exists and has no file in it (None: not local)."""
    if folder is None or not os.path.isdir(folder):
        return False
    return not any(files for _, _, files in os.walk(folder))


def read_back(outputs: RunOutputs, name: str, read: Callable[[], _T]) -> _T:
    """``read()`` of node ``name``'s files among ``outputs``; a stored entry that verified
    (its sha256 is what was written) but cannot be read back (a library of another
    version wrote it, a writer's bug) is removed and the run plans again, recomputing it.

    Errors of what this run computed, helix_tf's own, a Ctrl-C and the machine's own
    faults (out of memory, a full temporary disk: an ``OSError`` with an errno) pass
    through: the entry may be sound, so it is kept.
    """
    try:
        return read()
    except HelixError:
        raise
    except Exception as exc:
        machine = isinstance(exc, MemoryError) or (
            isinstance(exc, OSError) and exc.errno is not None
        )
        if outputs.ctx.states.get(name) != NodeState.LOAD or interrupted(exc) or machine:
            raise
        problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        log.warning(
            "stored result of %s verified but cannot be read back (%s); removing it",
            name,
            problem,
        )
        try:
            outputs.store.delete(outputs.ctx.manifests[name].fingerprint)
        except StoreError as gone:  # the replan recomputes it either way
            log.warning("could not remove it: %s", gone)
        raise StoreEntriesLost([name], f"cannot be read back ({problem})") from exc


def drop_damaged_unread(outputs: RunOutputs) -> None:
    """Check the stored entries the run computed instead of loading and did not replace
    (its output not kept, or kept by another run first), removing damaged ones: unread,
    their damage would otherwise wait for a later run to trip on it.

    A function beside :class:`RunOutputs`, which has all the methods its size allows.
    """
    if outputs.store_failure is not None:
        return  # a read-only worker, or a store that cannot be written
    ctx = outputs.ctx
    for name, m in ctx.manifests.items():
        if ctx.states.get(name) != NodeState.COMPUTE:
            continue
        if ctx.tallies[name].materialized:
            continue  # committing replaced a damaged entry, or found it sound
        try:
            drop_if_damaged(outputs.store, m.fingerprint)
        except (StoreError, OSError) as exc:  # housekeeping: it never fails the run
            log.debug("could not check the stored entry of %s: %s", name, exc)


def no_room(outputs: RunOutputs, exc: BaseException) -> str | None:
    """What to say of a write that found no room in the run's scratch folder (where
    outputs go once the store cannot take more data): the folder and the fix; None
    for any other failure. A learning step's, and preprocessing's once it writes
    there (its background writer's error wraps the OS error)."""
    cause = _os_error(exc)
    where = getattr(cause, "filename", None)
    scratch = outputs.ctx.scratch
    if (
        outputs.store_failure is None
        or not is_write_failure(exc)
        or (where is not None and not str(where).startswith(scratch))
    ):
        return None
    what = cause if cause is not None else exc
    return (
        f"its output could not be written ({type(what).__name__}: {what}) into the "
        f"run's scratch folder {scratch}, where outputs go while the artifact store "
        f"takes none ({outputs.store_failure}); make room there (free disk space, a larger "
        "quota or file-size limit: `ulimit -f`), or pass --scratch DIR (or set "
        "HELIX_TF_SCRATCH) on a disk that has it"
    )


def _os_error(exc: BaseException) -> OSError | None:
    """The first OS error in ``exc``'s chain of causes (a background write's own)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
