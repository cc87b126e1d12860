"""The ``helix-tf`` command line, driven through click's CliRunner."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from helix_tf.cli import main
from tests.conftest import TINY_CENSUS, write_config

KINDS = {"source", "preprocess", "train", "predict", "evaluate"}
PREPROCESS = ("rows", "age", "hours", "education", "occupation", "examples")
MODEL_SIDE = ("learner", "predictions", "evaluation")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def states(payload: dict[str, Any]) -> dict[str, str]:
    return {n["name"]: n["state"] for n in payload["nodes"]}


@pytest.mark.parametrize("command", [[], ["run"], ["plan"], ["status"], ["history"]])
def test_help_works_on_every_command(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if command:
        assert "CONFIG" in result.output and "--store" in result.output and "-p" in result.output


def test_help_lists_the_commands() -> None:
    output = invoke("--help").output
    for command in ("run", "plan", "status", "history"):
        assert command in output


# --------------------------------------------------------------------------- one config, several runs


@dataclasses.dataclass
class Runs:
    config: Path
    store: str
    plan_before: dict[str, Any]
    first: dict[str, Any]
    plan_after: dict[str, Any]
    again: dict[str, Any]
    l1: dict[str, Any]
    history: list[dict[str, Any]]
    table: Result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]) -> Runs:
    folder = tmp_path_factory.mktemp("cli")
    config = write_config(folder, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = str(folder / "store")
    base = (config, "--store", store)
    return Runs(
        config=config,
        store=store,
        plan_before=as_json(invoke("plan", *base, "--json")),
        # Everything stored: at 900 rows, preprocessing without Beam's launch takes
        # ~0.02 s, and the helix policy may find storing its outputs not worth it.
        first=as_json(invoke("run", *base, "--json", "--materialize", "all")),
        plan_after=as_json(invoke("plan", *base, "--json")),
        again=as_json(invoke("run", *base, "--json")),
        l1=as_json(invoke("run", *base, "--json", "-p", "learner.l1=0.001")),
        history=as_json(invoke("history", *base, "--json")),
        table=invoke("run", *base),
    )


def test_run_json_is_one_object_with_the_documented_keys(runs: Runs) -> None:
    payload = runs.first
    assert {"workflow", "approx", "metrics", "nodes", "wall_seconds"} <= set(payload)
    assert payload["workflow"] == "tiny_census"
    assert payload["approx"] is False
    assert set(payload["metrics"]) == {"accuracy", "auc"}
    assert isinstance(payload["wall_seconds"], float) and payload["wall_seconds"] > 0
    for node in payload["nodes"]:
        assert {"name", "kind", "state", "seconds", "rows", "bytes"} <= set(node)
        assert node["kind"] in KINDS
        assert node["state"] == "compute"
        assert isinstance(node["rows"], int) and node["rows"] > 0
    kinds = {n["name"]: n["kind"] for n in payload["nodes"]}
    assert kinds["rows"] == "source" and kinds["learner"] == "train"
    assert kinds["predictions"] == "predict" and kinds["evaluation"] == "evaluate"
    assert {kinds[n] for n in PREPROCESS[1:]} == {"preprocess"}


def test_plan_json_states_before_and_after_a_run(runs: Runs) -> None:
    assert runs.plan_before["workflow"] == "tiny_census"
    assert set(states(runs.plan_before).values()) == {"compute"}
    for node in runs.plan_before["nodes"]:
        assert node["kind"] in KINDS and node["reason"]
    after = states(runs.plan_after)
    assert after["evaluation"] == "load"
    assert set(after.values()) <= {"load", "prune"}


def test_second_identical_run_computes_nothing(runs: Runs) -> None:
    assert set(states(runs.again).values()) <= {"load", "prune"}
    assert runs.again["metrics"] == runs.first["metrics"]


def test_learner_override_recomputes_only_the_model_side(runs: Runs) -> None:
    got = states(runs.l1)
    for name in PREPROCESS:
        assert got[name] in ("load", "prune"), (name, got[name])
    for name in MODEL_SIDE:
        assert got[name] == "compute", name


def test_history_json_lists_the_runs(runs: Runs) -> None:
    assert len(runs.history) >= 3
    assert {r["status"] for r in runs.history} == {"ok"}
    assert runs.first["metrics"] in [r["metrics"] for r in runs.history]
    first = min(runs.history, key=lambda r: r["run"])
    assert first["states"]["compute"] == len(runs.first["nodes"])


def test_run_without_json_prints_tables(runs: Runs) -> None:
    assert runs.table.exit_code == 0, runs.table.output
    out = runs.table.stdout
    for word in ("nodes", "metrics", "accuracy", "learner", "evaluation"):
        assert word in out
    assert "tiny_census v" in out and "loaded" in out


def test_run_is_compared_with_the_previous_version_and_the_best(runs: Runs) -> None:
    first, l1 = runs.first["comparison"], runs.l1["comparison"]
    assert first["previous_version"] is None and first["changes"] == []
    assert l1["previous_version"] == runs.first["version"] != runs.l1["version"]
    assert l1["changes"] == ["learner.l1 0.0 → 0.001"]
    by_name = {m["name"]: m for m in l1["metrics"]}
    assert set(by_name) == set(runs.l1["metrics"])
    for name, m in by_name.items():
        assert m["previous"] == runs.first["metrics"][name]
        assert m["delta_previous"] == pytest.approx(runs.l1["metrics"][name] - m["previous"])
        # the two earlier runs are one version with equal metrics: the best is v1's
        assert m["best"] == runs.first["metrics"][name] and m["best_version"] == 1


def test_run_table_shows_the_changes_against_the_previous_version(runs: Runs) -> None:
    out = runs.table.stdout
    # the table run is v1 again, after the l1 run (v2)
    assert "vs v2" in out and "best earlier (version)" in out
    assert "against v2" in out and "learner.l1 0.001 → 0.0" in out


def test_history_lists_what_changed_per_version(runs: Runs) -> None:
    by_run = {r["run"]: r for r in runs.history}
    l1 = by_run[runs.l1["run_id"]]
    assert l1["changed_from"] == 1 and l1["changes"] == ["learner.l1 0.0 → 0.001"]
    assert by_run[runs.again["run_id"]]["changes"] == []  # a rerun of the same version


def test_history_selects_metrics_and_keeps_full_names(runs: Runs) -> None:
    base = (runs.config, "--store", runs.store)
    only_auc = as_json(invoke("history", *base, "--json", "--metrics", "auc"))
    assert {k for r in only_auc for k in r["metrics"]} == {"auc"}
    table = invoke("history", *base, "--metrics", "auc,accuracy")
    assert table.exit_code == 0, table.output
    assert "accuracy" in table.stdout and "auc" in table.stdout and "learner.l1" in table.stdout
    assert "run = one execution, version = one distinct workflow" in table.stdout


def test_history_refuses_a_metric_selection_that_names_no_metric(runs: Runs) -> None:
    # A typo (--metrics acc) used to list every run with an empty metrics column.
    base = (runs.config, "--store", runs.store)
    for args in (("--metrics", "acc"), ("--metrics", "auc,acc", "--json")):
        _assert_clean_failure(invoke("history", *base, *args), "'acc'", "auc", "accuracy")
    assert invoke("history", *base, "--metrics", "auc*").exit_code == 0


def test_diff_lists_what_changed_between_two_versions(runs: Runs) -> None:
    base = (runs.config, "--store", runs.store)
    payload = as_json(invoke("diff", *base, "1", "--json"))
    assert (payload["old"], payload["new"]) == (1, 2)
    by_name = {c["name"]: c for c in payload["changes"]}
    assert by_name["learner"] == {
        "name": "learner",
        "change": "changed",
        "details": ["learner.l1 0.0 → 0.001"],
    }
    assert {by_name[n]["change"] for n in PREPROCESS} == {"unchanged"}
    text = invoke("diff", *base, "1")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == "tiny_census: v1 → v2"
    assert "  changed   learner: learner.l1 0.0 → 0.001" in lines
    assert not any(n in text.stdout for n in PREPROCESS[1:])  # unchanged: only with --all
    every = invoke("diff", *base, "1", "2", "--all").stdout
    assert all(f"unchanged {n}" in every for n in PREPROCESS)
    same = invoke("diff", *base, "2", "2").stdout.splitlines()
    assert same == ["tiny_census: v2 → v2", "  no differences"]
    missing = invoke("diff", *base, "7")
    assert missing.exit_code == 1 and "has no version 7" in missing.output


# --------------------------------------------------------------------------- failures


def _assert_clean_failure(result: Result, *needles: str) -> str:
    assert result.exit_code != 0
    text = result.output
    assert "Traceback" not in text, text
    assert "error:" in text
    message = text[text.index("error:") :].strip()
    assert "\n\n" not in message  # one paragraph
    for needle in needles:
        assert needle in message, message
    return message


def test_failing_run_exits_non_zero_with_one_paragraph(
    make_config: Any, census_like: tuple[Path, Path], store: str
) -> None:
    body = TINY_CENSUS.replace('F.Numeric("age")', 'F.Numeric("agee")')
    config = make_config(body, train=census_like[0], test=census_like[1])
    result = invoke("run", config, "--store", store, "--json")
    _assert_clean_failure(result, "did you mean 'age'?", str(config))
    # --json: no result, the error as one JSON object (the message standard error shows).
    error = json.loads(result.stdout)["error"]
    assert (
        set(error) >= {"type", "message", "exit_code"} and "did you mean 'age'?" in error["message"]
    )
    assert error["message"].splitlines()[0] in result.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["-p", "learner.l11=0.1"], ["did you mean 'l1'?"]),
        (["-p", "epoch=2"], ["did you mean 'epochs'?"]),
        (["-p", "learner.l1"], ["expected key=value"]),
        (["--beam-option=--direct_num_workers=2"], ["--direct_num_workers is fixed to 1"]),
        (["--data-dir", "/nonexistent/helix"], ["is not a folder"]),
    ],
    ids=[
        "unknown_op_param",
        "unknown_param",
        "bad_syntax",
        "num_workers",
        "bad_data_dir",
    ],
)
def test_bad_arguments_fail_cleanly(
    tiny_census_config: Path, store: str, args: list[str], needles: list[str]
) -> None:
    result = invoke("run", tiny_census_config, "--store", store, *args)
    _assert_clean_failure(result, *needles)
    assert "plan:" not in result.output  # refused before planning (a budget was read after)


def test_a_batch_size_below_one_is_refused_before_the_run(
    tiny_census_config: Path, store: str
) -> None:
    """Before: taken, and failing only where a source was computed (a loaded source
    never checked it)."""
    result = invoke("run", tiny_census_config, "--store", store, "--batch-rows", "0")
    assert result.exit_code == 2 and "Invalid value for '--batch-rows'" in result.output
    assert not Path(store).exists()  # refused before anything ran


@pytest.mark.parametrize("command", ["history", "report"])
def test_a_limit_below_one_is_refused(tiny_census_config: Path, store: str, command: str) -> None:
    """Before: ``--limit -2`` (and 0) showed an empty history as if nothing had run."""
    result = invoke(command, tiny_census_config, "--store", store, "--limit", "-2")
    assert result.exit_code == 2 and "Invalid value for '--limit'" in result.output


def test_missing_config_file_fails_cleanly(tmp_path: Path) -> None:
    result = invoke("run", tmp_path / "nope.py", "--store", tmp_path / "store")
    _assert_clean_failure(result, "does not exist")


def test_plan_of_a_broken_config_fails_cleanly(make_config: Any, store: str) -> None:
    result = invoke("plan", make_config("X = (\n"), "--store", store)
    _assert_clean_failure(result, "syntax error at line")


UDF_RAISES = TINY_CENSUS.replace(
    '    examples = wf.examples(\n        "examples", [age,',
    '    @wf.udf("boom")\n'
    "    def boom(row):\n"
    '        raise ValueError("udf exploded")\n\n'
    '    examples = wf.examples(\n        "examples", [age, boom,',
)


def test_failing_udf_exits_non_zero_naming_the_operator(
    make_config: Any, census_like: tuple[Path, Path], store: str
) -> None:
    assert "udf exploded" in UDF_RAISES
    config = make_config(UDF_RAISES, train=census_like[0], test=census_like[1])
    result = invoke("run", config, "--store", store)
    assert result.exit_code == 1
    assert "operator 'boom' failed" in result.output
    assert "udf exploded" in result.output


def test_failing_udf_prints_no_traceback(
    make_config: Any, census_like: tuple[Path, Path], store: str
) -> None:
    config = make_config(UDF_RAISES, train=census_like[0], test=census_like[1])
    _assert_clean_failure(invoke("run", config, "--store", store), "operator 'boom' failed")


def test_plan_prunes_a_dead_operator_and_says_why(
    make_config: Any, census_like: tuple[Path, Path], store: str
) -> None:
    body = TINY_CENSUS.replace(
        '    age = wf.feature("age", F.Numeric("age"))\n',
        '    age = wf.feature("age", F.Numeric("age"))\n'
        '    wf.feature("unused", F.Numeric("capital_loss"))\n',
    )
    config = make_config(body, train=census_like[0], test=census_like[1])
    payload = as_json(invoke("plan", config, "--store", store, "--json"))
    unused = next(n for n in payload["nodes"] if n["name"] == "unused")
    assert unused["state"] == "prune"
    assert "dead operator" in unused["reason"]
    assert states(payload)["age"] == "compute"


def _broken_train_file(census_like: tuple[Path, Path], folder: Path) -> Path:
    lines = census_like[0].read_text().split("\n")
    lines[4] = "39, State-gov, 77516"  # line 5: 3 fields instead of 15
    broken = folder / "broken.data"
    broken.write_text("\n".join(lines))
    return broken


def test_malformed_row_exits_non_zero_naming_file_and_line(
    make_config: Any, census_like: tuple[Path, Path], tmp_path: Path, store: str
) -> None:
    broken = _broken_train_file(census_like, tmp_path)
    config = make_config(TINY_CENSUS, train=broken, test=census_like[1])
    result = invoke("run", config, "--store", store, "--json")
    assert result.exit_code == 1
    message = result.stderr[result.stderr.index("error:") :]
    assert f"{broken} line 5: expected 15 fields" in message
    assert "on_bad_row='skip'" in message
    # --json: standard output holds the error as one JSON object, and nothing else.
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "DataError" and error["exit_code"] == 1
    assert f"{broken} line 5: expected 15 fields" in error["message"]


def test_malformed_row_prints_no_traceback(
    make_config: Any, census_like: tuple[Path, Path], tmp_path: Path, store: str
) -> None:
    broken = _broken_train_file(census_like, tmp_path)
    config = make_config(TINY_CENSUS, train=broken, test=census_like[1])
    _assert_clean_failure(invoke("run", config, "--store", store), f"{broken} line 5")


def test_skipped_rows_are_warned_on_the_console(
    make_config: Any, census_like: tuple[Path, Path], tmp_path: Path, store: str
) -> None:
    broken = _broken_train_file(census_like, tmp_path)
    config = make_config(TINY_CENSUS, train=broken, test=census_like[1])
    result = invoke("run", config, "--store", store, "--json", "-p", "rows.on_bad_row=skip")
    payload = as_json(result)
    assert {n["name"]: n["rows"] for n in payload["nodes"]}["rows"] == 899
    assert "skipped 1 malformed rows" in result.stderr


def test_retrain_without_zero_says_when_nothing_is_zero(runs: Runs) -> None:
    # The tiny census learner uses L2 only: no feature has all-zero weights.
    payload = as_json(
        invoke("run", runs.config, "--store", runs.store, "--json", "--retrain-without-zero")
    )
    assert "retrained" not in payload
    assert any("nothing to retrain" in note for note in payload["notes"])
    assert payload["metrics"] == runs.first["metrics"]


def test_ctrl_c_exits_with_status_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, census_like: Any
) -> None:
    """The shell convention for a command ended by SIGINT is 128 + 2, not 1."""
    from helix_tf import api
    from helix_tf.cli import run_cli

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    monkeypatch.setattr(api, "plan", interrupted)
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    assert run_cli(["run", str(config), "--no-server"]) == 130
    assert run_cli(["plan", str(config)]) == 130


def test_rehash_is_accepted_by_run_and_plan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, census_like: Any
) -> None:
    from helix_tf import api
    from helix_tf.cli import run_cli

    seen: list[bool] = []

    def record(*args: Any, rehash: bool = False, **kwargs: Any) -> None:
        seen.append(rehash)
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", record)
    monkeypatch.setattr(api, "plan", record)
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    run_cli(["run", str(config), "--no-server", "--rehash"])
    run_cli(["plan", str(config), "--rehash"])
    run_cli(["plan", str(config)])
    assert seen == [True, True, False]


def test_run_save_writes_the_parameter_and_the_next_run_reuses_everything(
    tiny_census_config: Path, store: str
) -> None:
    saved = invoke(
        "run", tiny_census_config, "--store", store, "-p", "learner.l2=0.001", "--save", "--json"
    )
    payload = as_json(saved)
    assert payload["saved"]["keys"] == ["learner.l2"]
    assert "+" in payload["saved"]["diff"] and "l2=0.001" in tiny_census_config.read_text()
    again = as_json(invoke("run", tiny_census_config, "--store", store, "--json"))
    assert again["version"] == payload["version"]
    assert set(states(again).values()) <= {"load", "prune"}


def test_run_save_refuses_clearly_and_leaves_the_config_alone(
    tiny_census_config: Path, store: str
) -> None:
    before = tiny_census_config.read_text()
    result = invoke("run", tiny_census_config, "--store", store, "-p", "learner.epochs=2", "--save")
    message = _assert_clean_failure(result, "--save", "params.epochs", "-p epochs=... --save")
    assert "the run succeeded" in message
    assert tiny_census_config.read_text() == before


@pytest.mark.parametrize("column", ["[/age]", "[red]age"], ids=["closing_tag", "style_tag"])
def test_error_text_is_printed_literally_not_read_as_console_markup(
    make_config: Any, census_like: tuple[Path, Path], store: str, column: str
) -> None:
    # A message quoting user text (a column, a path, a row's values) that looks like rich
    # markup was either swallowed ("[red]age" printed as "age") or crashed the error
    # handler itself with a MarkupError traceback ("[/age]").
    body = TINY_CENSUS.replace('F.Numeric("age")', f'F.Numeric("{column}")')
    config = make_config(body, train=census_like[0], test=census_like[1])
    _assert_clean_failure(invoke("plan", config, "--store", store), f"reads column '{column}'")


def test_diff_prints_added_list_items_literally(
    make_config: Any, census_like: tuple[Path, Path], store: str
) -> None:
    # "features 2 → 4 items +[education_of_the_person, occupation_of_the_person]" lost its bracketed list
    # (read as console markup).
    full = TINY_CENSUS.replace('"education", F.', '"education_of_the_person", F.').replace(
        '"occupation", F.', '"occupation_of_the_person", F.'
    )
    fewer = full.replace("[age, hours, education, occupation]", "[age, hours]")
    data = {"train": census_like[0], "test": census_like[1]}
    as_json(invoke("run", make_config(fewer, **data), "--store", store, "--json"))
    config = make_config(full, **data)
    as_json(invoke("run", config, "--store", store, "--json"))
    result = invoke("diff", config, "1", "2", "--store", store)
    assert result.exit_code == 0, result.output
    assert "+[education_of_the_person, occupation_of_the_person]" in result.output, result.output


@pytest.mark.parametrize("command", [["history"], ["diff", "1", "2"], ["report"]])
def test_read_only_commands_refuse_a_store_no_run_wrote_and_create_nothing(
    command: list[str], tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    missing = tmp_path / "no-such-store"
    result = invoke(command[0], config, *command[1:], "--store", missing)
    assert result.exit_code == 1, result.output
    assert "no store at" in result.output and "helix-tf run" in result.output
    assert not missing.exists()
    assert not (tmp_path / ".helix").exists()  # nor the default store beside the config


def test_the_json_flags_help_says_what_history_prints(tiny_census_config: Path, store: str) -> None:
    """``history --json`` prints a list; the help said "one JSON object" for every command."""
    help_text = " ".join(invoke("history", "--help").output.split())
    assert "one list, an object per run" in help_text
    assert "diamonds/" in help_text  # --data-dir names every example's folder
    empty = invoke("history", tiny_census_config, "--store", store, "--json")
    assert empty.exit_code != 0 or isinstance(json.loads(empty.stdout), list)


@pytest.mark.parametrize(("clock", "counts_the_wait"), [("wall", True), ("cpu", False)])
def test_a_profile_counts_wall_or_cpu_seconds_as_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: str, counts_the_wait: bool
) -> None:
    """``HELIX_TF_PROFILE_CLOCK=cpu``: a command's profile counts CPU seconds, so time the
    process spends off the CPU (waiting, or preempted on a loaded machine) is not in it."""
    import pstats
    import time

    from helix_tf import cli

    monkeypatch.setattr(cli, "_run_cli", lambda argv: time.sleep(0.5) or 0)
    monkeypatch.setenv("HELIX_TF_PROFILE", str(tmp_path / "command.prof"))
    monkeypatch.setenv("HELIX_TF_PROFILE_CLOCK", clock)
    assert cli.run_cli(["--version"]) == 0
    total = pstats.Stats(str(tmp_path / "command.prof")).total_tt  # type: ignore[attr-defined]
    assert (total >= 0.45) is counts_the_wait, total


def test_a_note_with_brackets_is_printed_as_written(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    """Before: a config's note quoting "[/data/x.csv]" crashed `run` with rich's
    MarkupError after the run (the note was printed as console markup)."""
    body = TINY_CENSUS.replace(
        '    wf = Workflow("tiny_census")\n',
        '    wf = Workflow("tiny_census")\n    wf.note("read [/data/x.csv] and [bold]")\n',
    )
    config = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    result = invoke("run", config, "--store", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert "read [/data/x.csv] and [bold]" in result.stderr


def test_a_command_run_here_skips_keras_extras_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``helix-tf`` in its own process (no server) refuses Keras' optional imports
    before the command can import TensorFlow (``helix_tf.warm.skip_library_extras``)."""
    import sys

    from helix_tf import cli

    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if "Keras" not in repr(f)])
    seen: list[bool] = []

    def command(argv: list[str]) -> int:
        seen.append(any(type(f).__name__ == "_SkipLibraryExtras" for f in sys.meta_path))
        return 0

    monkeypatch.setattr(cli, "run_cli", command)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if loaded: leave at once
    monkeypatch.setattr(cli.logging, "shutdown", lambda: None)  # not this test process'
    exits: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", exits.append)
    cli.run_here(["run", "config.py"])
    assert seen == [True]
    assert exits == [0]


def test_every_option_of_every_command_says_what_it_does() -> None:
    """Before: `agent start --wait`, `agent stop --wait`, `agent space -p` and `agent
    report --html` showed no help at all, and `store du -v` said "Log what is removed"."""
    import click

    from helix_tf.cli import main

    def options(cmd: click.Command, path: str) -> list[tuple[str, click.Option]]:
        found = [(path, p) for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
        for name, sub in getattr(cmd, "commands", {}).items():
            found += options(sub, f"{path} {name}")
        return found

    silent = [f"{path} {'/'.join(o.opts)}" for path, o in options(main, "helix-tf") if not o.help]
    assert silent == []
    du = main.commands["store"].commands["du"]  # type: ignore[attr-defined]
    verbose = next(p for p in du.params if p.name == "verbose")
    assert "removed" not in verbose.help.split("(")[0]
