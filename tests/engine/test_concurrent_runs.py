"""Real processes on one store: concurrent runs and runs killed with SIGKILL.

Two runs at once never corrupt an entry or write one twice; a run killed mid-write or
after its first commit leaves nothing that loads as complete, the next run is correct and
reclaims what the killed ones left, and history marks them killed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helix_tf.reuse.metadata import MetadataStore
from helix_tf.reuse.store import ArtifactStore
from helix_tf.sample_data import write_census_like

CONFIG = """
from helix_tf import Workflow, features as F, learners, metrics, sources
from helix_tf.sample_data import CENSUS_COLUMNS

PARAMS = {"train": "", "test": ""}


def workflow(params):
    wf = Workflow("concurrent")
    wf.source("rows", sources.Csv(
        train=params.train, test=params.test, columns=CENSUS_COLUMNS, skip_lines={"test": 1},
        replace={"income": {">50K.": ">50K", "<=50K.": "<=50K"}}))
    feats = [wf.feature("age", F.Numeric("age")),
             wf.feature("education", F.Vocabulary("education")),
             wf.feature("occupation", F.Vocabulary("occupation"))]
    ex = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
    model = wf.train("learner", ex, learners.Linear(l2=1e-4, epochs=2, batch_size=256))
    preds = wf.predict("predictions", model, ex)
    wf.output(wf.evaluate("evaluation", preds, metrics.Accuracy(), metrics.LogLoss()))
    return wf
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("procs")
    train, test = write_census_like(root / "data", train_rows=3000, test_rows=800, seed=11)
    config = root / "concurrent.py"
    config.write_text(CONFIG)
    return {"root": str(root), "config": str(config), "train": str(train), "test": str(test)}


def _cmd(setup: dict[str, str], store: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "helix_tf.cli",
        "run",
        setup["config"],
        "--json",
        "--store",
        store,
        "--materialize",
        "all",
        "-p",
        f"train={setup['train']}",
        "-p",
        f"test={setup['test']}",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _assert_store_sound(store: str) -> None:
    s = ArtifactStore(store)
    for manifest in s.entries():
        assert s.open_local(manifest, verify=True) is not None, manifest.fingerprint
        data_dirs = [
            p for p in (Path(store) / "artifacts" / manifest.fingerprint).iterdir() if p.is_dir()
        ]
        assert len(data_dirs) == 1, f"{manifest.fingerprint} written {len(data_dirs)} times"


@pytest.fixture
def fresh(setup: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A run from an empty store of its own, started as the test starts: it runs beside
    the test's runs (another store: it never sees them) and is stopped if the test fails."""
    store = str(tmp_path / "fresh")
    proc = subprocess.Popen(
        _cmd(setup, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _fresh_metrics(fresh: subprocess.Popen[str]) -> dict[str, float]:
    """The metrics of the run :func:`fresh` started, once it has ended."""
    out, err = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, err[-2000:]
    return json.loads(out)["metrics"]


@pytest.mark.slow
def test_two_runs_at_once_share_one_store_safely(
    setup: dict[str, str], fresh: subprocess.Popen[str]
) -> None:
    store = str(Path(setup["root"]) / "shared")
    procs = [
        subprocess.Popen(
            _cmd(setup, store),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    metrics = [json.loads(o[0])["metrics"] for o in outs]
    assert metrics[0] == metrics[1] == _fresh_metrics(fresh)
    _assert_store_sound(store)


def _aim(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Wait until ``ready()`` (the run got that far) while the run is still going."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before the moment aimed at"
        assert time.monotonic() < deadline, "the run never got to the moment aimed at"
        time.sleep(0.01)


def _staged_files(store: Path) -> list[Path]:
    """Files under the store's staging folder; polled while a run renames and removes
    them, so a folder that vanishes mid-walk is skipped (os.walk ignores it)."""
    return [Path(d, f) for d, _, files in os.walk(store / "staging") for f in files]


def _manifests(store: Path) -> int:
    return len(list(store.glob("artifacts/*/MANIFEST.json")))


@pytest.mark.slow
@pytest.mark.ci
def test_a_run_killed_at_any_moment_leaves_the_store_sound(
    setup: dict[str, str], fresh: subprocess.Popen[str], tmp_path: Path
) -> None:
    store = Path(setup["root"]) / "killed"
    scratch = tmp_path / "scratch"
    rng = random.Random(7)
    killed = 0
    # Two kills mid-write (while nothing is committed yet, the pipeline stages its
    # outputs), one after the run's first commit (then it trains), one at a random
    # moment of a run that loads its preprocessing and trains.
    for aim in ("mid-write", "mid-write", "after-commit", "random"):
        committed = _manifests(store) if store.exists() else 0
        staged_before = set(_staged_files(store)) if store.exists() else set()
        leases_before = set((store / "runs").glob("*.json"))
        proc = subprocess.Popen(
            [*_cmd(setup, str(store)), "--scratch", str(scratch)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        if aim == "mid-write":
            assert committed == 0
            _aim(proc, lambda b=staged_before: bool(set(_staged_files(store)) - b))
            # Preprocessing without Beam stages and commits within ~0.1 s here.
            time.sleep(rng.uniform(0.0, 0.02))
        elif aim == "after-commit":
            _aim(proc, lambda c=committed: _manifests(store) > c)
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            _aim(proc, lambda b=leases_before: bool(set((store / "runs").glob("*.json")) - b))
            time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Killed by the signal, not ended on its own: it was alive, mid-run.
        assert proc.returncode == -signal.SIGKILL
        killed += 1
        _assert_store_sound(str(store))
    out = subprocess.run(
        [*_cmd(setup, str(store)), "--scratch", str(scratch)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["metrics"] == _fresh_metrics(fresh)
    _assert_store_sound(str(store))
    # The run reclaimed what the killed ones left: staging, leases, scratch folders.
    assert _staged_files(store) == []
    assert list((store / "runs").iterdir()) == []
    assert list(scratch.iterdir()) == []
    verify = subprocess.run(
        [sys.executable, "-m", "helix_tf.cli", "store", "verify", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["clean"] is True
    with MetadataStore(f"sqlite:///{store / 'metadata.db'}") as md:
        statuses = [r.status for r in md.runs("concurrent")]
    # Every killed run that got as far as being recorded reads as killed (the random
    # kill may land before its run is recorded).
    assert statuses[0] == "ok" and "running" not in statuses, statuses
    assert killed - 1 <= statuses.count("killed") <= killed, statuses
