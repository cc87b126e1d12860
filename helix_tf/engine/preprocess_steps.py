"""The preprocessing steps, shared by the Beam pipeline and the in-process driver.

The fused Beam pipeline (:mod:`helix_tf.engine.beam_pipeline`) wires these steps
into one pipeline; :func:`run_preprocessing_here` runs the same steps in this
process, in the same order, without Beam: for work so small that launching a
pipeline (and importing Beam) would cost more than the work (approximate runs on
a sample). Both produce the same files and the same :class:`PreprocessResult`.
Counters are plain ``inc(name, value)`` calls (Beam metrics in the pipeline, a
dictionary here); the result is read from them the same way.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from helix_tf.components.features import Feature
from helix_tf.components.sources import Source
from helix_tf.engine._held import HeldTables
from helix_tf.engine._writer import BackgroundWrites
from helix_tf.engine.batch_compute import BatchComputer, PreNode, user_code_line
from helix_tf.engine.read_steps import read_split
from helix_tf.errors import ExecutionError, HelixError
from helix_tf.roles import NodeState, Role, Split

__all__ = [
    "PreprocessResult",
    "StatsCombiner",
    "analysis_levels",
    "batch_partials",
    "compute_batch",
    "computed_readers",
    "merge_states",
    "preprocess_result",
    "read_split",
    "run_preprocessing_here",
    "source_nodes",
]

#: ``inc(counter name, value)``: how a step counts rows, bytes and microseconds.
Inc = Callable[[str, int], None]

Key = tuple[str, int, int]  # (split, batch number, rows)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessResult:
    """What the pipeline measured: per node seconds, rows and bytes; feature states."""

    seconds: dict[str, float]
    #: Seconds writing each node's files (in line, or the background writer's).
    write_seconds: dict[str, float]
    #: Of ``write_seconds``, the seconds the run waited for them (all, when in line).
    write_wait_seconds: dict[str, float]
    #: Of ``seconds``, reading each node's Parquet batches (keyed by the node read).
    read_seconds: dict[str, float]
    rows: dict[str, int]
    bytes: dict[str, int]
    skipped: dict[str, int]  # source -> malformed rows skipped (on_bad_row="skip")
    states: dict[str, Any]
    launch_seconds: float


def source_nodes(nodes: Mapping[str, PreNode], order: Sequence[str]) -> list[str]:
    """The source nodes among ``nodes``, in ``order``."""
    return [n for n in order if nodes[n].role == Role.SOURCE]


def computed_readers(nodes: Mapping[str, PreNode], order: Sequence[str]) -> list[str]:
    """The nodes computed this run that read a source's rows (features, examples), in ``order``."""
    return [
        n for n in order if nodes[n].state == NodeState.COMPUTE and nodes[n].role != Role.SOURCE
    ]


def analysis_levels(nodes: Mapping[str, PreNode], order: Sequence[str]) -> list[list[str]]:
    """Group computed features with analyzers so each group needs only earlier groups' stats."""
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        """Highest level among analyzers this computed node (transitively) needs, or -1."""
        node = nodes[name]
        if node.state != NodeState.COMPUTE or node.role != Role.FEATURE:
            return -1
        if name in level:
            return level[name]
        op = node.op
        assert isinstance(op, Feature)
        below = max((depth(r.name) for r in op.inputs() if not isinstance(r, str)), default=-1)
        level[name] = below + 1 if op.analyzer() is not None else below
        return level[name]

    for n in order:
        depth(n)
        node = nodes[n]
        # A label that learns from the training split (multiclass vocabulary) reads a raw
        # column only: it analyses with the first level.
        if (
            node.state == NodeState.COMPUTE
            and node.role == Role.EXAMPLES
            and node.op.analyzer() is not None  # type: ignore[union-attr]
        ):
            level[n] = 0
    groups: dict[int, list[str]] = {}
    for n in order:
        node = nodes[n]
        if (
            node.state == NodeState.COMPUTE
            and node.role in (Role.FEATURE, Role.EXAMPLES)
            and node.op.analyzer() is not None  # type: ignore[union-attr]
        ):
            groups.setdefault(level[n], []).append(n)
    return [groups[k] for k in sorted(groups)]


