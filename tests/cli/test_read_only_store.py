"""A store on a read-only mount: every command that only reads it works; those that write
are refused in one line naming the folder, and nothing in the store changes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from helix_tf.cli import main
from helix_tf.reuse.store import ArtifactStore
from tests.history.test_workflow import _record, _unwritable


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def test_reading_commands_work_on_a_read_only_store_and_writing_ones_say_why_not(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    """Before: plan, status, report (even with --html elsewhere), store du and store verify
    all failed with "artifact store … cannot be created or written" (only history and
    diff read such a store), and verify could not check the database."""
    home = tiny_census_config.parent / ".helix"
    ArtifactStore(str(home))
    _record(
        tiny_census_config, [([], {"auc": 0.80}, None), (["learner.l2=0.01"], {"auc": 0.85}, None)]
    )
    before = _listing(home)
    report = tmp_path / "elsewhere" / "report.html"
    with _unwritable(home):
        reading = {
            "plan": invoke("plan", tiny_census_config),
            "status": invoke("status", tiny_census_config),
            "report": invoke("report", tiny_census_config, "--html", report),
            "du": invoke("store", "du", tiny_census_config),
            "verify": invoke("store", "verify", tiny_census_config),
            "gc --dry-run": invoke("store", "gc", tiny_census_config, "--dry-run"),
        }
        writing = {
            "run": invoke("run", tiny_census_config),
            "gc": invoke("store", "gc", tiny_census_config),
            "verify --repair": invoke("store", "verify", tiny_census_config, "--repair"),
        }
    for command, result in reading.items():
        assert result.exit_code == 0, (command, result.output)
    assert "plan: " in reading["plan"].output and "v2" in reading["status"].output
    assert report.is_file()
    assert "not checked" not in reading["verify"].output  # the database was read too
    for command, result in writing.items():
        assert result.exit_code == 1, (command, result.output)
        assert f"{home} cannot be created or written" in " ".join(result.output.split())
    assert _listing(home) == before
