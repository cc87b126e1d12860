"""The exit status a script relies on, as README's "Exit status" documents it: 2 for a
command line that is not understood (before anything runs or is created), 1 for a
command that failed on the config, its ``-p`` values, data or store.

Before: an option value outside its range exited 2 for some options (``--batch-rows 0``,
``--limit 0``) and 1 for others (``--sample 2``, ``--budget 2XB``, ``--approx-epochs 2``,
``agent start --budget``), with two kinds of message.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helix_tf.cli import main
from tests.conftest import ROOT

USAGE_ERRORS = {
    "unknown_command": (["rn"], "No such command 'rn'"),
    "unknown_option": (["run", "$C", "--materialise", "all"], "No such option"),
    "missing_argument": (["run"], "Missing argument 'CONFIG'"),
    "choice": (["run", "$C", "--materialize", "some"], "Invalid value for '--materialize'"),
    "budget_form": (["run", "$C", "--budget", "2XB"], "Invalid value for '--budget'"),
    "budget_sign": (["run", "$C", "--budget", "-1GB"], "must be a size >= 0"),
    "sample": (["run", "$C", "--sample", "2"], "Invalid value for '--sample'"),
    "approx_epochs": (["run", "$C", "--approx-epochs", "0"], "Invalid value for '--approx-epochs'"),
    "min_saving": (["run", "$C", "--approx-min-saving", "-1"], "'--approx-min-saving'"),
    "batch_rows": (["run", "$C", "--batch-rows", "0"], "Invalid value for '--batch-rows'"),
    "limit": (["history", "$C", "--limit", "0"], "Invalid value for '--limit'"),
    "version": (["diff", "$C", "x"], "'x' is not a valid integer"),
    "server_command": (["server", "stauts"], "Did you mean"),
    "agent_budget": (["agent", "start", "$C", "--budget", "2XB"], "Invalid value for '--budget'"),
    "repeated_param": (
        ["plan", "$C", "-p", "learner.l1=0.1", "-p", "learner.l1=0.2"],
        "-p learner.l1 is given 2 times, with '0.1' and '0.2'",
    ),
}

FAILURES = {
    "config_error": (["run", "$C", "-p", "learner.epoch=2"], "did you mean 'epochs'?"),
    "missing_config": (["plan", "$D/nope.py"], "does not exist"),
    "nothing_recorded": (["history", "$C"], "no store at"),
}


def invoke(args: list[str], config: Path) -> Result:
    """``helix-tf ARGS --store STORE``, ``$C`` the config and ``$D`` its folder in ARGS."""
    folder = config.parent
    argv = [a.replace("$C", str(config)).replace("$D", str(folder)) for a in args]
    return CliRunner().invoke(main, [*argv, "--store", str(folder / "store")])


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_a_command_line_not_understood_exits_2_before_anything_runs(
    tiny_census_config: Path, case: str
) -> None:
    args, needle = USAGE_ERRORS[case]
    result = invoke(args, tiny_census_config)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Usage:" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tiny_census_config.parent.iterdir()) == ["cfg.py"]


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_command_that_fails_exits_1_with_one_error_line(
    tiny_census_config: Path, case: str
) -> None:
    args, needle = FAILURES[case]
    result = invoke(args, tiny_census_config)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and needle in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["README.md", "helix-tf --help"])
def test_the_exit_statuses_are_documented(where: str) -> None:
    if where == "README.md":
        text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
        text = text[text.index("**Exit status**") :][:900]
    else:
        text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    for code, meaning in (("0", "done"), ("1", "failed"), ("2", "not understood")):
        assert re.search(rf"`?{code}`? [^;]{{0,30}}{meaning}", text), (code, text)
    assert re.search(r"`?130`? interrupted \(Ctrl-C\)", text), text


def test_a_usage_message_names_the_helix_tf_command(capfd: pytest.CaptureFixture[str]) -> None:
    """Whatever started the process: a served run's fork of ``python -m helix_tf.server``
    printed "Usage: python -m helix_tf.server.helix-tf run [OPTIONS] CONFIG" (here, under
    pytest, the name would be pytest's)."""
    from helix_tf.cli import run_cli

    assert run_cli(["run", "--sample", "3"]) == 2
    err = capfd.readouterr().err
    assert "Usage: helix-tf run [OPTIONS] CONFIG" in err and "Try 'helix-tf run --help'" in err
