"""Compile a ``Workflow`` into a typed, checked, fingerprinted DAG.

The result, :class:`CompiledWorkflow`, is what every later stage reads: the
planner (states per node), the engine (what to run), the metadata database (a
version is a compiled DAG) and ``diff``. Compilation is deterministic: two
compilations of the same config are byte-equal in :meth:`CompiledWorkflow.to_json`.

Pure: never imports TensorFlow or Beam.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import networkx as nx

# JSON_KIND and OUTPUT_TYPE are importable from here too, outside __all__ as before.
from helix_tf.compiler._dag import (
    JSON_KIND as JSON_KIND,
    OUTPUT_TYPE,
    CompiledNode,
    CompiledWorkflow,
)
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.hashing import (
    CodeFingerprint,
    canonical_json,
    code_fingerprint,
    stable_hash,
)
from helix_tf.components.base import Operator, did_you_mean
from helix_tf.components.explain import Explain
from helix_tf.components.features import Feature
from helix_tf.components.features._label import LABELS
from helix_tf.components.metrics import Metric
from helix_tf.components.sources import Source
from helix_tf.errors import CompileError
from helix_tf.types import MODEL_INPUT_KINDS, NUMERIC, STRING, NodeRef
from helix_tf.workflow import Declaration, Workflow

__all__ = ["CompiledNode", "CompiledWorkflow", "compile_workflow", "FINGERPRINT_SCHEME"]

log = logging.getLogger(__name__)

#: Bump when the fingerprint scheme changes: every stored artifact becomes invalid.
#: 2: files by content (not path), inert parameters left out, code reads env/files/state.
FINGERPRINT_SCHEME = 2

#: Warnings already given in this process (a compile runs once or twice per run).
_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


# ---------------------------------------------------------------------------- helpers


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _refs_in(value: Any) -> list[NodeRef]:
    if isinstance(value, NodeRef):
        return [value]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _refs_in(v)]
    return []


def _substitute(value: Any, fps: Mapping[str, str]) -> Any:
    """Replace node references by their fingerprints (for hashing)."""
    if isinstance(value, NodeRef):
        return {"__input__": fps.get(value.name, "?")}
    if isinstance(value, list | tuple):
        return [_substitute(v, fps) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, fps) for k, v in value.items()}
    return value


def _display(value: Any) -> Any:
    """A JSON-able view of a parameter value, for history and diff."""
    if isinstance(value, NodeRef):
        return value.name
    if isinstance(value, list | tuple):
        return [_display(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _display(v) for k, v in value.items()}
    if isinstance(value, Operator):
        return {"op": value.op_name, "params": _op_params(value)}
    if callable(value):
        return f"<function {getattr(value, '__qualname__', type(value).__name__)}>"
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return json.loads(canonical_json(value))


def _op_params(op: Operator) -> dict[str, Any]:
    return {k: _display(v) for k, v in op.params().items()}


def _code_digests(op: Operator | None) -> dict[str, str]:
    if op is None:
        return {}
    out = {}
    for k, v in op.params().items():
        if callable(v) and not isinstance(v, Operator | NodeRef):
            out[k] = code_fingerprint(v).digest
    return out


def _callables(value: Any) -> Iterator[Any]:
    """The user callables inside a parameter value (operators' parameters included)."""
    if isinstance(value, NodeRef):
        return
    if isinstance(value, Operator):
        for v in value.params().values():
            yield from _callables(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _callables(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _callables(v)
    elif callable(value) and not isinstance(value, type):
        yield value


def _label(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _source_sample(approx: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The row sample a source applies (approximate runs placed at the source)."""
    if not approx or approx.get("placement") != "source":
        return None
    return {"fraction": approx["sample"], "seed": approx["seed"]}


def _train_approx(d: Declaration, approx: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What an approximate run changes in a train node: sample, precision, epochs."""
    if not approx:
        return None
    from helix_tf.approx.settings import resolve_precision

    op_name = d.op.op_name if d.op is not None else ""
    return {
        "sample": approx["sample"] if approx.get("placement") == "train" else None,
        "seed": approx["seed"],
        "precision": resolve_precision(approx["precision"], op_name, bool(approx.get("bf16_fast"))),
        "epochs_scale": approx["epochs_scale"],
    }


# ---------------------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, wf: Workflow, config_path: str | None, hasher: ContentHasher) -> None:
        self.wf = wf
        self.config_path = config_path
        self.hasher = hasher
        self.problems: list[str] = []
        self.volatile: dict[str, list[str]] = {}
        self.decls: dict[str, Declaration] = {}
        self.value_kinds: dict[str, str] = {}

    def problem(self, decl: Declaration | None, text: str) -> None:
        where = f"{decl.where}: " if decl is not None and decl.where else ""
        who = f"node {decl.name!r}: " if decl is not None else ""
        self.problems.append(f"{where}{who}{text}")

    # -- structure ------------------------------------------------------------------

    def collect(self) -> None:
        for d in self.wf.declarations:
            if not isinstance(d.name, str) or not d.name or "/" in d.name:
                self.problem(d, f"node names must be non-empty and contain no '/', got {d.name!r}")
                continue
            if d.name in self.decls:
                first = self.decls[d.name]
                self.problem(
                    d, f"duplicate name: already declared at {first.where or 'an earlier line'}"
                )
                continue
            self.decls[d.name] = d
        if not self.decls:
            self.problems.append(f"workflow {self.wf.name!r} declares no nodes")

    def ref(self, decl: Declaration, ref: Any, what: str, roles: tuple[str, ...]) -> str | None:
        """Resolve a reference, checking that it names a node of one of ``roles``."""
        if not isinstance(ref, NodeRef):
            self.problem(decl, f"{what} must be a node returned by the workflow, but got {ref!r}")
            return None
        if ref.workflow and ref.workflow != self.wf.name:
            self.problem(decl, f"{what} {ref.name!r} belongs to workflow {ref.workflow!r}")
            return None
        target = self.decls.get(ref.name)
        if target is None:
            self.problem(
                decl,
                f"{what} {ref.name!r} is not declared{did_you_mean(ref.name, self.decls)}",
            )
            return None
        if target.role not in roles:
            expected = " or ".join(roles)
            produced = OUTPUT_TYPE.get(target.role, "feature")
            self.problem(
                decl,
                f"{what} {ref.name!r} is {_a(produced)} {produced} ({target.role} node), but "
                f"{decl.role} {what} must be {_a(expected)} {expected} node",
            )
            return None
        return ref.name

    def sources(self) -> list[str]:
        return [n for n, d in self.decls.items() if d.role == "source"]

    def source_of(self, decl: Declaration, explicit: Any) -> str | None:
        if explicit is not None:
            return self.ref(decl, explicit, "source", ("source",))
        srcs = self.sources()
        if len(srcs) == 1:
            return srcs[0]
        if not srcs:
            self.problem(decl, "the workflow declares no source; add wf.source(...) first")
        else:
            self.problem(
                decl, f"several sources ({', '.join(srcs)}): pass source=... to say which one"
            )
        return None

    def columns(self, source: str) -> dict[str, str]:
        op = self.decls[source].op
        assert isinstance(op, Source)
        try:
            return op.schema()
        except Exception as exc:
            self.problem(self.decls[source], f"cannot read the schema: {exc}")
            return {}

    # -- per role ---------------------------------------------------------------------

    def edges(self) -> dict[str, list[str]]:
        """Inputs per node, with type checks; fills self.value_kinds for features."""
        inputs: dict[str, list[str]] = {}
        self.feature_source: dict[str, str | None] = {}
        self.examples_source: dict[str, str] = {}
        for name, d in self.decls.items():
            ins: list[str] = []
            if d.role == "source":
                if not isinstance(d.op, Source):
                    self.problem(
                        d, f"wf.source needs a sources.* operator, got {type(d.op).__name__}"
                    )
                else:
                    for p in d.op.check():
                        self.problem(d, p)
            elif d.role == "feature":
                ins = self.feature_edges(d)
            elif d.role == "examples":
                src = self.source_of(d, d.refs.get("source"))
                if src:
                    ins.append(src)
                    self.examples_source[name] = src
                    label = d.op
                    cols = self.columns(src)
                    if not isinstance(label, LABELS):
                        self.problem(
                            d,
                            "label must be features.Label, features.MulticlassLabel or "
                            f"features.NumericLabel, but got {label!r}",
                        )
                    elif cols and label.column not in cols:
                        self.problem(
                            d,
                            f"label column {label.column!r} is not a column of source "
                            f"{src!r}{did_you_mean(label.column, cols)}",
                        )
                feats = d.refs.get("features") or []
                if not feats:
                    self.problem(d, "examples need at least one feature")
                for f in feats:
                    fname = self.ref(d, f, "feature", ("feature",))
                    if fname:
                        ins.append(fname)
            elif d.role == "train":
                ex = self.ref(d, d.refs.get("examples"), "input", ("examples",))
                ins = [ex] if ex else []
                if ex:
                    self.check_split(d, ex, "train")
            elif d.role in ("predict", "explain"):  # a model and the examples it reads
                m = self.ref(d, d.refs.get("model"), "model", ("train",))
                ex = self.ref(d, d.refs.get("examples"), "examples", ("examples",))
                ins = [x for x in (m, ex) if x]
                if ex:
                    self.check_split(d, ex, d.refs.get("split"))
            elif d.role == "evaluate":
                p = self.ref(d, d.refs.get("predictions"), "input", ("predict",))
                ins = [p] if p else []
                ms = d.refs.get("metrics") or []
                if not ms:
                    self.problem(d, "evaluate needs at least one metric")
                for m in ms:
                    if not isinstance(m, Metric):
                        self.problem(d, f"evaluate takes metrics.* operators, got {m!r}")
            inputs[name] = ins
        return inputs

    def check_split(self, d: Declaration, examples: str, split: Any) -> None:
        """``d`` reads ``split`` of ``examples``: the source must have that split."""
        src = self.examples_source.get(examples)
        op = self.decls[src].op if src else None
        if not isinstance(op, Source):
            return
        try:
            splits = op.splits()
        except Exception:  # reported by the source's own checks
            return
        if split in splits:
            return
        what = {"train": "trains on", "explain": "explains its model on"}.get(d.role, "predicts on")
        fix = (
            "give the source a test split: test=<file(s)>, or test_fraction=0.2 for a seeded "
            "split of the train rows"
            if split == "test"
            else f"give the source a {split!r} split, or read one of its splits"
        )
        if d.role == "predict":
            fix += f", or predict on one of its splits (wf.predict(..., split={splits[0]!r}))"
        self.problem(
            d,
            f"{what} split {split!r} of examples {examples!r}, but source {src!r} "
            f"({op.op_name}) has only the split(s) {', '.join(map(repr, splits))}; {fix}",
        )

    def feature_edges(self, d: Declaration) -> list[str]:
        op = d.op
        if not isinstance(op, Feature):
            self.problem(d, f"wf.feature needs a features.* operator, got {type(op).__name__}")
            return []
        ins: list[str] = []
        needs_source = op.reads_whole_row() or any(isinstance(r, str) for r in op.inputs())
        src = self.source_of(d, d.refs.get("source")) if needs_source else None
        self.feature_source[d.name] = src
        if src:
            ins.append(src)
        cols = self.columns(src) if src else {}
        for r in op.inputs():
            if isinstance(r, str):
                if src and cols and r not in cols:
                    self.problem(
                        d,
                        f"{op.op_name} reads column {r!r}, which source {src!r} does not have"
                        f"{did_you_mean(r, cols)}",
                    )
            else:
                name = self.ref(d, r, "input", ("feature",))
                if name and name not in ins:
                    ins.append(name)
        return ins

    def kinds(self, order: list[str], inputs: Mapping[str, list[str]]) -> None:
        """Value kinds of features, in topological order."""
        for name in order:
            d = self.decls[name]
            if d.role != "feature" or not isinstance(d.op, Feature):
                continue
            op = d.op
            src = self.feature_source.get(name)
            cols = self.columns(src) if src else {}
            kinds = []
            for r in op.inputs():
                if isinstance(r, str):
                    t = cols.get(r)
                    kinds.append(STRING if t == "string" else NUMERIC if t else "?")
                else:
                    kinds.append(self.value_kinds.get(r.name, "?"))
            if "?" in kinds:
                self.value_kinds[name] = "?"
                continue
            problems = op.check_input_kinds(kinds)
            for p in problems:
                self.problem(d, p)
            try:
                self.value_kinds[name] = op.output_kind(kinds) if not problems else "?"
            except ValueError as exc:
                self.problem(d, str(exc))
                self.value_kinds[name] = "?"
        for name, d in self.decls.items():
            if d.role != "examples":
                continue
            for f in inputs.get(name, []):
                kind = self.value_kinds.get(f)
                if self.decls[f].role == "feature" and kind not in (*MODEL_INPUT_KINDS, "?"):
                    hint = (
                        "encode it with features.Vocabulary(...) or features.TfIdf(...)"
                        if kind in ("string", "tokens")
                        else "encode it first"
                    )
                    self.problem(d, f"feature {f!r} is {kind}, which a model cannot read; {hint}")

    def check_evaluate(self, inputs: Mapping[str, list[str]]) -> dict[str, str | None]:
        """Evaluate nodes whose metrics read raw columns get the examples' source as input."""
        extra_source: dict[str, str | None] = {}
        for name, d in self.decls.items():
            if d.role != "evaluate" or not inputs.get(name):
                continue
            needed = sorted(
                {
                    c
                    for m in d.refs.get("metrics") or []
                    if isinstance(m, Metric)
                    for c in m.columns()
                }
            )
            if not needed:
                continue
            pred = self.decls[inputs[name][0]]
            ex_ref = pred.refs.get("examples")
            ex = self.decls.get(ex_ref.name) if isinstance(ex_ref, NodeRef) else None
            src = inputs.get(ex.name, [None])[0] if ex is not None else None
            if src is None or self.decls[src].role != "source":
                continue
            cols = self.columns(src)
            for c in needed:
                if cols and c not in cols:
                    self.problem(
                        d,
                        f"a metric reads column {c!r}, which source {src!r} does not have"
                        f"{did_you_mean(c, cols)}",
                    )
            extra_source[name] = src
        return extra_source

    def check_metric_tasks(self) -> None:
        """Every metric must fit the task of the label its predictions come from."""
        from helix_tf.components.metrics import metric_problem

        for d in self.decls.values():
            if d.role != "evaluate":
                continue
            label = self._label_of(d.refs.get("predictions"))
            if label is None:
                continue
            for m in d.refs.get("metrics") or []:
                problem = metric_problem(m, label) if isinstance(m, Metric) else None
                if problem:
                    self.problem(d, problem)

    def resolve_explain_tasks(self) -> None:
        """Every explain node's scorings follow its label: defaults filled in, misfits reported.

        The resolved scorings are the spec's parameters from here on, so the
        fingerprint names the scorings used (a binary label's defaults give the
        spec it always had, and the same fingerprint).
        """
        for name, d in list(self.decls.items()):
            if d.role != "explain" or not isinstance(d.op, Explain):
                continue
            label = self._label_of_examples(d.refs.get("examples"))
            if label is None:
                continue
            op, problems = d.op.for_label(label)
            for problem in problems:
                self.problem(d, problem)
            if op is not d.op:
                self.decls[name] = dataclasses.replace(d, op=op)

    def _label_of(self, predictions: Any) -> Operator | None:
        """The label operator behind a predict node (None when a reference is broken)."""
        pred = self.decls.get(predictions.name) if isinstance(predictions, NodeRef) else None
        ex_ref = pred.refs.get("examples") if pred is not None and pred.role == "predict" else None
        return self._label_of_examples(ex_ref)

    def _label_of_examples(self, examples: Any) -> Operator | None:
        """The label operator of an examples node (None when the reference is broken)."""
        ex = self.decls.get(examples.name) if isinstance(examples, NodeRef) else None
        return ex.op if ex is not None and ex.role == "examples" else None

    # -- fingerprints -----------------------------------------------------------------

    def code_facts(self, d: Declaration) -> list[str]:
        """Check what the node's user code reads; return why its results cannot be reused.

        Warns (once per process) about files the code opens without declaring them and
        about unseeded random calls; a file named only at run time, with no declared
        files, is a refusal like an object whose state cannot be read.
        """
        metrics = (d.refs.get("metrics") or []) if d.role == "evaluate" else []
        fns = list(_callables([d.op, *metrics]))
        if not fns:
            return []
        declared = d.op.content_files().get("files", ()) if d.op is not None else ()
        declared_paths = {os.path.abspath(p) for _, p in declared}
        who = f"{d.where}: " if d.where else ""
        refusals: list[str] = []
        for fn in fns:
            fp: CodeFingerprint = code_fingerprint(fn)
            udf = f"node {d.name!r} (function {_label(fn)})"
            refusals += [f"{udf}: {r}" for r in fp.refusals]
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
            if fp.unseeded:
                _warn_once(
                    f"unseeded:{d.name}:{_label(fn)}",
                    f"{who}{udf} draws from an unseeded or global random generator: "
                    f"{'; '.join(fp.unseeded)}. Two fresh runs give different results, and "
                    "reruns reuse the first; use a generator seeded by a parameter "
                    "(np.random.default_rng(seed))",
                )
        for r in refusals:
            _warn_once(f"refuse:{r}", f"{who}results are recomputed every run, never reused: {r}")
        if refusals:
            self.volatile[d.name] = refusals
        return refusals

    def fingerprint(
        self, d: Declaration, ins: Sequence[str], fps: Mapping[str, str], approx: Any
    ) -> str:
        body: dict[str, Any] = {
            "scheme": FINGERPRINT_SCHEME,
            "role": d.role,
            "op": d.op.op_name if d.op is not None else None,
            "version": d.op.VERSION if d.op is not None else 1,
            "params": _substitute(d.op.fingerprint_params(), fps) if d.op is not None else None,
            "inputs": [fps[i] for i in ins],
        }
        if d.op is not None and d.op.content_files():
            body["content"] = {
                param: [[label, self.hasher.file_digest(path)] for label, path in pairs]
                for param, pairs in d.op.content_files().items()
            }
        refusals = self.code_facts(d)
        if refusals:  # never reused: a fingerprint no other run has
            body["volatile"] = secrets.token_hex(16)
        if d.role == "source":
            body["sample"] = _source_sample(approx)
        elif d.role == "examples":
            body["features"] = [r.name for r in d.refs.get("features") or []]
            # Label parameters that only training reads (a regression's transform and
            # loss) are the train node's: the examples' content does not depend on them.
            for key in getattr(d.op, "TRAINING_PARAMS", ()):
                body["params"].pop(key, None)
        elif d.role in ("predict", "explain"):
            body["split"] = d.refs.get("split")
        elif d.role == "evaluate":
            body["metrics"] = [
                {"op": m.op_name, "version": m.VERSION, "params": m.fingerprint_params()}
                for m in d.refs.get("metrics") or []
            ]
        elif d.role == "train":
            body["approx"] = _train_approx(d, approx)
            label = self._label_of_examples(d.refs.get("examples"))
            training = {k: getattr(label, k) for k in getattr(label, "TRAINING_PARAMS", ())}
            if training:  # binary and multiclass labels have none: fingerprints as before
                body["label"] = training
        return stable_hash(body)


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
    c = _Compiler(wf, config_path, hasher or ContentHasher())
    c.collect()
    if not c.decls:
        raise CompileError(c.problems, path=config_path)
    # Every check runs even when earlier ones found problems: a config's problems are
    # reported together (unresolved references simply contribute no edge).
    inputs = c.edges()
    c.check_metric_tasks()
    c.resolve_explain_tasks()
    extra_source = c.check_evaluate(inputs)
    for name, src in extra_source.items():
        if src and src not in inputs[name]:
            inputs[name].append(src)

    graph = nx.DiGraph()
    graph.add_nodes_from(c.decls)
    for name, ins in inputs.items():
        graph.add_edges_from((i, name) for i in ins)
    try:
        cycle = nx.find_cycle(graph)
        c.problems.append(
            "cycle: " + " -> ".join(f"{u!r}" for u, _ in cycle) + f" -> {cycle[0][0]!r}"
        )
    except nx.NetworkXNoCycle:
        pass
    else:
        raise CompileError(c.problems, path=config_path)
    declared_order = {name: i for i, name in enumerate(c.decls)}
    order = list(nx.lexicographical_topological_sort(graph, key=lambda n: declared_order[n]))
    c.kinds(order, inputs)

    outputs = list(wf.outputs)
    for o in outputs:
        if o not in c.decls:
            c.problems.append(f"output {o!r} is not declared{did_you_mean(o, c.decls)}")
    if not outputs:
        outputs = [n for n in order if c.decls[n].role == "evaluate"]
        if not outputs:
            c.problems.append(
                f"workflow {wf.name!r} has no outputs: call wf.output(...) or declare wf.evaluate(...)"
            )
    if c.problems:
        raise CompileError(c.problems, path=config_path)

    reaching = set(outputs)
    for o in outputs:
        reaching |= nx.ancestors(graph, o)
    for name in order:
        if name not in reaching:
            d = c.decls[name]
            log.warning(
                "%snode %r reaches no output and will not run (dead operator)",
                f"{d.where}: " if d.where else "",
                name,
            )

    approx_view = dict(approx) if approx else None
    fps: dict[str, str] = {}
    nodes = []
    for name in order:
        d = c.decls[name]
        fps[name] = c.fingerprint(d, inputs[name], fps, approx_view)
        extra: dict[str, Any] = {}
        if d.role == "examples":
            extra["features"] = [r.name for r in d.refs.get("features") or []]
            extra["label"] = _op_params(d.op) if d.op is not None else None
        elif d.role == "feature":
            extra["source"] = c.feature_source.get(name)
        elif d.role in ("predict", "explain"):
            extra["split"] = d.refs.get("split")
        elif d.role == "source":
            extra["sample"] = _source_sample(approx_view)
        elif d.role == "train":
            extra["approx"] = _train_approx(d, approx_view)
        elif d.role == "evaluate":
            extra["metrics"] = [
                {"op": m.op_name, "params": _op_params(m)} for m in d.refs.get("metrics") or []
            ]
            extra["source"] = extra_source.get(name)
        volatile_inputs = [i for i in inputs[name] if c.volatile.get(i)]
        if volatile_inputs and not c.volatile.get(name):  # a nonce upstream: never reused either
            c.volatile[name] = [
                f"reads {i!r}, which is recomputed every run" for i in volatile_inputs
            ]
        if c.volatile.get(name):
            extra["volatile"] = c.volatile[name]
        output_type = (
            f"feature:{c.value_kinds.get(name, '?')}"
            if d.role == "feature"
            else OUTPUT_TYPE[d.role]
        )
        nodes.append(
            CompiledNode(
                name=name,
                role=d.role,
                op=d.op,
                inputs=tuple(inputs[name]),
                output_type=output_type,
                fingerprint=fps[name],
                params=_op_params(d.op) if d.op is not None else {},
                code=_code_digests(d.op),
                output=name in outputs,
                where=d.where,
                facts=extra,
            )
        )
    c.hasher.save()
    digest = stable_hash({"nodes": [(n.name, n.fingerprint) for n in nodes], "outputs": outputs})
    return CompiledWorkflow(
        name=wf.name,
        nodes=tuple(nodes),
        outputs=tuple(outputs),
        config_path=config_path,
        digest=digest,
        approx=approx_view,
    )
