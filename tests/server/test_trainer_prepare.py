"""The run that starts the server hints what it trained; the idle trainer prepares that
graph (``server._trainer._prepare``, ``keras_models.prepare``): the next run's training
of it is a reuse. In-process: the hint file, its reading, and the sink the starting run
installs (the end-to-end path runs in ``benchmarks.approx_fidelity``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helix_tf.components import keras_models as km, trainers
from helix_tf.server import _starting, _trainer
from tests.components import test_trainers as t


def _hinted() -> dict[str, Any]:
    learner, task, _ = t.CASES["linear-binary-l2"]
    features, x, y = t._data(task)
    training = km._training(learner, features, x, y, km.Head(), learner.epochs, "float32", True)
    return km._hint_of(training)


def _key(training: dict[str, Any]) -> str:
    return trainers.graph_key(
        training["learner"],
        training["features"],
        training["head"],
        policy=training["policy"],
        run_eagerly=training["run_eagerly"],
    )


def test_the_idle_trainer_prepares_the_hinted_graph_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    trainers.TRAINERS.clear()
    hints = _trainer.hint_path(tmp_path / "server.sock")
    assert not _trainer._prepare(hints)  # no hint: nothing (the tiny warm-up instead)
    hint = _hinted()
    assert len(hint["y"]) == km.HINT_ROWS  # a few rows travel, not the training's
    _trainer.HintFile(hints)(hint)
    assert hints.stat().st_mode & 0o077 == 0
    assert _trainer._prepare(hints)
    assert not hints.exists() and trainers.TRAINERS.holds(_key(hint))


def test_after_a_training_the_trainer_prepares_its_graph_once_that_run_has_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training the trainer served is prepared for a light training of its graph (a few
    of its rows), but only once the process that asked for it has ended: until then it may
    still ask for its model's predictions, which must not wait behind a preparation."""
    path = str(tmp_path / "t.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    code = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); input()"
    run = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE)
    try:
        sock, _ = listener.accept()
        assert _trainer._peer_pid(sock) == run.pid
        training = km._training(*_case_args(), light=False)
        after = _trainer._AfterRun(training, run.pid)
        assert len(after.training["y"]) == km.HINT_ROWS
        monkeypatch.setattr(_trainer, "AFTER_RUN_IDLE", 0.0)  # however long: it still lives
        assert not after.due()
        run.kill()
        deadline = time.monotonic() + 30
        while not after.due():  # a zombie (not reaped yet) has ended too
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sock.close()
    finally:
        run.kill()
        run.wait()
        listener.close()
    assert after.due()
    unknown = _trainer._AfterRun(training, None)  # no SO_PEERCRED: idle time decides
    assert unknown.due()
    monkeypatch.setattr(_trainer, "AFTER_RUN_IDLE", 3600.0)
    assert not unknown.due()


def test_the_trainer_prepares_its_first_training_and_all_once_approximate_runs_come() -> None:
    # (trainings served, of them light): exact-only users pay one preparation.
    assert _trainer._prepares(1, 0) and _trainer._prepares(1, 1)
    assert not _trainer._prepares(2, 0) and not _trainer._prepares(9, 0)
    assert _trainer._prepares(2, 1) and _trainer._prepares(9, 1)


def test_the_trainer_returns_the_training_it_served_and_nothing_for_other_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collections import OrderedDict

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    learner, features, x, y, head, epochs, policy = _case_args()
    training = km._training(learner, features, x, y, head, epochs, policy, light=True)
    recipe = {
        "learner": learner,
        "features": training["features"],
        "head": head,
        "policy": policy,
        "rescale": None,
    }
    kept: OrderedDict[str, Any] = OrderedDict()
    ours, theirs = (Connection(s.detach()) for s in socket.socketpair())
    ours.send({"training": training, "recipe": recipe, "progress": False})
    served = _trainer._handle(theirs, kept)  # the request as it arrived (a copy)
    assert served is not None and served["learner"] == learner and _key(served) == _key(training)
    assert len(served["y"]) == len(y)
    token = ours.recv()["model"]
    ours.send({"op": "predict", "model": token, "x": x, "task": "binary"})
    assert _trainer._handle(theirs, kept) is None and "scores" in ours.recv()
    ours.send({"op": "stats"})
    assert _trainer._handle(theirs, kept) is None


