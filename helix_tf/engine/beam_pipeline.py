"""The fused Beam pipeline: every preprocessing node computed in a run, in ONE pipeline.

Shape of the pipeline, per source that has work to do::

    splits ─ReadSource (CSV/… → Parquet batches)─▶ keys (split, batch, rows)
    keys ─train─▶ Partials(level 0) ─CombineGlobally─▶ stats₀ ─┐
    keys ─train─▶ Partials(level 1, stats₀) ─Combine──▶ stats₁ ─┤ (side inputs)
    keys ─Reshuffle─▶ ComputeBatch(stats…) ─▶ feature columns and examples, written as Parquet

Elements are batch *keys*; each DoFn reads the batch's Parquet files itself,
so nothing large is ever held in a PCollection, and an operator relies on no
local path or in-process state (files are fsspec URLs). Rows are counted in and
out of every stage; a mismatch fails the run (DirectRunner with several workers
was seen to drop rows at a map with a side input on Beam 2.77).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from helix_tf.components.features import Feature
from helix_tf.components.sources import Source
from helix_tf.engine import tables
from helix_tf.engine.batch_compute import BatchComputer, PreNode
from helix_tf.errors import ExecutionError
from helix_tf.types import ROW_ID

__all__ = ["PreprocessResult", "run_preprocessing", "analysis_levels"]

log = logging.getLogger(__name__)
NS = "helix"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreprocessResult:
    """What the pipeline measured: per node seconds, rows and bytes; feature states."""

    seconds: dict[str, float]
    write_seconds: dict[str, float]
    rows: dict[str, int]
    bytes: dict[str, int]
    skipped: dict[str, int]  # source -> malformed rows skipped (on_bad_row="skip")
    states: dict[str, Any]
    launch_seconds: float


def analysis_levels(nodes: Mapping[str, PreNode], order: Sequence[str]) -> list[list[str]]:
    """Group computed features with analyzers so each group needs only earlier groups' stats."""
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        """Highest level among analyzers this computed node (transitively) needs, or -1."""
        node = nodes[name]
        if node.state != "compute" or node.role != "feature":
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
        if node.state == "compute" and node.role == "examples" and node.op.analyzer() is not None:  # type: ignore[union-attr]
            level[n] = 0
    groups: dict[int, list[str]] = {}
    for n in order:
        node = nodes[n]
        if (
            node.state == "compute"
            and node.role in ("feature", "examples")
            and node.op.analyzer() is not None  # type: ignore[union-attr]
        ):
            groups.setdefault(level[n], []).append(n)
    return [groups[k] for k in sorted(groups)]


# ---------------------------------------------------------------------------- DoFns


