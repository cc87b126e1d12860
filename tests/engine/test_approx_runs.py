"""Approximate runs end to end, through ``helix_tf.api.run(..., approx=Approx(...))`` and the CLI.

Covered on the tiny census workflow (600 train, 300 test rows, a one-epoch linear model):
an approximate run is marked as such and reports an interval around every metric; it trains
on about the requested fraction of the training rows (the test split is never sampled);
approximate and exact results never mix in one store, in either order; an identical
approximate run reuses everything; the sample is placed at the source on a cold store and
at training time when the exact examples are stored, keeping the same rows either way;
an approximate request whose exact results are all stored loads those instead, and says
so; other sample fractions or seeds are never reused; the CLI marks approximate output.

Each scenario runs once per module (several ``api.run`` calls on one store, in order) and
its tests read the results.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import helix_tf
from helix_tf import api
from helix_tf.cli import main
from helix_tf.events import PreprocessingStarted, ProgressEvent
from helix_tf.results import RunResult
from tests.conftest import TINY_CENSUS, write_config

TRAIN_ROWS, TEST_ROWS = 600, 300  # the census_like fixture
PREPROCESS = ("rows", "age", "hours", "education", "occupation", "examples")
MODEL_SIDE = ("learner", "predictions", "evaluation")
EXACT_INSTEAD = "loaded the exact results instead"


def _approx(**settings: Any) -> helix_tf.Approx:
    """Approximate whatever a sample saves: the runs here are tiny (the rule is tested below)."""
    return helix_tf.Approx(**{"min_saving_seconds": 0, **settings})


def states(result: RunResult) -> dict[str, str]:
    return {n.name: n.state for n in result.nodes}


def rows(result: RunResult) -> dict[str, int | None]:
    return {n.name: n.rows for n in result.nodes}


def fingerprints(result: RunResult) -> dict[str, str]:
    return {n.name: n.fingerprint for n in result.nodes}


def within_five_sd(kept: int, n: int, fraction: float) -> bool:
    """``kept`` is within 5 standard deviations of Binomial(n, fraction)'s mean."""
    return abs(kept - n * fraction) <= 5 * math.sqrt(n * fraction * (1 - fraction))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]) -> Path:
    folder = tmp_path_factory.mktemp("approx_runs")
    return write_config(folder, TINY_CENSUS, train=census_like[0], test=census_like[1])


def _store(tmp_path_factory: pytest.TempPathFactory, name: str) -> str:
    return str(tmp_path_factory.mktemp(name) / "store")


# ------------------------------------------------------------------------------ scenarios


@dataclasses.dataclass(frozen=True)
class Exact:
    """A fresh store: the exact run, then an approximate request for the same workflow."""

    exact: RunResult
    approx_after: RunResult
    store: str


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Exact:
    store = _store(tmp_path_factory, "exact")
    # The exact preprocessing stored: the helix policy may not store a tiny run's.
    first = api.run(config, store=store, materialize="all")
    return Exact(
        exact=first,
        approx_after=api.run(config, store=store, approx=_approx(sample=0.5)),
        store=store,
    )


@dataclasses.dataclass(frozen=True)
class Cold:
    """A store that starts empty: approximate runs in order, then the exact run."""

    approx: RunResult  # sample 0.5, seed 0: placed at the source
    again: RunResult  # the same request again
    fp32: RunResult  # the same request with precision spelled out as what auto resolves to
    other_seed: RunResult  # sample 0.5, seed 1
    other_sample: RunResult  # sample 0.3, seed 0
    exact_after: RunResult


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Cold:
    store = _store(tmp_path_factory, "cold")

    def run(approx: helix_tf.Approx | None) -> RunResult:
        return api.run(config, store=store, approx=approx)

    return Cold(
        approx=run(_approx(sample=0.5)),
        again=run(_approx(sample=0.5)),
        fp32=run(_approx(sample=0.5, precision="fp32")),
        other_seed=run(_approx(sample=0.5, seed=1)),
        other_sample=run(_approx(sample=0.3)),
        exact_after=run(None),
    )


