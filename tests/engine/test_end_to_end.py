"""Whole runs through ``helix_tf.api.run``: one preprocessing pass (in this process locally,
the fused Beam pipeline with Beam options), reuse across runs, bad input end to end, and
(slow) the quality bars on the full census and SMS data."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helix_tf import api
from helix_tf.engine import preprocess_steps, runners
from helix_tf.errors import CompileError, ConfigError, DataError, ExecutionError, HelixError
from helix_tf.results import RunResult
from helix_tf.reuse.metadata import MetadataStore
from helix_tf.reuse.store import ArtifactStore
from tests.conftest import SHARED_DATA, TINY_CENSUS, write_config

PREPROCESS = ("rows", "age", "hours", "education", "occupation", "examples")
MODEL_SIDE = ("learner", "predictions", "evaluation")


@dataclasses.dataclass
class Launches:
    """Preprocessing passes during one ``api.run``: Beam pipelines made and run, and
    passes in the run's own process (``here``)."""

    pipelines: list[Any] = dataclasses.field(default_factory=list)
    runs: int = 0
    here: int = 0

    @property
    def passes(self) -> int:
        return self.runs + self.here


@pytest.fixture(scope="module")
def count_pipelines() -> Iterator[Callable[[], Launches]]:
    """Wrap ``runners.pipeline_factory`` and ``preprocess_steps.run_preprocessing_here``;
    each call of the yielded function starts a new count."""
    current = [Launches()]
    real = runners.pipeline_factory
    real_here = preprocess_steps.run_preprocessing_here

    def here(**kw: Any) -> Any:
        current[0].here += 1
        return real_here(**kw)

    def factory(runner: str, args: Any = ()) -> Callable[[], Any]:
        make = real(runner, args)

        def counted() -> Any:
            pipeline = make()
            launches = current[0]
            launches.pipelines.append(pipeline)
            run = pipeline.run

            def counted_run(*a: Any, **kw: Any) -> Any:
                launches.runs += 1
                return run(*a, **kw)

            pipeline.run = counted_run
            return pipeline

        return counted

    def start() -> Launches:
        current[0] = Launches()
        return current[0]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runners, "pipeline_factory", factory)
        mp.setattr(preprocess_steps, "run_preprocessing_here", here)
        yield start


def _states(result: RunResult) -> dict[str, str]:
    return {n.name: n.state for n in result.nodes}


# --------------------------------------------------------------------------- one workflow, several runs


@dataclasses.dataclass
class Session:
    config: Path
    store: str
    first: RunResult
    first_launches: Launches
    again: RunResult
    again_launches: Launches
    l1: RunResult
    l1_launches: Launches


