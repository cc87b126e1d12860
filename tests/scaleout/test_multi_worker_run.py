"""``helix-tf run`` with ``strategy=multi-worker`` on two local processes (TF_CONFIG):
the launch recipe README gives, checked end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(config: Path, store: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helix_tf.cli",
            "run",
            str(config),
            "-p",
            "learner.strategy=multi-worker",
            "--json",
            "--no-server",
            "--store",
            str(store),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_two_workers_run_the_workflow_and_train_one_model(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    """Each worker runs the same ``helix-tf run`` (its own store: only the chief's is kept);
    training is one synchronous job over both, so both report the chief's metrics."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        procs.append(_run(tiny_census_config, tmp_path / f"store-{index}", env))
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err.decode()[-3000:]
        outputs.append(json.loads(out))
    chief, other = outputs
    assert chief["metrics"] == other["metrics"] and chief["metrics"]
    states = {n["name"]: n["state"] for n in chief["nodes"]}
    assert states["learner"] == "compute"
