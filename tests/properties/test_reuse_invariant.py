"""The reuse invariant (DESIGN §3): a run that reuses stored results produces exactly
the outputs of the same run from an empty store.

A small census workflow reads, besides its parameters, everything issue 12 found
stale results through: a module beside the config holding a long compiled regular
expression and a seeded generator, an environment variable, a JSON file opened by a
cached helper, and its data file (edited in place, size kept, mtime set back). Each
generated edit flips one of these and must change values (the fresh runs before and
after it differ). After every edit, against the example's own store:

* the run's per-node fingerprints equal a fresh compilation's (no memo, new process
  state), so no identity is stale;
* its metrics equal a run from an empty store, to the bit: one metric is a digest of
  the predictions' bytes;
* reuse happened where it must: with every result stored (policy ``all``), a node
  whose fingerprint an earlier step computed is never computed again.

``test_every_edit_class_in_one_walk`` flips every class once (what CI runs); the
hypothesis test draws random sequences under both policies (``HELIX_INVARIANT_EXAMPLES``,
default 3; slow, out of CI, where ``test_reuse_tasks.py`` draws random sequences under
both policies and ``test_reuse_examples.py`` walks the census example's edits).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helix_tf import api
from helix_tf.compiler import content
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.graph import compile_workflow
from helix_tf.config import load_config
from helix_tf.results import RunResult
from helix_tf.sample_data import write_census_like

ENV = "HELIX_INVARIANT_AGE_STEP"

CONFIG = textwrap.dedent(
    f"""
    import copy
    import functools
    import hashlib
    import json
    import os

    import numpy as np
    from mylib import PATTERN, RNG

    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import CENSUS_COLUMNS

    PARAMS = {{"std": True, "min_count": 1, "offset": 0, "cross": False, "l2": 1e-4,
              "threshold": 0.5, "train": "", "test": ""}}
    LOOKUP = os.path.join(os.path.dirname(__file__), "weights.json")


    @functools.lru_cache
    def weights():
        with open(LOOKUP) as f:
            return json.load(f)


    def prediction_digest(y_true, y_score, frame):
        data = np.asarray(y_score, dtype=np.float64).tobytes()
        return float(int(hashlib.sha256(data).hexdigest()[:12], 16))


    def workflow(params):
        wf = Workflow("tiny")
        wf.source("rows", sources.Csv(
            train=params.train, test=params.test, columns=CENSUS_COLUMNS,
            skip_lines={{"test": 1}},
            replace={{"income": {{">50K.": ">50K", "<=50K.": "<=50K"}}}}))
        offset = params.offset

        @wf.udf("hours_bucket", batched=True)
        def hours_bucket(batch):
            return ((batch["hours_per_week"].fillna(0) + offset) // 10).clip(0, 9)

        @wf.udf("sales_like", batched=True)
        def sales_like(batch):
            return batch["occupation"].fillna("").str.contains(PATTERN).astype(float)

        @wf.udf("age_step", batched=True)
        def age_step(batch):
            return batch["age"].fillna(0) // float(os.environ.get("{ENV}", "10"))

        @wf.udf("edu_weight", batched=True)
        def edu_weight(batch):
            return batch["education"].map(weights()).fillna(0.0).astype(float)

        @wf.udf("jitter", batched=True)
        def jitter(batch):
            table = copy.deepcopy(RNG).integers(0, 5, size=100)  # the same draws every batch
            return table[batch["age"].fillna(0).astype(int).clip(0, 99).to_numpy()]

        age = wf.feature("age", F.Numeric("age", standardize=params.std))
        edu = wf.feature("education", F.Vocabulary("education", min_count=params.min_count))
        occ = wf.feature("occupation", F.Vocabulary("occupation"))
        feats = [age, edu, occ]
        for udf in (hours_bucket, sales_like, age_step, edu_weight, jitter):
            feats.append(wf.feature(udf.name + "_x", F.Numeric(udf, standardize=False)))
        if params.cross:
            feats.append(wf.feature("edu_x_occ", F.Cross([edu, occ], buckets=50)))
        ex = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
        model = wf.train("learner", ex, learners.Linear(l2=params.l2, epochs=1, batch_size=128))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate(
            "evaluation", preds, metrics.Accuracy(threshold=params.threshold), metrics.AUC(),
            metrics.LogLoss(), metrics.Custom(name="predictions_sha", fn=prediction_digest)))
        return wf
    """
)

_FILLERS = [f"no-such-occupation-number-{i:02d}" for i in range(12)]  # > 200 characters


def _mylib(pattern_last: bool, seed: int) -> str:
    words = [*_FILLERS, "Sales"] if pattern_last else _FILLERS
    return textwrap.dedent(
        f"""
        import re

        import numpy as np

        PATTERN = re.compile({"|".join(words)!r})
        RNG = np.random.default_rng({seed})
        """
    )


#: Each key's two values; an edit flips one key. Parameters, then the classes of issue 12.
VALUES: dict[str, tuple[Any, Any]] = {
    "std": (True, False),
    "min_count": (1, 40),
    "offset": (0, 5),
    "cross": (False, True),
    "l2": (1e-4, 1e-1),
    "threshold": (0.5, 0.35),
    "pattern": (True, False),  # a long regex's last alternative (repr stops at 200 chars)
    "seed": (1, 22),  # a module-level seeded generator
    "env": ("10", "7"),  # an environment variable read by a UDF
    "lookup": (1.0, 4.0),  # a JSON file opened by a cached helper
    "data": ("a", "b"),  # the train file edited in place, size and mtime kept
}
PARAMS = ("std", "min_count", "offset", "cross", "l2", "threshold")


class Case:
    """The files of one workflow and the fresh results of each state (deterministic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = root / "config"
        self.folder.mkdir()
        self.config = self.folder / "tiny.py"
        self.config.write_text(CONFIG)
        train, test = write_census_like(root / "data", train_rows=400, test_rows=200, seed=3)
        self.train, self.test = train, test
        self.variants = {"a": train.read_bytes(), "b": _older_ages(train.read_bytes())}
        self.fresh: dict[tuple[Any, ...], RunResult] = {}
        self.count = 0
        self.state: dict[str, Any] = {}

    def apply(self, state: dict[str, Any]) -> None:
        """Write the files and environment of ``state`` (in place: paths never change)."""
        old = self.state
        if not old or (old["pattern"], old["seed"]) != (state["pattern"], state["seed"]):
            (self.folder / "mylib.py").write_text(_mylib(state["pattern"], state["seed"]))
        if not old or old["lookup"] != state["lookup"]:
            weights = {"HS-grad": state["lookup"], "Bachelors": 2.0, "Masters": 3.0}
            (self.folder / "weights.json").write_text(json.dumps(weights))
        if not old or old["data"] != state["data"]:
            _rewrite_in_place(self.train, self.variants[state["data"]])
        os.environ[ENV] = state["env"]
        self.state = dict(state)

    def params(self, state: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
        train, test = (
            (self.train, self.test)
            if folder is None
            else (folder / self.train.name, folder / self.test.name)
        )
        return {**{k: state[k] for k in PARAMS}, "train": str(train), "test": str(test)}

    def run(self, state: dict[str, Any], store: Path, policy: str, **kw: Any) -> RunResult:
        self.apply(state)
        return api.run(
            self.config,
            params=self.params(state, kw.pop("folder", None)),
            store=str(store),
            materialize=policy,
            **kw,
        )

    def fresh_run(self, state: dict[str, Any]) -> RunResult:
        key = tuple(sorted(state.items()))
        if key not in self.fresh:
            self.count += 1
            result = self.run(state, self.root / f"fresh-{self.count}", "none")
            assert all(n.state in ("compute", "prune") for n in result.nodes)
            self.fresh[key] = result
        return self.fresh[key]

    def compiled_fingerprints(self, state: dict[str, Any]) -> dict[str, str]:
        """A fresh compilation: no content memo, the config and its helpers imported anew."""
        self.apply(state)
        loaded = load_config(self.config, self.params(state))
        compiled = compile_workflow(loaded.workflow, hasher=ContentHasher())
        return {n.name: n.fingerprint for n in compiled.nodes}


def _older_ages(data: bytes) -> bytes:
    """The same file with the age of its first 150 rows changed, size kept."""
    lines = data.decode().split("\n")
    for i, line in enumerate(lines[:150]):
        age, sep, rest = line.partition(",")
        if sep and age.strip().isdigit() and 10 <= int(age) <= 89:
            lines[i] = f"{99 - int(age):02d}{sep}{rest}"
    out = "\n".join(lines).encode()
    assert len(out) == len(data) and out != data
    return out


def _rewrite_in_place(path: Path, data: bytes) -> None:
    st = path.stat()
    time.sleep(0.05)  # past the filesystem's coarse clock tick: the ctime moves
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back, as `touch -d` would


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    saved_env, saved_bytecode = os.environ.get(ENV), sys.dont_write_bytecode
    saved_racy = content.RACY_SECONDS
    # Files written a moment ago are memoised like old ones: only the ctime can save us.
    content.RACY_SECONDS = 0.0
    sys.dont_write_bytecode = True  # helpers rewritten within a second: never a stale .pyc
    try:
        yield Case(tmp_path_factory.mktemp("invariant"))
    finally:
        content.RACY_SECONDS = saved_racy
        sys.dont_write_bytecode = saved_bytecode
        if saved_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved_env


def _check_sequence(case: Case, keys: list[str], policy: str, store: Path) -> None:
    state = {k: v[0] for k, v in VALUES.items()}
    computed: set[str] = set()  # fingerprints computed (and, under "all", stored) so far
    previous: RunResult | None = None
    for step, key in enumerate([None, *keys]):
        if key is not None:
            a, b = VALUES[key]
            state[key] = b if state[key] == a else a
        reused = case.run(state, store, policy)
        fresh = case.fresh_run(state)
        where = (step, key, dict(state))
        assert reused.metrics == fresh.metrics, where
        if previous is not None:  # the edit is visible: values changed
            assert fresh.metrics != previous.metrics, ("edit changed no value", where)
        previous = fresh
        fingerprints = {n.name: n.fingerprint for n in reused.nodes}
        assert fingerprints == case.compiled_fingerprints(state), where
        assert fingerprints == {n.name: n.fingerprint for n in fresh.nodes}, where
        if policy == "all":
            again = [
                n.name for n in reused.nodes if n.state == "compute" and n.fingerprint in computed
            ]
            outputs_stored = fingerprints["evaluation"] in computed
            assert not (outputs_stored and any(n.state == "compute" for n in reused.nodes)), where
            assert "learner" not in again, where
        computed |= {n.fingerprint for n in reused.nodes if n.state == "compute"}


@pytest.mark.slow
@pytest.mark.ci
def test_every_edit_class_in_one_walk(case: Case) -> None:
    """Every class once, then the same bytes under another folder: all of it reused."""
    store = case.root / "walk"
    _check_sequence(case, list(VALUES), "all", store)
    state = {k: v[1] for k, v in VALUES.items()}
    copy = case.root / "copy"
    copy.mkdir()
    for path in (case.train, case.test):
        shutil.copy2(path, copy / path.name)
    moved = case.run(state, store, "all", folder=copy)
    assert moved.metrics == case.fresh_run(state).metrics
    assert not [n.name for n in moved.nodes if n.state == "compute"]


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("HELIX_INVARIANT_EXAMPLES", "3")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    keys=st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=3),
    policy=st.sampled_from(["helix", "all"]),
)
def test_reuse_equals_fresh_run(case: Case, keys: list[str], policy: str) -> None:
    case.count += 1
    _check_sequence(case, keys, policy, case.root / f"reuse-{case.count}")  # its own store
