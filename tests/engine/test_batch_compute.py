"""BatchComputer: computing the preprocessing nodes of one batch (no Beam)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helix_tf.components import features as F
from helix_tf.components.sources import Csv
from helix_tf.engine import tables
from helix_tf.engine.batch_compute import BatchComputer, PreNode
from helix_tf.errors import DataError, ExecutionError
from helix_tf.sample_data import CENSUS_CSV_OPTIONS
from helix_tf.types import LABEL, ROW_ID

BATCH_ROWS = 250


@pytest.fixture(scope="module")
def source_root(tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]) -> str:
    """The census-like train split written as source batches of BATCH_ROWS rows."""
    root = str(tmp_path_factory.mktemp("source"))
    src = Csv(train=str(census_like[0]), test=str(census_like[1]), **CENSUS_CSV_OPTIONS)
    for split in src.splits():
        for k, frame in enumerate(src.read(split, batch_rows=BATCH_ROWS)):
            tables.write_batch(root, split, k, pa.Table.from_pandas(frame, preserve_index=False))
    return root


COLUMNS = dict(CENSUS_CSV_OPTIONS["columns"])


def _node(name: str, role: str, op: Any, root: str, **kw: Any) -> PreNode:
    defaults: dict[str, Any] = {
        "value_kind": None,
        "source": None if role == "source" else "rows",
        "columns": COLUMNS,
        "features": (),
        "state": "compute",
        "write": True,
    }
    defaults.update(kw)
    return PreNode(name=name, role=role, op=op, root=root, **defaults)


def _nodes(source_root: str, tmp: Path, **overrides: dict[str, Any]) -> dict[str, PreNode]:
    specs = {
        "rows": ("source", None, source_root, {"state": "load", "write": False}),
        "age": ("feature", F.Numeric("age"), str(tmp / "age"), {"value_kind": "numeric"}),
        "edu": (
            "feature",
            F.Vocabulary("education"),
            str(tmp / "edu"),
            {"value_kind": "categorical"},
        ),
        "examples": (
            "examples",
            F.Label("income", positive=">50K"),
            str(tmp / "examples"),
            {"features": ("age", "edu")},
        ),
    }
    out = {}
    for name, (role, op, root, kw) in specs.items():
        kw = {**kw, **overrides.get(name, {})}
        op = kw.pop("op", op)
        root = kw.pop("root", root)
        out[name] = _node(name, role, op, root, **kw)
    return out


ORDER = ["rows", "age", "edu", "examples"]


def _batches(root: str, split: str) -> list[int]:
    return sorted(int(p.stem) for p in (Path(root) / split).glob("*.parquet"))


def _states(
    computer: BatchComputer, names: list[str], batches: int | None = None
) -> dict[str, Any]:
    """Finalised analyzer states over the first ``batches`` training batches (all: None)."""
    merged: dict[str, Any] = {}
    for k in _batches(computer.nodes["rows"].root, "train")[:batches]:
        for name, acc in computer.partials(names, "train", k):
            op = computer.nodes[name].op
            analyzer = op.analyzer()  # type: ignore[union-attr]
            merged[name] = acc if name not in merged else analyzer.merge([merged[name], acc])
    return {
        name: computer.nodes[name].op.finalize_state(  # type: ignore[union-attr]
            computer.nodes[name].op.analyzer().finalize(acc)  # type: ignore[union-attr]
        )
        for name, acc in merged.items()
    }


def test_partials_and_compute_batch_write_features_and_examples(
    source_root: str, tmp_path: Path
) -> None:
    nodes = _nodes(source_root, tmp_path)
    states = _states(BatchComputer(nodes, {}), ["age", "edu", "examples"])
    frame = pa.concat_tables(
        tables.read_batch(source_root, "train", k) for k in _batches(source_root, "train")
    ).to_pandas()
    assert states["age"]["mean"] == pytest.approx(frame["age"].mean())
    assert states["age"]["count"] == 600
    assert set(states["edu"]["vocab"]) == {None if pd.isna(v) else v for v in frame["education"]}

    computer = BatchComputer(nodes, states)
    done = computer.compute_batch("test", 1, ORDER)
    source = tables.read_batch(source_root, "test", 1).to_pandas()
    assert set(done) == {"age", "edu", "examples"}
    assert all(rows == len(source) and size > 0 for rows, size in done.values())

    examples = tables.read_batch(str(tmp_path / "examples"), "test", 1)
    assert examples.column_names == ["age", "edu", LABEL, ROW_ID]
    np.testing.assert_array_equal(examples.column(ROW_ID).to_numpy(), source[ROW_ID].to_numpy())
    np.testing.assert_array_equal(
        examples.column(LABEL).to_numpy(), (source["income"] == ">50K").astype(np.int8)
    )
    expected_age = (source["age"] - states["age"]["mean"]) / states["age"]["std"]
    np.testing.assert_allclose(examples.column("age").to_numpy(), expected_age, rtol=1e-5)
    vocab = states["edu"]["vocab"]
    assert [vocab[i] for i in examples.column("edu").to_pylist()] == source["education"].tolist()
    age_file = tables.read_batch(str(tmp_path / "age"), "test", 1)
    assert age_file.column_names == ["value", ROW_ID]


def test_a_loaded_feature_gives_the_same_examples(source_root: str, tmp_path: Path) -> None:
    first = _nodes(source_root, tmp_path / "a")
    states = _states(BatchComputer(first, {}), ["age", "edu", "examples"])
    BatchComputer(first, states).compute_batch("train", 0, ORDER)

    second = _nodes(
        source_root,
        tmp_path / "b",
        age={"state": "load", "write": False, "root": str(tmp_path / "a" / "age")},
    )
    done = BatchComputer(second, {k: states[k] for k in ("edu", "examples")}).compute_batch(
        "train", 0, ORDER
    )
    assert "age" not in done  # loaded, not computed
    a = tables.read_batch(str(tmp_path / "a" / "examples"), "train", 0)
    b = tables.read_batch(str(tmp_path / "b" / "examples"), "train", 0)
    assert a.equals(b)


def test_intermediate_not_written_still_counts_rows(source_root: str, tmp_path: Path) -> None:
    nodes = _nodes(source_root, tmp_path, age={"write": False})
    states = _states(BatchComputer(nodes, {}), ["age", "edu", "examples"])
    done = BatchComputer(nodes, states).compute_batch("train", 1, ORDER)
    assert done["age"] == (tables.read_batch(source_root, "train", 1).num_rows, 0)
    assert not (tmp_path / "age").exists()


def test_misaligned_loaded_artifact_is_an_execution_error(source_root: str, tmp_path: Path) -> None:
    # a stored feature whose batch 0 holds other rows than the source's batch 0
    other = tables.read_batch(source_root, "train", 1)
    bad = pa.table(
        {"value": pa.array(np.zeros(other.num_rows, np.float32)), ROW_ID: other.column(ROW_ID)}
    )
    tables.write_batch(str(tmp_path / "stale"), "train", 0, bad)
    nodes = _nodes(
        source_root,
        tmp_path,
        age={"state": "load", "write": False, "root": str(tmp_path / "stale")},
    )
    states = _states(BatchComputer(nodes, {}), ["edu", "examples"], batches=1)
    with pytest.raises(ExecutionError, match="do not line up") as info:
        BatchComputer(nodes, states).compute_batch("train", 0, ORDER)
    assert info.value.node in ("age", "rows")


def test_missing_label_is_a_data_error_naming_the_row(tmp_path: Path) -> None:
    root = str(tmp_path / "src")
    frame = pa.table(
        {
            "age": pa.array([30.0, 40.0, 50.0]),
            "income": pa.array([">50K", None, "<=50K"]),
            ROW_ID: pa.array([1, 2, 3], pa.int64()),
        }
    )
    tables.write_batch(root, "train", 0, frame)
    cols = {"age": "int", "income": "string"}
    nodes = {
        "rows": _node("rows", "source", None, root, state="load", write=False, columns=cols),
        "age": _node(
            "age",
            "feature",
            F.Numeric("age", standardize=False),
            str(tmp_path / "a"),
            value_kind="numeric",
            columns=cols,
        ),
        "examples": _node(
            "examples",
            "examples",
            F.Label("income", positive=">50K"),
            str(tmp_path / "e"),
            features=("age",),
            columns=cols,
        ),
    }
    label_state = {"counts": {"<=50K": 1, ">50K": 1}}
    states = {"age": {"mean": 40.0, "std": 1.0, "count": 3}, "examples": label_state}
    with pytest.raises(
        DataError, match=r"row 2 .*has no label in column 'income'; labels must not be missing"
    ) as info:
        BatchComputer(nodes, states).compute_batch("train", 0, ["rows", "age", "examples"])
    assert info.value.node == "examples"


def test_failing_udf_is_an_execution_error_naming_the_node(
    source_root: str, tmp_path: Path
) -> None:
    def explode(row: dict[str, Any]) -> float:
        raise ValueError(f"cannot handle age {row['age']}")

    nodes = _nodes(source_root, tmp_path, age={"op": F.Udf(explode)})
    states = _states(BatchComputer(nodes, {}), ["edu", "examples"], batches=1)
    with pytest.raises(
        ExecutionError, match=r"explode raised ValueError: cannot handle age .* on row 1"
    ) as info:
        BatchComputer(nodes, states).compute_batch("train", 0, ORDER)
    assert info.value.node == "age"
    assert "operator 'age' failed" in str(info.value)


def test_udf_returning_the_wrong_length_names_the_node(source_root: str, tmp_path: Path) -> None:
    nodes = _nodes(source_root, tmp_path, age={"op": F.Udf(lambda b: b["age"][:3], batched=True)})
    states = _states(BatchComputer(nodes, {}), ["edu", "examples"], batches=1)
    n = tables.read_batch(source_root, "train", 0).num_rows
    with pytest.raises(ExecutionError, match=rf"returned shape \(3,\), expected \({n},\)") as info:
        BatchComputer(nodes, states).compute_batch("train", 0, ORDER)
    assert info.value.node == "age"


def test_a_failing_batched_udf_names_the_line_of_user_code_that_raised(
    source_root: str, tmp_path: Path
) -> None:
    """Where to fix it: the file and line of the user's code (the UDF or a helper it
    calls), not only the operator's type."""

    def scale(batch: Any) -> Any:
        return batch["age"].to_numpy() + None  # TypeError, raised inside numpy

    nodes = _nodes(source_root, tmp_path, age={"op": F.Udf(scale, batched=True)})
    states = _states(BatchComputer(nodes, {}), ["edu", "examples"], batches=1)
    with pytest.raises(ExecutionError) as info:
        BatchComputer(nodes, states).compute_batch("train", 0, ORDER)
    line = scale.__code__.co_firstlineno + 1
    assert f"test_batch_compute.py:{line}, in scale" in str(info.value), str(info.value)
    assert info.value.node == "age" and "fix the code there" in str(info.value)
