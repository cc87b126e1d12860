"""The compiled DAG's data: :class:`CompiledNode` and :class:`CompiledWorkflow`.

Frozen dataclasses, serialisable to deterministic JSON (sorted keys): two
compilations of the same config are byte-equal in
:meth:`CompiledWorkflow.to_json`. Built by
:func:`helix_tf.compiler.graph.compile_workflow`, which re-exports them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from helix_tf.components.base import Operator
from helix_tf.roles import ROLE_SPECS, Role, Stage
from helix_tf.types import ArtifactKind

#: The ``kind`` (stage) reported per node in --json output and the summary table, by role.
JSON_KIND: dict[str, Stage] = {role: spec.stage for role, spec in ROLE_SPECS.items()}
#: The artifact kind each role outputs (a feature's ``output_type`` adds its value kind).
OUTPUT_TYPE: dict[str, ArtifactKind] = {
    role: spec.output
    for role, spec in ROLE_SPECS.items()
    if spec.output is not ArtifactKind.FEATURE
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CompiledNode:
    """One node of the compiled DAG."""

    name: str
    role: Role
    op: Operator | None
    inputs: tuple[str, ...]  # upstream node names, in a fixed order
    output_type: str  # table | feature:<value kind> | examples | model | ... (roles.output_type)
    fingerprint: str
    params: dict[str, Any]  # JSON-able view of the parameters (for history and diff)
    code: dict[str, str]  # parameter name -> code digest, for UDF parameters
    output: bool
    where: str  # config file:line of the declaration
    #: The facts its role names (``RoleSpec.facts``: feature list, split, metrics, source,
    #: sample, approx) and ``volatile`` (why it is never reused). Stored as ``"extra"``.
    facts: dict[str, Any]
    #: Parameter name -> the parts of its code digest (``CodeFingerprint.parts``: the
    #: code itself and each constant, helper, environment variable or file it reads),
    #: so ``diff`` names what changed. Stored as ``"code_parts"`` when there is any.
    code_parts: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def extra(self) -> dict[str, Any]:
        """The old name of :attr:`facts` (the key it is stored under in a DAG's JSON)."""
        return self.facts

    @property
    def kind(self) -> Stage:
        """The coarse step reported to users (source, preprocess, train, ...): the role's stage."""
        return JSON_KIND[self.role]

    @property
    def value_kind(self) -> str | None:
        """For a feature, its value kind (numeric, categorical, bag, ...)."""
        return self.output_type.split(":", 1)[1] if self.role == Role.FEATURE else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "op": self.op.op_name if self.op is not None else None,
            "inputs": list(self.inputs),
            "output_type": self.output_type,
            "fingerprint": self.fingerprint,
            "params": self.params,
            "code": self.code,
            "output": self.output,
            "where": self.where,
            "extra": self.facts,
            **({"code_parts": self.code_parts} if self.code_parts else {}),
        }


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CompiledWorkflow:
    """The typed DAG of one workflow version, nodes in a stable topological order."""

    name: str
    nodes: tuple[CompiledNode, ...]
    outputs: tuple[str, ...]
    config_path: str | None
    digest: str
    approx: dict[str, Any] | None = None

    def node(self, name: str) -> CompiledNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def by_name(self) -> dict[str, CompiledNode]:
        return {n.name: n for n in self.nodes}

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.name,
            "digest": self.digest,
            "outputs": list(self.outputs),
            "approx": self.approx,
            "nodes": [n.to_dict() for n in self.nodes],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)