@pytest.fixture(scope="module")
def session(
    tmp_path_factory: pytest.TempPathFactory,
    census_like: tuple[Path, Path],
    count_pipelines: Callable[[], Launches],
) -> Session:
    folder = tmp_path_factory.mktemp("e2e")
    config = write_config(folder, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = str(folder / "store")
    first_launches = count_pipelines()
    # Everything stored: at 900 rows, preprocessing without Beam's launch takes ~0.02 s,
    # and the helix policy may find storing its outputs not worth it.
    first = api.run(config, store=store, batch_rows=250, materialize="all")
    again_launches = count_pipelines()
    again = api.run(config, store=store, batch_rows=250)
    l1_launches = count_pipelines()
    l1 = api.run(config, store=store, params=["learner.l1=0.01"], batch_rows=250)
    # The module's later runs are counted apart: before, a test that ran after others of
    # the module (in another order) found their passes in l1's count.
    count_pipelines()
    return Session(config, store, first, first_launches, again, again_launches, l1, l1_launches)


def test_first_run_computes_everything_in_one_pass_without_beam(session: Session) -> None:
    """The local runner preprocesses in the run's process: no Beam pipeline is launched."""
    assert set(_states(session.first).values()) == {"compute"}
    launches = session.first_launches
    assert launches.here == 1 and launches.pipelines == [] and launches.runs == 0


def test_beam_options_run_the_one_fused_beam_pipeline_with_the_same_results(
    session: Session, tmp_path: Path, count_pipelines: Callable[[], Launches]
) -> None:
    """A local run given Beam options preprocesses in one pipeline on Beam's in-process
    runner, with the in-process pass' rows, fingerprints and metrics (the portable
    runner's test compares the stored examples)."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    launches = count_pipelines()
    beam = api.run(
        session.config,
        store=str(tmp_path / "store"),
        batch_rows=250,
        pipeline_args=["--job_name=helix"],
    )
    assert len(launches.pipelines) == 1 and launches.runs == 1 and launches.here == 0
    assert isinstance(launches.pipelines[0].runner, FnApiRunner)
    assert beam.metrics == session.first.metrics
    for field in ("fingerprint", "rows"):
        assert [getattr(n, field) for n in beam.nodes] == [
            getattr(n, field) for n in session.first.nodes
        ], field


def test_first_run_reports_metrics_rows_and_bytes(session: Session) -> None:
    result = session.first
    assert set(result.metrics) == {"accuracy", "auc"}
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    assert result.metrics["accuracy"] > 0.6  # 1 epoch on 600 rows, a learnable label
    assert result.approx is False and result.workflow == "tiny_census"
    nodes = {n.name: n for n in result.nodes}
    assert [n.name for n in result.nodes] == [*PREPROCESS, *MODEL_SIDE]
    for name in PREPROCESS:
        assert nodes[name].rows == 900, name
    assert nodes["learner"].rows == 600
    assert nodes["predictions"].rows == nodes["evaluation"].rows == 300
    for name in (*PREPROCESS, "learner", "predictions"):
        assert nodes[name].bytes and nodes[name].bytes > 0, name
        assert nodes[name].seconds >= 0
    kinds = {n.name: n.kind for n in result.nodes}
    assert kinds == {
        "rows": "source",
        **{n: "preprocess" for n in PREPROCESS[1:]},
        "learner": "train",
        "predictions": "predict",
        "evaluation": "evaluate",
    }
    assert result.wall_seconds > 0


def test_first_run_is_recorded(session: Session) -> None:
    md = MetadataStore(f"sqlite:///{Path(session.store) / 'metadata.db'}")
    try:
        runs = md.runs("tiny_census")
    finally:
        md.close()
    assert len(runs) >= 3 and {r.status for r in runs} == {"ok"}
    first = min(runs, key=lambda r: r.id)
    assert first.status == "ok" and first.metrics == session.first.metrics


def test_identical_rerun_computes_nothing_and_launches_no_pipeline(session: Session) -> None:
    states = _states(session.again)
    assert set(states.values()) <= {"load", "prune"}
    assert states["evaluation"] == "load"
    assert session.again.metrics == session.first.metrics
    assert session.again_launches.passes == 0 and session.again_launches.pipelines == []


def test_learner_change_recomputes_only_the_model_side(session: Session) -> None:
    states = _states(session.l1)
    for name in PREPROCESS:
        assert states[name] in ("load", "prune"), (name, states[name])
    assert states["examples"] == "load"
    for name in MODEL_SIDE:
        assert states[name] == "compute", name
    assert session.l1_launches.passes == 0
    reason = {n.name: n.reason for n in session.l1.nodes}["learner"]
    assert "learner.l1" in reason and "0.01" in reason


def test_reading_inputs_is_measured_as_part_of_compute(session: Session) -> None:
    """``read_seconds``: the part of a node's compute time spent reading its inputs (the
    iterative benchmark's oracle leaves it out), for computed examples and stored ones."""
    for result in (session.first, session.l1):
        nodes = {n.name: n for n in result.nodes}
        for node in result.nodes:
            assert 0.0 <= node.read_seconds <= node.compute_seconds, node
            assert node.to_dict()["read_seconds"] == round(node.read_seconds, 4)
        for name in ("learner", "predictions"):
            assert nodes[name].read_seconds > 0, (name, result.nodes)
    # In the preprocessing pass, the computed source is read back by the features: a read.
    assert {n.name: n for n in session.first.nodes}["rows"].read_seconds > 0


def test_artifacts_in_the_store_verify(session: Session) -> None:
    store = ArtifactStore(session.store)
    entries = store.entries()
    fingerprints = {n.fingerprint for n in session.first.nodes}
    assert fingerprints & {m.fingerprint for m in entries}
    for manifest in entries:
        assert store.open_local(manifest) is not None


def test_a_new_feature_reuses_the_source_in_one_pipeline(
    session: Session, count_pipelines: Callable[[], Launches]
) -> None:
    body = TINY_CENSUS.replace(
        "[age, hours, education, occupation]",
        '[age, hours, education, occupation, wf.feature("gain", F.Numeric("capital_gain"))]',
    )
    train, test = re.findall(r'r"([^"]+)"', session.config.read_text())[:2]
    config = write_config(session.config.parent, body, name="more.py", train=train, test=test)
    launches = count_pipelines()
    result = api.run(config, store=session.store, batch_rows=250)
    states = _states(result)
    assert states["rows"] == "load"
    assert states["gain"] == "compute" and states["examples"] == "compute"
    # each old feature is loaded or (when cheaper) recomputed from the loaded source
    assert {states[n] for n in ("age", "hours", "education", "occupation")} <= {"load", "compute"}
    assert launches.passes == 1
    rows = {n.name: n.rows for n in result.nodes}
    assert rows["gain"] == rows["examples"] == 900
    # Reading the stored source's batches is an input read of the computed nodes.
    computed = [n for n in result.nodes if n.state == "compute" and n.kind == "preprocess"]
    assert sum(n.read_seconds for n in computed) > 0
    assert all(n.read_seconds <= n.compute_seconds for n in computed)


# --------------------------------------------------------------------------- other data


def test_text_workflow_on_generated_sms(tmp_path: Path, sms_like: Path, store: str) -> None:
    body = """\
    def workflow(params):
        wf = Workflow("sms_small")
        wf.source("messages", sources.Csv(train=r"$path", columns=(("label", "string"), ("text", "string")),
                  separator="\\t", strip=False, na_values=(), rest_in_last=True, test_fraction=0.25))
        tokens = wf.feature("tokens", F.Tokenize("text", ngrams=(1, 2)))
        words = wf.feature("words", F.TfIdf(tokens, min_count=2))
        counts = wf.feature("counts", F.Vocabulary(tokens, top_k=50))
        examples = wf.examples("examples", [words, counts], label=F.Label("label", positive="spam"))
        model = wf.train("learner", examples, learners.Linear(epochs=3, batch_size=64, learning_rate=0.05))
        predictions = wf.predict("predictions", model, examples)
        wf.output(wf.evaluate("evaluation", predictions, metrics.Accuracy(), metrics.AUC()))
        return wf
    """
    config = write_config(tmp_path, body, path=sms_like)
    result = api.run(config, store=store)
    rows = {n.name: n.rows for n in result.nodes}
    assert rows["messages"] == rows["examples"] == 400
    assert rows["learner"] + rows["predictions"] == 400
    assert result.metrics["auc"] > 0.8


def test_real_census_rows_cut_from_the_shared_copy(
    tmp_path: Path, census_cut: tuple[Path, Path], store: str
) -> None:
    config = write_config(tmp_path, TINY_CENSUS, train=census_cut[0], test=census_cut[1])
    result = api.run(config, store=store)
    rows = {n.name: n.rows for n in result.nodes}
    assert rows["rows"] == 600 and rows["learner"] == 400 and rows["predictions"] == 200
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


# --------------------------------------------------------------------------- bad input


BAD_INPUT = """\
PARAMS = {"train": r"$train", "test": r"$test", "metric_fails": False}


def broken_metric(y_true, y_score, frame):
    raise RuntimeError("the metric broke")


def workflow(params):
    wf = Workflow("bad_input")
    wf.source("rows", sources.Csv(train=params.train, test=params.test, **CENSUS_CSV_OPTIONS))
    age = wf.feature("age", F.Numeric("age"))
    examples = wf.examples("examples", [age], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=128))
    predictions = wf.predict("predictions", model, examples)
    checks = [metrics.Accuracy()]
    if params.metric_fails:
        checks.append(metrics.Custom(name="broken", fn=broken_metric))
    wf.output(wf.evaluate("evaluation", predictions, *checks))
    return wf
"""

UDF_RAISES = """\
def workflow(params):
    wf = Workflow("udf_raises")
    wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))
    age = wf.feature("age", F.Numeric("age"))

    @wf.udf("hours_per_year")
    def hours_per_year(row):
        if row["age"] > 60:
            raise ValueError("no pension rules yet")
        return row["hours_per_week"] * 52

    examples = wf.examples("examples", [age, hours_per_year], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(epochs=1))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, examples), metrics.AUC()))
    return wf
"""


@pytest.fixture(scope="module")
def broken_files(
    tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]
) -> dict[str, Path]:
    """Copies of the generated train file with one bad row each (line numbers are 1-based)."""
    folder = tmp_path_factory.mktemp("broken")
    lines = census_like[0].read_text().split("\n")

    def write(name: str, line: int, text: str) -> Path:
        copy = list(lines)
        copy[line - 1] = text
        path = folder / name
        path.write_text("\n".join(copy))
        return path

    first = lines[9].split(", ")
    unlabelled = ", ".join([*lines[6].split(", ")[:-1], ""])
    return {
        "missing_label": write("unlabelled.data", 7, unlabelled),
        "short": write("short.data", 10, ", ".join(first[:4])),
        "long": write("long.data", 10, ", ".join([*first, "extra"])),
        "text_in_number": write("text.data", 20, ", ".join(["forty", *lines[19].split(", ")[1:]])),
    }


