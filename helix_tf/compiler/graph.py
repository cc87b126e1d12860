"""Compile a ``Workflow`` into a typed, checked, fingerprinted DAG.

The result, :class:`CompiledWorkflow`, is what every later stage reads: the
planner (states per node), the engine (what to run), the metadata database (a
version is a compiled DAG) and ``diff``. Compilation is deterministic: two
compilations of the same config are byte-equal in :meth:`CompiledWorkflow.to_json`.

Pure: never imports TensorFlow or Beam.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import networkx as nx

from helix_tf.compiler._checks import (
    check_metric_tasks,
    check_model_inputs,
    feature_kinds,
    resolve_explain_tasks,
)

# JSON_KIND and OUTPUT_TYPE are importable from here too, outside __all__ as before.
from helix_tf.compiler._dag import (
    JSON_KIND as JSON_KIND,
    OUTPUT_TYPE as OUTPUT_TYPE,
    CompiledNode,
    CompiledWorkflow,
)
from helix_tf.compiler._declared import Declared
from helix_tf.compiler._edges import Edges
from helix_tf.compiler._identity import (
    FINGERPRINT_SCHEME,
    FactContext,
    code_refusals,
    fingerprint,
    node_code,
    node_facts,
)
from helix_tf.compiler._leakage import check_label_leakage
from helix_tf.compiler._shared_state import shared_state
from helix_tf.compiler._values import code_identity, op_params
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.hashing import stable_hash
from helix_tf.components.base import did_you_mean
from helix_tf.errors import CompileError
from helix_tf.roles import Role, output_type
from helix_tf.workflow import Workflow

__all__ = [
    "CompiledNode",
    "CompiledWorkflow",
    "check_workflow",
    "compile_workflow",
    "FINGERPRINT_SCHEME",
]

log = logging.getLogger(__name__)


def compile_workflow(
    wf: Workflow,
    *,
    config_path: str | None = None,
    hasher: ContentHasher | None = None,
    approx: Mapping[str, Any] | None = None,
) -> CompiledWorkflow:
    """Check ``wf`` and build its typed, fingerprinted DAG.

    Every problem found is reported together in one :class:`CompileError`.
    ``approx`` (sampling and precision settings) is part of the fingerprints of
    the nodes it affects, so approximate and exact results never mix.
    """
    checked = _checked(wf, config_path)
    declared, edges, inputs = checked.declared, checked.edges, checked.inputs
    order, kinds, outputs = checked.order, checked.kinds, checked.outputs
    _warn_dead(declared, checked.graph, order, outputs)

    hasher = hasher or ContentHasher()
    approx_view = dict(approx) if approx else None
    ctx = FactContext(
        approx=approx_view,
        sources=edges.sources,
        label_of_examples=declared.label_of_examples,
        hasher=hasher,
    )
    user_code = {name: node_code(declared.decls[name]) for name in order}
    shared = shared_state({n: [fp for _, fp in c] for n, c in user_code.items()})
    if shared.problems:
        raise CompileError(shared.problems, path=config_path)
    nodes, identities = _compiled_nodes(
        declared, order, inputs, outputs, kinds, ctx, hasher, (user_code, shared.refusals)
    )
    hasher.save()
    # The version: what the config declares, not a run's nonces (a node recomputed every
    # run would otherwise make every load of an unchanged config a new version).
    digest = stable_hash(
        {"nodes": [(n.name, identities[n.name]) for n in nodes], "outputs": outputs}
    )
    return CompiledWorkflow(
        name=wf.name,
        nodes=tuple(nodes),
        outputs=tuple(outputs),
        config_path=config_path,
        digest=digest,
        approx=approx_view,
    )


def check_workflow(wf: Workflow, *, config_path: str | None = None) -> list[str]:
    """The problems :func:`compile_workflow` finds in ``wf``'s declarations (names, edges,
    columns, kinds, leakage), without fingerprinting it: no data file is read. For a
    config whose ``-p`` overrides failed too, so that one message holds every problem."""
    try:
        _checked(wf, config_path)
    except CompileError as exc:
        return list(exc.problems)
    return []


class _Checked(NamedTuple):
    """A workflow's declarations once checked: what fingerprinting them starts from."""

    declared: Declared
    edges: Edges
    inputs: dict[str, list[str]]
    graph: nx.DiGraph
    order: list[str]
    kinds: dict[str, str]
    outputs: list[str]