@dataclasses.dataclass(frozen=True)
class Warm:
    """A store holding exact examples (from an exact run with another learner setting),
    then an approximate run of the default workflow, then its exact run."""

    exact_l1: RunResult
    approx: RunResult  # sample 0.5, seed 0: placed at training time
    exact_after: RunResult


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory, config: Path) -> Warm:
    store = _store(tmp_path_factory, "warm")
    return Warm(
        # The exact preprocessing stored: the helix policy may not store a tiny run's.
        exact_l1=api.run(config, store=store, params=["learner.l1=0.001"], materialize="all"),
        approx=api.run(config, store=store, approx=_approx(sample=0.5)),
        exact_after=api.run(config, store=store),
    )


# ------------------------------------------------------------------------------ 1. marked


@pytest.mark.slow
@pytest.mark.ci
def test_approximate_run_is_marked_and_has_an_interval_per_metric(cold: Cold) -> None:
    result = cold.approx
    assert result.approx is True
    payload = result.to_dict()
    assert payload["approx"] is True
    assert set(result.metrics) == {"accuracy", "auc"}
    assert set(result.intervals) == set(result.metrics)
    assert payload["intervals"] == {k: list(v) for k, v in result.intervals.items()}
    for key, value in result.metrics.items():
        lo, hi = result.intervals[key]
        # Percentile bootstrap over the 300 test rows: the interval brackets the point estimate.
        assert 0.0 <= lo <= value <= hi <= 1.0, (key, lo, value, hi)
        assert hi - lo < 0.5, (key, lo, hi)  # an informative interval, not [0, 1]
    assert not any(EXACT_INSTEAD in note for note in result.notes)


@pytest.mark.slow
@pytest.mark.ci
def test_exact_run_is_not_marked_and_has_no_intervals(exact: Exact) -> None:
    assert exact.exact.approx is False
    assert exact.exact.intervals == {}
    payload = exact.exact.to_dict()
    assert payload["approx"] is False and "intervals" not in payload


# ------------------------------------------------------------------------------ 2. fewer rows


@pytest.mark.slow
@pytest.mark.ci
def test_approximate_run_trains_on_about_the_requested_fraction(cold: Cold, exact: Exact) -> None:
    assert rows(exact.exact)["learner"] == TRAIN_ROWS
    for result, fraction in ((cold.approx, 0.5), (cold.other_sample, 0.3)):
        trained = rows(result)["learner"]
        assert trained is not None and 0 < trained < TRAIN_ROWS
        assert within_five_sd(trained, TRAIN_ROWS, fraction), (fraction, trained)
    assert rows(cold.other_sample)["learner"] < rows(cold.approx)["learner"]  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.ci
def test_the_test_split_is_never_sampled(cold: Cold, exact: Exact) -> None:
    for result in (exact.exact, cold.approx, cold.other_sample):
        assert rows(result)["predictions"] == TEST_ROWS
        assert rows(result)["evaluation"] == TEST_ROWS


# ------------------------------------------------------------------------------ 3. never mix


@pytest.mark.slow
@pytest.mark.ci
def test_approximate_run_after_exact_examples_computes_its_own_model_side(
    warm: Warm, exact: Exact
) -> None:
    got, exact_fps = states(warm.approx), fingerprints(exact.exact)
    approx_fps, l1_fps = fingerprints(warm.approx), fingerprints(warm.exact_l1)
    assert warm.approx.approx is True
    for name in MODEL_SIDE:
        assert got[name] == "compute", name
        assert approx_fps[name] != exact_fps[name], name
        assert approx_fps[name] != l1_fps[name], name


@pytest.mark.slow
@pytest.mark.ci
def test_exact_run_after_approximate_runs_loads_nothing_approximate(
    cold: Cold, warm: Warm, exact: Exact
) -> None:
    for after in (cold.exact_after, warm.exact_after):
        assert after.approx is False and after.intervals == {}
        assert fingerprints(after) == fingerprints(exact.exact)
        for name in MODEL_SIDE:
            assert states(after)[name] == "compute", name
        assert after.metrics == exact.exact.metrics
    # On the cold store only approximate (sampled) results existed: everything is computed.
    assert set(states(cold.exact_after).values()) == {"compute"}
    assert rows(cold.exact_after)["learner"] == TRAIN_ROWS