@pytest.fixture
def bad_config(make_config: Callable[..., Path], census_like: tuple[Path, Path]) -> Path:
    return make_config(BAD_INPUT, train=census_like[0], test=census_like[1])


def _assert_store_has_only_complete_entries(store: str, failed: tuple[str, ...] = ()) -> None:
    if not Path(store).exists():
        return
    artifacts = ArtifactStore(store)
    entries = artifacts.entries()
    for manifest in entries:
        assert artifacts.open_local(manifest) is not None, manifest.fingerprint
    staging = Path(store) / "staging"
    leftovers = list(staging.iterdir()) if staging.exists() else []
    assert leftovers == [], leftovers


def test_missing_data_file_names_the_file_and_the_fix(
    bad_config: Path, tmp_path: Path, store: str
) -> None:
    missing = tmp_path / "no" / "adult.data"
    with pytest.raises(CompileError) as info:
        api.run(bad_config, store=store, params=[f"train={missing}"])
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message and "fix the path" in message
    _assert_store_has_only_complete_entries(store)


@pytest.mark.parametrize(
    ("file", "line", "pattern"),
    [
        ("short", 10, r"expected 15 fields separated by ',', found 4"),
        ("long", 10, r"expected 15 fields separated by ',', found 16"),
        ("text_in_number", 20, r"column 'age' \(int\) expects an integer, found 'forty'"),
    ],
)
def test_malformed_row_fails_naming_file_and_line(
    bad_config: Path,
    broken_files: dict[str, Path],
    store: str,
    file: str,
    line: int,
    pattern: str,
) -> None:
    path = broken_files[file]
    with pytest.raises(DataError) as info:
        api.run(bad_config, store=store, params=[f"train={path}"])
    message = str(info.value)
    assert f"{path} line {line}:" in message
    assert re.search(pattern, message), message
    assert "on_bad_row='skip'" in message  # how to fix it
    assert ArtifactStore(store).entries() == []
    _assert_store_has_only_complete_entries(store)
    md = MetadataStore(f"sqlite:///{Path(store) / 'metadata.db'}")
    try:
        (run,) = md.runs("bad_input")
    finally:
        md.close()
    assert run.status == "failed" and f"line {line}" in (run.error or "")


