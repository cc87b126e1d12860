"""The reuse invariant (DESIGN §3): a run that reuses stored results produces exactly
the outputs of the same run from an empty store.

Hypothesis draws random sequences of edits to a small census workflow (feature
parameters, a UDF's closure value, adding a cross, the learner's regulariser,
the evaluation threshold); each step runs with reuse against one shared store
and is compared with a fresh run of the same config (memoised per config, since
fresh runs are deterministic). Log loss is among the metrics, so equal metrics
mean equal predictions to the last bit.
"""

from __future__ import annotations

import itertools
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helix_tf import api
from helix_tf.sample_data import write_census_like

CONFIG = textwrap.dedent(
    """
    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import CENSUS_COLUMNS

    PARAMS = {"std": True, "min_count": 1, "offset": 0, "cross": False, "l2": 1e-4,
              "threshold": 0.5, "train": "", "test": ""}


    def workflow(params):
        wf = Workflow("tiny")
        wf.source("rows", sources.Csv(
            train=params.train, test=params.test, columns=CENSUS_COLUMNS,
            skip_lines={"test": 1},
            replace={"income": {">50K.": ">50K", "<=50K.": "<=50K"}}))
        offset = params.offset

        @wf.udf("hours_bucket", batched=True)
        def hours_bucket(batch):
            return (batch["hours_per_week"].fillna(0) // 10 + offset).clip(0, 9)

        age = wf.feature("age", F.Numeric("age", standardize=params.std))
        edu = wf.feature("education", F.Vocabulary("education", min_count=params.min_count))
        occ = wf.feature("occupation", F.Vocabulary("occupation"))
        hb = wf.feature("hours", F.Numeric(hours_bucket))
        feats = [age, edu, occ, hb]
        if params.cross:
            feats.append(wf.feature("edu_x_occ", F.Cross([edu, occ], buckets=50)))
        ex = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
        model = wf.train("learner", ex, learners.Linear(l2=params.l2, epochs=1, batch_size=128))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate("evaluation", preds, metrics.Accuracy(threshold=params.threshold),
                              metrics.AUC(), metrics.LogLoss()))
        return wf
    """
)

EDITS: dict[str, list[Any]] = {
    "std": [True, False],
    "min_count": [1, 30],
    "offset": [0, 1],
    "cross": [False, True],
    "l2": [1e-4, 1e-2],
    "threshold": [0.5, 0.35],
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("invariant")
    train, test = write_census_like(root / "data", train_rows=400, test_rows=200, seed=3)
    config = root / "tiny.py"
    config.write_text(CONFIG)
    return {
        "root": root,
        "config": config,
        "train": str(train),
        "test": str(test),
        "fresh": {},
        "counter": itertools.count(),
    }


def _params(setup: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    return {**choice, "train": setup["train"], "test": setup["test"]}


def _fresh(setup: dict[str, Any], choice: dict[str, Any]) -> dict[str, float]:
    key = tuple(sorted(choice.items()))
    if key not in setup["fresh"]:
        store = setup["root"] / f"fresh-{next(setup['counter'])}"
        result = api.run(
            setup["config"], params=_params(setup, choice), store=str(store), materialize="none"
        )
        assert all(n.state == "compute" for n in result.nodes if n.state != "prune")
        setup["fresh"][key] = result.metrics
    return setup["fresh"][key]


edit_sequences = st.lists(
    st.tuples(st.sampled_from(sorted(EDITS)), st.integers(0, 1)), min_size=1, max_size=4
)


@pytest.mark.slow
@pytest.mark.ci
@settings(
    max_examples=int(os.environ.get("HELIX_INVARIANT_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    edits=edit_sequences,
    policy=st.sampled_from(["helix", "all"]),
    new_store=st.sampled_from([False, False, False, True]),
)
def test_reuse_equals_fresh_run(
    setup: dict[str, Any], edits: list[tuple[str, int]], policy: str, new_store: bool
) -> None:
    # Stores persist across examples (so reuse meets many store states, cheaply), and
    # now and then an example starts from an empty one.
    if new_store or policy not in setup:
        setup[policy] = Path(setup["root"]) / f"reuse-{policy}-{next(setup['counter'])}"
    store = setup[policy]
    choice = {k: v[0] for k, v in EDITS.items()}
    # The first run fills the store; each edit then runs against what earlier runs stored.
    for step, (key, index) in enumerate([("std", 0), *edits]):
        choice[key] = EDITS[key][index]
        reused = api.run(
            setup["config"], params=_params(setup, choice), store=str(store), materialize=policy
        )
        assert reused.metrics == _fresh(setup, choice), (step, choice)
        if step > 0 and all(n.state != "compute" for n in reused.nodes):
            # Nothing recomputed: the outputs came from the store, and still equal a fresh run.
            assert any(n.state == "load" for n in reused.nodes)
