"""Reused trainers (helix_tf.components.trainers) give a fresh process' bits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helix_tf.components import learners


@pytest.fixture(autouse=True)
def _kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainers are kept, as in the server's trainer (a plain process keeps none)."""
    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")


ROWS = 480


def _data(task: str) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(7)
    features: list[dict[str, Any]] = [
        {"name": "num", "kind": "numeric"},
        {"name": "cat", "kind": "categorical", "size": 6},
        {"name": "tags", "kind": "bag", "size": 5},
    ]
    x = {
        "num": rng.normal(size=(ROWS, 1)).astype(np.float32),
        "cat": rng.integers(0, 6, size=(ROWS, 1)).astype(np.int32),
        "tags__idx": rng.integers(0, 5, size=(ROWS, 3)).astype(np.int32),
        "tags__val": rng.random(size=(ROWS, 3)).astype(np.float32),
    }
    signal = x["num"][:, 0] + (x["cat"][:, 0] % 3) - 1
    if task == "binary":
        y = (signal + rng.normal(size=ROWS) * 0.5 > 0).astype(np.float32)
    elif task == "multiclass":
        y = np.digitize(signal, [-0.5, 0.5]).astype(np.float32)
    else:
        y = (3 * signal + 10).astype(np.float32)
    return features, x, y


#: name: (learner, task, precision). Graph mode unless the steps are few (eager).
CASES: dict[str, tuple[Any, str, str]] = {
    "linear-binary-l2": (learners.Linear(l2=1e-3, epochs=2, batch_size=32), "binary", "fp32"),
    "linear-ftrl-multiclass": (
        learners.Linear(optimizer="ftrl", l1=0.01, learning_rate=0.2, epochs=2, batch_size=32),
        "multiclass",
        "fp32",
    ),
    "dnn-dropout-regression": (
        learners.DNN(hidden=(8, 4), embedding_dim=3, dropout=0.2, epochs=2, batch_size=32),
        "regression",
        "fp32",
    ),
    "widedeep-binary": (
        learners.WideDeep(
            hidden=(8,), embedding_dim=2, wide=("cat", "tags"), epochs=2, batch_size=32
        ),
        "binary",
        "fp32",
    ),
    "dnn-bf16-multiclass": (
        learners.DNN(hidden=(8,), embedding_dim=2, epochs=2, batch_size=32, optimizer="adagrad"),
        "multiclass",
        "bf16",
    ),
    "linear-eager-binary": (learners.Linear(epochs=1, batch_size=240), "binary", "fp32"),
    # Both penalties on the wide part (L1L2), L2 on the hidden layers.
    "widedeep-l1l2-binary": (
        learners.WideDeep(
            hidden=(8,), embedding_dim=2, wide=("cat",), l1=1e-3, l2=2e-3, epochs=2, batch_size=32
        ),
        "binary",
        "fp32",
    ),
}


def _train(
    name: str, *, light: bool = False, **change: Any
) -> tuple[list[np.ndarray], dict[str, Any], Any]:
    import dataclasses

    from helix_tf.components import keras_models as km

    learner, task, precision = CASES[name]
    learner = dataclasses.replace(learner, **change)
    features, x, y = _data(task)
    head = km.Head(task=task, classes=3)
    losses: list[float] = []
    model, stats = km.train_model(
        learner,
        features,
        x,
        y,
        head=head,
        precision=precision,
        on_epoch=lambda e, n, loss, s: losses.append(loss),
        light=light,
    )
    scores = km.predict_scores(model, x, task)
    weights = [np.asarray(w) for w in model.get_weights()]
    return weights, {**stats, "losses": losses, "model": model}, scores


