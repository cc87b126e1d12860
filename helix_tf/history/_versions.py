"""Versions of a workflow: a config compiled, and what changed between two versions.

- :func:`describe` — the compiled nodes of a config under some ``-p`` overrides:
  name, role, operator, parameters, where each was declared;
- :func:`logical_diff` — the compiler's node-by-node diff between the config and a
  variant of it (``-p`` overrides), before anything runs;
- :func:`version_diff` — the same diff between two recorded versions (``helix-tf
  diff``, the HTML report);
- :func:`workflow_changes` — a diff as one line per change (``history``, a run's
  comparison with the previous version).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from helix_tf.compiler.diff import NodeChange, diff_versions
from helix_tf.errors import StoreError

if TYPE_CHECKING:
    from helix_tf.reuse.metadata import MetadataStore, VersionRecord
    from helix_tf.validation import Validation

__all__ = [
    "NodeChange",
    "NodeView",
    "WorkflowView",
    "VersionDiff",
    "describe",
    "logical_diff",
    "version_diff",
    "diff_records",
    "workflow_changes",
]

Params = Sequence[str] | Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """One compiled node of a config: what it is and where the user declared it."""

    name: str
    role: str
    op: str | None
    params: dict[str, Any]
    fingerprint: str
    file: str | None
    line: int | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowView:
    """A config compiled under some overrides: its digest, declared PARAMS and nodes."""

    name: str
    digest: str
    params: dict[str, Any]
    nodes: tuple[NodeView, ...]
    dag: dict[str, Any]

    def node(self, name: str) -> NodeView:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def _compiled(
    config: str | os.PathLike[str],
    params: Params,
    data_dir: str | None,
    validation: Validation | None = None,
) -> tuple[Any, Any]:
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config
    from helix_tf.validation import holdout_workflow

    loaded = load_config(config, params, data_dir=data_dir)
    wf = holdout_workflow(loaded.workflow, validation) if validation else loaded.workflow
    return loaded, compile_workflow(wf, config_path=str(loaded.path))


def describe(
    config: str | os.PathLike[str],
    *,
    params: Params = (),
    data_dir: str | None = None,
    validation: Validation | None = None,
) -> WorkflowView:
    """Compile ``config`` under ``params``: its nodes, their parameters and declaration lines.

    With ``validation``, the workflow of its validation runs (which never reads the
    test split, nor hashes its files).
    """
    loaded, compiled = _compiled(config, params, data_dir, validation)
    nodes = []
    for n in compiled.nodes:
        d = loaded.workflow.declaration(n.name)
        nodes.append(
            NodeView(
                name=n.name,
                role=n.role,
                op=d.op.op_name if d.op is not None else None,
                params=dict(n.params),
                fingerprint=n.fingerprint,
                file=d.file,
                line=d.line,
            )
        )
    return WorkflowView(
        name=compiled.name,
        digest=compiled.digest,
        params=dict(loaded.params),
        nodes=tuple(nodes),
        dag=compiled.to_dict(),
    )


def logical_diff(
    config: str | os.PathLike[str],
    new_params: Params,
    *,
    old_params: Params = (),
    data_dir: str | None = None,
) -> list[dict[str, Any]]:
    """The compiler's diff from ``config`` under ``old_params`` to it under ``new_params``.

    Only added, removed and changed nodes; each as ``{"name", "change", "details"}``.
    """
    _, old = _compiled(config, old_params, data_dir)
    _, new = _compiled(config, new_params, data_dir)
    return [
        c.to_dict() for c in diff_versions(old.to_dict(), new.to_dict()) if c.change != "unchanged"
    ]


def workflow_changes(old_dag: Mapping[str, Any], new_dag: Mapping[str, Any]) -> tuple[str, ...]:
    """One line per difference between two compiled versions (``compiler.diff``).

    A node changed only because an input changed is not listed (its cause is).
    """
    lines: list[str] = []
    for change in diff_versions(old_dag, new_dag):
        if change.change in ("added", "removed"):
            lines.append(f"{change.change} {change.name} ({', '.join(change.details)})")
        elif change.change == "changed":
            own = [d for d in change.details if not d.startswith("input changed:")]
            lines.extend(
                d if d.startswith(f"{change.name}.") else f"{change.name}: {d}" for d in own
            )
    return tuple(lines)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VersionDiff:
    """Two recorded versions of a workflow and how each node differs between them."""

    old: VersionRecord
    new: VersionRecord
    #: Every node of both versions: added, removed, changed or unchanged.
    changes: tuple[NodeChange, ...]

    @property
    def differences(self) -> tuple[NodeChange, ...]:
        """The nodes that are not unchanged."""
        return tuple(c for c in self.changes if c.change != "unchanged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.number,
            "new": self.new.number,
            "changes": [c.to_dict() for c in self.changes],
        }


def diff_records(old: VersionRecord, new: VersionRecord) -> VersionDiff:
    """The diff between two version records already read."""
    return VersionDiff(old=old, new=new, changes=tuple(diff_versions(old.dag, new.dag)))


def version_diff(
    metadata: MetadataStore,
    workflow: str,
    old: int | None = None,
    new: int | None = None,
    *,
    user: str | None = None,
) -> VersionDiff:
    """What changed from version ``old`` to version ``new`` of ``workflow``.

    ``new`` defaults to the latest version; ``old`` to the version ``new`` followed
    (its parent), else the one recorded before it. With ``user`` (team mode: a
    person's own baseline) the defaults are taken among the versions that person
    recorded or ran; None: among everyone's.

    Raises
    ------
    StoreError
        When the workflow has no recorded version, or not the one asked for (the
        message lists those recorded); also when it has only one and ``old`` is not given.
    """
    versions = metadata.versions(workflow, user=user)
    if not versions:
        whose = f" by {user}" if user is not None and metadata.versions(workflow) else ""
        raise StoreError(
            f"workflow {workflow!r} has no recorded versions{whose} yet; run it first"
            + (" (or pass --team to compare the team's versions)" if whose else "")
        )
    b = metadata.version(workflow, new) if new else versions[-1]
    if old is not None:
        return diff_records(metadata.version(workflow, old), b)
    earlier = [v for v in versions if v.number < b.number]
    if not earlier:
        raise StoreError(
            f"version {b.number} of workflow {workflow!r} is its first: there is nothing "
            "to compare it with; name two versions"
        )
    a = next((v for v in earlier if v.number == b.parent), earlier[-1])
    return diff_records(a, b)
