"""The preprocessing step of a run: sources, features and examples in one pass.

Every computed source, feature and examples node runs in one fused Beam pipeline
(:mod:`helix_tf.engine.beam_pipeline`), or, for an approximate run on the direct
runner, the same steps in this process (:mod:`helix_tf.engine.preprocess_steps`).
:class:`PreprocessingStep` builds the pipeline's view of the nodes, runs it (once
more into scratch when the store fills up under it), shares the pipeline's
overhead out over the nodes and records each node's output.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from helix_tf.components.features import Feature
from helix_tf.engine import tables
from helix_tf.engine._artifacts import VALUE_NAMES
from helix_tf.engine._context import RunContext
from helix_tf.engine._outputs import RunOutputs, no_room
from helix_tf.engine.batch_compute import PreNode
from helix_tf.errors import DataError, ExecutionError, HelixError, SampledDataError, interrupted
from helix_tf.events import PreprocessingStarted
from helix_tf.reuse.store import is_write_failure
from helix_tf.roles import PREPROCESS_STEP, ROLE_SPECS, NodeState, Role, Split
from helix_tf.types import BAG, CATEGORICAL, LABEL

__all__ = [
    "PREPROCESSING_ROLES",
    "PreprocessingStep",
    "preprocesses_here",
    "unwrap_runner_error",
]

#: The roles the preprocessing step computes: those whose step in the role table is
#: :data:`~helix_tf.roles.PREPROCESS_STEP` (everything before training).
PREPROCESSING_ROLES = tuple(r for r, spec in ROLE_SPECS.items() if spec.step == PREPROCESS_STEP)

_OPERATOR_RE = re.compile(
    r"operator '(?P<node>[^']+)' failed: (?P<msg>.*?)(?: \[while running .*)?$", re.S
)


def preprocesses_here(runner: str, pipeline_args: Sequence[str], *, approx: bool) -> bool:
    """Whether a run preprocesses in this process
    (:func:`~helix_tf.engine.preprocess_steps.run_preprocessing_here`) rather
    than in the fused Beam pipeline.

    The local runner (``direct``) is Beam's in-process ``FnApiRunner`` with one worker:
    it runs the same steps, in the same order, in this process, and writes the same
    files (``tests/engine/test_preprocess_steps.py``), after ~1.4 s of importing Beam
    and ~0.1–0.3 s of launching the pipeline. So a local run preprocesses here, exact
    or approximate; Beam runs it where a remote runner is named, or where the local
    runner is given Beam options of its own (``--beam-option``: the user asked for
    Beam; an approximate run ignores them, as before).
    """
    return runner == "direct" and (approx or not pipeline_args)


def unwrap_runner_error(exc: BaseException) -> BaseException:
    """The helix_tf error an operator raised, out of the runner's wrapping.

    Beam re-raises an exception from a DoFn as ``type(exc)(message + context)``,
    which loses the failing node; recover the original from the exception chain,
    or parse the node back out of the message.
    """
    if interrupted(exc):  # Ctrl-C during the pipeline, whatever the runner made of it
        return KeyboardInterrupt()
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ExecutionError) and cur.node is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    text = str(exc)
    m = _OPERATOR_RE.search(text)
    if m:
        cls = DataError if isinstance(exc, DataError) else ExecutionError
        return cls(m["msg"].strip(), node=m["node"])
    if isinstance(exc, HelixError) or not isinstance(exc, Exception):
        return exc
    return ExecutionError(f"the Beam pipeline failed: {type(exc).__name__}: {text}")


class _PipelineFailed(Exception):
    """The preprocessing pipeline raised ``raw``; ``error`` is what to report."""

    def __init__(self, raw: BaseException, error: BaseException) -> None:
        super().__init__(str(error))
        self.raw, self.error = raw, error

    def reraise(self) -> NoReturn:
        if self.error is self.raw:
            raise self.raw
        raise self.error from self.raw


class PreprocessingStep:
    """Computes a run's sources, features and examples in one pipeline."""

    def __init__(self, ctx: RunContext, outputs: RunOutputs) -> None:
        self.ctx = ctx
        self.outputs = outputs

    def run(self) -> None:
        """Compute every source, feature and examples node the plan computes."""
        ctx = self.ctx
        computed = ctx.computed(PREPROCESSING_ROLES)
        if not computed:
            return
        involved = self._involved(computed)
        here = preprocesses_here(
            ctx.options.runner, ctx.options.pipeline_args, approx=ctx.compiled.approx is not None
        )
        ctx.emit(
            PreprocessingStarted(
                nodes=tuple(computed), runner="in-process" if here else ctx.options.runner
            )
        )
        t0 = time.perf_counter()
        try:
            result, pre = self._run_pipeline(computed, involved, here=here)
            self._share_out(computed, result, wall=time.perf_counter() - t0)
            for name in computed:  # the pipeline is done: everything it read is consumed
                ctx.node_done(name)
            for name in computed:
                self._record(name, result, write=pre[name].write)
                ctx.emit_computed(name, result.rows.get(name))
        except ExecutionError as exc:
            note = sampled_sources_note(ctx.compiled.approx)
            read = ctx.nodes.get(exc.node or "")
            if note is None or read is None or read.role == Role.SOURCE:
                # A source's rows as read (a value that does not parse, too many bad
                # rows): a sampled read parses every row, so the exact run fails alike.
                raise
            # A check (or a user's fit) failed on the sample's rows: the whole split may
            # pass it.
            raise with_note(exc, note) from exc

    def _involved(self, computed: list[str]) -> set[str]:
        """Everything a computed preprocessing node reads: it must be computed or loaded."""
        involved: set[str] = set(computed)
        for name in computed:
            involved.update(self.ctx.nodes[name].inputs)
        for name in list(involved):
            src = self.ctx.source_of(name)
            if src:
                involved.add(src)
        return involved

    def _run_pipeline(
        self, computed: list[str], involved: set[str], *, here: bool
    ) -> tuple[Any, dict[str, PreNode]]:
        """Run the pipeline; when the store fills up under it, once more into scratch."""
        pre, known_batches = self._pre_nodes(involved)
        order = [n.name for n in self.ctx.compiled.nodes if n.name in pre]
        try:
            return self._pipeline(pre, order, known_batches, here=here), pre
        except _PipelineFailed as failed:
            staged = any(self.outputs.files[n].staging is not None for n in computed)
            if not (staged and is_write_failure(failed.raw)):
                self._no_room(failed)
            # The store filled up (or turned read-only) under the pipeline: once more,
            # with every output in the scratch folder.
            self.outputs.stop_store_writes(failed.raw)
            for name in computed:
                self.outputs.unstage(name)
            pre, known_batches = self._pre_nodes(involved)
            try:
                return self._pipeline(pre, order, known_batches, here=here), pre
            except _PipelineFailed as again:
                self._no_room(again)

    def _no_room(self, failed: _PipelineFailed) -> NoReturn:
        """Raise the pipeline's error; one writing into the scratch folder (the store takes
        no outputs) names the folder and the fix, as a learning step's does."""
        message = no_room(self.outputs, failed.raw)
        if message is not None:
            node = getattr(failed.error, "node", None)
            raise ExecutionError(message, node=node) from failed.raw
        failed.reraise()

    def _share_out(self, computed: list[str], result: Any, *, wall: float) -> None:
        """Each node's times: its measured work plus a share of the pipeline's overhead."""
        measured_total = sum(result.seconds.get(n, 0.0) for n in computed) or 1e-9
        # Writing the pipeline waited for (written in the background, the rest overlapped).
        overhead = max(wall - measured_total - sum(result.write_wait_seconds.values()), 0.0)
        # Reading the batches of inputs that are not computed here (loaded features or
        # source) is part of the overhead shared out below; so is its read time.
        loaded_reads = sum(s for n, s in result.read_seconds.items() if n not in computed)
        for name in computed:
            tally = self.ctx.tallies[name]
            # Pipeline launch and runner overhead are shared out by measured work.
            share = result.seconds.get(name, 0.0) / measured_total
            tally.compute_seconds = result.seconds.get(name, 0.0) + overhead * share
            tally.read_seconds = min(
                result.read_seconds.get(name, 0.0) + min(loaded_reads, overhead) * share,
                tally.compute_seconds,
            )
            tally.write_seconds = result.write_seconds.get(name, 0.0)
            tally.write_wait_seconds = result.write_wait_seconds.get(name, tally.write_seconds)

    def _record(self, name: str, result: Any, *, write: bool) -> None:
        """A computed node's meta (schema, cardinality, feature specs) and its output."""
        node = self.ctx.nodes[name]
        tally = self.ctx.tallies[name]
        meta: dict[str, Any] = {}
        kind = "table"
        if node.role == Role.SOURCE:
            meta = {"columns": node.op.schema(), "splits": list(node.op.splits())}  # type: ignore[union-attr]
            if result.skipped.get(name):
                tally.meta["skipped_rows"] = result.skipped[name]
        elif node.role == Role.FEATURE:
            state = result.states.get(name)
            meta = {
                "value_kind": node.value_kind,
                "cardinality": node.op.cardinality(state),  # type: ignore[union-attr]
            }
            kind = "feature"
            if state is not None and write and self.outputs.files[name].local:
                self.outputs.write_beside(name, "state.json", state, sort_keys=False)
            self.ctx.values[f"state:{name}"] = state
            self.ctx.values[f"cardinality:{name}"] = meta["cardinality"]
        elif node.role == Role.EXAMPLES:
            meta = {"features": self._feature_specs(name)}
            label = node.op.describe(result.states.get(name))  # type: ignore[union-attr]
            if label["task"] != "binary":  # binary examples are described as before
                # What only training reads (a transform) is not a fact of the examples.
                training = node.op.TRAINING_PARAMS  # type: ignore[union-attr]
                meta["label"] = {k: v for k, v in label.items() if k not in training}
            kind = "examples"
            # Before training, and before the examples are stored: labels that cannot be
            # right fail the run, and a stored entry would let the next run load them
            # unchecked (a fresh run fails; that one trained on them).
            self._check_binary_label(name)
            if write and self.outputs.files[name].local:
                self._write_value_names(name)
        if write:
            self.outputs.finish(name, kind=kind, rows=result.rows.get(name), meta=meta)
        else:
            tally.rows = result.rows.get(name)

    def _check_binary_label(self, name: str) -> None:
        """Fail when a binary label's training split holds one value only, or no row of
        it holds its ``positive=`` value.

        Every label 0 (or every one 1) would train a model of one class: training
        "succeeds" with accuracy 1.0 and AUC nan. (Another split's value the training
        split lacks, the census test file's ``>50K.``, fails while the examples are
        computed, naming its file and line: Label.encode.) The message lists the values
        the training split holds and how to fix the label.
        """
        label = self.ctx.nodes[name].op
        art = self.outputs.files.get(name)
        if getattr(label, "TASK", None) != "binary" or art is None or art.local is None:
            return
        positive = label.positive  # type: ignore[union-attr]
        column = label.column  # type: ignore[union-attr]
        # The training split's values, read from the source where a check needs them.
        train = self._label_values(name, Split.TRAIN) if positive is not None else None
        table = tables.read_split(art.local, Split.TRAIN, [LABEL])
        if table is None or table.num_rows == 0:
            return
        labels = np.asarray(table.column(LABEL))
        if labels.all() or (positive is None and not labels.any()):
            found = train if train is not None else self._label_values(name, Split.TRAIN)
            raise DataError(_one_value(column, positive, int(labels[0]), found), node=name)
        if not labels.any():
            shown = f"; the values found are {_counted(train)}" if train else ""
            raise DataError(
                f"no row of the training split has label column {column!r} equal to "
                f"positive={positive!r}{shown}. Pass one of those values as "
                f"F.Label({column!r}, positive=...)",
                node=name,
            )

    def _label_values(self, name: str, split: str) -> dict[Any, int] | None:
        """The label column's values in one split of the examples' source, most frequent
        first, with their counts (None where the source's rows cannot be read here)."""
        column = self.ctx.nodes[name].op.column  # type: ignore[union-attr]
        source = self.outputs.files.get(self.ctx.nodes[name].inputs[0])
        raw = tables.read_split(source.local, split, [column]) if source and source.local else None
        if raw is None:
            return None
        counts = raw.column(column).value_counts().to_pylist()
        counts.sort(key=lambda c: -c["counts"])
        return {c["values"]: c["counts"] for c in counts if c["values"] is not None}

    def _pre_nodes(
        self, involved: set[str]
    ) -> tuple[dict[str, PreNode], dict[str, list[tuple[str, int, int]]]]:
        """The pipeline's view of each involved node: loaded, or staged for writing."""
        ctx = self.ctx
        pre: dict[str, PreNode] = {}
        known_batches: dict[str, list[tuple[str, int, int]]] = {}
        writes_features = ctx.materializer.writes_intermediates
        for node in ctx.compiled.nodes:
            if node.name not in involved:
                continue
            state = ctx.states[node.name]
            if state == NodeState.PRUNE:
                # A source that is pruned but whose batches are needed: load it if stored.
                if node.name in ctx.manifests:
                    state = NodeState.LOAD
                else:
                    raise ExecutionError(
                        "needed by a computed node but neither computed nor loadable",
                        node=node.name,
                    )
            art = (
                self.outputs.load(node.name)
                if state == NodeState.LOAD
                else self.outputs.stage(node.name)
            )
            src = ctx.source_of(node.name)
            columns = (
                ctx.nodes[src].op.schema() if src and ctx.nodes[src].op is not None else {}  # type: ignore[union-attr]
            )
            pre[node.name] = PreNode(
                name=node.name,
                role=node.role,
                op=node.op,
                value_kind=node.value_kind,
                source=src if node.role != Role.SOURCE else None,
                columns=columns,
                features=tuple(node.extra.get("features", ())),
                state=state,
                root=art.root,
                write=state == NodeState.COMPUTE
                and (node.role in (Role.SOURCE, Role.EXAMPLES) or writes_features),
                sample=node.extra.get("sample") if node.role == Role.SOURCE else None,
                user_code=isinstance(node.op, Feature) and node.op.runs_user_code(),
                volatile=bool(node.extra.get("volatile")),
            )
            if node.role == Role.SOURCE and state == NodeState.LOAD:
                known_batches[node.name] = tables.batch_rows(art.local or "")
        return pre, known_batches

    def _pipeline(
        self,
        pre: dict[str, PreNode],
        order: list[str],
        known_batches: dict[str, list[tuple[str, int, int]]],
        *,
        here: bool,
    ) -> Any:
        """Preprocess ``pre``: in this process (``here``) or in the fused Beam pipeline.

        Raises :class:`_PipelineFailed` with the error as raised and the one to report
        (a runner's wrapping removed).
        """
        options = self.ctx.options
        if here:
            # The local runner works in one process with one worker: the same steps run
            # here in the same order, without importing Beam or launching a pipeline.
            from helix_tf.engine.preprocess_steps import run_preprocessing_here

            try:
                return run_preprocessing_here(
                    nodes=pre,
                    order=order,
                    known_batches=known_batches,
                    batch_rows=options.batch_rows,
                )
            except Exception as exc:
                raise _PipelineFailed(
                    exc, KeyboardInterrupt() if interrupted(exc) else exc
                ) from exc
        from helix_tf.engine.beam_pipeline import run_preprocessing
        from helix_tf.engine.runners import pipeline_factory

        try:
            return run_preprocessing(
                nodes=pre,
                order=order,
                known_batches=known_batches,
                batch_rows=options.batch_rows,
                scratch=self.ctx.store_scratch,
                make_pipeline=pipeline_factory(options.runner, options.pipeline_args),
                distribute=options.runner != "direct",
            )
        except Exception as exc:
            raise _PipelineFailed(exc, unwrap_runner_error(exc)) from exc

    def _write_value_names(self, examples: str) -> None:
        """Beside the examples: what each index of their categorical/bag features stands for."""
        import json

        names: dict[str, list[str]] = {}
        for f in self.ctx.nodes[examples].extra["features"]:
            op = self.ctx.nodes[f].op
            if not isinstance(op, Feature):
                continue
            if op.analyzer() is None:  # no state: a Bucketize's names are its own (QA 28)
                state = None
            elif f"state:{f}" in self.ctx.values:
                state = self.ctx.values[f"state:{f}"]
            else:
                path = os.path.join(self.outputs.load(f).local or "", "state.json")
                if not os.path.exists(path):
                    continue
                with open(path) as fh:
                    state = json.load(fh)
            found = op.value_names(state) if op.analyzer() is None or state is not None else None
            if found is not None:
                names[f] = found
        self.outputs.write_beside(examples, VALUE_NAMES, names, sort_keys=True)

    def _feature_specs(self, examples: str) -> list[dict[str, Any]]:
        """The examples' features as the learners read them: name, value kind, size."""
        specs = []
        for f in self.ctx.nodes[examples].extra["features"]:
            fnode = self.ctx.nodes[f]
            if f"cardinality:{f}" in self.ctx.values:
                card = self.ctx.values[f"cardinality:{f}"]
            else:
                card = self.outputs.load(f).meta.get("cardinality")
            spec: dict[str, Any] = {"name": f, "kind": fnode.value_kind}
            if fnode.value_kind in (CATEGORICAL, BAG):
                spec["size"] = int(card)
                if not spec["size"]:  # the model's lookup of it fails in Keras, unnamed
                    raise DataError(_nothing_learned(f, fnode.op), node=examples)
            specs.append(spec)
        return specs


