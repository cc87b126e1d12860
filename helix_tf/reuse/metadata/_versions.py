"""The version log: each distinct compiled DAG of a workflow, numbered, with its parent."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata._database import (
    Database,
    ensure_workflow,
    unknown_workflow,
    workflow_id,
)
from helix_tf.reuse.metadata._records import VersionRecord, _version_record

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)


class VersionLog:
    """Recording workflow versions and reading them back (also by the person who ran them)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        workflow: str,
        config_path: str,
        dag: dict[str, Any],
        digest: str,
        *,
        user: str | None = None,
    ) -> int:
        """Record a compiled DAG; return its number (a known digest keeps its number)."""
        try:
            dag_json = json.dumps(dag, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"the compiled DAG of workflow {workflow!r} is not JSON-serialisable ({exc}); "
                f"compiled structures must hold only JSON values"
            ) from exc
        db = self._db
        sa, versions = db.sa, db.tables.versions

        def write(conn: Connection) -> tuple[int, bool]:
            wid = ensure_workflow(db, conn, workflow, config_path)
            where = versions.c.workflow_id == wid
            seen = conn.execute(
                sa.select(versions.c.number).where(where, versions.c.digest == digest)
            ).scalar()
            if seen is not None:
                return int(seen), False
            latest = conn.execute(sa.select(sa.func.max(versions.c.number)).where(where)).scalar()
            number = (latest or 0) + 1
            conn.execute(
                versions.insert().values(
                    workflow_id=wid,
                    number=number,
                    digest=digest,
                    created=db.clock(),
                    dag_json=dag_json,
                    parent_number=latest,
                    user_name=user,
                )
            )
            return number, True

        number, new = db.write(write, f"record a version of workflow {workflow!r}")
        logger.debug("workflow %r: %s version %d", workflow, "new" if new else "known", number)
        return number

    def all(self, workflow: str, *, user: str | None = None) -> list[VersionRecord]:
        """Every version of ``workflow``, oldest first (``[]`` for an unknown workflow).

        With ``user``: only the versions that person recorded or ran (and those of
        databases older than team mode, which name nobody).
        """
        db = self._db
        v, runs = db.tables.versions, db.tables.runs

        def read(conn: Connection) -> list[VersionRecord]:
            wid = workflow_id(db, conn, workflow)
            if wid is None:
                return []
            query = db.sa.select(v).where(v.c.workflow_id == wid)
            if user is not None:
                ran = db.sa.select(runs.c.version_number).where(
                    runs.c.workflow_id == wid,
                    db.sa.or_(runs.c.user_name == user, runs.c.user_name.is_(None)),
                )
                query = query.where(
                    db.sa.or_(v.c.user_name == user, v.c.user_name.is_(None), v.c.number.in_(ran))
                )
            return [
                _version_record(workflow, row) for row in conn.execute(query.order_by(v.c.number))
            ]

        return db.read(read, f"read the versions of workflow {workflow!r}")

    def one(self, workflow: str, number: int) -> VersionRecord:
        """Version ``number`` of ``workflow``; a :class:`StoreError` lists those recorded."""
        db = self._db
        sa, v = db.sa, db.tables.versions

        def read(conn: Connection) -> VersionRecord:
            wid = workflow_id(db, conn, workflow)
            if wid is None:
                names = conn.execute(sa.select(db.tables.workflows.c.name)).scalars().all()
                raise StoreError(unknown_workflow(workflow, list(names), db.url))
            row = conn.execute(
                sa.select(v).where(v.c.workflow_id == wid, v.c.number == number)
            ).first()
            if row is not None:
                return _version_record(workflow, row)
            known = conn.execute(
                sa.select(v.c.number).where(v.c.workflow_id == wid).order_by(v.c.number)
            ).scalars()
            listed = ", ".join(str(n) for n in known) or "none"
            raise StoreError(
                f"workflow {workflow!r} has no version {number}; recorded versions: {listed}"
            )

        return db.read(read, f"read version {number} of workflow {workflow!r}")

    def workflows(self) -> dict[str, str]:
        """Every recorded workflow's name and the config path it was last recorded from."""
        db = self._db
        w = db.tables.workflows

        def read(conn: Connection) -> dict[str, str]:
            rows = conn.execute(db.sa.select(w.c.name, w.c.config_path).order_by(w.c.name))
            return {str(name): str(path or "") for name, path in rows}

        return db.read(read, "read the recorded workflows")

    def node_names(self) -> dict[str, list[tuple[str, int, str]]]:
        """Which (workflow, version, node name) each fingerprint stood for, by fingerprint."""
        db = self._db
        v, w = db.tables.versions, db.tables.workflows

        def read(conn: Connection) -> dict[str, list[tuple[str, int, str]]]:
            query = db.sa.select(w.c.name, v.c.number, v.c.dag_json).join(
                w, w.c.id == v.c.workflow_id
            )
            out: dict[str, list[tuple[str, int, str]]] = {}
            for name, number, dag_json in conn.execute(query.order_by(w.c.name, v.c.number)):
                for node, fp in node_fingerprints(json.loads(dag_json)).items():
                    out.setdefault(fp, []).append((name, int(number), node))
            return out

        return db.read(read, "read the node names of every version")

    def change_counts(self, workflow: str) -> dict[str, tuple[int, int]]:
        """Per node name: ``(versions in which its fingerprint changed, versions it is in)``."""
        db = self._db
        v = db.tables.versions

        def read(conn: Connection) -> list[str]:
            wid = workflow_id(db, conn, workflow)
            if wid is None:
                return []
            query = db.sa.select(v.c.dag_json).where(v.c.workflow_id == wid)
            return list(conn.execute(query.order_by(v.c.number)).scalars())

        last: dict[str, str] = {}
        counts: dict[str, tuple[int, int]] = {}
        for dag_json in db.read(read, f"read the versions of workflow {workflow!r}"):
            for name, fingerprint in node_fingerprints(json.loads(dag_json)).items():
                changed, appeared = counts.get(name, (0, 0))
                if name in last and last[name] != fingerprint:
                    changed += 1
                counts[name] = (changed, appeared + 1)
                last[name] = fingerprint
        return counts


def node_fingerprints(dag: Mapping[str, Any]) -> dict[str, str]:
    """``{name: fingerprint}`` of a compiled DAG's ``nodes`` (a list or a name-keyed map)."""
    nodes = dag.get("nodes", ())
    if isinstance(nodes, Mapping):
        items = [(name, spec) for name, spec in nodes.items()]
    else:
        items = [(spec.get("name"), spec) for spec in nodes if isinstance(spec, Mapping)]
    return {
        str(name): str(spec.get("fingerprint", ""))
        for name, spec in items
        if name is not None and isinstance(spec, Mapping)
    }
