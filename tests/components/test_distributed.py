"""Training under a tf.distribute strategy (issue 14): the custom loop, its inputs, and
two local worker processes reaching one process's weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helix_tf.components import distributed
from helix_tf.components.learners import DNN, Linear
from helix_tf.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

#: Two workers each sum half of a global batch's gradient; one process sums all of it.
#: The all-reduce adds the halves in another order: float32 rounding, nothing more.
WEIGHT_TOLERANCE = 1e-5


def test_strategy_enters_the_fingerprint_only_when_set() -> None:
    """Default training (model.fit) keeps every earlier fingerprint; a strategy trains
    with another loop (other rounding), so it is part of the learner's identity."""
    assert "strategy" not in Linear().fingerprint_params()
    assert Linear().fingerprint_params() == {
        k: v for k, v in Linear(strategy=None).params().items() if k != "strategy"
    }
    assert Linear(strategy="mirrored").fingerprint_params()["strategy"] == "mirrored"
    assert (
        Linear(strategy="mirrored").fingerprint_params()
        != Linear(strategy="multi-worker").fingerprint_params()
    )


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"strategy must be None or one of .* got 'ps'"):
        DNN(strategy="ps")
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        os.environ.pop("TF_CONFIG", None)
        distributed.make_strategy("multi-worker")


def test_parquet_batches_stream_every_row_once_per_epoch(tmp_path: Path) -> None:
    files = []
    start = 0
    for i, n in enumerate((7, 1, 12)):
        ids = np.arange(start, start + n)
        start += n
        path = tmp_path / f"{i:06d}.parquet"
        pq.write_table(pa.table({"v": ids.astype(np.float32), "y": ids}), path)
        files.append(str(path))

    def convert(table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {"v": table.column("v").to_numpy().reshape(-1, 1)}, table.column("y").to_numpy()

    stream = distributed.ParquetBatches(files, convert, rows=20, batch_size=6, seed=3)
    epochs = [list(stream.epoch(e)) for e in range(2)]
    for batches in epochs:
        assert [len(y) for _, y in batches] == [6, 6, 6, 2]
        seen = np.concatenate([y for _, y in batches])
        assert sorted(seen) == list(range(20))
        for x, y in batches:  # inputs stay with their labels
            assert np.array_equal(x["v"][:, 0], y.astype(np.float32))
    orders = [np.concatenate([y for _, y in b]) for b in epochs]
    assert not np.array_equal(orders[0], orders[1])  # shuffled anew each epoch
    again = np.concatenate([y for _, y in stream.epoch(0)])
    assert np.array_equal(again, orders[0])  # seeded


def test_bags_of_different_widths_concatenate() -> None:
    a = ({"b": np.ones((2, 1), np.int32)}, np.zeros(2))
    b = ({"b": np.ones((2, 3), np.int32)}, np.zeros(2))
    (x, _), rest = distributed._take([a, b], 3)
    assert x["b"].shape == (3, 3) and rest[0][1].shape == (1,)
    assert x["b"][:2, 1:].sum() == 0


@pytest.mark.slow
def test_two_local_workers_reach_the_weights_of_one_process(tmp_path: Path) -> None:
    """MultiWorkerMirroredStrategy over two processes on 127.0.0.1 (TF_CONFIG) trains to
    the weights one process reaches with the same loop, within :data:`WEIGHT_TOLERANCE`
    (DNN, 2,000 generated rows, 2 epochs; benchmarks/dist_training.py's workers)."""
    from benchmarks import dist_training

    dist_training.run_workers(tmp_path / "one.npz", "one-device", 1, rows=2000, epochs=2)
    dist_training.run_workers(tmp_path / "two.npz", "multi-worker", 2, rows=2000, epochs=2)
    w1 = dist_training.load_weights(tmp_path / "one.npz")
    w2 = dist_training.load_weights(tmp_path / "two.npz")
    assert len(w1) == len(w2) > 0
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=WEIGHT_TOLERANCE, atol=WEIGHT_TOLERANCE)
    l1 = json.loads((tmp_path / "one.npz.json").read_text())["losses"]
    l2 = json.loads((tmp_path / "two.npz.json").read_text())["losses"]
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    assert l1[-1] < l1[0]  # it learned