@pytest.mark.slow
@pytest.mark.ci
def test_approximate_and_exact_fingerprints_differ_on_every_sampled_node(
    cold: Cold, exact: Exact
) -> None:
    """Sampled at the source, every node downstream of the sample is a different result."""
    approx_fps, exact_fps = fingerprints(cold.approx), fingerprints(exact.exact)
    for name in (*PREPROCESS, *MODEL_SIDE):
        assert approx_fps[name] != exact_fps[name], name


# ------------------------------------------------------------------------------ 4. reuse


@pytest.mark.slow
@pytest.mark.ci
def test_identical_approximate_run_reuses_everything(cold: Cold) -> None:
    first, again = cold.approx, cold.again
    assert set(states(first).values()) == {"compute"}
    assert set(states(again).values()) <= {"load", "prune"}
    assert states(again)["evaluation"] == "load"
    assert again.approx is True
    assert fingerprints(again) == fingerprints(first)
    assert again.metrics == first.metrics
    assert again.intervals == first.intervals


# ------------------------------------------------------------------------------ 5. placement


@pytest.mark.slow
@pytest.mark.ci
def test_on_a_cold_store_the_sample_is_applied_at_the_source(cold: Cold, exact: Exact) -> None:
    approx_rows, exact_rows = rows(cold.approx), rows(exact.exact)
    assert exact_rows["rows"] == TRAIN_ROWS + TEST_ROWS
    assert approx_rows["rows"] is not None and approx_rows["rows"] < exact_rows["rows"]  # type: ignore[operator]
    # Only training rows are dropped, and every preprocessing node sees the sampled rows.
    assert approx_rows["rows"] == approx_rows["learner"] + TEST_ROWS  # type: ignore[operator]
    for name in PREPROCESS:
        assert approx_rows[name] == approx_rows["rows"], name


@pytest.mark.slow
@pytest.mark.ci
def test_with_exact_examples_stored_the_sample_is_applied_at_training(
    warm: Warm, cold: Cold, exact: Exact
) -> None:
    got = states(warm.approx)
    assert got["examples"] == "load"
    for name in PREPROCESS:
        assert got[name] in ("load", "prune"), (name, got[name])
    # The preprocessing results are the exact ones (nothing was sampled before training)...
    for name in PREPROCESS:
        assert fingerprints(warm.approx)[name] == fingerprints(exact.exact)[name], name
    assert rows(warm.approx)["examples"] == TRAIN_ROWS + TEST_ROWS
    # ...and training keeps exactly the rows the source sample kept: same ids, same seed.
    trained = rows(warm.approx)["learner"]
    assert trained is not None and trained < TRAIN_ROWS
    assert trained == rows(cold.approx)["learner"]


# ------------------------------------------------------------------------------ 6. exact instead


@pytest.mark.slow
@pytest.mark.ci
def test_approximate_request_loads_stored_exact_results_instead(exact: Exact) -> None:
    result = exact.approx_after
    assert result.approx is False
    assert result.to_dict()["approx"] is False
    assert set(states(result).values()) <= {"load", "prune"}
    assert "compute" not in states(result).values()
    assert fingerprints(result) == fingerprints(exact.exact)
    assert result.metrics == exact.exact.metrics
    assert result.intervals == {}
    assert sum(EXACT_INSTEAD in note for note in result.notes) == 1


@pytest.mark.slow
@pytest.mark.ci
def test_plan_says_what_the_run_does_when_exact_results_are_stored(
    exact: Exact, config: Path
) -> None:
    planned = api.plan(config, store=exact.store, approx=_approx(sample=0.5))
    assert planned.approx is False
    assert {d.name: d.state for d in planned.nodes} == states(exact.approx_after)
    assert sum(EXACT_INSTEAD in note for note in planned.notes) == 1