def _case_args() -> tuple[Any, ...]:
    learner, task, _ = t.CASES["linear-binary-l2"]
    features, x, y = t._data(task)
    return learner, features, x, y, km.Head(), learner.epochs, "float32"


def test_an_unreadable_hint_is_dropped(tmp_path: Path) -> None:
    hints = _trainer.hint_path(tmp_path / "server.sock")
    hints.write_bytes(b"not a pickle")
    assert not _trainer._prepare(hints) and not hints.exists()


def test_the_run_that_starts_the_server_hints_its_trainings_beside_its_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.server._protocol import socket_path

    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(tmp_path))
    monkeypatch.setattr(trainers, "_hint_sink", None)
    made: list[int] = []
    trainers.hint(lambda: made.append(1) or {})
    assert made == []  # no sink: the hint is not even made
    _starting._hint_trainings()
    trainers.hint(_hinted)
    assert _trainer.hint_path(socket_path()).exists()
    trainers.hint(lambda: 1 / 0)  # a failing hint never fails the run


@pytest.mark.slow
def test_a_served_edit_of_the_starting_run_reuses_the_trainer_prepared_for_it(
    tmp_path: Path, config: Path
) -> None:
    """Real processes: the run that starts the server hints its training, the idle
    trainer builds that graph, and the next run (a learning-rate edit, served) reuses
    it with the results of a run alone."""
    import json
    import time

    from tests.server import test_autostart as auto

    server_dir = tmp_path / "sock"
    env = {"HELIX_TF_SERVER": "on"}
    edit = ["-p", "learner.learning_rate=0.02"]
    try:
        first = auto._pipes(server_dir, "run", config, "--store", tmp_path / "s1", **env)
        assert first.returncode == 0 and auto.STARTED in first.stderr, first.stderr
        deadline = time.monotonic() + 240
        while not (
            (auto._status(server_dir, **env).get("trainer") or {}).get("trainers") or {}
        ).get("kept"):
            assert time.monotonic() < deadline, "the trainer prepared nothing"
            time.sleep(0.5)
        served = auto._pipes(
            server_dir, "run", config, *edit, "--store", tmp_path / "s2", "--json", **env
        )
        assert served.returncode == 0, served.stderr
        counts = auto._status(server_dir, **env)["trainer"]["trainers"]
        assert counts["builds"] == 1 and counts["reuses"] >= 1, counts
        alone = auto._pipes(
            server_dir, "run", config, *edit, "--store", tmp_path / "s3", "--json", "--no-server"
        )
        assert alone.returncode == 0, alone.stderr
        assert json.loads(served.stdout)["metrics"] == json.loads(alone.stdout)["metrics"]
    finally:
        for pid in auto._servers(server_dir):
            os.kill(pid, signal.SIGTERM)


def _train_in(kept: Any, training: dict[str, Any], peer: int | None) -> tuple[str, Any]:
    """One training handed to the trainer's handler for process ``peer``: (token, model)."""
    recipe = km.plain_recipe(training, None)
    ours, theirs = (Connection(s.detach()) for s in socket.socketpair())
    ours.send({"training": training, "recipe": recipe, "progress": False})
    assert _trainer._handle(theirs, kept, peer) is not None
    token = ours.recv()["model"]
    return token, kept[token].model


def _scores_as_built(model: Any, training: dict[str, Any], x: dict[str, Any]) -> None:
    """A reused model scores as one built from its weights for ``training`` does."""
    fresh = km.plain_model(km.plain_recipe(training, None), model.get_weights())
    np.testing.assert_array_equal(
        km.predict_scores(model, x, "binary", traced=True),
        km.predict_scores(fresh, x, "binary", traced=True),
    )


