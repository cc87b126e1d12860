"""An approximate run whose sample at the source lost a rare label value (QA pass 18).

A label learns its values from the training split (``Label(positive=)`` refuses a value
the split lacks; ``MulticlassLabel`` makes its classes of them). Drawn at the source,
the sample is all the training split the run sees: a value two training rows hold and
the sample dropped was refused in the test split as "not a value of the training
split" (the exact run works), and under ``unseen="other"`` its test rows were scored as
``<other>`` by a model with a class fewer than the exact one. Such a run now draws its
sample at training, from examples of every row, and says so; a value the training split
really lacks fails as in the exact run.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import helix_tf
from helix_tf.approx.sampling import keep_mask
from helix_tf.errors import DataError
from helix_tf.events import ProgressEvent, SampleMoved
from helix_tf.results import RunResult
from tests.conftest import write_config

SAMPLE, SEED = 0.2, 3

CONFIG = """\
PARAMS = {}


def workflow(params):
    wf = Workflow("rare_label")
    wf.source(
        "rows",
        sources.Csv(
            train=r"$train",
            test=r"$test",
            header=True,
            columns={"x": "float", "c": "string", "y": "string"},
        ),
    )
    x = wf.feature("x", F.Numeric("x"))
    c = wf.feature("c", F.Vocabulary("c"))
    examples = wf.examples("examples", [x, c], label=$label)
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=64))
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, $metric))
    return wf
"""

BINARY = {"label": 'F.Label("y", positive="a")', "metric": "metrics.Accuracy()"}
MULTICLASS = {
    "label": 'F.MulticlassLabel("y", unseen="other")',
    "metric": "metrics.MulticlassAccuracy()",
}


def _write(folder: Path, name: str, rows: int, rare: str | None, rare_lines: int) -> Path:
    """``rows`` data rows labelled a/b/c, and ``rare`` on ``rare_lines`` lines the
    sample (``SAMPLE``, ``SEED``) does not keep (a row's id is its line number)."""
    rng = random.Random(name)
    lines = ["x,c,y"]
    dropped = [
        int(i) for i in np.flatnonzero(~keep_mask(np.arange(rows + 2), SAMPLE, SEED)) if i >= 2
    ][:rare_lines]
    for line in range(2, rows + 2):
        x = rng.random()
        label = rare if line in dropped else "abc"[min(2, int(x * 3))]
        lines.append(f"{x:.4f},{rng.choice('uvw')},{label}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config(tmp_path: Path, kind: dict[str, str], *, train_rare: str | None) -> Path:
    train = _write(tmp_path, "train.csv", 300, train_rare, 2)
    test = _write(tmp_path, "test.csv", 100, "zz", 1)
    return write_config(tmp_path, CONFIG, train=train, test=test, **kind)


def _approx() -> helix_tf.Approx:
    return helix_tf.Approx(sample=SAMPLE, seed=SEED, min_saving_seconds=0)


@pytest.mark.parametrize("kind", [BINARY, MULTICLASS], ids=["positive", "unseen_other"])
def test_a_training_value_the_sample_dropped_is_learned_from_every_row(
    tmp_path: Path, store: str, kind: dict[str, str]
) -> None:
    config = _config(tmp_path, kind, train_rare="zz")
    events: list[ProgressEvent] = []
    result = helix_tf.run(
        config, store=store, approx=_approx(), materialize="all", progress=events.append
    )
    assert result.approx
    moved = [e for e in events if isinstance(e, SampleMoved)]
    assert len(moved) == 1 and "label 'zz'" in moved[0].reason  # said when it happens
    assert any("drew the sample at training" in n for n in result.notes), result.notes
    assert any("label 'zz'" in n for n in result.notes), result.notes
    # The examples it made are the exact run's (every row, the whole split's values):
    # the exact run loads them.
    exact = helix_tf.run(config, store=store, materialize="all")
    assert not exact.approx
    made = {n.name: n for n in result.nodes}["examples"]
    assert made.state == "compute"
    assert made.fingerprint == {n.name: n for n in exact.nodes}["examples"].fingerprint


def test_a_value_the_training_split_lacks_fails_as_the_exact_run_does(
    tmp_path: Path, store: str
) -> None:
    config = _config(tmp_path, BINARY, train_rare=None)
    with pytest.raises(DataError) as exact:
        helix_tf.run(config, store=str(Path(store) / "exact"))
    with pytest.raises(DataError) as approx:
        helix_tf.run(config, store=store, approx=_approx())
    assert str(approx.value) == str(exact.value)  # no word of a sample: the data's error
    assert "line" in str(approx.value) and "test.csv" in str(approx.value)


def test_a_value_that_does_not_parse_fails_at_once_as_in_the_exact_run(
    tmp_path: Path, store: str
) -> None:
    # Every row is parsed, sampled or not: no word of the sample, no second run.
    config = _config(tmp_path, BINARY, train_rare=None)
    test = tmp_path / "test.csv"
    lines = test.read_text(encoding="utf-8").split("\n")
    lines[5] = "abc,u,a"
    test.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError) as exact:
        helix_tf.run(config, store=str(Path(store) / "exact"))
    events: list[ProgressEvent] = []
    with pytest.raises(DataError) as approx:
        helix_tf.run(config, store=store, approx=_approx(), progress=events.append)
    assert str(approx.value) == str(exact.value)
    assert "line 6" in str(approx.value) and "'abc'" in str(approx.value)
    assert not [e for e in events if isinstance(e, SampleMoved)]


def test_a_sample_that_failed_at_the_source_is_drawn_at_training_at_once_next_time(
    tmp_path: Path, store: str
) -> None:
    """Where the policy kept no exact examples, every later approximate run drew the
    sample at the source again, failed the same check and ran a second time (QA pass 20).
    The failure is remembered by the failing node's fingerprint: the next run (a learner
    edit too) draws the sample at training at once, with the same results."""
    config = _config(tmp_path, BINARY, train_rare="zz")
    events: list[ProgressEvent] = []

    def run(params: tuple[str, ...] = (), at: str = store) -> RunResult:
        return helix_tf.run(
            config,
            store=at,
            approx=_approx(),
            materialize="none",
            params=list(params),
            progress=events.append,
        )

    first = run()
    assert [e for e in events if isinstance(e, SampleMoved)]
    events.clear()
    again, edited = run(), run(("learner.learning_rate=0.02",))
    assert not [e for e in events if isinstance(e, SampleMoved)]  # no attempt at the source
    assert again.approx and again.metrics == first.metrics
    assert any("in an earlier run (" in n and "label 'zz'" in n for n in again.notes)
    plan = helix_tf.plan(config, store=store, approx=_approx())
    assert any("in an earlier run" in n for n in plan.notes), plan.notes
    fresh = run(("learner.learning_rate=0.02",), at=str(tmp_path / "fresh"))
    assert edited.metrics == fresh.metrics and edited.approx
    # An edit of the data is another sample: tried at the source again.
    train = tmp_path / "train.csv"
    train.write_text(train.read_text(encoding="utf-8") + "0.5,u,a\n", encoding="utf-8")
    events.clear()
    run()
    assert [e for e in events if isinstance(e, SampleMoved)]
