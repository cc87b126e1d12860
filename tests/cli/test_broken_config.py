"""``helix-tf`` on a config that no longer loads (a half-finished edit).

``history``, ``diff`` and ``report`` read what the runs recorded, so they keep working
and say why the config was not used; ``plan`` needs the config and refuses with one error that
names the file and the line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from helix_tf.cli import main
from tests.history.test_workflow import _record


def test_history_and_diff_work_and_plan_names_file_and_line(tiny_census_config: Path) -> None:
    config = tiny_census_config
    _record(config, [([], {"auc": 0.8}, None), (["learner.l2=0.01"], {"auc": 0.85}, None)])
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('PARAMS = {"epochs": 1}', 'PARAMS = {"epochs": 1'), "utf-8")
    runner = CliRunner()
    shown = runner.invoke(main, ["history", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "v2" in shown.stdout and "does not load" in shown.stderr
    diff = runner.invoke(main, ["diff", str(config), "1", "2"])
    assert diff.exit_code == 0, diff.output
    assert "learner" in diff.stdout
    planned = runner.invoke(main, ["plan", str(config)])
    assert planned.exit_code == 1
    assert planned.stderr.count("error:") == 1
    assert str(config) in planned.stderr and "line 5" in planned.stderr
    assert "Traceback" not in planned.output
    pytest.importorskip("matplotlib")
    page = config.parent / "report.html"
    reported = runner.invoke(main, ["report", str(config), "--html", str(page)])
    assert reported.exit_code == 0, reported.output
    assert "does not load" in reported.stderr and "tiny_census" in page.read_text("utf-8")