def _start_fresh_process(tmp: Path) -> subprocess.Popen[bytes]:
    """Start training every case in a new process, nothing kept (HELIX_TF_TRAINERS=0: the
    model returned is the trainer's own, not a copy), by Keras' fit and by the light loop
    of approximate runs (``NAME.light``); :func:`_fresh_results` reads what it wrote."""
    code = (
        "import json, sys, numpy as np\n"
        "from tests.components import test_trainers as t\n"
        "out = {}\n"
        "for name in t.CASES:\n"
        "  for light in (False, True):\n"
        "    w, stats, scores = t._train(name, light=light)\n"
        "    name_as = name + ('.light' if light else '')\n"
        "    np.savez(sys.argv[1] + '/' + name_as + '.npz', *w, scores=scores)\n"
        "    out[name_as] = {k: v for k, v in stats.items() if k != 'model'}\n"
        "json.dump(out, open(sys.argv[1] + '/stats.json', 'w'))\n"
    )
    env = {**os.environ, "HELIX_TF_TRAINERS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    return subprocess.Popen([sys.executable, "-c", code, str(tmp)], env=env, cwd=root)


def _fresh_results(proc: subprocess.Popen[bytes], tmp: Path) -> dict[str, Any]:
    """The stats of the process :func:`_start_fresh_process` started, once it has ended
    (its weights and scores are in ``tmp/NAME.npz``)."""
    assert proc.wait(timeout=900) == 0
    return json.loads((tmp / "stats.json").read_text())


def _fresh_process(tmp: Path) -> dict[str, Any]:
    """Every case trained in a new process (:func:`_start_fresh_process`), waited for."""
    return _fresh_results(_start_fresh_process(tmp), tmp)


@pytest.fixture
def fresh_process(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The fresh process, started as the test starts (it trains beside the test)."""
    proc = _start_fresh_process(tmp_path)
    yield proc
    if proc.poll() is None:  # the test failed before waiting for it
        proc.kill()
    proc.wait()


@pytest.mark.slow
@pytest.mark.ci
def test_a_reused_trainer_gives_a_fresh_process_bits(
    tmp_path: Path, fresh_process: subprocess.Popen[bytes]
) -> None:
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.clear()
    got = {}
    for name, (learner, _, _) in CASES.items():
        # The same graph trained first with other run-time parameters (penalty strengths
        # too: a zero one stays zero): its trainer is traced, has moved its weights,
        # optimizer slots and step count, and is kept. Each loop after the other: an
        # exact run's fit after an approximate run's light loop on one trainer, and back.
        for i, light in enumerate((True, False, True)):
            _train(
                name,
                light=not light,
                learning_rate=learner.learning_rate * 3,
                epochs=learner.epochs + 1,
                l1=learner.l1 * 3,
                l2=learner.l2 * 3,
            )
            reuses = TRAINERS.stats()["reuses"]
            weights, stats, scores = _train(name, light=light)
            assert TRAINERS.stats()["reuses"] == reuses + 1, name
            stats.pop("model")
            got[name, i] = (name + (".light" if light else ""), weights, stats, scores)
    fresh = _fresh_results(fresh_process, tmp_path)
    for name_as, weights, stats, scores in got.values():
        stored = np.load(tmp_path / f"{name_as}.npz")
        assert len(weights) == len(stored.files) - 1, name_as
        for i, w in enumerate(weights):
            np.testing.assert_array_equal(w, stored[f"arr_{i}"], err_msg=f"{name_as} weight {i}")
        np.testing.assert_array_equal(scores, stored["scores"], err_msg=name_as)
        assert stats == fresh[name_as], name_as


def test_a_change_of_the_graph_builds_a_new_trainer() -> None:
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.clear()
    start = TRAINERS.stats()
    _train("linear-binary-l2")
    _train("linear-binary-l2", learning_rate=0.5, epochs=3)  # run-time: reused
    _train("linear-binary-l2", l2=1e-2)  # a penalty's strength, a variable: reused
    _train("linear-binary-l2", l2=0.0)  # the penalty term gone: a new graph
    _train("linear-binary-l2", l1=1e-2)  # an L1 term added: a new graph
    _train("linear-binary-l2", seed=3)  # other initial weights
    _train("linear-binary-l2", optimizer="sgd")
    end = TRAINERS.stats()
    assert end["builds"] - start["builds"] == 5
    assert end["reuses"] - start["reuses"] == 2


def test_an_ftrl_penalty_edit_reuses_the_trainer_and_a_saved_model_keeps_its_strengths(
    tmp_path: Path,
) -> None:
    from helix_tf.components import keras_models as km
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.clear()
    _train("linear-ftrl-multiclass")
    reuses = TRAINERS.stats()["reuses"]
    _train("linear-ftrl-multiclass", l1=0.5)  # l2 stays 0: the same graph
    assert TRAINERS.stats()["reuses"] == reuses + 1
    _, stats, _ = _train("linear-binary-l2", l2=0.125)
    km.save_model(stats["model"], str(tmp_path / "m.keras"))
    loaded = km.load_model(str(tmp_path / "m.keras"))
    regularizers = {
        layer.name: layer.regularizer.get_config()
        for layer in loaded.layers
        if getattr(layer, "regularizer", None) is not None
    }
    assert regularizers and all(
        c == {"l1": 0.0, "l2": 0.125, "form": "l1l2"} for c in regularizers.values()
    )


def test_a_returned_model_is_never_changed_by_a_later_training() -> None:
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.clear()
    _, stats, _ = _train("linear-binary-l2")
    model = stats["model"]
    kept = [np.array(w) for w in model.get_weights()]
    _train("linear-binary-l2", learning_rate=0.3)  # reuses the trainer
    assert TRAINERS.stats()["reuses"] >= 1
    for a, b in zip(model.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_plain_process_keeps_no_trainer_and_a_long_lived_one_a_bounded_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from helix_tf.components.trainers import Trainer, TrainerCache

    monkeypatch.delenv("HELIX_TF_TRAINERS")
    cache = TrainerCache()
    one = Trainer(model=None, initial=[], random_state=(None, None, None))  # no penalties
    assert cache.capacity == 0 and not cache.give_back("a", one)
    cache.keep(2)
    assert all(
        cache.give_back(k, Trainer(model=k, initial=[], random_state=one.random_state))
        for k in "abc"
    )
    assert cache.stats()["kept"] == 2 and cache.take("a") is None  # least recently used: gone
    assert cache.take("c") is not None and cache.take("c") is None  # taken out while it trains
    monkeypatch.setenv("HELIX_TF_TRAINERS", "0")
    assert cache.capacity == 0


def test_the_light_loop_trains_without_keras_fit_and_learns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An approximate run's training (``light``) never enters Keras' fit (its tf.data
    adapter is most of a sample's training); it is seeded and learns as fit does."""
    from helix_tf.components import keras_models as km
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.clear()
    keras = km._k()

    def no_fit(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an approximate run's training called Keras' fit")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    for name in ("linear-binary-l2", "linear-eager-binary", "dnn-dropout-regression"):
        learner = CASES[name][0]
        first, stats, _ = _train(name, light=True, epochs=learner.epochs + 2)
        again, _, _ = _train(name, light=True, epochs=learner.epochs + 2)
        assert stats["losses"][-1] < stats["losses"][0], name
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


_PREPARE = """
import sys
from helix_tf.components import keras_models, learners, trainers

class Elsewhere:  # another process' trainer: ready or not
    def __init__(self, ready):
        self._ready = ready
    def ready(self):
        return self._ready
    def train(self, training, on_epoch, recipe):
        return None
    def call(self, request):
        return None

trainers.use_remote(None if sys.argv[1] == "none" else Elsewhere(sys.argv[1] == "ready"))
keras_models.prepare_training(learners.Linear())
print("tensorflow" in sys.modules)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("remote", "imported"),
    [pytest.param("ready", False, marks=pytest.mark.ci), ("not-ready", True), ("none", True)],
)
def test_a_training_that_goes_elsewhere_imports_no_tensorflow_here(
    remote: str, imported: bool
) -> None:
    # The first run hands its training to the trainer of the server it started (once
    # ready) instead of importing TensorFlow too; when it is not ready, it imports here.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE, remote],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(imported)


def _model_file(path: Path) -> tuple[Any, dict[str, bytes]]:
    """A ``.keras`` file's configuration (without Keras' per-process object ids) and its
    weights file's arrays by name, as bytes."""
    import io
    import zipfile

    import h5py

    def scrub(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: scrub(v) for k, v in o.items() if k != "shared_object_id"}
        return [scrub(v) for v in o] if isinstance(o, list) else o

    with zipfile.ZipFile(path) as z:
        config = scrub(json.loads(z.read("config.json")))
        arrays: dict[str, bytes] = {}
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            f.visititems(
                lambda n, o: (
                    arrays.__setitem__(n, np.asarray(o).tobytes())
                    if isinstance(o, h5py.Dataset)
                    else None
                )
            )
    return config, arrays


@pytest.mark.parametrize("name", ["linear-binary-l2", "widedeep-binary", "dnn-bf16-multiclass"])
def test_a_plain_process_saves_the_model_a_kept_trainers_copy_saves(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain process returns the compiled model it trained; its ``.keras`` file held the
    compile configuration and the optimizer's slots, which a served run's (the trainer's
    copy) never did: one training, two files (QA 24)."""
    from helix_tf.components import keras_models as km

    files = []
    for kept in ("0", "4"):  # a plain process; a long-lived one (the server's trainer)
        monkeypatch.setenv("HELIX_TF_TRAINERS", kept)
        _, stats, _ = _train(name)
        km.save_model(stats["model"], str(tmp_path / f"{kept}.keras"))
        files.append(_model_file(tmp_path / f"{kept}.keras"))
    (plain_config, plain_arrays), (copy_config, copy_arrays) = files
    assert not plain_config.get("compile_config")  # no optimizer, loss, metrics
    assert not [n for n in plain_arrays if n.startswith("optimizer")]
    assert plain_config == copy_config
    assert plain_arrays == copy_arrays


@pytest.mark.parametrize("name", ["linear-binary-l2", "dnn-dropout-regression"])
def test_a_training_ignores_the_process_default_float_type(name: str) -> None:
    """A config that set Keras' ``floatx`` to float64 failed a local run's training (a
    float32 sum in a float64 list), while a served run trained in the server's trainer,
    which never saw it (QA 24): a training is built under float32 wherever it runs."""
    import keras

    from helix_tf.components.trainers import TRAINERS

    TRAINERS.clear()
    weights, stats, scores = _train(name)
    TRAINERS.clear()
    keras.config.set_floatx("float64")
    try:
        again, stats_again, scores_again = _train(name)
        assert keras.config.floatx() == "float64"  # the process' own, as it was
    finally:
        keras.config.set_floatx("float32")
    assert [w.tobytes() for w in again] == [w.tobytes() for w in weights]
    assert stats_again["losses"] == stats["losses"]
    np.testing.assert_array_equal(scores_again, scores)