@pytest.mark.parametrize(
    ("content", "described"),
    [("", "0 bytes: empty"), ("|1x3 Cross validator\n", "1 non-blank line")],
    ids=["empty", "skipped-lines-only"],
)
def test_a_train_file_without_rows_names_the_file(
    bad_config: Path,
    tmp_path: Path,
    store: str,
    content: str,
    described: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An empty (or header-only) train file once failed with "the examples have no
    'train' split", naming neither the file nor the cause. Every output is to be stored:
    the source without rows (the test file empty too), which has no file to store, was
    refused by the store and read as "the artifact store … cannot take more data" (a
    healthy store), and the run stopped materializing anything."""
    empty = tmp_path / "empty.data"
    empty.write_text(content)
    with pytest.raises(ExecutionError) as info:
        api.run(
            bad_config,
            store=store,
            params=[f"train={empty}", f"rows.test={empty}", "rows.skip_lines=1"],
            materialize="all",
        )
    assert "cannot take more data" not in caplog.text
    message = str(info.value)
    assert "the examples have no 'train' split: no row reached it" in message, message
    assert f"source 'rows' read {empty} ({described})" in message, message
    assert "Give the source data rows" in message
    _assert_store_has_only_complete_entries(store)


def test_a_test_file_without_rows_fails_before_the_training(
    bad_config: Path, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header-only test file failed with "no 'test' split" once the model was trained
    (the predict step read it): on diamonds' 4,000 rows, 5-6 s of training first (QA
    pass 23). Now the run fails as preprocessing ends, before any training."""
    from helix_tf.engine._learning import LearningSteps

    def no_training(self: object, node: object) -> None:
        raise AssertionError("trained before the empty split was reported")

    monkeypatch.setattr(LearningSteps, "train", no_training)
    empty = tmp_path / "empty.data"
    empty.write_text("|1x3 Cross validator\n")
    with pytest.raises(ExecutionError) as info:
        api.run(bad_config, store=store, params=[f"rows.test={empty}", "rows.skip_lines=1"])
    message = str(info.value)
    assert "the examples have no 'test' split: no row reached it" in message, message
    assert f"{empty} (1 non-blank line)" in message and info.value.node == "examples"


def test_missing_label_names_the_row_and_column(
    bad_config: Path, broken_files: dict[str, Path], store: str
) -> None:
    with pytest.raises(DataError) as info:
        api.run(bad_config, store=store, params=[f"train={broken_files['missing_label']}"])
    message = str(info.value)
    # the file too (before: "row 7 (line number in its file) of split 'train'")
    assert f"line 7 of {broken_files['missing_label']}" in message
    assert "column 'income'" in message and "labels must not be missing" in message
    assert ArtifactStore(store).entries() == []


def test_positive_label_that_never_occurs_fails_before_training_with_the_values_found(
    bad_config: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.engine._learning import LearningSteps

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trained although no label is positive")

    monkeypatch.setattr(LearningSteps, "train", never)
    with pytest.raises(DataError) as info:
        api.run(bad_config, store=store, params=["examples.positive='>50k'"])
    message = str(info.value)
    assert info.value.node == "examples"
    assert "label column 'income' equal to positive='>50k'" in message, message
    assert re.search(r"values found are '<=50K' \([\d,]+ rows\), '>50K' \([\d,]+ rows\)", message)


def test_rows_lost_in_the_engine_fail_the_run_and_store_nothing(
    bad_config: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = preprocess_steps.compute_batch

    def drop_first_test_batch(nodes, order, key, stats, inc, writer=None, held=None):  # type: ignore[no-untyped-def]
        if key[:2] == ("test", 0):
            return key
        return original(nodes, order, key, stats, inc, writer, held)

    monkeypatch.setattr(preprocess_steps, "compute_batch", drop_first_test_batch)
    with pytest.raises(ExecutionError, match=r"Rows were lost between stages"):
        api.run(bad_config, store=store)
    assert ArtifactStore(store).entries() == []
    _assert_store_has_only_complete_entries(store)


def test_malformed_rows_are_skipped_counted_and_warned(
    bad_config: Path,
    broken_files: dict[str, Path],
    store: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="helix_tf"):
        result = api.run(
            bad_config,
            store=store,
            params=[f"train={broken_files['short']}", "rows.on_bad_row=skip"],
        )
    rows = {n.name: n.rows for n in result.nodes}
    assert rows["rows"] == rows["examples"] == 899
    assert rows["learner"] == 599
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"skipped 1 malformed rows in {broken_files['short']}" in m for m in messages)
    assert any("line 10" in m for m in messages)


def test_unknown_operator_parameter_via_p(bad_config: Path, store: str) -> None:
    with pytest.raises(
        ConfigError, match=r"no parameter 'on_bad_rows' \(did you mean 'on_bad_row'\?\)"
    ):
        api.run(bad_config, store=store, params=["rows.on_bad_rows=skip"])
    assert not (Path(store) / "artifacts").exists() or ArtifactStore(store).entries() == []


def test_failing_udf_names_the_operator(
    make_config: Callable[..., Path], census_like: tuple[Path, Path], store: str
) -> None:
    config = make_config(UDF_RAISES, train=census_like[0], test=census_like[1])
    with pytest.raises(ExecutionError) as info:
        api.run(config, store=store)
    message = str(info.value)
    assert "operator 'hours_per_year' failed" in message
    assert "ValueError: no pension rules yet" in message
    assert ArtifactStore(store).entries() == []
    _assert_store_has_only_complete_entries(store)


NOT_FINITE = """\
import numpy as np

PARAMS = {"train": r"$train", "test": r"$test"}


def workflow(params):
    wf = Workflow("not_finite")
    columns = dict(CENSUS_CSV_OPTIONS["columns"], hours_per_week="float")
    options = dict(CENSUS_CSV_OPTIONS, columns=columns)
    wf.source("rows", sources.Csv(train=params.train, test=params.test, **options))
    age = wf.feature("age", F.Numeric("age"))
    hours = wf.feature("hours", F.Numeric("hours_per_week", standardize="$udf" != "raw"))

    @wf.udf("log_gain", batched=True)
    def log_gain(batch):
        return np.log(batch["capital_gain"].fillna(0))

    feats = [age, hours, log_gain] if "$udf" == "yes" else [age, hours]
    examples = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(epochs=1, batch_size=128))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, examples),
                          metrics.Accuracy()))
    return wf
"""


@pytest.mark.parametrize(
    "udf",
    ["no", "yes", "raw"],
    ids=["inf-in-the-data", "udf-gives-minus-inf", "past-float32-unstandardised"],
)
def test_a_non_finite_feature_fails_before_training_naming_the_row(
    make_config: Callable[..., Path],
    census_like: tuple[Path, Path],
    store: str,
    tmp_path: Path,
    udf: str,
) -> None:
    """One 'inf' in a float column (or np.log of 0 in a UDF) once trained to a NaN loss,
    then failed in evaluation with "apply a sigmoid to logits first"."""
    lines = census_like[0].read_text().split("\n")
    fields = lines[11].split(", ")
    fields[12] = "1e39" if udf == "raw" else "inf"  # hours_per_week of line 12
    lines[11] = ", ".join(fields)
    train = tmp_path / "inf.data"
    train.write_text("\n".join(lines))
    data = census_like[0] if udf == "yes" else train
    config = make_config(NOT_FINITE, train=data, test=census_like[1], udf=udf)
    with pytest.raises(DataError) as info:
        api.run(config, store=store)
    message = str(info.value)
    if udf == "raw":  # finite in the data, infinite as the model's float32: said so
        assert f"column 'hours_per_week' is 1e+39 on line 12 of {train}" in message, message
        assert "past float32's range" in message and "standardise it" in message, message
        assert info.value.node == "examples"
        return
    if udf == "no":
        assert f"column 'hours_per_week' is inf on line 12 of {train}" in message, message
    else:
        assert "feature 'log_gain' is -inf on line " in message, message
    assert "a model needs finite numbers" in message and "na_values" in message
    assert info.value.node == "examples"
    _assert_store_has_only_complete_entries(store)


def _first_line_over_60(path: Path) -> int:
    for i, line in enumerate(path.read_text().split("\n"), 1):
        if line.strip() and float(line.split(",")[0]) > 60:
            return i
    raise AssertionError("no row with age > 60")


def test_failing_udf_shows_the_offending_row(
    make_config: Callable[..., Path], census_like: tuple[Path, Path], store: str
) -> None:
    config = make_config(UDF_RAISES, train=census_like[0], test=census_like[1])
    line = _first_line_over_60(census_like[0])
    with pytest.raises(ExecutionError) as info:
        api.run(config, store=store)
    message = str(info.value)
    assert f"line {line} of {census_like[0]}" in message, message  # the file, not only the line


UDF_TYPES = """\
def workflow(params):
    wf = Workflow("udf_types")
    wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))

    @wf.udf("typed")
    def typed(row):
        age, hours = row["age"], row["hours_per_week"]  # declared "int"
        if type(age) is not int or not (hours is None or type(hours) is int):
            raise TypeError(f"ints arrive as {type(age).__name__}/{type(hours).__name__}")
        return age * 2

    examples = wf.examples("examples", [typed], label=F.Label("income", positive=">50K"))
    model = wf.train("learner", examples, learners.Linear(epochs=1))
    wf.output(wf.evaluate("evaluation", wf.predict("predictions", model, examples), metrics.AUC()))
    return wf
"""


def test_row_wise_udfs_get_integer_columns_as_int(
    make_config: Callable[..., Path], census_like: tuple[Path, Path], store: str
) -> None:
    config = make_config(UDF_TYPES, train=census_like[0], test=census_like[1])
    result = api.run(config, store=store)
    assert {n.name: n.state for n in result.nodes}["typed"] == "compute"


def test_failing_udf_error_carries_the_node(
    make_config: Callable[..., Path], census_like: tuple[Path, Path], store: str
) -> None:
    config = make_config(UDF_RAISES, train=census_like[0], test=census_like[1])
    with pytest.raises(ExecutionError) as info:
        api.run(config, store=store)
    assert info.value.node == "hours_per_year"


def test_failure_after_preprocessing_keeps_only_complete_entries(
    bad_config: Path, store: str
) -> None:
    with pytest.raises(ExecutionError, match=r"custom metric 'broken' raised RuntimeError"):
        api.run(bad_config, store=store, params=["metric_fails=True"])
    _assert_store_has_only_complete_entries(store)
    stored = {m.fingerprint for m in ArtifactStore(store).entries()}
    plan = api.plan(bad_config, store=store, params=["metric_fails=True"])
    evaluation = next(d for d in plan.nodes if d.name == "evaluation")
    assert evaluation.fingerprint not in stored
    assert evaluation.state == "compute"


def test_failing_metric_names_the_evaluate_node(bad_config: Path, store: str) -> None:
    with pytest.raises(ExecutionError) as info:
        api.run(bad_config, store=store, params=["metric_fails=True"])
    assert info.value.node == "evaluation"
    assert "operator 'evaluation' failed" in str(info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('wf = Workflow("x"\n', r"syntax error at line \d+"),
        ("X = 1\n", r"defines no workflow"),
    ],
    ids=["syntax_error", "no_workflow"],
)
def test_broken_config_through_run(
    make_config: Callable[..., Path], store: str, body: str, match: str
) -> None:
    path = make_config(body)
    with pytest.raises(ConfigError, match=match) as info:
        api.run(path, store=store)
    assert str(path.resolve()) in str(info.value)


def test_run_takes_a_config_path_not_a_workflow() -> None:
    from helix_tf import Workflow

    with pytest.raises(ConfigError, match="path of a config module"):
        api.run(Workflow("x"))  # type: ignore[arg-type]


def test_every_error_is_a_helix_error() -> None:
    for cls in (ConfigError, CompileError, DataError, ExecutionError):
        assert issubclass(cls, HelixError)


# --------------------------------------------------------------------------- quality bars


def _shared(name: str) -> Path:
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"the shared data folder {folder} is absent")
    return SHARED_DATA


