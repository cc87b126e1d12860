"""Training under a tf.distribute strategy (issue 14): the custom loop, its inputs, and
two local worker processes reaching one process's weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
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


_WORKER = """
import json, os, sys
import numpy as np
from helix_tf.components import keras_models
from helix_tf.components.learners import DNN
out, strategy = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
n = 2000
x = {"a": rng.normal(size=(n, 1)).astype(np.float32),
     "c": rng.integers(0, 5, size=(n, 1)).astype(np.int32)}
y = ((x["a"][:, 0] + (x["c"][:, 0] == 2)) > 0.5).astype(np.float32)
features = [{"name": "a", "kind": "numeric"}, {"name": "c", "kind": "categorical", "size": 5}]
learner = DNN(hidden=(8,), epochs=2, batch_size=256, seed=1, strategy=strategy)
losses = []
model, stats = keras_models.train_model(
    learner, features, x, y, on_epoch=lambda e, t, loss, s: losses.append(loss))
if json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"] == 0:
    np.savez(out, *[w for w in model.get_weights()])
    with open(out + ".json", "w") as f:
        json.dump({"losses": losses, "loss": stats["train_loss"]}, f)
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as found:
        return [found[k] for k in sorted(found.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow
@pytest.mark.ci
def test_two_local_workers_reach_the_weights_of_one_process(tmp_path: Path) -> None:
    """MultiWorkerMirroredStrategy over two processes on 127.0.0.1 (TF_CONFIG) trains to
    the weights one process reaches with the same loop, within :data:`WEIGHT_TOLERANCE`."""
    script = tmp_path / "worker.py"
    script.write_text(_WORKER, encoding="utf-8")
    one = tmp_path / "one.npz"
    done = subprocess.run(
        [sys.executable, str(script), str(one), "one-device"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    two = tmp_path / "two.npz"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(two), "multi-worker"],
            env=_env(
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    w1, w2 = _weights(one), _weights(two)
    assert len(w1) == len(w2) > 0
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=WEIGHT_TOLERANCE, atol=WEIGHT_TOLERANCE)
    l1 = json.loads((tmp_path / "one.npz.json").read_text())
    l2 = json.loads((tmp_path / "two.npz.json").read_text())
    np.testing.assert_allclose(l1["losses"], l2["losses"], rtol=1e-5)
    assert l1["losses"][-1] < l1["losses"][0]  # it learned


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
