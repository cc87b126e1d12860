"""The fused Beam pipeline: transforms under Beam's own test tools, the whole preprocessing
of a small census source in one pipeline, and the row-count guard (a Beam 2.77 hazard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from helix_tf import NodeRef
from helix_tf.components import features as F
from helix_tf.components.sources import Csv
from helix_tf.engine import beam_pipeline, tables
from helix_tf.engine.batch_compute import BatchComputer, PreNode
from helix_tf.engine.beam_pipeline import analysis_levels, run_preprocessing
from helix_tf.engine.read_steps import SourceRead
from helix_tf.engine.runners import pipeline_factory
from helix_tf.errors import ExecutionError
from helix_tf.sample_data import CENSUS_CSV_OPTIONS
from helix_tf.types import ROW_ID

BATCH_ROWS = 200
COLUMNS = dict(CENSUS_CSV_OPTIONS["columns"])


def _csv(census: tuple[Path, Path]) -> Csv:
    return Csv(train=str(census[0]), test=str(census[1]), **CENSUS_CSV_OPTIONS)


def _pre(
    name: str, role: str, op: Any, root: Path, *, kind: str | None = None, **kw: Any
) -> PreNode:
    fields: dict[str, Any] = {
        "value_kind": kind,
        "source": None if role == "source" else "rows",
        "columns": COLUMNS,
        "features": (),
        "state": "compute",
        "write": True,
        **kw,
    }
    return PreNode(name=name, role=role, op=op, root=str(root / name), **fields)


def _fields(node: PreNode) -> dict[str, Any]:
    return {f: getattr(node, f) for f in PreNode.__dataclass_fields__}


def _census_nodes(census: tuple[Path, Path], root: Path) -> dict[str, PreNode]:
    return {
        "rows": _pre("rows", "source", _csv(census), root),
        "age": _pre("age", "feature", F.Numeric("age"), root, kind="numeric"),
        "edu": _pre("edu", "feature", F.Vocabulary("education"), root, kind="categorical"),
        "age_bucket": _pre(
            "age_bucket",
            "feature",
            F.Bucketize(NodeRef("age"), [-1.0, 0.0, 1.0]),
            root,
            kind="categorical",
            write=False,
        ),
        "examples": _pre(
            "examples",
            "examples",
            F.Label("income", positive=">50K"),
            root,
            features=("age", "edu", "age_bucket"),
        ),
    }


ORDER = ["rows", "age", "edu", "age_bucket", "examples"]


def _run(nodes: dict[str, PreNode], root: Path, **kw: Any) -> beam_pipeline.PreprocessResult:
    return run_preprocessing(
        nodes=nodes,
        order=[n for n in ORDER if n in nodes] if "order" not in kw else kw.pop("order"),
        known_batches=kw.pop("known_batches", {}),
        batch_rows=BATCH_ROWS,
        scratch=str(root / "scratch"),
        make_pipeline=pipeline_factory("direct"),
    )


# --------------------------------------------------------------------------- analysis levels


def test_analysis_levels_order_analyzers_by_dependency(tmp_path: Path) -> None:
    nodes = {
        "rows": _pre("rows", "source", None, tmp_path),
        "words": _pre("words", "feature", F.Tokenize("occupation"), tmp_path, kind="tokens"),
        "tfidf": _pre("tfidf", "feature", F.TfIdf(NodeRef("words")), tmp_path, kind="bag"),
        "age": _pre("age", "feature", F.Numeric("age"), tmp_path, kind="numeric"),
        "zage": _pre("zage", "feature", F.Numeric(NodeRef("age")), tmp_path, kind="numeric"),
        "bucket": _pre(
            "bucket", "feature", F.Bucketize(NodeRef("zage"), [0.0]), tmp_path, kind="categorical"
        ),
        "vb": _pre("vb", "feature", F.Numeric(NodeRef("bucket")), tmp_path, kind="numeric"),
        "loaded": _pre("loaded", "feature", F.Numeric("hours_per_week"), tmp_path, state="load"),
    }
    order = list(nodes)
    assert analysis_levels(nodes, order) == [["tfidf", "age"], ["zage"], ["vb"]]


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("shard_bytes", [64 << 20, 40_000])
def test_read_dofns_write_batches_and_emit_their_keys(
    census_like: tuple[Path, Path], tmp_path: Path, shard_bytes: int
) -> None:
    big = tmp_path / "big.csv"  # several 64 KB blocks, so the small shard size cuts the file
    big.write_text(census_like[0].read_text() * 6)
    op = Csv(train=str(big), test=str(census_like[1]), **CENSUS_CSV_OPTIONS)
    expected = [
        (split, k, len(frame))
        for split in op.splits()
        for k, frame in enumerate(op.read(split, batch_rows=BATCH_ROWS))
    ]
    root = tmp_path / "out"
    reading = SourceRead(name="rows", op=op, root=str(root), batch_rows=BATCH_ROWS)
    with pipeline_factory("direct")() as p:
        keys = (
            p
            | beam.Create(["train", "test"])
            | beam.ParDo(beam_pipeline._PlanReads(reading, shard_bytes))
            | beam.Reshuffle()
            | beam.ParDo(beam_pipeline._ReadShard(reading))
            | beam.GroupByKey()
            | beam.ParDo(beam_pipeline._FinishSplit(reading))
        )
        assert_that(keys, equal_to(expected))
    shards = len(op.read_shards("train", batch_rows=BATCH_ROWS, shard_bytes=shard_bytes))
    assert shards == 1 if shard_bytes > 1 << 20 else shards > 2
    assert sum(r for s, _, r in expected if s == "train") == 3600
    files = [str(p.relative_to(root)) for p in root.rglob("*")]
    written = tables.list_batches(files)
    assert written == sorted((s, k) for s, k, _ in expected)
    assert len(written) == len([f for f in files if f.endswith(".parquet")])  # no pieces left
    for split, k, _ in expected:
        got = tables.read_batch(str(root), split, k)
        k_seq = [key for key in expected if key[0] == split].index((split, k, got.num_rows))
        want = list(op.read_tables(split, batch_rows=BATCH_ROWS))[k_seq]
        assert got.equals(want), (split, k)


def test_combine_stats_merges_partials_into_states() -> None:
    ops = {"age": F.Numeric("age"), "edu": F.Vocabulary("education", min_count=2)}
    parts = []
    for chunk in ([20.0, 30.0], [40.0], [float("nan"), 50.0]):
        analyzer = ops["age"].analyzer()
        parts.append(("age", analyzer.add(analyzer.create(), [np.array(chunk)])))
    for chunk in (["a", "b"], ["a"], ["c", "b", "a"]):
        analyzer = ops["edu"].analyzer()
        parts.append(("edu", analyzer.add(analyzer.create(), [np.array(chunk, dtype=object)])))
    with pipeline_factory("direct")() as p:
        states = (
            p | beam.Create(parts) | beam.CombineGlobally(beam_pipeline._CombineStats(ops))  # type: ignore[arg-type]
        )

        def check(got: list[dict[str, Any]]) -> None:
            (state,) = got
            assert state["edu"] == {"vocab": ["a", "b"]}
            assert state["age"]["mean"] == pytest.approx(35.0)
            assert state["age"]["count"] == 4

        assert_that(states, check)


# --------------------------------------------------------------------------- the fused run


@pytest.fixture(scope="module")
def fused(
    census_like: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, PreNode], beam_pipeline.PreprocessResult]:
    root = tmp_path_factory.mktemp("fused")
    nodes = _census_nodes(census_like, root)
    return root, nodes, _run(nodes, root)


def test_fused_run_counts_rows_and_bytes_of_every_node(fused: Any) -> None:
    root, _, result = fused
    assert result.rows == {"rows": 900, "age": 900, "edu": 900, "age_bucket": 900, "examples": 900}
    assert result.bytes["rows"] > 0 and result.bytes["age"] > 0 and result.bytes["examples"] > 0
    assert result.bytes["age_bucket"] == 0  # computed, never written
    assert not (root / "age_bucket").exists()
    assert set(result.seconds) >= {"rows", "age", "edu", "examples"}


def test_fused_run_states_match_the_training_split(
    fused: Any, census_like: tuple[Path, Path]
) -> None:
    _, _, result = fused
    from helix_tf.components.sources import read_all

    train = read_all(_csv(census_like), "train")
    # features with analyzers, and the label (the training split's values)
    assert set(result.states) == {"age", "edu", "examples"}
    assert result.states["examples"] == {"counts": train["income"].value_counts().to_dict()}
    assert result.states["age"]["mean"] == pytest.approx(train["age"].mean())
    assert result.states["age"]["count"] == 600
    counts = train["education"].value_counts()
    expected = sorted(counts.index, key=lambda t: (-counts[t], t))
    assert result.states["edu"]["vocab"] == expected
    json.dumps(result.states)  # states are JSON, never pickles


def test_fused_run_examples_line_up_with_the_source(fused: Any) -> None:
    root = fused[0]
    for split in ("train", "test"):
        source = tables.read_split(str(root / "rows"), split)
        examples = tables.read_split(str(root / "examples"), split)
        assert source is not None and examples is not None
        ids = sorted(examples.column(ROW_ID).to_pylist())
        assert ids == sorted(source.column(ROW_ID).to_pylist())
        assert len(set(ids)) == len(ids)
        assert set(examples.column_names) == {"age", "edu", "age_bucket", "__label", ROW_ID}


def test_computing_on_a_loaded_source_uses_its_known_batches(fused: Any, tmp_path: Path) -> None:
    root, nodes, _ = fused
    src = root / "rows"
    known = [
        (s, k, tables.read_batch(str(src), s, k).num_rows)
        for s, k in tables.list_batches(str(p.relative_to(src)) for p in src.rglob("*.parquet"))
    ]
    loaded = PreNode(**{**_fields(nodes["rows"]), "state": "load", "write": False})
    hours = _pre("hours", "feature", F.Numeric("hours_per_week"), tmp_path, kind="numeric")
    result = _run(
        {"rows": loaded, "hours": hours},
        tmp_path,
        order=["rows", "hours"],
        known_batches={"rows": known},
    )
    assert result.rows == {"hours": 900}
    assert "rows" not in result.bytes


# --------------------------------------------------------------------------- row-count guard


def test_rows_lost_between_stages_fail_the_run(
    census_like: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: DirectRunner with several workers silently dropped rows on Beam 2.77.

    Simulated by a compute stage that drops one whole batch: the run must fail, loudly.
    """
    original = beam_pipeline._ComputeBatch.process

    def drop_train_batch_1(self, key, *stats):  # type: ignore[no-untyped-def]
        if key[0] == "train" and key[1] == 1:
            return iter(())
        return original(self, key, *stats)

    monkeypatch.setattr(beam_pipeline._ComputeBatch, "process", drop_train_batch_1)
    with pytest.raises(
        ExecutionError, match=r"900 rows went into the pipeline but \d+ came out"
    ) as info:
        _run(_census_nodes(census_like, tmp_path), tmp_path)
    assert "lost" in str(info.value)
    assert info.value.node in {"age", "edu", "age_bucket", "examples"}


def test_rows_lost_inside_a_batch_fail_the_run(
    census_like: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = BatchComputer.compute_batch

    def lose_a_row(self, split, k, order):  # type: ignore[no-untyped-def]
        done = original(self, split, k, order)
        if (split, k) == ("test", 0):
            done = {name: (rows - 1, size) for name, (rows, size) in done.items()}
        return done

    monkeypatch.setattr(BatchComputer, "compute_batch", lose_a_row)
    with pytest.raises(
        ExecutionError, match=r"batch test/0: \d+ rows out, \d+ rows in; rows were lost"
    ):
        _run(_census_nodes(census_like, tmp_path), tmp_path)


def test_beam_tables_survive_a_round_trip() -> None:
    """A bag column written and read back is the same bag (the examples' on-disk format)."""
    bag = F.Bag(
        np.array([0, 2, 2, 3]), np.array([4, 1, 3], np.int32), np.array([0.5, 2, 1], np.float32)
    )
    table = pa.table(tables.feature_columns("w", "bag", bag))
    back = tables.feature_from_table(table.slice(1, 2), "w", "bag")
    assert back.offsets.tolist() == [0, 0, 1]
    assert back.idx.tolist() == [3] and back.val.tolist() == [1.0]