@pytest.mark.slow
@pytest.mark.ci
def test_exact_results_of_another_setting_are_not_loaded_instead(warm: Warm) -> None:
    """Only the exact results of *this* workflow count: other learner settings do not."""
    assert warm.approx.approx is True
    assert not any(EXACT_INSTEAD in note for note in warm.approx.notes)
    assert set(warm.approx.intervals) == set(warm.approx.metrics)


# ------------------------------------------------------------------------------ 8. settings


@pytest.mark.slow
@pytest.mark.ci
def test_other_sample_or_seed_is_never_reused(cold: Cold) -> None:
    runs = {"0.5/0": cold.approx, "0.5/1": cold.other_seed, "0.3/0": cold.other_sample}
    learners = {key: fingerprints(r)["learner"] for key, r in runs.items()}
    assert len(set(learners.values())) == len(learners), learners
    sources = {key: fingerprints(r)["rows"] for key, r in runs.items()}
    assert len(set(sources.values())) == len(sources), sources
    for result in (cold.other_seed, cold.other_sample):
        assert result.approx is True
        assert set(states(result).values()) == {"compute"}


@pytest.mark.slow
@pytest.mark.ci
def test_sample_of_one_trains_on_every_row_but_stays_approximate(
    exact: Exact, config: Path, store: str
) -> None:
    """A fresh store (with the exact results stored, the exact run would be the answer)."""
    full = api.run(config, store=store, approx=_approx(sample=1.0))
    assert full.approx is True
    assert rows(full)["learner"] == rows(exact.exact)["learner"] == TRAIN_ROWS
    assert fingerprints(full)["learner"] != fingerprints(exact.exact)["learner"]
    assert set(full.intervals) == set(full.metrics)


@pytest.mark.slow
@pytest.mark.ci
def test_precision_spelled_out_as_what_auto_resolves_to_is_reused(cold: Cold) -> None:
    """``auto`` resolves to fp32 for a linear model on any CPU: the same result."""
    auto, fp32 = cold.approx, cold.fp32
    assert fingerprints(fp32) == fingerprints(auto)
    assert set(states(fp32).values()) <= {"load", "prune"}
    assert fp32.metrics == auto.metrics and fp32.intervals == auto.intervals


# ------------------------------------------------------------------------------ 7. CLI


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.slow
@pytest.mark.ci
def test_cli_marks_approximate_output(tiny_census_config: Path, store: str) -> None:
    base = ("run", tiny_census_config, "--store", store, "--approx", "--sample", "0.5")
    table = invoke(*base)
    assert table.exit_code == 0, (table.output, table.exception)
    metrics_part = table.stdout[table.stdout.index("metrics") :]
    assert "≈" in metrics_part
    assert "accuracy" in metrics_part and "95% interval" in metrics_part

    again = invoke(*base, "--json")  # the same run again: loaded, still approximate
    assert again.exit_code == 0, (again.output, again.exception)
    payload = json.loads(again.stdout)
    assert payload["approx"] is True
    assert set(payload["intervals"]) == set(payload["metrics"]) == {"accuracy", "auc"}
    for key, (lo, hi) in payload["intervals"].items():
        assert lo <= payload["metrics"][key] <= hi

    history = invoke("history", tiny_census_config, "--store", store, "--json")
    assert history.exit_code == 0, history.output
    assert [r["approx"] for r in json.loads(history.stdout)] == [True, True]


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        (("--sample", "0"), "Invalid value for '--sample': 0.0 is not in the range 0<x<=1"),
        (("--sample", "1.5"), "Invalid value for '--sample': 1.5 is not in the range 0<x<=1"),
        (("--approx-epochs", "2"), "Invalid value for '--approx-epochs': 2.0 is not in the"),
    ],
)
def test_cli_rejects_bad_approximate_settings_before_running(
    tiny_census_config: Path, store: str, option: tuple[str, str], fragment: str
) -> None:
    result = invoke("run", tiny_census_config, "--store", store, *option)
    assert result.exit_code == 2  # a usage error, as README's "Exit status" says
    assert fragment in result.stderr
    assert not Path(store).exists()  # nothing ran, nothing was stored


# ------------------------------------------------------------------------------ no Beam for a sample


