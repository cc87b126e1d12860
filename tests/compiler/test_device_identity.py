"""The device a learning stage computes on, and a multi-worker training's worker count,
join the learning nodes' fingerprints (QA pass 7; before, neither was hashed).

A model trained on a GPU is not what a CPU trains from the same examples (other kernels,
other float rounding), nor is one trained by 3 workers what 2 train: each worker takes a
slice of the global batch and the gradients' sums are added in another order. A reused
result must equal a fresh run, so a store shared by machines of different kinds (a team,
CI) must not hand one's model to the other. An x86-64 machine without GPUs (where every
earlier fingerprint was computed) adds nothing, so existing stores keep their results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.compiler import _runtime
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import compile_workflow

LEARNING = {"learner", "predictions", "evaluation"}


def _gpus(root: Path, *models: str) -> Path:
    """A fake driver listing: one folder per GPU, as /proc/driver/nvidia/gpus has."""
    for i, model in enumerate(models):
        folder = root / f"0000:{i:02x}:00.0"
        folder.mkdir(parents=True)
        (folder / "information").write_text(f"Model: \t\t {model}\nIRQ:   42\n")
    return root


def _fingerprints(tmp_path: Path, strategy: str | None = None) -> dict[str, str]:
    data = tmp_path / "train.csv"
    data.write_text("".join(f"{20 + i},{'ab'[i % 2]}\n" for i in range(12)))
    wf = Workflow("device")
    wf.source(
        "rows",
        sources.Csv(train=str(data), columns={"age": "int", "y": "string"}, test_fraction=0.5),
    )
    age = wf.feature("age", F.Numeric("age"))
    ex = wf.examples("examples", [age], label=F.Label("y", positive="a"))
    model = wf.train("learner", ex, learners.Linear(epochs=1, strategy=strategy))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, ex), metrics.AUC()))
    compiled = compile_workflow(wf, hasher=ContentHasher())
    return {n.name: n.fingerprint for n in compiled.nodes}


def test_gpus_change_the_learning_nodes_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(_runtime, "NVIDIA_GPUS", str(tmp_path / "none"), raising=False)
    cpu = _fingerprints(tmp_path)
    monkeypatch.setattr(_runtime, "NVIDIA_GPUS", str(_gpus(tmp_path / "one", "NVIDIA H200")))
    gpu = _fingerprints(tmp_path)
    assert {n for n in cpu if cpu[n] != gpu[n]} == LEARNING
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # TensorFlow sees no GPU: the CPU's
    assert _fingerprints(tmp_path) == cpu


def test_the_gpus_tensorflow_sees_are_the_device(tmp_path: Path):
    root = str(_gpus(tmp_path, "NVIDIA A100", "NVIDIA H200"))
    both = _runtime.device_identity({}, gpus_root=root)
    assert both["gpus"] == ["NVIDIA A100", "NVIDIA H200"]  # two replicas under "mirrored"
    assert _runtime.device_identity({"CUDA_VISIBLE_DEVICES": "1"}, gpus_root=root)["gpus"] == [
        "NVIDIA H200"
    ]
    assert "gpus" not in _runtime.device_identity({"CUDA_VISIBLE_DEVICES": ""}, gpus_root=root)
    deterministic = _runtime.device_identity({"TF_DETERMINISTIC_OPS": "1"}, gpus_root=root)
    assert deterministic != both  # other kernels on the GPU


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine of 4 CPUs that this process may use all of."""
    monkeypatch.setattr(_runtime.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(_runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


def test_an_x86_64_cpu_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, four_cpus: None
):
    """Fingerprints made before the device was hashed stay valid where they were made."""
    monkeypatch.setattr(_runtime.platform, "machine", lambda: "x86_64")
    assert _runtime.device_identity({}, gpus_root=str(tmp_path)) == {}
    monkeypatch.setattr(_runtime.platform, "machine", lambda: "arm64")
    assert _runtime.device_identity({}, gpus_root=str(tmp_path)) == {"machine": "arm64"}


def _tf_config(workers: int, index: int, chief: bool = False) -> str:
    cluster: dict[str, list[str]] = {"worker": [f"host{i}:2222" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["chief:2222"]
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


@settings(max_examples=10, deadline=None)
@given(a=st.integers(1, 4), b=st.integers(1, 4), i=st.integers(0, 3), j=st.integers(0, 3))
def test_the_worker_count_is_hashed_and_the_task_is_not(a: int, b: int, i: int, j: int):
    """For every pair of clusters: the same number of workers (whichever task this process
    is) plans with the same fingerprints; another number, with others."""
    first = _runtime.cluster_shape({"TF_CONFIG": _tf_config(a, min(i, a - 1))})
    second = _runtime.cluster_shape({"TF_CONFIG": _tf_config(b, min(j, b - 1))})
    assert (first == second) == (a == b)


def test_a_multi_worker_learner_is_identified_by_its_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TF_CONFIG", _tf_config(2, 0))
    two = _fingerprints(tmp_path, "multi-worker")
    monkeypatch.setenv("TF_CONFIG", _tf_config(2, 1))  # the other worker of the same cluster
    assert _fingerprints(tmp_path, "multi-worker") == two
    monkeypatch.setenv("TF_CONFIG", _tf_config(3, 0))
    three = _fingerprints(tmp_path, "multi-worker")
    assert {n for n in two if two[n] != three[n]} == LEARNING
    monkeypatch.setenv("TF_CONFIG", _tf_config(2, 0, chief=True))
    assert _fingerprints(tmp_path, "multi-worker")["learner"] not in (
        two["learner"],
        three["learner"],
    )


def test_a_learner_without_a_strategy_ignores_tf_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    alone = _fingerprints(tmp_path)
    monkeypatch.setenv("TF_CONFIG", _tf_config(3, 0))
    assert _fingerprints(tmp_path) == alone


def test_the_threads_one_op_is_split_over_are_the_device_when_not_every_cpu(
    monkeypatch: pytest.MonkeyPatch, four_cpus: None
):
    """A census DNN(128, 64) reaches test AUC 0.9065376045 on 1 thread and 0.9065375836 on
    2 (each bit-stable): an agent pinned to one core, ``taskset``, or
    ``TF_NUM_INTRAOP_THREADS`` below the machine's CPUs trains another model."""
    assert "threads" not in _runtime.device_identity({}, gpus_root="/nonexistent")
    assert "threads" not in _runtime.device_identity(
        {"TF_NUM_INTRAOP_THREADS": "4"}, gpus_root="/nonexistent"
    )
    one = {"TF_NUM_INTRAOP_THREADS": "1"}
    assert _runtime.device_identity(one, gpus_root="/nonexistent")["threads"] == 1
    monkeypatch.setattr(_runtime.os, "sched_getaffinity", lambda pid: {3})  # taskset -c 3
    assert _runtime.device_identity({}, gpus_root="/nonexistent")["threads"] == 1
    zero = {"TF_NUM_INTRAOP_THREADS": "0"}  # TensorFlow's "default": the affinity's CPUs
    assert _runtime.device_identity(zero, gpus_root="/nonexistent")["threads"] == 1


def test_fewer_training_threads_change_the_learning_nodes_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, four_cpus: None
):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    every = _fingerprints(tmp_path)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    one = _fingerprints(tmp_path)
    assert {n for n in every if every[n] != one[n]} == LEARNING
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "4")
    assert _fingerprints(tmp_path) == every


@pytest.mark.parametrize("strategy", ["one-device", "mirrored"])
def test_a_learner_that_may_stream_names_the_rule_it_streams_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
):
    """Streamed and in-memory trainings give other bits, and a strategy learner streams
    by its examples' file bytes, which session 11's encoding made ~2.4x smaller: a model
    trained under the old rule is not reused. Learners without a strategy never stream:
    their fingerprints stay as they were."""
    from helix_tf.compiler import _identity

    monkeypatch.delenv("TF_CONFIG", raising=False)
    plain, with_strategy = _fingerprints(tmp_path), _fingerprints(tmp_path, strategy)
    monkeypatch.setattr(_identity, "STREAMING_RULE", "parquet-bytes-1")
    assert _fingerprints(tmp_path) == plain
    older = _fingerprints(tmp_path, strategy)
    assert {n for n in older if older[n] != with_strategy[n]} == LEARNING
