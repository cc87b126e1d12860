"""The server's trainer keeps the models it trains: a served run scores and saves them
there and never builds a Keras model or runs a TensorFlow op itself (issue 9, fourth
pass), with a fresh process' bits; when the trainer is gone the run builds the same
model from the weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.components import test_trainers
from tests.conftest import TINY_CENSUS, write_config
from tests.server import test_server
from tests.server.test_server import _helix, _status

pytestmark = [pytest.mark.slow]

server = test_server.server  # the warm server fixture (its own, for this module)

ROOT = Path(__file__).resolve().parents[2]

# A process like a served run's fork: TensorFlow and Keras imported, no op run; the
# trainer forked from it (as the server forks its trainer) and every training handed to
# it. Each case is trained, scored, saved and asked for its linear weights; then the
# trainer is stopped and each model scored again (built here from its weights).
CLIENT = """
import json, os, signal, sys
from pathlib import Path
import numpy as np
import tensorflow  # noqa: F401  (imported, as in the server; no op runs)
from helix_tf.components import explain, keras_models as km, trainers
from helix_tf.server._trainer import RemoteTrainer, start_trainer, trainer_path
from tests.components import test_trainers as t

out = Path(sys.argv[1])
socket_path = out / "server.sock"
pid = start_trainer(socket_path)
trainers.use_remote(RemoteTrainer(trainer_path(socket_path)))
report, models = {}, {}
for name, (learner, task, precision) in t.CASES.items():
    features, x, y = t._data(task)
    head = km.Head(task=task, classes=3)
    model, stats = km.train_model(learner, features, x, y, head=head, precision=precision)
    scores = km.predict_scores(model, x, task)
    km.save_model(model, str(out / f"{name}.keras"))
    np.savez(out / f"{name}.npz", *model.trained_weights, scores=scores)
    weights = km.feature_weights(model, features)
    importance = km.model_importance(
        model, x, y, features, task=task, repeats=2, seed=1, scoring=explain.scorings_for(task)
    )
    report[name] = {
        "kind": type(model).__name__,
        "stats": stats,
        "linear": {k: v.tolist() for k, v in weights.items()},
        "importance": importance,
    }
    models[name] = (model, x, task, scores)
# Two more trainings of one graph (other L2 strengths): the later one holds its weights in
# the model object the trainer built for the earlier case's training (recycled).
import dataclasses
learner, task, precision = t.CASES["linear-binary-l2"]
features, x, y = t._data(task)
for l2 in (0.005, 0.01, 0.02):  # the third recycles the first
    edit = dataclasses.replace(learner, l2=l2)
    model, _ = km.train_model(edit, features, x, y, head=km.Head(), precision=precision)
    km.save_model(model, str(out / f"l2-{l2}.keras"))
    np.save(out / f"l2-{l2}.npy", km.predict_scores(model, x, task))
from tensorflow.python.eager import context
report["tensorflow_ran_here"] = bool(context.context()._initialized)
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
for name, (model, x, task, scores) in models.items():
    again = km.predict_scores(model, x, task)
    report[name]["same_scores_built_here"] = bool(np.array_equal(again, scores))