@pytest.mark.slow
@pytest.mark.ci
def test_a_run_with_a_strategy_streams_large_examples_from_disk(
    tiny_census_config: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the size threshold a learner with a strategy reads its training examples
    batch by batch from the stored Parquet files (never as one array); below it, from
    memory. Both train on every row; the default learner (no strategy) is untouched and
    keeps its fingerprint."""
    from helix_tf import api
    from helix_tf.components import keras_models

    read_all = []
    real_arrays = keras_models.arrays_from_table

    def arrays(table: pa.Table, *args: object, **kwargs: object) -> dict[str, np.ndarray]:
        read_all.append(table.num_rows)
        return real_arrays(table, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(keras_models, "arrays_from_table", arrays)
    plain = api.run(tiny_census_config, store=store, batch_rows=128)
    assert 600 in read_all  # the whole training split as one array
    read_all.clear()
    monkeypatch.setattr(distributed, "STREAM_BYTES", 0)
    streamed = api.run(
        tiny_census_config,
        store=store,
        batch_rows=128,
        params={"learner.strategy": "one-device"},
    )
    rows = {n.name: n.rows for n in streamed.nodes}
    assert rows["learner"] == 600
    learner = {n.name: n for n in streamed.nodes}["learner"]
    assert learner.state == "compute"
    assert learner.fingerprint != {n.name: n for n in plain.nodes}["learner"].fingerprint
    # streamed: one 128-row batch file at a time (and the 300 test rows to predict)
    assert read_all and 600 not in read_all and max(read_all) <= 300, read_all
    assert streamed.metrics["auc"] > 0.6


def test_target_scale_streams_the_mean_and_std_of_all_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = [rng.normal(50.0, 7.0, n) for n in (5, 0, 300, 1)]
    files = []
    for i, v in enumerate(values):
        path = tmp_path / f"{i:06d}.parquet"
        pq.write_table(pa.table({"y": v}), path)
        files.append(str(path))
    every = np.concatenate(values)
    mean, std = distributed.target_scale(files, lambda t: np.log(t.column("y").to_numpy()), ["y"])
    assert mean == pytest.approx(float(np.mean(np.log(every))), rel=1e-12)
    assert std == pytest.approx(float(np.std(np.log(every))), rel=1e-9)
    constant = tmp_path / "constant.parquet"
    pq.write_table(pa.table({"y": np.full(4, 3.0)}), constant)
    assert distributed.target_scale([str(constant)], lambda t: t.column("y").to_numpy(), ["y"]) == (
        3.0,
        1.0,
    )


@pytest.mark.parametrize("scale", [1.0, 1e200, 1e305])
def test_a_target_of_any_finite_size_has_a_finite_spread(tmp_path: Path, scale: float) -> None:
    """A regression target past 1.3e154 had std inf (its squares overflowed) and every
    standardised target 0: the model learned nothing and no error said so. In memory and
    streamed, the spread is that of the values scaled down, multiplied back."""
    from helix_tf.components import _scaling

    rng = np.random.default_rng(1)
    unit = [rng.normal(1.0, 0.5, n) for n in (7, 300, 2)]
    files = []
    for i, v in enumerate(unit):
        path = tmp_path / f"{i:06d}.parquet"
        pq.write_table(pa.table({"y": v * scale}), path)
        files.append(str(path))
    every = np.concatenate(unit)
    mean, std = distributed.target_scale(files, lambda t: t.column("y").to_numpy(), ["y"])
    assert mean == pytest.approx(float(np.mean(every)) * scale, rel=1e-12)
    assert std == pytest.approx(float(np.std(every)) * scale, rel=1e-9)
    in_memory = _scaling.target_spread(every * scale)
    assert in_memory == pytest.approx((mean, std), rel=1e-9)
    z = _scaling.standardized(every * scale, *in_memory)
    assert np.allclose(z, (every - np.mean(every)) / np.std(every), rtol=1e-6, atol=1e-9)
    if scale == 1.0:  # the same bits as the float formulas where they do not overflow
        assert in_memory == (float(np.mean(every)), float(np.std(every)))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["price", "cut"])
def test_regression_and_multiclass_stream_large_examples_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    """A regression (target standardised over all rows, streamed first) and a multiclass
    learner train from streamed batches as they do from memory: every row, the same
    target scale, metrics alike."""
    from helix_tf import api
    from helix_tf.components import keras_models
    from helix_tf.sample_data import write_diamonds_like
    from tests.engine.test_task_runs import CONFIG

    data = write_diamonds_like(tmp_path / "data", rows=800, seed=4)
    config = tmp_path / "diamonds.py"
    config.write_text(CONFIG)
    tables_read: list[int] = []
    stats: list[dict[str, float]] = []
    real_arrays, real_train = keras_models.arrays_from_table, keras_models.train_model

    def arrays(table: pa.Table, *args: object, **kwargs: object) -> dict[str, np.ndarray]:
        tables_read.append(table.num_rows)
        return real_arrays(table, *args, **kwargs)  # type: ignore[arg-type]

    def train(*args: object, **kwargs: object) -> object:
        model, found = real_train(*args, **kwargs)  # type: ignore[arg-type]
        stats.append(found)
        return model, found

    monkeypatch.setattr(keras_models, "arrays_from_table", arrays)
    monkeypatch.setattr(keras_models, "train_model", train)
    results, trained = {}, []
    for mode, threshold in (("memory", 1 << 40), ("stream", 0)):
        monkeypatch.setattr(distributed, "STREAM_BYTES", threshold)
        tables_read.clear()
        results[mode] = api.run(
            str(config),
            store=str(tmp_path / f"store-{mode}"),
            batch_rows=128,
            params={
                "train": str(data),
                "task": task,
                "epochs": 3,
                "few": True,
                "learner.strategy": "one-device",
            },
        )
        largest = max(tables_read)
        rows = {n.name: n.rows for n in results[mode].nodes}["learner"]
        trained.append(rows)
        # in memory the whole training split is one array; streamed, one 128-row file
        assert (largest == rows) if mode == "memory" else (largest <= 210), tables_read
    assert trained[0] == trained[1] > 500  # every row of the training split, both ways
    memory, stream = stats
    if task == "price":
        assert stream["target_mean"] == pytest.approx(memory["target_mean"], rel=1e-12)
        assert stream["target_std"] == pytest.approx(memory["target_std"], rel=1e-9)
        key = "r2@log"
    else:
        key = "accuracy"
    m, s = results["memory"].metrics[key], results["stream"].metrics[key]
    assert s > 0.3 and abs(s - m) < 0.15, (m, s)
