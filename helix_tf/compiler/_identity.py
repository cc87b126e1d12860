"""A node's identity: its fingerprint, the facts its compiled node carries, its volatility.

The fingerprint hashes the role, the operator (name, version, parameters, the
content of the files it names), the input fingerprints and the facts its role's
table entry lists in ``RoleSpec.fingerprint``; the compiled node carries the
facts listed in ``RoleSpec.facts``. Each fact is one small function here, by
name: a new role lists the facts it needs (and adds a function only for a new
kind of fact).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from helix_tf._files import files_under
from helix_tf.compiler._runtime import cluster_shape, process_settings, runtime_identity
from helix_tf.compiler._values import (
    callable_label,
    callables,
    op_params,
    operators,
    source_sample,
    substitute,
    train_approx,
)
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.hashing import (
    CodeFingerprint,
    code_fingerprint,
    held_generators,
    stable_hash,
)
from helix_tf.compiler.hashing._origin import _is_user_type
from helix_tf.components.base import Operator
from helix_tf.roles import ROLE_SPECS, Role
from helix_tf.workflow import Declaration

__all__ = [
    "FINGERPRINT_FACTS",
    "FactContext",
    "NODE_FACTS",
    "code_refusals",
    "fingerprint",
    "node_code",
    "operator_identity",
]

log = logging.getLogger(__name__)

#: Bump when the fingerprint scheme changes: every stored artifact becomes invalid.
#: 2: files by content (not path), inert parameters left out, code reads env/files/state.
#: 3: the versions of the libraries the node's stage computes with (compiler._runtime).
FINGERPRINT_SCHEME = 3

#: Warnings already given in this process (a compile runs once or twice per run).
_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FactContext:
    """What the fact functions read besides the declaration itself."""

    #: The approximate-run settings (``compile_workflow(approx=...)``), or None.
    approx: Mapping[str, Any] | None
    #: The source whose raw columns a feature or an evaluate node reads.
    sources: Mapping[str, str | None]
    #: The label operator of an examples reference (None when it is broken).
    label_of_examples: Callable[[Any], Operator | None]
    #: Hashes the files an operator names (nested in parameters or a metric's too).
    hasher: ContentHasher = dataclasses.field(default_factory=ContentHasher)
    #: The process-wide library settings (``_runtime.process_settings``), read once per
    #: compilation rather than once per node.
    process: Mapping[str, Any] = dataclasses.field(default_factory=process_settings)


Fact = Callable[[FactContext, Declaration], Any]
#: A fingerprint fact adds what it names to the body being hashed.
FingerprintFact = Callable[[FactContext, Declaration, dict[str, Any]], None]


def _features(ctx: FactContext, d: Declaration) -> list[str]:
    return [r.name for r in d.refs.get("features") or []]


def _examples_label(ctx: FactContext, d: Declaration, body: dict[str, Any]) -> None:
    """Label parameters that only training reads (a regression's transform and loss)
    are the train node's: the examples' content does not depend on them."""
    for key in getattr(d.op, "TRAINING_PARAMS", ()):
        body["params"].pop(key, None)


def _training_label(ctx: FactContext, d: Declaration, body: dict[str, Any]) -> None:
    """The label parameters only training reads join the train node's fingerprint."""
    label = ctx.label_of_examples(d.refs.get("examples"))
    training = {k: getattr(label, k) for k in getattr(label, "TRAINING_PARAMS", ())}
    if training:  # binary and multiclass labels have none: fingerprints as before
        body["label"] = training


def _replicas(ctx: FactContext, d: Declaration, body: dict[str, Any]) -> None:
    """A multi-worker training's cluster shape (how many workers share each batch): the
    worker count changes the order of the gradients' sums, so the weights' bits. Other
    learners add nothing (fingerprints as before)."""
    if getattr(d.op, "strategy", None) == "multi-worker":
        body["cluster"] = cluster_shape()


#: How a learner with a ``strategy`` decides to stream its examples from disk: by their
#: Parquet files' bytes (``HELIX_TF_STREAM_BYTES``), as encoded since issue 9's session 11
#: (``engine.tables.encoding_options``: ~2.4x smaller than Parquet's defaults on census).
#: Streamed and in-memory training give other bits, so a model trained when the same
#: examples had other file sizes is not reused.
STREAMING_RULE = "parquet-bytes-2"


def _streaming(ctx: FactContext, d: Declaration, body: dict[str, Any]) -> None:
    """A learner with a ``strategy``: the rule by which it streams (:data:`STREAMING_RULE`).
    Learners without one never stream and add nothing (fingerprints as before)."""
    if getattr(d.op, "strategy", None) is not None:
        body["streaming"] = STREAMING_RULE


#: How the predict and explain nodes of an approximate run score their model: one traced
#: function of it (``keras_models.predict_scores(traced=True)``: ~2 ms a call against
#: ~15–25 ms for Keras' eager call, issue 9 session 12), not the exact run's eager call,
#: whose bits it does not promise; since session 17 a plain linear model in numpy
#: (``components._linear_scores``: other last bits, hence the new value). Exact nodes
#: add nothing (fingerprints as before).
APPROX_SCORING = "traced, linear in numpy"


def _scoring(ctx: FactContext, d: Declaration, body: dict[str, Any]) -> None:
    """An approximate run's node that scores a model: :data:`APPROX_SCORING`."""
    if ctx.approx:
        body["scoring"] = APPROX_SCORING


def _metric_identities(ctx: FactContext, d: Declaration, body: dict[str, Any]) -> None:
    body["metrics"] = [
        operator_identity(m, {}, hasher=ctx.hasher) for m in d.refs.get("metrics") or []
    ]


#: Fingerprint facts by name (``RoleSpec.fingerprint``).
FINGERPRINT_FACTS: dict[str, FingerprintFact] = {
    "sample": lambda ctx, d, body: body.update(sample=source_sample(ctx.approx)),
    "features": lambda ctx, d, body: body.update(features=_features(ctx, d)),
    "examples_label": _examples_label,
    "split": lambda ctx, d, body: body.update(split=d.refs.get("split")),
    "metrics": _metric_identities,
    "approx": lambda ctx, d, body: body.update(approx=train_approx(d, ctx.approx)),
    "training_label": _training_label,
    "replicas": _replicas,
    "streaming": _streaming,
    "scoring": _scoring,
}


#: Facts a compiled node carries (``CompiledNode.facts``), by name.
NODE_FACTS: dict[str, Fact] = {
    "sample": lambda ctx, d: source_sample(ctx.approx),
    "source": lambda ctx, d: ctx.sources.get(d.name),
    "features": _features,
    "label": lambda ctx, d: op_params(d.op) if d.op is not None else None,
    "split": lambda ctx, d: d.refs.get("split"),
    "approx": lambda ctx, d: train_approx(d, ctx.approx),
    "metrics": lambda ctx, d: [
        {"op": m.op_name, "params": op_params(m)} for m in d.refs.get("metrics") or []
    ],
}


def node_facts(ctx: FactContext, d: Declaration) -> dict[str, Any]:
    """The facts the role's table entry lists, for the compiled node."""
    return {name: NODE_FACTS[name](ctx, d) for name in ROLE_SPECS[d.role].facts}


def fingerprint(
    ctx: FactContext,
    d: Declaration,
    inputs: Sequence[str],
    fps: Mapping[str, str],
    *,
    hasher: ContentHasher,
    volatile: bool,
) -> str:
    """The node's fingerprint; ``volatile`` gives it a nonce no other run has."""
    body: dict[str, Any] = {
        "scheme": FINGERPRINT_SCHEME,
        "role": d.role,
        **operator_identity(d.op, fps, hasher=hasher),
        "inputs": [fps[i] for i in inputs],
    }
    runtime = runtime_identity(ROLE_SPECS[d.role].stage, ctx.process)
    if runtime:  # the libraries the node's stage computes with (scheme 3)
        body["runtime"] = runtime
    if volatile:  # never reused: a fingerprint no other run has
        body["volatile"] = secrets.token_hex(16)
    for name in ROLE_SPECS[d.role].fingerprint:
        FINGERPRINT_FACTS[name](ctx, d, body)
    return stable_hash(body)


def operator_identity(
    op: Operator | None, fps: Mapping[str, str], *, hasher: ContentHasher
) -> dict[str, Any]:
    """What identifies an operator's output: its name, VERSION, identifying parameters,
    its code when the user wrote its class, and the content of the files it names.

    An operator nested in another's parameters (a Source passed to a source, a spec
    inside a list) is identified by these same facts, recursively, so bumping its
    VERSION or editing its file changes every node that holds it.
    """
    if op is None:
        return {"op": None, "version": 1, "params": None}
    identity: dict[str, Any] = {
        "op": op.op_name,
        "version": op.VERSION,
        "params": _identify(op.fingerprint_params(), fps, hasher),
    }
    if _is_user_type(type(op)):
        # An operator class written in the user's own code: its code is part of what
        # computes the result (as a UDF's is), not only the VERSION its author may forget.
        identity["code"] = code_fingerprint(type(op)).digest
    if op.content_files():
        identity["content"] = {
            param: [[label, hasher.file_digest(path)] for label, path in pairs]
            for param, pairs in op.content_files().items()
        }
    return identity


def _identify(value: Any, fps: Mapping[str, str], hasher: ContentHasher) -> Any:
    """Parameter values for hashing: node references by their fingerprints, nested
    operators by :func:`operator_identity`."""
    if isinstance(value, Operator):
        return {"__operator__": operator_identity(value, fps, hasher=hasher)}
    if isinstance(value, list | tuple):
        return [_identify(v, fps, hasher) for v in value]
    if isinstance(value, dict):
        return {k: _identify(v, fps, hasher) for k, v in value.items()}
    return substitute(value, fps)


def node_code(d: Declaration) -> list[tuple[Any, CodeFingerprint]]:
    """The user code of a node (its UDFs, metric functions, operator classes of the
    user's own, nested ones too) with each one's code fingerprint."""
    metrics = (d.refs.get("metrics") or []) if d.role == Role.EVALUATE else []
    fns = list(callables([d.op, *metrics]))
    user_types = {type(op) for op in operators([d.op, *metrics]) if _is_user_type(type(op))}
    fns += sorted(user_types, key=callable_label)  # nested operators' classes too
    return [(fn, code_fingerprint(fn)) for fn in fns]


def code_refusals(
    d: Declaration,
    hasher: ContentHasher | None = None,
    *,
    code: Sequence[tuple[Any, CodeFingerprint]] | None = None,
    shared: Sequence[str] = (),
) -> list[str]:
    """Check what the node's user code reads; return why its results cannot be reused.

    Warns (once per process) about files the code opens without declaring them; a file
    named only at run time, with no declared files, is a refusal like an object whose
    state cannot be read, a draw from an unseeded, shared or kept random generator, and
    an operator of the user's own holding a generator (its methods draw through
    ``self``). The files the code
    opens under a known name are hashed with the code; ``hasher`` watches them too, so a
    run that sees one change before it stores a result stores nothing more.

    ``code``: :func:`node_code` of ``d``, when the caller has it; ``shared``: the node's
    refusals for state it shares with other nodes (:mod:`._shared_state`), warned here.
    """
    metrics = (d.refs.get("metrics") or []) if d.role == Role.EVALUATE else []
    user_ops = [op for op in operators([d.op, *metrics]) if _is_user_type(type(op))]
    code = node_code(d) if code is None else code
    if not code:
        return list(shared)
    # Every file the operator names is hashed by content (a UDF's files=, a source's
    # train/test): code reading a path known only when it runs reads one of them.
    declared = d.op.content_files().values() if d.op is not None else ()
    declared_paths = {os.path.abspath(p) for pairs in declared for _, p in pairs}
    who = f"{d.where}: " if d.where else ""
    refusals: list[str] = []
    for fn, fp in code:
        refusals += _function_refusals(d, fn, fp, declared_paths, who, hasher)
    for op in user_ops:
        refusals += [f"node {d.name!r}: {r}" for r in held_generators(op, type(op).__qualname__)]
    refusals += shared
    for r in refusals:
        _warn_once(f"refuse:{r}", f"{who}results are recomputed every run, never reused: {r}")
    return refusals


def _read_paths(path: str | None) -> list[str]:
    """The files a read stands for: the file, or a listed folder (its entries) with every
    file under it, or a glob pattern's matches: each is watched for a change during the
    run (a folder's own stamp moves when an entry comes or goes, not when one is edited)."""
    if path is None:
        return []
    if os.path.isdir(path):
        return [path, *files_under(path)]
    if glob.has_magic(path):
        return sorted(glob.glob(path, recursive=True))
    return [path]


def _function_refusals(
    d: Declaration,
    fn: Any,
    fp: CodeFingerprint,
    declared_paths: set[str],
    who: str,
    hasher: ContentHasher | None,
) -> list[str]:
    if hasher is not None:
        for read in fp.files:
            for path in _read_paths(read.path):
                hasher.watch(path)
    udf = f"node {d.name!r} (function {callable_label(fn)})"
    refusals = [f"{udf}: {r}" for r in fp.refusals]
    for f in fp.files:
        if f.path is None and not declared_paths:
            refusals.append(
                f"{udf}: {f.function} opens a file named only when it runs: {f.call} "
                f"at {f.where}; declare the files it reads with files=[...]"
            )
        elif f.path is not None and os.path.abspath(f.path) not in declared_paths:
            _warn_once(
                f"file:{d.name}:{f.where}",
                f"{who}{udf} reads file {f.path} ({f.call} at {f.where}) without "
                "declaring it; its content is hashed, but declare it with files=[...] "
                "so the dependency is explicit",
            )
    return refusals
