"""The fused Beam pipeline: every preprocessing node computed in a run, in ONE pipeline.

Shape of the pipeline, per source that has work to do::

    splits ─Plan─▶ shards (files, byte ranges) ─Read (parallel)─▶ pieces ─Number─▶ keys
                                       (split, batch, rows): CSV/… as Parquet batches
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

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import TestOptions

from helix_tf.components.sources import Source
from helix_tf.engine.batch_compute import PreNode
from helix_tf.engine.preprocess_steps import (
    PreprocessResult,
    StatsCombiner,
    analysis_levels,
    batch_partials,
    compute_batch,
    computed_readers,
    merge_states,
    preprocess_result,
    source_nodes,
)
from helix_tf.engine.read_steps import SourceRead, shard_bytes
from helix_tf.roles import NodeState, Split

__all__ = ["PreprocessResult", "run_preprocessing", "analysis_levels"]

log = logging.getLogger(__name__)
NS = "helix"


# ---------------------------------------------------------------------------- DoFns


def _inc(name: str, value: int) -> None:
    Metrics.counter(NS, name).inc(value)


class _PlanReads(beam.DoFn):
    """The shards of one split: its files, and byte ranges of large files."""

    def __init__(self, reading: SourceRead, size: int) -> None:
        self.reading, self.size = reading, size

    def process(self, split):  # type: ignore[no-untyped-def]
        yield from self.reading.plan(split, self.size)


class _ReadShard(beam.DoFn):
    """Read one shard; write its tables as Parquet; emit (split, piece) for each."""

    def __init__(self, reading: SourceRead) -> None:
        self.reading = reading

    def process(self, shard):  # type: ignore[no-untyped-def]
        for piece in self.reading.shard(shard, _inc):
            yield shard.split, piece


class _FinishSplit(_ReadShard):
    """Number a split's pieces into its batches (in read order); emit each batch's key."""

    def process(self, element):  # type: ignore[no-untyped-def]
        split, pieces = element
        yield from self.reading.finish(split, pieces, _inc)


class _Partials(beam.DoFn):
    """Analyzer partials of one level's features over one training batch."""

    def __init__(self, nodes: dict[str, PreNode], names: list[str]) -> None:
        self.nodes, self.names = nodes, names

    def process(self, key, *stats):  # type: ignore[no-untyped-def]  # no hints: Beam checks them
        yield from batch_partials(self.nodes, self.names, key, stats, _inc)


class _CombineStats(StatsCombiner, beam.CombineFn):
    """:class:`StatsCombiner` as Beam's combine function."""


class _ComputeBatch(beam.DoFn):
    """Compute and write every computed node of one batch."""

    def __init__(self, nodes: dict[str, PreNode], order: list[str]) -> None:
        self.nodes, self.order = nodes, order

    def process(self, key, *stats):  # type: ignore[no-untyped-def]  # no hints: Beam checks them
        yield compute_batch(self.nodes, self.order, key, stats, _inc)


class _WriteStates(beam.DoFn):
    """Write the finalised states of computed features as JSON (the driver reads them back)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, _, *stats):  # type: ignore[no-untyped-def]
        import fsspec

        from helix_tf._atomic import atomic_write_fs

        # Atomically: a retried bundle or a killed worker never leaves a torn file.
        fs, path = fsspec.core.url_to_fs(self.path)
        fs.makedirs(fs._parent(path), exist_ok=True)
        state = merge_states(stats)
        atomic_write_fs(fs, path, lambda f: json.dump(state, f), mode="w")
        yield self.path


# ---------------------------------------------------------------------------- driver


def _ship_user_code() -> None:
    """Pickle the config modules (and helpers beside them) by value: a remote worker
    cannot import them. Beam pickles with its own copy of cloudpickle, so registering
    them with the ``cloudpickle`` package (as the config loader does) is not enough."""
    import sys

    from apache_beam.internal.cloudpickle import cloudpickle as beam_cloudpickle

    from helix_tf.config import SHIPPED_BY_VALUE

    for name in sorted(SHIPPED_BY_VALUE):
        module = sys.modules.get(name)
        if module is not None:
            beam_cloudpickle.register_pickle_by_value(module)


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
    _ship_user_code()
    pipeline = make_pipeline()
    levels = analysis_levels(nodes, order)
    sources = source_nodes(nodes, order)
    expected_keys: dict[str, Any] = {}
    computed = computed_readers(nodes, order)
    side_stats: list[Any] = []
    for src in sources:
        snode = nodes[src]
        label = src.replace(" ", "_")
        if snode.state == NodeState.COMPUTE:
            keys = _read_source(pipeline, src, snode, label, batch_rows)
        else:
            batches = list(known_batches.get(src, []))
            expected_keys[src] = batches
            keys = pipeline | f"Batches[{label}]" >> beam.Create(batches)
        mine = [n for n in computed if nodes[n].source == src or n == src]
        if not mine:
            continue
        train = keys | f"Train[{label}]" >> beam.Filter(lambda key: key[0] == Split.TRAIN)
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
    counters, states = _run_and_collect(pipeline, sources, scratch)
    return preprocess_result(
        counters=counters,
        states=states,
        nodes=nodes,
        order=order,
        known_batches=expected_keys,
        launch_seconds=launch,
    )


def _read_source(
    pipeline: beam.Pipeline, src: str, snode: PreNode, label: str, batch_rows: int
) -> Any:
    """The keys of a computed source's batches: its splits planned into shards, read in
    parallel, written as Parquet and numbered into batches in read order."""
    op = snode.op
    assert isinstance(op, Source)
    reading = SourceRead(
        name=src, op=op, root=snode.root, batch_rows=batch_rows, sample=snode.sample
    )
    return (
        pipeline
        | f"Splits[{label}]" >> beam.Create(list(op.splits()))
        | f"Plan[{label}]" >> beam.ParDo(_PlanReads(reading, shard_bytes()))
        | f"SpreadShards[{label}]" >> beam.Reshuffle()
        | f"Read[{label}]" >> beam.ParDo(_ReadShard(reading))
        | f"Pieces[{label}]" >> beam.GroupByKey()
        | f"Number[{label}]" >> beam.ParDo(_FinishSplit(reading))
    )


def _run_and_collect(
    pipeline: beam.Pipeline, sources: list[str], scratch: str
) -> tuple[dict[str, int], dict[str, Any]]:
    """Run the built pipeline; its counters, and the analyzer states each source's pipeline wrote."""
    result = pipeline.run()
    result.wait_until_finish()
    if pipeline.options.view_as(TestOptions).dry_run:
        from helix_tf.engine.runners import JobBuilt

        raise JobBuilt(result.job)  # a Dataflow --dry_run: built, not submitted
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
    return counters, states
