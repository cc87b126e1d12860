"""A config's past by config path: history, versions, diff and two runs compared.

The runs are recorded straight into the config's metadata database (two compiled
versions of the tiny census config), so nothing trains here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helix_tf import history
from helix_tf.errors import ConfigError, StoreError
from helix_tf.history import MetricDelta


def _record(config: Path, runs: list[tuple[list[str], dict[str, float], str | None]]) -> list[int]:
    """Record one run a ``(params, metrics, tag)``: each params its compiled version."""
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config
    from helix_tf.reuse.metadata import MetadataStore

    home = config.parent / ".helix"
    home.mkdir(exist_ok=True)
    ids = []
    with MetadataStore(f"sqlite:///{home / 'metadata.db'}") as md:
        for params, metrics, tag in runs:
            loaded = load_config(config, params)
            compiled = compile_workflow(loaded.workflow, config_path=str(config))
            version = md.record_version(
                compiled.name, str(config), compiled.to_dict(), compiled.digest
            )
            run_id = md.start_run(
                compiled.name,
                version,
                approx=False,
                policy="helix",
                store_url=str(home),
                params={**loaded.overrides, **({history.TAG_KEY: tag} if tag else {})},
            )
            md.finish_run(run_id, status="ok", wall_seconds=1.0, metrics=metrics)
            ids.append(run_id)
    return ids


@pytest.fixture
def recorded(tiny_census_config: Path) -> tuple[Path, list[int]]:
    ids = _record(
        tiny_census_config,
        [
            ([], {"auc": 0.80, "log_loss": 0.50}, None),
            (["learner.l2=0.01"], {"auc": 0.85, "log_loss": 0.55}, None),
            (["learner.l2=0.02"], {"auc": 0.70}, "agent"),
        ],
    )
    return tiny_census_config, ids


def test_compare_runs_gives_each_metric_its_change_and_direction(
    recorded: tuple[Path, list[int]],
) -> None:
    config, (first, second, _) = recorded
    found = history.compare_runs(config, first, second)
    assert (found.old.run, found.new.run) == (first, second)
    assert found.new.params == {"learner.l2": 0.01}
    by_name = {m.name: m for m in found.metrics}
    assert by_name["auc"].delta == pytest.approx(0.05) and by_name["auc"].better is True
    assert by_name["log_loss"].better is False  # lower is better, and it went up
    assert any(line.startswith("learner.l2") for line in found.changes), found.changes
    json.dumps(found.to_dict())  # its JSON form is JSON


def test_a_metric_only_one_run_has_is_compared_as_missing(
    recorded: tuple[Path, list[int]],
) -> None:
    config, (first, _, agent_run) = recorded
    found = history.compare_runs(config, first, agent_run)  # the agent's runs count too
    loss = next(m for m in found.metrics if m.name == "log_loss")
    assert loss == MetricDelta(name="log_loss", old=0.5, new=None, direction="lower")
    assert loss.delta is None and loss.better is None
    assert found.new.tag == "agent"


def test_compare_runs_refuses_a_run_that_is_not_recorded(
    recorded: tuple[Path, list[int]],
) -> None:
    config, (first, second, _) = recorded
    with pytest.raises(StoreError, match=rf"run 999 is not a recorded run.*{first}, {second}"):
        history.compare_runs(config, first, 999)


def test_versions_diff_and_history_by_config_path(recorded: tuple[Path, list[int]]) -> None:
    config, (first, second, _) = recorded
    versions = history.workflow_versions(config)
    assert [v.number for v in versions] == [1, 2, 3]
    assert versions[1].parent == 1 and not versions[0].approx and not versions[0].validation
    diff = history.workflow_diff(config, 1, 2)
    assert [c.name for c in diff.differences][:1] == ["learner"]
    assert history.workflow_diff(config).new.number == 3  # the latest against its parent
    entries = history.workflow_history(config)
    assert [e.run.id for e in entries] == [second, first]  # newest first, not the agent's
    assert len(history.workflow_history(config, agent=True)) == 3


def test_history_refuses_a_metric_selection_that_names_nothing(
    recorded: tuple[Path, list[int]],
) -> None:
    config, _ = recorded
    with pytest.raises(ConfigError, match=r"'acu' names no metric.*auc, log_loss"):
        history.workflow_history(config, metrics=["acu"])


def test_reading_functions_never_create_a_store(tiny_census_config: Path) -> None:
    for read in (history.workflow_versions, history.workflow_history):
        with pytest.raises(StoreError, match="nothing has run into it yet"):
            read(tiny_census_config)
    assert not (tiny_census_config.parent / ".helix").exists()


def test_the_history_functions_are_reached_from_the_package() -> None:
    import subprocess
    import sys

    code = (
        "import helix_tf\n"
        "assert helix_tf.history.compare_runs and helix_tf.history.workflow_versions\n"
        "assert helix_tf.events.NodeFinished\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------- a config that no longer loads

#: Edits that leave a recorded config unloadable: (name, old text, new text). (An unknown
#: column loads: history needs only the workflow's name, so it does not compile it.)
BREAKAGES = [
    ("syntax error", 'PARAMS = {"epochs": 1}', 'PARAMS = {"epochs": 1'),
    ("missing module", "PARAMS =", "import helix_tf_no_such_helper\nPARAMS ="),
    ("exception at import", "PARAMS =", "raise RuntimeError('half-edited')\nPARAMS ="),
    ("wrong return type", "    return wf", "    return 42"),
    ("unknown column", 'F.Numeric("age")', 'F.Numeric("agee")'),
    ("unknown operator", 'F.Numeric("age")', 'F.Numerc("age")'),
]


def _break(config: Path, old: str, new: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(("edit", "old", "new"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_history_and_diff_read_the_store_while_the_config_does_not_load(
    recorded: tuple[Path, list[int]],
    edit: str,
    old: str,
    new: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config, (first, second, agent_run) = recorded
    _break(config, old, new)
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config

    with pytest.raises(ConfigError):  # the config itself is broken ...
        compile_workflow(load_config(config).workflow)
    # ... yet what its runs recorded is still there to read
    caplog.clear()
    entries = history.workflow_history(config)
    assert [e.run.id for e in entries] == [second, first]
    if edit != "unknown column":
        assert "does not load" in caplog.text and "tiny_census" in caplog.text
    assert history.workflow_diff(config, 1, 2).differences
    assert [v.number for v in history.workflow_versions(config)] == [1, 2, 3]
    assert history.compare_runs(config, first, agent_run).new.tag == "agent"


def test_a_broken_config_whose_workflow_is_not_recorded_gets_its_own_error(
    recorded: tuple[Path, list[int]], tmp_path: Path
) -> None:
    config, _ = recorded
    other = tmp_path / "other" / "cfg.py"
    other.parent.mkdir()
    other.write_text("x = (\n", encoding="utf-8")  # neither its path nor its text is recorded
    store = str(config.parent / ".helix")
    with pytest.raises(ConfigError, match=r"other/cfg.py.*line 1.*no workflow in sqlite.*recorded"):
        history.workflow_history(other, store=store)


def test_a_store_folder_no_run_recorded_into_is_not_read_as_an_empty_history(
    tiny_census_config: Path,
) -> None:
    """Before: a config whose load made ``.helix/sample_data`` (the examples generate their
    data there) got an empty history table, an empty report, and a new empty database."""
    home = tiny_census_config.parent / ".helix"
    (home / "sample_data").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"no runs recorded for .*cfg\.py yet .*helix-tf run"):
        history.workflow_history(tiny_census_config)
    assert [p.name for p in home.iterdir()] == ["sample_data"]


def test_a_metadata_file_that_does_not_exist_is_not_created_empty(
    recorded: tuple[Path, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: history with a mistyped --metadata (or HELIX_TF_METADATA) SQLite path made
    the folder and an empty database, and showed an empty history."""
    config, _ = recorded
    typo = tmp_path / "nowhere" / "metadata.db"
    with pytest.raises(StoreError, match=r"no metadata database at .*nowhere.*Check the URL"):
        history.workflow_history(config, metadata=f"sqlite:///{typo}")
    monkeypatch.setenv("HELIX_TF_METADATA", str(typo))
    with pytest.raises(StoreError, match=r"\(set by HELIX_TF_METADATA\)"):
        history.workflow_diff(config, 1, 2)
    assert not typo.parent.exists()