@pytest.mark.slow
@pytest.mark.ci
def test_census_quality_bar(tmp_path: Path) -> None:
    data = _shared("census")
    result = api.run(
        Path(__file__).parents[2] / "configs" / "census.py",
        data_dir=str(data),
        store=str(tmp_path / "store"),
    )
    # the real data, not the generated stand-in
    assert not any("generated" in note for note in result.notes), result.notes
    rows = {n.name: n.rows for n in result.nodes}
    assert rows["learner"] == 32_561 and rows["predictions"] == 16_281
    assert result.metrics["accuracy"] >= 0.84, result.metrics


@pytest.mark.slow
@pytest.mark.ci
def test_sms_spam_quality_bar(tmp_path: Path) -> None:
    data = _shared("sms_spam")
    result = api.run(
        Path(__file__).parents[2] / "configs" / "sms_spam.py",
        data_dir=str(data),
        store=str(tmp_path / "store"),
    )
    assert not any("generated" in note for note in result.notes), result.notes
    rows = {n.name: n.rows for n in result.nodes}
    assert rows["learner"] + rows["predictions"] == 5_574
    assert result.metrics["accuracy"] >= 0.95, result.metrics


def test_a_second_evaluation_keeps_the_first_ones_metric_keys(
    make_config: Callable[..., Path], census_like: tuple[Path, Path], store: str
) -> None:
    one = TINY_CENSUS
    two = TINY_CENSUS.replace(
        "    return wf\n",
        '    wf.output(wf.evaluate("holdout", predictions, metrics.LogLoss(), metrics.AUC()))\n'
        "    return wf\n",
    )
    first = api.run(make_config(one, train=census_like[0], test=census_like[1]), store=store)
    second = api.run(
        make_config(two, name="cfg2.py", train=census_like[0], test=census_like[1]), store=store
    )
    assert set(first.metrics) == {"accuracy", "auc"}
    assert set(second.metrics) == {"accuracy", "auc", "holdout/log_loss", "holdout/auc"}
    assert {k: second.metrics[k] for k in first.metrics} == first.metrics
    assert second.comparison is not None
    assert second.comparison.changes == ("added holdout (evaluate)",)