def _ended_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_a_model_whose_run_has_ended_holds_the_next_training_of_its_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody can ask for the model of a run that has ended: the next training of its
    graph takes that model object (no build) with its own weights, which score as a
    model built from them does; a live run's model is kept for it (the two latest)."""
    from collections import OrderedDict

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    learner, features, x, y, head, epochs, policy = _case_args()
    training = km._training(learner, features, x, y, head, epochs, policy, light=True)
    kept: OrderedDict[str, Any] = OrderedDict()
    _, alive = _train_in(kept, training, os.getpid())  # this process: alive
    _, second = _train_in(kept, training, os.getpid())
    assert second is not alive  # only one of its key kept, its run alive: a build
    ended_token, ended = _train_in(kept, training, _ended_pid())
    assert ended is alive  # two kept (their run alive): the older one recycled, as before
    import dataclasses

    edit = dataclasses.replace(learner, l2=0.02)
    edited = km._training(edit, features, x, y, head, epochs, policy, light=True)
    _, model = _train_in(kept, edited, os.getpid())
    assert model is ended and ended_token not in kept  # its run has ended: free
    assert any(e.model is second for e in kept.values())  # the live run's: kept
    _scores_as_built(model, edited, x)


def test_the_idle_trainer_builds_a_spare_model_for_a_prepared_graph_and_only_that_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After preparing a graph, the idle trainer builds the model its next training returns
    (inference traced): that training takes it; a training of another graph (another
    optimizer, features or head) never does; no second spare while a free one is kept."""
    from collections import OrderedDict

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    learner, features, x, y, head, epochs, policy = _case_args()
    training = km._training(learner, features, x, y, head, epochs, policy, light=True)
    kept: OrderedDict[str, Any] = OrderedDict()
    assert _trainer._keep_spare(kept, km._hint_of(training))
    assert not _trainer._keep_spare(kept, km._hint_of(training))  # one is free already
    (spare,) = [e.model for e in kept.values() if e.owner == _trainer.SPARE]
    import dataclasses

    two = {k: x[k] for k in ("num", "cat")}
    variants = [  # another optimizer, other features, another head
        (dataclasses.replace(learner, optimizer="ftrl"), features, x, head),
        (learner, features[:2], two, head),
        (learner, features, x, km.Head(task="multiclass", classes=3)),
    ]
    others = [km._training(a, f, xs, y, h, epochs, policy, light=True) for a, f, xs, h in variants]
    for other in others:
        assert _train_in(kept, other, os.getpid())[1] is not spare
        assert any(e.model is spare for e in kept.values())
    _, model = _train_in(kept, training, os.getpid())
    assert model is spare and all(e.owner != _trainer.SPARE for e in kept.values())
    _scores_as_built(model, training, x)
    regression = km._training(
        learner, features, x, y, km.Head(task="regression"), epochs, policy, light=True
    )
    assert not _trainer._keep_spare(kept, regression)  # its scale is known after training


def test_the_idle_trainer_traces_a_free_models_inference_instead_of_building_a_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model an exact run used was never traced; once its run has ended, the idle trainer
    traces its inference (kept on it) rather than building a spare. (A network: a linear
    model is scored in numpy, nothing to trace, ``components._linear_scores``.)"""
    from collections import OrderedDict

    monkeypatch.setenv("HELIX_TF_TRAINERS", "4")
    _, features, x, y, head, epochs, policy = _case_args()
    learner = t.CASES["dnn-dropout-regression"][0]
    head = km.Head()  # binary, as the case's labels
    training = km._training(learner, features, x, y, head, epochs, policy, light=False)
    kept: OrderedDict[str, Any] = OrderedDict()
    _, model = _train_in(kept, training, _ended_pid())
    assert not model.__dict__.get("_helix_scorers")
    assert not _trainer._keep_spare(kept, km._hint_of(training))
    assert len(kept) == 1 and model.__dict__.get("_helix_scorers")