def test_a_store_that_is_a_file_is_named_as_one(tiny_census_config: Path) -> None:
    """Before: "no store at FILE: nothing has run into it yet"."""
    afile = tiny_census_config.parent / "notes.txt"
    afile.write_text("not a store")
    with pytest.raises(StoreError, match=r"notes.txt is a file, not a store folder"):
        history.workflow_history(tiny_census_config, store=str(afile))
    assert afile.read_text() == "not a store"


@contextlib.contextmanager
def _unwritable(folder: Path) -> Iterator[None]:
    """``folder`` as on a read-only mount (immutable for root, mode 555 otherwise)."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("no chattr to make a folder unwritable for root")
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i fails here: {done.stderr.strip()!r}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        return
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    "refusal",
    ["unable to open database file", "attempt to write a readonly database"],
    ids=["read_only_mount", "no_write_permission"],
)
def test_history_reads_a_database_sqlite_will_not_open_for_writing(
    recorded: tuple[Path, list[int]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    refusal: str,
) -> None:
    """Each way SQLite refuses a file it may not write: an immutable folder or a read-only
    mount ("unable to open"), and a store made read-only with ``chmod -R a-w`` ("attempt
    to write a readonly database", as it reads the schema version; root ignores modes, so
    it is SQLite's answer that is given here). Before, the second read as an empty
    history: ``history`` listed no run, ``status`` said "last run: none yet"."""
    from helix_tf.reuse import metadata

    config, (first, second, _) = recorded
    opened = metadata.MetadataStore

    def refusing(url: str, *args: Any, **kwargs: Any) -> Any:
        if "mode=ro" not in url:
            raise StoreError(f"cannot read the schema version in metadata database: {refusal}")
        return opened(url, *args, **kwargs)

    monkeypatch.setattr(metadata, "MetadataStore", refusing)
    entries = history.workflow_history(config)
    assert [e.run.id for e in entries] == [second, first]
    assert "reading it read-only" in caplog.text and "empty history" not in caplog.text


def test_history_reads_a_store_on_a_read_only_mount(
    recorded: tuple[Path, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: "unable to open database file" (SQLite's log needs a file beside it)."""
    config, (first, second, _) = recorded
    home = config.parent / ".helix"
    with _unwritable(home):
        entries = history.workflow_history(config)
        assert history.workflow_diff(config, 1, 2).differences
    assert [e.run.id for e in entries] == [second, first]
    assert "reading it read-only" in caplog.text