def _checked(wf: Workflow, config_path: str | None) -> _Checked:
    """``wf``'s declarations checked; a :class:`CompileError` holding every problem found."""
    declared = Declared(wf)
    if not declared.decls:
        raise CompileError(declared.problems, path=config_path)
    # Every check runs even when earlier ones found problems: a config's problems are
    # reported together (unresolved references simply contribute no edge).
    edges = Edges(declared)
    inputs = edges.build()
    check_metric_tasks(declared)
    resolve_explain_tasks(declared)
    edges.add_raw_column_sources(inputs)
    graph, order = _ordered_graph(declared, inputs, config_path)
    kinds = feature_kinds(declared, order, edges.sources)
    check_model_inputs(declared, inputs, kinds)
    check_label_leakage(declared, inputs, edges.sources, edges.examples_source)
    outputs = _outputs(declared, order)
    if declared.problems:
        raise CompileError(declared.problems, path=config_path)
    return _Checked(declared, edges, inputs, graph, order, kinds, outputs)


def _ordered_graph(
    declared: Declared, inputs: Mapping[str, list[str]], config_path: str | None
) -> tuple[nx.DiGraph, list[str]]:
    """The DAG and its topological order (declaration order among equals); a cycle fails."""
    graph = nx.DiGraph()
    graph.add_nodes_from(declared.decls)
    for name, ins in inputs.items():
        graph.add_edges_from((i, name) for i in ins)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        pass
    else:
        declared.problems.append(
            "cycle: " + " -> ".join(f"{u!r}" for u, _ in cycle) + f" -> {cycle[0][0]!r}"
        )
        raise CompileError(declared.problems, path=config_path)
    declared_order = {name: i for i, name in enumerate(declared.decls)}
    order = list(nx.lexicographical_topological_sort(graph, key=lambda n: declared_order[n]))
    return graph, order


def _outputs(declared: Declared, order: list[str]) -> list[str]:
    """The outputs named by ``wf.output``, else every evaluate node."""
    wf = declared.wf
    outputs = list(wf.outputs)
    for o in outputs:
        if o not in declared.decls:
            declared.problems.append(
                f"output {o!r} is not declared{did_you_mean(o, declared.decls)}"
            )
    if not outputs:
        outputs = [n for n in order if declared.decls[n].role == Role.EVALUATE]
        if not outputs:
            declared.problems.append(
                f"workflow {wf.name!r} has no outputs: call wf.output(...) or declare wf.evaluate(...)"
            )
    return outputs


def _warn_dead(declared: Declared, graph: nx.DiGraph, order: list[str], outputs: list[str]) -> None:
    """Warn about every node that reaches no output (it will not run)."""
    reaching = set(outputs)
    for o in outputs:
        reaching |= nx.ancestors(graph, o)
    for name in order:
        if name not in reaching:
            d = declared.decls[name]
            log.warning(
                "%snode %r reaches no output and will not run (dead operator)",
                f"{d.where}: " if d.where else "",
                name,
            )


def _compiled_nodes(
    declared: Declared,
    order: list[str],
    inputs: Mapping[str, list[str]],
    outputs: list[str],
    kinds: Mapping[str, str],
    ctx: FactContext,
    hasher: ContentHasher,
    user: tuple[Mapping[str, Any], Mapping[str, list[str]]],
) -> tuple[list[CompiledNode], dict[str, str]]:
    """The compiled nodes in ``order``: fingerprints, facts, volatility passed downstream.
    ``user``: each node's user code (``node_code``) and its refusals for shared state.

    With them each node's identity: its fingerprint, but for a node recomputed every run
    (volatile: its fingerprint holds a nonce, as do those of the nodes reading it) the
    fingerprint it would have without the nonces, the same in every run of the same
    config (the version's digest is made of them)."""
    fps: dict[str, str] = {}
    ids: dict[str, str] = {}
    volatile: dict[str, list[str]] = {}
    nodes = []
    user_code, shared = user
    for name in order:
        d = declared.decls[name]
        refusals = code_refusals(d, hasher, code=user_code[name], shared=shared.get(name, ()))
        fps[name] = fingerprint(ctx, d, inputs[name], fps, hasher=hasher, volatile=bool(refusals))
        facts = node_facts(ctx, d)
        # A nonce upstream: never reused either.
        reasons = refusals or [
            f"reads {i!r}, which is recomputed every run" for i in inputs[name] if volatile.get(i)
        ]
        if reasons:
            volatile[name] = facts["volatile"] = reasons
            ids[name] = fingerprint(ctx, d, inputs[name], ids, hasher=hasher, volatile=False)
        else:
            ids[name] = fps[name]
        code = code_identity(d.op)
        nodes.append(
            CompiledNode(
                name=name,
                role=d.role,
                op=d.op,
                inputs=tuple(inputs[name]),
                output_type=output_type(d.role, kinds.get(name)),
                fingerprint=fps[name],
                params=op_params(d.op) if d.op is not None else {},
                code=code[0],
                code_parts=code[1],
                output=name in outputs,
                where=d.where,
                facts=facts,
            )
        )
    return nodes, ids
