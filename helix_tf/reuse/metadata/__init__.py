"""The metadata database: workflow versions, runs, per-node measurements and metrics.

One database holds every workflow's history (DESIGN.md §7, §11). It answers the
questions the rest of helix_tf asks between runs:

* the cost model's compute times ``c_i`` (:meth:`MetadataStore.compute_history`) and
  the store's read throughput for load costs ``l_i`` (:meth:`MetadataStore.load_throughput`);
* how often each operator changes between versions, for the materialization
  policy (:meth:`MetadataStore.change_counts`);
* ``history``, ``diff`` and ``report`` (:meth:`MetadataStore.runs`,
  :meth:`MetadataStore.versions`).

It is written with SQLAlchemy Core, so any SQLAlchemy URL works; the default is an
embedded SQLite file. SQLAlchemy is imported when a store is opened, not when this
module is imported, so ``import helix_tf.reuse.metadata`` stays cheap.

SQLite files are opened in WAL mode with a 30 s busy timeout, and every write
transaction starts with ``BEGIN IMMEDIATE``: several processes (a run and the
background agent, say) can write to one file at once. WAL needs a local file
system; do not put the database on NFS.
"""

# BUSY_TIMEOUT_S and MIN_THROUGHPUT_BYTES are importable from here too, outside __all__.
from helix_tf.reuse.metadata._database import (
    BUSY_TIMEOUT_S as BUSY_TIMEOUT_S,
    close_deferred,
    defer_closing,
)
from helix_tf.reuse.metadata._fit import (
    MIN_THROUGHPUT_BYTES as MIN_THROUGHPUT_BYTES,
    fit_load_throughput,
)
from helix_tf.reuse.metadata._records import (
    NODE_STATES,
    RUN_STATUSES,
    NodeRecord,
    RunRecord,
    VersionRecord,
)
from helix_tf.reuse.metadata._repair import (
    DatabaseCheck,
    check_database,
    read_only_url,
    set_aside,
    sqlite_file,
)
from helix_tf.reuse.metadata._schema import SCHEMA_VERSION
from helix_tf.reuse.metadata._store import MetadataStore, recorded_workflows
from helix_tf.reuse.metadata._urls import sqlite_url

__all__ = [
    "DatabaseCheck",
    "NODE_STATES",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "MetadataStore",
    "NodeRecord",
    "RunRecord",
    "VersionRecord",
    "close_deferred",
    "check_database",
    "defer_closing",
    "fit_load_throughput",
    "recorded_workflows",
    "set_aside",
    "read_only_url",
    "sqlite_file",
    "sqlite_url",
]