def sampled_sources_note(approx: Mapping[str, Any] | None) -> str | None:
    """What to add to a data error of a run whose sources read a sample (None: they don't)."""
    if not approx or approx.get("placement") != Role.SOURCE:
        return None
    from helix_tf.approx.sampling import sample_note

    return sample_note(approx["sample"], approx["seed"])


def with_note(exc: ExecutionError, note: str) -> SampledDataError:
    """``exc`` again, its message followed by ``note`` (the sample's): a failure the run
    retries with the sample drawn at training (:class:`~helix_tf.errors.SampledDataError`)."""
    prefix = f"operator {exc.node!r} failed: " if exc.node else ""
    message = str(exc).removeprefix(prefix).rstrip(". ")
    return SampledDataError(message, note=note, node=exc.node)


def _nothing_learned(feature: str, op: Any) -> str:
    """Why examples cannot hold a feature that learned no value (size 0), and the fix."""
    kept = ", ".join(
        f"{k}={getattr(op, k)!r}" for k in ("min_count", "top_k") if getattr(op, k, None)
    )
    return (
        f"feature {feature!r} ({getattr(op, 'op_name', type(op).__name__)}({kept})) learned "
        "no value from the training split: no token "
        "of its rows is kept (min_count, top_k), so the model has nothing to read for it. "
        "Lower min_count, give it oov_buckets=1 (where it has them) so that every row has "
        "an index, or leave the feature out of the examples"
    )


def _one_value(column: str, positive: Any, value: int, found: dict[Any, int] | None) -> str:
    """Why a binary label whose training rows all have one value cannot be learned."""
    fix = (
        "give the source rows of both kinds, or predict another value with "
        f"F.Label({column!r}, positive=...)"
    )
    held = f" ({_counted(found)})" if found else ""
    if positive is not None:
        return (
            f"every row of the training split has label column {column!r} equal to "
            f"positive={positive!r}{held}: a binary label needs rows of both kinds; {fix}"
        )
    return (
        f"the training split's label column {column!r} holds only {value}{held}: "
        f"a binary label needs rows of both 0 and 1; {fix}"
    )


def _counted(values: dict[Any, int]) -> str:
    """``'a' (3 rows), 'b' (1 row)``: at most ten values, most frequent first."""
    shown = ", ".join(
        f"{v!r} ({n:,} row{'s' if n != 1 else ''})" for v, n in list(values.items())[:10]
    )
    more = f" and {len(values) - 10} more" if len(values) > 10 else ""
    return shown + more