(out / "report.json").write_text(json.dumps(report))
"""


def test_a_trainer_kept_model_scores_and_saves_with_a_fresh_process_bits(tmp_path: Path) -> None:
    from helix_tf.components import explain, keras_models as km

    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = test_trainers._fresh_process(fresh_dir)
    served = tmp_path / "served"
    served.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("HELIX_TF_TRAINERS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, "-c", CLIENT, str(served)], check=True, env=env, cwd=ROOT, timeout=600
    )
    report = json.loads((served / "report.json").read_text())
    # The client never ran a TensorFlow op: the trainer trained, scored and saved.
    assert report.pop("tensorflow_ran_here") is False
    for name, (_, task, _) in test_trainers.CASES.items():
        got = report[name]
        assert got["kind"] == "RemoteModel", name
        expected = np.load(fresh_dir / f"{name}.npz")
        mine = np.load(served / f"{name}.npz")
        assert sorted(mine.files) == sorted(expected.files), name
        for key in expected.files:  # every weight, and the scores, bit for bit
            np.testing.assert_array_equal(mine[key], expected[key], err_msg=f"{name} {key}")
        stats = {k: v for k, v in fresh[name].items() if k != "losses"}
        assert got["stats"] == stats, name
        assert got["same_scores_built_here"], name
        # The file the trainer saved is the model: loaded here, it scores the same bits.
        features, x, _ = test_trainers._data(task)
        loaded = km.load_model(str(served / f"{name}.keras"))
        np.testing.assert_array_equal(
            km.predict_scores(loaded, x, task), expected["scores"], err_msg=name
        )
        local_weights = km.feature_weights(loaded, features)
        assert {k: np.asarray(v).tolist() for k, v in local_weights.items()} == got["linear"]
        _, _, y = test_trainers._data(task)
        scorings = explain.scorings_for(task)
        importance = km.model_importance(
            loaded, x, y, features, task=task, repeats=2, seed=1, scoring=scorings
        )
        assert json.loads(json.dumps(importance)) == got["importance"], name
    # A recycled model object: the later training's weights and L2 strength, saved and scored.
    features, x, _ = test_trainers._data("binary")
    for l2 in (0.005, 0.01, 0.02):
        loaded = km.load_model(str(served / f"l2-{l2}.keras"))
        np.testing.assert_array_equal(
            km.predict_scores(loaded, x, "binary"), np.load(served / f"l2-{l2}.npy")
        )
        penalties = {
            layer.regularizer.get_config()["l2"]
            for layer in loaded.layers
            if getattr(layer, "regularizer", None) is not None
        }
        assert penalties == {np.float32(l2).item()}, l2


EXPLAINED = TINY_CENSUS.replace(
    "    wf.output(wf.evaluate(",
    '    wf.output(wf.explain("explanation", model, examples))\n    wf.output(wf.evaluate(',
).replace(
    "learners.Linear(epochs=params.epochs, batch_size=128, learning_rate=0.05)",
    "learners.WideDeep(hidden=(8,), dropout=0.2, wide=('education', 'occupation'), "
    "epochs=2, batch_size=32, learning_rate=0.05)",
)


@pytest.mark.ci
@pytest.mark.parametrize(
    "approx", [(), ("--approx", "--approx-min-saving", "0")], ids=["exact", "approximate"]
)
def test_a_served_run_scores_explains_and_saves_in_the_trainer_as_a_run_alone_would(
    server: Path, census_like: tuple[Path, Path], tmp_path: Path, approx: tuple[str, ...]
) -> None:
    """A served run's predictions, permutation importance, linear weights and saved model
    (computed by the server's trainer) equal those of a run in its own process; an
    approximate run's too (its model scored by a traced function in both)."""
    from helix_tf.components import keras_models as km

    config = write_config(tmp_path, EXPLAINED, train=census_like[0], test=census_like[1])
    runs = {}
    for name, extra in (("served", ()), ("alone", ("--no-server",))):
        args = ("--store", tmp_path / name, "--json", "--materialize", "all", *approx, *extra)
        done = _helix(server, "run", config, *args)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(done.stdout)
    assert _status(server)["trainer"]["trainers"]["models"] >= 1  # the trainer kept it
    assert runs["served"]["metrics"] == runs["alone"]["metrics"]
    assert runs["served"]["approx"] == runs["alone"]["approx"] == bool(approx)

    def one(store: str, file: str) -> Path:
        found = list((tmp_path / store / "artifacts").rglob(file))
        assert len(found) == 1, (store, file, found)
        return found[0]

    explained = [json.loads(one(s, "explanation.json").read_text()) for s in runs]
    assert explained[0]["features"] and explained[0] == explained[1]
    # Every stored table (predictions too: --materialize all), bit for bit.
    stored = sorted((tmp_path / "served" / "artifacts").rglob("*.parquet"))
    assert len(stored) == len(list((tmp_path / "alone" / "artifacts").rglob("*.parquet")))
    for p in stored:
        twins = list(
            (tmp_path / "alone" / "artifacts").glob(f"{p.parts[-4]}/*/{p.parts[-2]}/{p.name}")
        )
        assert len(twins) == 1, p
        assert pq.read_table(p).equals(pq.read_table(twins[0])), p
    served, alone = (km.load_model(str(one(s, "model.keras"))) for s in runs)
    assert [layer.name for layer in served.layers] == [layer.name for layer in alone.layers]
    for a, b in zip(served.get_weights(), alone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