def merge_states(dicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The finalised states of several analysis levels, as one mapping."""
    out: dict[str, Any] = {}
    for d in dicts:
        out.update(d)
    return out


def batch_partials(
    nodes: Mapping[str, PreNode],
    names: list[str],
    key: Key,
    stats: Sequence[Mapping[str, Any]],
    inc: Inc,
    held: HeldTables | None = None,
) -> Iterator[tuple[str, Any]]:
    """Analyzer partials of one level's features over one training batch.

    ``held``: source batches read by an earlier pass, kept for the next (in-process)."""
    split, k, _ = key
    computer = BatchComputer(nodes, merge_states(stats), held=held)
    yield from computer.partials(names, split, k)
    _count_seconds(computer, inc)


class StatsCombiner:
    """Merge (feature, partial) pairs per feature; finalise into transform states."""

    def __init__(self, ops: dict[str, Any]) -> None:  # features and learning labels
        self.ops = ops

    def create_accumulator(self) -> dict[str, Any]:
        return {}

    def add_input(self, acc, element):  # type: ignore[no-untyped-def]
        name, partial = element
        analyzer = self.ops[name].analyzer()
        assert analyzer is not None
        acc[name] = partial if name not in acc else analyzer.merge([acc[name], partial])
        return acc

    def merge_accumulators(self, accs: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for acc in accs:
            for name, partial in acc.items():
                self.add_input(out, (name, partial))
        return out

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        states = {}
        for name, op in self.ops.items():
            analyzer = op.analyzer()
            assert analyzer is not None
            merged = acc.get(name, analyzer.create())
            try:
                states[name] = op.finalize_state(analyzer.finalize(merged))
            except HelixError as exc:  # its own type kept (a DataError stays one)
                if isinstance(exc, ExecutionError) and exc.node is None:
                    raise type(exc)(str(exc), node=name) from exc
                raise
            except Exception as exc:  # a user's fit (DatasetUdf): named as a transform's is
                where = user_code_line(exc)
                raise ExecutionError(
                    f"{op.op_name} raised {type(exc).__name__}: {exc}"
                    + (f" at {where}" if where else "")
                    + " while learning from the training split; fix the code there, or "
                    "the data it reads",
                    node=name,
                ) from exc
        return states


def compute_batch(
    nodes: Mapping[str, PreNode],
    order: list[str],
    key: Key,
    stats: Sequence[Mapping[str, Any]],
    inc: Inc,
    writer: BackgroundWrites | None = None,
    held: HeldTables | None = None,
) -> Key:
    """Compute and write every computed node of one batch; check rows in = rows out.

    ``writer``: writes the batch's files in the background (None: in line). ``held``:
    source batches the analysis passes read (in-process), taken instead of read again."""
    split, k, expected = key
    computer = BatchComputer(nodes, merge_states(stats), writer=writer, held=held)
    done = computer.compute_batch(split, k, order)
    for name, (rows, size) in done.items():
        if rows != expected:
            raise ExecutionError(
                f"batch {split}/{k}: {rows} rows out, {expected} rows in; rows were lost or "
                "duplicated between stages",
                node=name,
            )
        inc(f"rows/{name}", rows)
        inc(f"bytes/{name}", size)
        inc(f"batches/{name}", 1)
    _count_seconds(computer, inc)
    return key


def _count_seconds(computer: BatchComputer, inc: Inc) -> None:
    """Add a batch computer's measured seconds to the counters, in microseconds."""
    for kind, seconds in (
        ("micros", computer.seconds),
        ("write_micros", computer.write_seconds),
        ("write_wait_micros", computer.write_seconds),  # in line: the run waited for them
        ("read_micros", computer.read_seconds),
    ):
        for name, secs in seconds.items():
            inc(f"{kind}/{name}", int(secs * 1e6))


def _by_kind(counters: Mapping[str, int], kind: str, scale: float = 1.0) -> dict[str, Any]:
    return {
        k.split("/", 1)[1]: (v / scale if scale != 1.0 else v)
        for k, v in counters.items()
        if k.startswith(f"{kind}/")
    }


def preprocess_result(
    *,
    counters: Mapping[str, int],
    states: dict[str, Any],
    nodes: Mapping[str, PreNode],
    order: Sequence[str],
    known_batches: Mapping[str, list[Key]],
    launch_seconds: float,
) -> PreprocessResult:
    """The result from the counters, after checking rows in == rows out for every node."""
    sources = source_nodes(nodes, order)
    computed = computed_readers(nodes, order)
    rows = _by_kind(counters, "rows")
    batches = _by_kind(counters, "batches")
    for src in sources:
        if nodes[src].state == NodeState.COMPUTE:
            rows_in = rows.get(src, 0)
        else:
            rows_in = sum(r for _, _, r in known_batches.get(src, []))
        for n in computed:
            if nodes[n].source != src:
                continue
            if rows.get(n, 0) != rows_in:
                raise ExecutionError(
                    f"{rows_in} rows went into the pipeline but {rows.get(n, 0)} came out "
                    f"({batches.get(n, 0)} batches). Rows were lost between stages; "
                    "this is a runner bug (see docs/ARCHITECTURE.md, Beam hazards)",
                    node=n,
                )
    return PreprocessResult(
        seconds=_by_kind(counters, "micros", 1e6),
        write_seconds=_by_kind(counters, "write_micros", 1e6),
        write_wait_seconds=_by_kind(counters, "write_wait_micros", 1e6),
        read_seconds=_by_kind(counters, "read_micros", 1e6),
        rows=rows,
        bytes=_by_kind(counters, "bytes"),
        skipped=_by_kind(counters, "skipped"),
        states=states,
        launch_seconds=launch_seconds,
    )


def run_preprocessing_here(
    *,
    nodes: dict[str, PreNode],
    order: list[str],
    known_batches: Mapping[str, list[Key]],
    batch_rows: int,
) -> PreprocessResult:
    """The fused pipeline's work, in this process, without Beam (same steps, same order).

    Per source: read and write its batches; per analysis level, the partials of
    every training batch merged into that level's states; then every batch
    computed with all levels' states. States reach the caller through JSON, as
    the pipeline's do. The batches' files are written by a background thread beside
    the computation (:mod:`helix_tf.engine._writer`), every one of them before this
    returns (a source's before its batches are read back). A source batch is read
    once: the analysis passes hold what they read for the passes after
    (:mod:`helix_tf.engine._held`).
    """
    counters: collections.Counter[str] = collections.Counter()

    def inc(name: str, value: int) -> None:
        counters[name] += value

    levels = analysis_levels(nodes, order)
    computed = computed_readers(nodes, order)
    states: dict[str, Any] = {}
    with BackgroundWrites(inc) as writer:
        for src in source_nodes(nodes, order):
            snode = nodes[src]
            if snode.state == NodeState.COMPUTE:
                op = snode.op
                assert isinstance(op, Source)
                keys = [
                    key
                    for split in op.splits()
                    for key in read_split(
                        src, op, snode.root, batch_rows, snode.sample, split, inc, writer=writer
                    )
                ]
                writer.wait(src)  # its batches are read back below
            else:
                keys = list(known_batches.get(src, []))
            if not [n for n in computed if nodes[n].source == src]:
                continue
            held = HeldTables()  # read by the analysis passes, taken by the last
            stats = _analysed(nodes, levels, src, keys, inc, held)
            for key in keys:
                compute_batch(nodes, order, key, stats, inc, writer, held)
                held.release(key[0], key[1])
            if stats:
                states.update(json.loads(json.dumps(merge_states(stats))))
    return preprocess_result(
        counters=counters,
        states=states,
        nodes=nodes,
        order=order,
        known_batches=known_batches,
        launch_seconds=0.0,
    )


def _analysed(
    nodes: Mapping[str, PreNode],
    levels: list[list[str]],
    src: str,
    keys: Sequence[Key],
    inc: Inc,
    held: HeldTables | None = None,
) -> list[dict[str, Any]]:
    """The analysis levels' states of the features reading ``src``, level by level."""
    stats: list[dict[str, Any]] = []
    for group in levels:
        group = [n for n in group if nodes[n].source == src]
        if not group:
            continue
        combiner = StatsCombiner({n: nodes[n].op for n in group})  # type: ignore[misc]
        acc = combiner.create_accumulator()
        for key in keys:
            if key[0] == Split.TRAIN:
                for element in batch_partials(nodes, group, key, stats, inc, held):
                    acc = combiner.add_input(acc, element)
        stats.append(combiner.extract_output(acc))
    return stats
