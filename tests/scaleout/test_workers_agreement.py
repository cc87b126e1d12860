"""The workers of a multi-worker run agree on the learners' decision through the store
(:mod:`helix_tf._workers`): the chief's decision wins, files left by earlier or dead
runs never count, and every wait ends with an error naming what it waited for."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helix_tf import _workers
from helix_tf.components.distributed import ClusterTask, cluster_task
from helix_tf.errors import ConfigError, ExecutionError
from helix_tf.reuse.store import ArtifactStore
from helix_tf.roles import Role

WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}

#: A compiled workflow as far as the agreement reads it: one multi-worker learner.
COMPILED: Any = SimpleNamespace(
    nodes=[
        SimpleNamespace(name="examples", role=Role.EXAMPLES, fingerprint="ex1", op=None),
        SimpleNamespace(
            name="learner",
            role=Role.TRAIN,
            fingerprint="fp-learner",
            op=SimpleNamespace(strategy="multi-worker"),
        ),
    ]
)


def _task(index: int, cluster: dict[str, list[str]] = WORKERS) -> ClusterTask:
    return cluster_task(
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    )


def _decisions(plan: dict[str, str]) -> list[Any]:
    return [SimpleNamespace(name=k, state=v) for k, v in plan.items()]


def _agree(
    store: ArtifactStore,
    index: int,
    plan: dict[str, str],
    replan: Callable[[frozenset[str]], dict[str, str]] | None = None,
    timeout: float = 30.0,
) -> tuple[dict[str, str], dict[str, str]]:
    def no_replan(fps: frozenset[str]) -> dict[str, str]:
        raise AssertionError(f"unexpected replan {fps}")

    return _workers.agree(
        store,
        _task(index),
        COMPILED,
        plan,
        _decisions,
        replan or no_replan,
        timeout=timeout,
    )


def _both(
    store: ArtifactStore, chief: Callable[[], Any], other: Callable[[], Any]
) -> dict[str, Any]:
    """Run the chief and the other worker at once; each one's result or exception."""
    out: dict[str, Any] = {}

    def call(key: str, fn: Callable[[], Any]) -> None:
        try:
            out[key] = fn()
        except Exception as exc:  # the test inspects it
            out[key] = exc

    threads = [
        threading.Thread(target=call, args=(k, f)) for k, f in (("chief", chief), ("other", other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "store"))


def test_a_worker_trains_what_its_chief_trains(store: ArtifactStore) -> None:
    """The chief trains the learner, the other worker's own plan would load it: it plans
    again with the learner counted as not stored, and trains too."""
    asked: list[frozenset[str]] = []

    def replan(fps: frozenset[str]) -> dict[str, str]:
        asked.append(fps)
        return {"examples": "load", "learner": "compute"}

    out = _both(
        store,
        lambda: _agree(store, 0, {"examples": "compute", "learner": "compute"}),
        lambda: _agree(store, 1, {"examples": "load", "learner": "load"}, replan),
    )
    assert out["chief"][1] == out["other"][1] == {"learner": "compute"}
    assert out["other"][0] == {"examples": "load", "learner": "compute"}
    assert asked == [frozenset({"fp-learner"})]


def test_a_chief_that_loads_keeps_every_worker_out_of_training(store: ArtifactStore) -> None:
    out = _both(
        store,
        lambda: _agree(store, 0, {"examples": "load", "learner": "load"}),
        lambda: _agree(store, 1, {"examples": "load", "learner": "load"}),
    )
    assert out["chief"][1] == out["other"][1] == {"learner": "load"}


def test_a_worker_that_cannot_follow_stops_both_at_once(store: ArtifactStore) -> None:
    """The chief loads the learner, the other worker (its store lacks it) would train
    it: neither trains (each would wait for the other without end); both fail, naming why."""
    out = _both(
        store,
        lambda: _agree(store, 0, {"examples": "load", "learner": "load"}),
        lambda: _agree(store, 1, {"examples": "compute", "learner": "compute"}),
    )
    for key in ("chief", "other"):
        assert isinstance(out[key], ExecutionError), out[key]
        assert "worker 1 cannot follow the chief's plan" in str(out[key])
        assert "learner (chief: load, this worker: compute)" in str(out[key])
        assert "--store" in str(out[key])


def test_files_of_an_earlier_run_never_count(store: ArtifactStore) -> None:
    """An earlier run (same cluster, same learner) left its plan ("compute") and its go:
    a worker started before this run's chief waits for it and follows its "load"."""
    first = _both(
        store,
        lambda: _agree(store, 0, {"examples": "compute", "learner": "compute"}),
        lambda: _agree(store, 1, {"examples": "compute", "learner": "compute"}),
    )
    assert first["other"][1] == {"learner": "compute"}
    chief_started = threading.Event()

    def late_chief() -> Any:
        chief_started.wait(5)
        return _agree(store, 0, {"examples": "load", "learner": "load"})

    def early_worker() -> Any:
        threading.Timer(1.5, chief_started.set).start()
        return _agree(store, 1, {"examples": "load", "learner": "load"})

    second = _both(store, late_chief, early_worker)
    assert second["chief"][1] == second["other"][1] == {"learner": "load"}


def test_a_lone_chief_gives_up_naming_the_missing_worker(store: ArtifactStore) -> None:
    with pytest.raises(
        ExecutionError, match=r"chief \(worker 0\) waited 1s for worker 1 of TF_CONFIG"
    ):
        _agree(store, 0, {"examples": "compute", "learner": "compute"}, timeout=1.0)


def test_a_lone_worker_gives_up_naming_the_chief(store: ArtifactStore) -> None:
    with pytest.raises(
        ExecutionError,
        match=r"worker 1 of TF_CONFIG waited 1s for the chief \(worker 0\) to publish",
    ):
        _agree(store, 1, {"examples": "compute", "learner": "compute"}, timeout=1.0)


def test_a_plan_without_go_from_a_dead_chief_is_not_followed(store: ArtifactStore) -> None:
    """A chief that published and stopped: its plan is answered, never confirmed."""
    with pytest.raises(ExecutionError, match="waited"):
        _agree(store, 0, {"examples": "compute", "learner": "compute"}, timeout=0.5)
    with pytest.raises(ExecutionError, match=r"chief \(worker 0\) to confirm its plan"):
        _agree(store, 1, {"examples": "compute", "learner": "compute"}, timeout=1.0)


def test_a_later_plan_must_keep_the_agreed_training() -> None:
    agreed = {"learner": "compute"}
    _workers.check_agreed(agreed, _decisions({"learner": "compute"}), _task(0))
    with pytest.raises(ExecutionError, match="learner: compute agreed, load now"):
        _workers.check_agreed(agreed, _decisions({"learner": "load"}), _task(0))


@pytest.mark.parametrize(
    ("cluster", "task", "name", "chief"),
    [
        (WORKERS, {"type": "worker", "index": 0}, "worker 0", True),
        (WORKERS, {"type": "worker", "index": 1}, "worker 1", False),
        ({"chief": ["h:1"], "worker": ["h:2"]}, {"type": "chief", "index": 0}, "chief 0", True),
        ({"chief": ["h:1"], "worker": ["h:2"]}, {"type": "worker", "index": 0}, "worker 0", False),
    ],
)
def test_the_chief_is_tensorflows(
    cluster: dict[str, list[str]], task: dict[str, Any], name: str, chief: bool
) -> None:
    got = cluster_task(json.dumps({"cluster": cluster, "task": task}))
    assert (got.name, got.is_chief) == (name, chief)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "needs the TF_CONFIG environment variable"),
        ("{not json", "not a cluster description"),
        ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "no chief or worker"),
        (
            '{"cluster": {"worker": ["h:1"], "evaluator": ["h:2"]}, '
            '"task": {"type": "evaluator", "index": 0}}',
            "chief and worker tasks only",
        ),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 3}}', "worker 3"),
    ],
)
def test_bad_tf_config_is_named(raw: str, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(ConfigError, match=match):
        cluster_task()