def test_approximate_preprocessing_runs_without_a_beam_pipeline(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locally, a sample is preprocessed in the run's process even where Beam options
    are given (an approximate run ignores them); an exact run given them uses Beam."""
    from helix_tf.engine import beam_pipeline

    made: list[str] = []
    real = beam_pipeline.run_preprocessing

    def counted(**kw: Any) -> Any:
        made.append("pipeline")
        return real(**kw)

    monkeypatch.setattr(beam_pipeline, "run_preprocessing", counted)
    events: list[ProgressEvent] = []
    store = str(tmp_path / "store")
    beam_options = ["--job_name=helix"]
    approx = api.run(
        config,
        store=store,
        approx=_approx(sample=0.5),
        progress=events.append,
        pipeline_args=beam_options,
    )
    assert made == [] and states(approx)["examples"] == "compute"
    assert [e.runner for e in events if isinstance(e, PreprocessingStarted)] == ["in-process"]
    # The exact run given Beam options goes through the pipeline.
    events.clear()
    exact = api.run(config, store=store, progress=events.append, pipeline_args=beam_options)
    assert made == ["pipeline"] and states(exact)["examples"] == "compute"
    assert [e.runner for e in events if isinstance(e, PreprocessingStarted)] == ["direct"]


# ------------------------------------------------------------------------------ the exact run's steps


@pytest.mark.slow
@pytest.mark.ci
def test_the_learner_trains_its_sample_for_the_exact_runs_steps(
    config: Path, tmp_path: Path
) -> None:
    """A quarter of the rows for about four times the epochs: the exact run's steps at its
    batch size (128) over the rows the sample stands for, matched by batches; ending
    sooner only where the training loss stopped falling. The exact run keeps its epochs."""
    from helix_tf.events import EpochFinished

    def epochs(store: str, params: list[str], approx: Any) -> tuple[list[Any], int | None]:
        events: list[ProgressEvent] = []
        result = api.run(config, store=store, params=params, approx=approx, progress=events.append)
        finished = [e for e in events if isinstance(e, EpochFinished) and e.node == "learner"]
        return finished, rows(result)["learner"]

    exact, _ = epochs(str(tmp_path / "exact"), ["epochs=2"], None)
    assert [(e.epoch, e.epochs) for e in exact] == [(1, 2), (2, 2)]
    for given in (1, 2):
        finished, sampled = epochs(
            str(tmp_path / f"a{given}"), [f"epochs={given}"], _approx(sample=0.25)
        )
        assert sampled is not None
        (planned,) = {e.epochs for e in finished}
        per_epoch = math.ceil(sampled / 128)
        steps = given * math.ceil(sampled / 0.25 / 128)  # the exact run's, over sampled / 0.25 rows
        assert abs(planned * per_epoch - steps) <= per_epoch / 2
        assert planned > given
        assert [e.epoch for e in finished] == list(range(1, len(finished) + 1))


# ------------------------------------------------------------------------------ too little to save


def test_an_approximate_run_that_would_save_too_little_runs_exact_and_says_so(
    config: Path, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    # Exact history; examples stored (the helix policy may not store a tiny run's).
    api.run(config, store=store, params=["learner.l1=0.001"], materialize="all")
    # By that run, a 0.5 sample saves about half a tiny training: less than a minute.
    planned = api.plan(
        config, store=store, approx=helix_tf.Approx(sample=0.5, min_saving_seconds=60)
    )
    assert planned.approx is False and any("would save only" in n for n in planned.notes)
    small = api.run(config, store=store, approx=helix_tf.Approx(sample=0.5, min_saving_seconds=60))
    assert small.approx is False and not small.intervals
    assert [n for n in small.notes if "would save only" in n and "ran exact instead" in n]
    assert states(small)["examples"] == "load" and states(small)["learner"] == "compute"
    # With nothing to go by (no exact run of this workflow yet), the run approximates.
    fresh = api.run(
        config, store=str(tmp_path / "fresh"), approx=helix_tf.Approx(min_saving_seconds=60)
    )
    assert fresh.approx is True


# ------------------------------------------------------------------------------ intervals in a thread


def test_intervals_are_computed_beside_the_run_and_equal_the_same_bootstrap(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An approximate run's evaluation (its bootstrap intervals) goes on in a thread while
    the run computes its other nodes; it reports the intervals the bootstrap gives in the
    run's own thread, and the node once, computed, with its time."""
    import threading

    import numpy as np

    from helix_tf.components import metrics as metric_fns
    from helix_tf.events import NodeFinished

    seen: list[tuple[threading.Thread, tuple[Any, ...]]] = []
    real = metric_fns.bootstrap_metrics

    def recorded(*args: Any, **kw: Any) -> Any:
        seen.append((threading.current_thread(), tuple(np.copy(a) for a in args[1:3])))
        return real(*args, **kw)

    monkeypatch.setattr(metric_fns, "bootstrap_metrics", recorded)
    events: list[ProgressEvent] = []
    result = api.run(
        config, store=str(tmp_path / "store"), approx=_approx(sample=0.5), progress=events.append
    )
    assert len(seen) == 1 and seen[0][0] is not threading.main_thread()
    y_true, y_score = seen[0][1]
    again = real([helix_tf.metrics.Accuracy(), helix_tf.metrics.AUC()], y_true, y_score)
    assert result.intervals == {k: tuple(v) for k, v in again.items()}
    finished = [e for e in events if isinstance(e, NodeFinished) and e.node == "evaluation"]
    assert len(finished) == 1 and states(result)["evaluation"] == "compute"
    node = next(n for n in result.nodes if n.name == "evaluation")
    assert node.seconds > 0 and node.rows == TEST_ROWS


@pytest.mark.parametrize(
    ("module", "function", "node"),
    [
        ("helix_tf.components.metrics", "bootstrap_metrics", "evaluation"),  # in its thread
        ("helix_tf.components.keras_models", "save_model", "learner"),  # written at the end
    ],
)
def test_a_failure_in_what_an_approximate_run_finishes_later_is_that_nodes(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    function: str,
    node: str,
) -> None:
    import importlib

    from helix_tf.errors import ExecutionError

    def failing(*args: Any, **kw: Any) -> Any:
        raise ValueError("not today")

    monkeypatch.setattr(importlib.import_module(module), function, failing)
    with pytest.raises(ExecutionError, match="not today") as caught:
        api.run(config, store=str(tmp_path / "store"), approx=_approx(sample=0.5))
    assert caught.value.node == node


# ------------------------------------------------------------------------------ the model's file at the end


def test_an_approximate_runs_model_file_is_written_beside_its_evaluation(
    config: Path, tmp_path: Path
) -> None:
    """An approximate run scores and explains its model before writing the model's file
    (written at the end, while the evaluation's thread computes): the learner's line
    comes after its readers', the file is stored and scores as the run's model did; an
    exact run writes it before anything reads the model, as always."""
    import numpy as np

    from helix_tf.events import NodeFinished

    def finished_order(events: list[ProgressEvent]) -> list[str]:
        return [e.node for e in events if isinstance(e, NodeFinished)]

    events: list[ProgressEvent] = []
    store = str(tmp_path / "store")
    result = api.run(
        config, store=store, approx=_approx(sample=0.5), progress=events.append, materialize="all"
    )
    order = finished_order(events)
    assert order.index("predictions") < order.index("learner")
    learner = next(n for n in result.nodes if n.name == "learner")
    assert learner.state == "compute" and learner.materialized and learner.rows is not None
    again = api.run(config, store=store, approx=_approx(sample=0.5))
    assert states(again)["learner"] in ("load", "prune")
    loaded = again.model()  # read from the store: the file written at the end
    trained = result.model()
    assert [w.tolist() for w in loaded.get_weights()] == [
        np.asarray(w).tolist() for w in trained.get_weights()
    ]
    exact_events: list[ProgressEvent] = []
    api.run(config, store=str(tmp_path / "exact"), progress=exact_events.append)
    exact_order = finished_order(exact_events)
    assert exact_order.index("learner") < exact_order.index("predictions")
