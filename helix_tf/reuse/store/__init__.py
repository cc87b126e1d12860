"""The artifact store: materialized node results keyed by fingerprint, over fsspec.

A store is a URL: a local folder (or ``file://...``), ``gs://bucket/prefix`` (through
gcsfs, imported only when such a URL is used) or ``memory://name`` (tests). Layout::

    <root>/helix_store.json                      marker: format version of the store
    <root>/staging/<fingerprint>.<token>/...     files being written (never visible)
    <root>/artifacts/<fingerprint>/<token>/...   committed data files
    <root>/artifacts/<fingerprint>/MANIFEST.json names <token>, sizes and sha256s
    <root>/runs/<lease id>.json                  live runs: process, pins, scratch folder
    <root>/last_gc                               when leftovers were last collected

Tokens start with the lease id of the run that wrote them (see ``_leases``), so the
leftovers of a run found dead are reclaimed at once (:meth:`ArtifactStore.collect`) and
a live run's files are never touched; budget eviction skips what live runs pinned.

The manifest is written last, atomically and exclusively (create-if-absent), so a run
killed at any moment never leaves an entry that looks complete, and of two runs that
commit the same fingerprint at once exactly one wins; the loser removes its data.

Exclusive publication per backend:

* local: the manifest is written to a temporary file, fsync'ed, then ``os.link``-ed to
  ``MANIFEST.json`` (fails if it exists). On a file system without hard links it is
  created with ``O_CREAT | O_EXCL`` (exclusive, but a reader may briefly see a partly
  written manifest, which it treats as corrupt and skips).
* gs://: ``open(..., "xb")``, which gcsfs sends as an ``ifGenerationMatch=0`` precondition
  (HTTP 412 → ``FileExistsError``); a 412 on a manifest naming the writer's own token is
  its own create, retried after a lost reply, hence a win. Tests enforce the precondition
  with a fake object store (``tests/reuse/_generation_fs.py``). The GCS *emulator*
  ignores that precondition; so the
  manifest is always read back after publication, and a writer whose manifest was
  overwritten withdraws. Residual race on a backend without the precondition: two
  writers whose write and read-back interleave can both believe they won; the manifest
  then names the last writer's data and the other's data dir is an orphan that
  :meth:`ArtifactStore.collect` removes. A manifest never points at missing data.
* memory:// and other fsspec backends: ``open(..., "xb")`` (falling back to
  check-then-write plus the same read-back where ``"xb"`` is unsupported).

Checksums are sha256 of each file's bytes. For a remote store, :meth:`commit` reads the
staged files back to compute them (files may have been written by remote workers that
never passed through this process).

The store is one public class, :class:`ArtifactStore`, composed of small objects with
one job each (no mixins): ``_fs.StoreFiles`` and ``_fs.StorePaths`` (file system access
and layout), ``_entries.Entries`` (read and judge entries), ``_commit.Committer``
(staging and commit), ``_open.Opener`` (local, verified copies), ``_leases.Leases``
(runs on the store, on any machine) and ``_cleanup.Collector`` (verify, reclaim).

Only JSON and the caller's own open formats are written; nothing is ever pickled.
Never imports TensorFlow, Keras or Apache Beam.
"""

from helix_tf.reuse.store._cleanup import GcReport, VerifyReport
from helix_tf.reuse.store._fs import holds_a_store, is_write_failure
from helix_tf.reuse.store._leases import (
    LeaseInfo,
    RunLease,
    is_stopped,
    pid_scope,
    process_alive,
    process_start,
)
from helix_tf.reuse.store._manifest import FORMAT_VERSION, FileEntry, Manifest, Staging
from helix_tf.reuse.store._store import ArtifactStore, drop_if_damaged, unusable_entry

__all__ = [
    "FORMAT_VERSION",
    "ArtifactStore",
    "FileEntry",
    "GcReport",
    "LeaseInfo",
    "Manifest",
    "RunLease",
    "Staging",
    "VerifyReport",
    "drop_if_damaged",
    "holds_a_store",
    "unusable_entry",
    "is_stopped",
    "is_write_failure",
    "pid_scope",
    "process_alive",
    "process_start",
]