def _merge_states(dicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        out.update(d)
    return out


class _ReadSource(beam.DoFn):
    """Read one split of a source in batches; write each batch as Parquet; emit its key."""

    def __init__(
        self, name: str, op: Source, root: str, batch_rows: int, sample: dict[str, Any] | None
    ) -> None:
        self.name, self.op, self.root, self.batch_rows = name, op, root, batch_rows
        self.sample = sample

    def process(self, split):  # type: ignore[no-untyped-def]
        rows = Metrics.counter(NS, f"rows/{self.name}")
        micros = Metrics.counter(NS, f"micros/{self.name}")
        write_micros = Metrics.counter(NS, f"write_micros/{self.name}")
        nbytes = Metrics.counter(NS, f"bytes/{self.name}")
        t0 = time.perf_counter()
        counts: dict[str, int] = {}
        batches = self.op.read_tables(split, batch_rows=self.batch_rows, counters=counts)
        for k, table in enumerate(batches):
            if self.sample is not None and split == "train":
                from helix_tf.approx.sampling import keep_mask

                rows_ids = table.column(ROW_ID).to_numpy()
                table = table.filter(
                    keep_mask(rows_ids, self.sample["fraction"], self.sample["seed"])
                )
            t1 = time.perf_counter()
            size = tables.write_batch(self.root, split, k, table)
            t2 = time.perf_counter()
            micros.inc(int((t1 - t0) * 1e6))
            write_micros.inc(int((t2 - t1) * 1e6))
            rows.inc(table.num_rows)
            nbytes.inc(size)
            yield (split, k, table.num_rows)
            t0 = time.perf_counter()
        if counts.get("bad_rows_skipped"):
            Metrics.counter(NS, f"skipped/{self.name}").inc(counts["bad_rows_skipped"])


class _Partials(beam.DoFn):
    """Analyzer partials of one level's features over one training batch."""

    def __init__(self, nodes: dict[str, PreNode], names: list[str]) -> None:
        self.nodes, self.names = nodes, names

    def process(self, key, *stats):  # type: ignore[no-untyped-def]  # no hints: Beam checks them
        split, k, _ = key
        computer = BatchComputer(self.nodes, _merge_states(stats))
        yield from computer.partials(self.names, split, k)
        for name, secs in computer.seconds.items():
            Metrics.counter(NS, f"micros/{name}").inc(int(secs * 1e6))


class _CombineStats(beam.CombineFn):
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
            except ExecutionError as exc:
                raise ExecutionError(str(exc), node=name) from exc
        return states


class _ComputeBatch(beam.DoFn):
    """Compute and write every computed node of one batch."""

    def __init__(self, nodes: dict[str, PreNode], order: list[str]) -> None:
        self.nodes, self.order = nodes, order

    def process(self, key, *stats):  # type: ignore[no-untyped-def]  # no hints: Beam checks them
        split, k, expected = key
        computer = BatchComputer(self.nodes, _merge_states(stats))
        done = computer.compute_batch(split, k, self.order)
        for name, (rows, size) in done.items():
            if rows != expected:
                raise ExecutionError(
                    f"batch {split}/{k}: {rows} rows out, {expected} rows in; rows were lost or "
                    "duplicated between stages",
                    node=name,
                )
            Metrics.counter(NS, f"rows/{name}").inc(rows)
            Metrics.counter(NS, f"bytes/{name}").inc(size)
            Metrics.counter(NS, f"batches/{name}").inc(1)
        for name, secs in computer.seconds.items():
            Metrics.counter(NS, f"micros/{name}").inc(int(secs * 1e6))
        for name, secs in computer.write_seconds.items():
            Metrics.counter(NS, f"write_micros/{name}").inc(int(secs * 1e6))
        yield key


class _WriteStates(beam.DoFn):
    """Write the finalised states of computed features as JSON (the driver reads them back)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, _, *stats):  # type: ignore[no-untyped-def]
        import fsspec

        with fsspec.open(self.path, "w") as f:
            json.dump(_merge_states(stats), f)
        yield self.path


# ---------------------------------------------------------------------------- driver


def run_preprocessing(
    *,
    nodes: dict[str, PreNode],
    order: list[str],
    known_batches: Mapping[str, list[tuple[str, int, int]]],
    batch_rows: int,
    scratch: str,
    make_pipeline: Callable[[], beam.Pipeline],
    distribute: bool = False,
) -> PreprocessResult:
    """Build and run the one fused pipeline for the computed preprocessing nodes.

    ``known_batches`` lists the batches of sources that are not computed in
    this run (read from a loaded artifact's manifest).
    """
    t_launch = time.perf_counter()
    pipeline = make_pipeline()
    levels = analysis_levels(nodes, order)
    sources = [n for n in order if nodes[n].role == "source"]
    expected_keys: dict[str, Any] = {}
    computed = [n for n in order if nodes[n].state == "compute" and nodes[n].role != "source"]
    side_stats: list[Any] = []
    for src in sources:
        snode = nodes[src]
        label = src.replace(" ", "_")
        if snode.state == "compute":
            op = snode.op
            assert isinstance(op, Source)
            keys = (
                pipeline
                | f"Splits[{label}]" >> beam.Create(list(op.splits()))
                | f"Read[{label}]"
                >> beam.ParDo(_ReadSource(src, op, snode.root, batch_rows, snode.sample))
            )
        else:
            batches = list(known_batches.get(src, []))
            expected_keys[src] = batches
            keys = pipeline | f"Batches[{label}]" >> beam.Create(batches)
        mine = [n for n in computed if nodes[n].source == src or n == src]
        if not mine:
            continue
        train = keys | f"Train[{label}]" >> beam.Filter(lambda key: key[0] == "train")
        stats_views: list[Any] = []
        for i, group in enumerate(levels):
            group = [n for n in group if nodes[n].source == src]
            if not group:
                continue
            ops = {n: nodes[n].op for n in group}
            stats = (
                train
                | f"Partials{i}[{label}]" >> beam.ParDo(_Partials(nodes, group), *stats_views)
                | f"Stats{i}[{label}]" >> beam.CombineGlobally(_CombineStats(ops))  # type: ignore[arg-type]
            )
            stats_views.append(beam.pvalue.AsSingleton(stats))
            side_stats.append(stats)
        if distribute:  # let a distributed runner spread batches over workers
            keys = keys | f"Spread[{label}]" >> beam.Reshuffle()
        keys | f"Compute[{label}]" >> beam.ParDo(_ComputeBatch(nodes, order), *stats_views)
        if stats_views:
            (
                pipeline
                | f"One[{label}]" >> beam.Create([None])
                | f"States[{label}]"
                >> beam.ParDo(
                    _WriteStates(f"{scratch.rstrip('/')}/states-{label}.json"), *stats_views
                )
            )
    launch = time.perf_counter() - t_launch
    result = pipeline.run()
    result.wait_until_finish()
    counters: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(NS))["counters"]:
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed or 0)

    states: dict[str, Any] = {}
    import fsspec

    for src in sources:
        path = f"{scratch.rstrip('/')}/states-{src.replace(' ', '_')}.json"
        fs, p = fsspec.core.url_to_fs(path)
        if fs.exists(p):
            with fs.open(p, "r") as f:
                states.update(json.load(f))

    rows = {k.split("/", 1)[1]: v for k, v in counters.items() if k.startswith("rows/")}
    batches = {k.split("/", 1)[1]: v for k, v in counters.items() if k.startswith("batches/")}
    # Rows in == rows out for every computed node, per source.
    for src in sources:
        if nodes[src].state == "compute":
            rows_in = rows.get(src, 0)
        else:
            rows_in = sum(r for _, _, r in expected_keys.get(src, []))
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
        seconds={
            k.split("/", 1)[1]: v / 1e6 for k, v in counters.items() if k.startswith("micros/")
        },
        write_seconds={
            k.split("/", 1)[1]: v / 1e6
            for k, v in counters.items()
            if k.startswith("write_micros/")
        },
        rows=rows,
        bytes={k.split("/", 1)[1]: v for k, v in counters.items() if k.startswith("bytes/")},
        skipped={k.split("/", 1)[1]: v for k, v in counters.items() if k.startswith("skipped/")},
        states=states,
        launch_seconds=launch,
    )
