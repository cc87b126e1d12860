"""The reuse invariant (DESIGN §3) for multiclass and numeric labels: a run that reuses
stored results produces exactly the outputs of the same run from an empty store.

Hypothesis draws sequences of edits to a small diamonds workflow whose label is
multiclass (learned or declared classes, unseen policy) or numeric (transform, loss),
plus feature, learner and metric edits; each step runs against one shared store and
is compared with a fresh run of the same parameters (memoised). Log loss and RMSE are
among the metrics, so equal metrics mean equal predictions. (The binary workflow's
invariant lives in ``test_reuse_invariant.py``.)
"""

from __future__ import annotations

import itertools
import math
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helix_tf import api
from helix_tf.sample_data import write_diamonds_like

CONFIG = textwrap.dedent(
    """
    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import DIAMONDS_COLUMNS

    PARAMS = {"task": "cut", "declared": False, "unseen": "error", "transform": "log",
              "loss": "squared", "std": True, "l2": 1e-4, "more": False, "csv": ""}


    def workflow(params):
        wf = Workflow("tiny_" + params.task)
        wf.source("rows", sources.Csv(train=params.csv, columns=DIAMONDS_COLUMNS, header=True,
                                      test_fraction=0.3, split_seed=2))
        feats = [wf.feature("carat", F.Numeric("carat", standardize=params.std)),
                 wf.feature("color", F.Vocabulary("color"))]
        if params.task == "cut":
            feats.append(wf.feature("depth", F.Numeric("depth")))
            classes = ("Fair", "Good", "Very Good", "Premium", "Ideal") if params.declared else None
            label = F.MulticlassLabel("cut", classes=classes, unseen=params.unseen)
            chosen = [metrics.MulticlassAccuracy(), metrics.MulticlassLogLoss()]
            if params.more:
                chosen += [metrics.OneVsRestAUC(slice_by="color"),
                           metrics.MulticlassPrecisionRecallF1()]
        else:
            feats.append(wf.feature("clarity", F.Vocabulary("clarity")))
            label = F.NumericLabel("price", transform=params.transform or None, loss=params.loss)
            chosen = [metrics.RMSE(), metrics.MAE()]
            if params.more:
                chosen += [metrics.R2(slice_by="color"), metrics.Residuals()]
        ex = wf.examples("examples", feats, label=label)
        model = wf.train("learner", ex, learners.Linear(l2=params.l2, epochs=1, batch_size=64))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate("evaluation", preds, *chosen))
        return wf
    """
)

EDITS: dict[str, list[Any]] = {
    "task": ["cut", "price"],
    "declared": [False, True],
    "unseen": ["error", "other"],
    "transform": ["log", ""],
    "loss": ["squared", "huber"],
    "std": [True, False],
    "l2": [1e-4, 1e-2],
    "more": [False, True],
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("task_invariant")
    config = root / "tiny.py"
    config.write_text(CONFIG)
    data = write_diamonds_like(root / "data", rows=300, seed=9)
    return {"root": root, "config": config, "data": str(data), "fresh": {}, "n": itertools.count()}


def _fresh(setup: dict[str, Any], choice: dict[str, Any]) -> dict[str, float]:
    key = tuple(sorted(choice.items()))
    if key not in setup["fresh"]:
        store = setup["root"] / f"fresh-{next(setup['n'])}"
        result = api.run(
            setup["config"],
            params={**choice, "csv": setup["data"]},
            store=str(store),
            materialize="none",
        )
        setup["fresh"][key] = result.metrics
    return setup["fresh"][key]


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal keys and values, to the last bit; nan equals nan (an AUC of a one-class slice)."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


@pytest.mark.slow
@pytest.mark.ci
@settings(
    max_examples=int(os.environ.get("HELIX_TASK_INVARIANT_EXAMPLES", "8")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    start=st.sampled_from(EDITS["task"]),
    edits=st.lists(
        st.tuples(st.sampled_from(sorted(EDITS)), st.integers(0, 1)), min_size=1, max_size=3
    ),
    policy=st.sampled_from(["helix", "all"]),
)
def test_reuse_equals_fresh_run_for_multiclass_and_regression(
    setup: dict[str, Any], start: str, edits: list[tuple[str, int]], policy: str
) -> None:
    if policy not in setup:
        setup[policy] = Path(setup["root"]) / f"reuse-{policy}"
    choice = {k: v[0] for k, v in EDITS.items()} | {"task": start}
    for step, (key, index) in enumerate([("l2", 0), *edits]):
        choice[key] = EDITS[key][index]
        reused = api.run(
            setup["config"],
            params={**choice, "csv": setup["data"]},
            store=str(setup[policy]),
            materialize=policy,
        )
        assert _same(reused.metrics, _fresh(setup, choice)), (step, choice)
