"""A store or metadata file in a folder whose name holds URL characters (``?``, ``%``,
``#``), spaces or non-ASCII letters: the database is the file in that folder.

Before: the SQLite URL was the path pasted after ``sqlite:///``, which SQLAlchemy parses
as a URL. ``--store "runs?v2"`` recorded its history into ``runs`` (the rest was the
URL's query) and ``--store a%41b`` into a new folder ``aAb``; ``history`` and ``report``
then found no run in the store, ``store du`` named no node, and a second store whose
name differed only there shared the first one's history.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helix_tf.cli import main
from helix_tf.reuse.metadata import MetadataStore, read_only_url, sqlite_file, sqlite_url
from helix_tf.settings import database_url

AWKWARD_FOLDERS = ["runs?v2", "a%41b", "50% off", "a#b", "st öre", "x%3Fy #1?z=2&w"]


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("folder", AWKWARD_FOLDERS)
def test_a_database_url_names_the_file_in_that_folder(tmp_path: Path, folder: str) -> None:
    path = tmp_path / folder / "metadata.db"
    for url in (sqlite_url(path), database_url(str(path)), read_only_url(path)):
        assert sqlite_file(url) == path, url
    with MetadataStore(sqlite_url(path)) as md:
        md.record_version("wf", "cfg.py", {"nodes": []}, "digest-1")
    assert path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]  # nothing beside it
    with MetadataStore(read_only_url(path)) as md:  # as on a read-only mount
        assert [v.number for v in md.versions("wf")] == [1]


def test_a_store_folder_with_url_characters_keeps_its_history(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    store = tmp_path / "runs?v2 ü%41"
    first = invoke("run", tiny_census_config, "--store", store, "--json")
    assert first.exit_code == 0, first.output
    history = invoke("history", tiny_census_config, "--store", store, "--json")
    assert history.exit_code == 0, history.output
    assert [r["run"] for r in json.loads(history.stdout)] == [json.loads(first.stdout)["run_id"]]
    assert (store / "metadata.db").is_file()
    assert sorted(os.listdir(tmp_path)) == sorted([store.name, tiny_census_config.name])
    du = invoke("store", "du", tiny_census_config, "--store", store)
    # Which nodes the plan stores depends on measured costs; that the store's entries
    # are listed under the workflow's name does not.
    assert du.exit_code == 0 and "tiny_census" in du.output, du.output
    assert not du.output.strip().splitlines()[-1].startswith("0 entries"), du.output


@pytest.mark.parametrize("written", ["~/runs", "file://$HOME/runs"])
def test_a_store_written_with_a_tilde_or_file_url_keeps_everything_in_that_folder(
    tiny_census_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    """``--store=~/runs`` (the shell leaves a tilde after ``=`` as typed) and a
    ``file://`` URL. Before: the artifacts went to the home folder but the database, the
    content-hash memo and the user-run mark to a folder named ``~`` under the working
    directory (``history`` elsewhere found no run); a ``file://`` store kept its history
    in the ``.helix/`` beside the config."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tiny_census_config.parent)
    store = written.replace("$HOME", str(home))
    first = invoke("run", tiny_census_config, f"--store={store}", "--json")
    assert first.exit_code == 0, first.output
    assert {"metadata.db", "content-hashes.json", "artifacts"} <= set(os.listdir(home / "runs"))
    assert sorted(os.listdir(tiny_census_config.parent)) == ["cfg.py", "elsewhere", "home"]
    monkeypatch.chdir(elsewhere)
    history = invoke("history", tiny_census_config, f"--store={store}", "--json")
    assert history.exit_code == 0, history.output
    assert [r["run"] for r in json.loads(history.stdout)] == [json.loads(first.stdout)["run_id"]]


def test_scratch_and_report_paths_written_with_a_tilde_are_in_the_home_folder(
    tiny_census_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--scratch=~/scratch`` and ``--html=~/reports/r.html``: before, both were made in
    a folder named ``~`` under the working directory (and "report written to ~/…" said
    otherwise)."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tiny_census_config.parent)
    store = tmp_path / "store"
    ran = invoke("run", tiny_census_config, "--store", store, "--scratch=~/scratch")
    assert ran.exit_code == 0, ran.output
    report = invoke("report", tiny_census_config, "--store", store, "--html=~/reports/r.html")
    assert report.exit_code == 0, report.output
    assert (home / "reports" / "r.html").is_file()
    assert f"report written to {home / 'reports' / 'r.html'}" in report.output
    assert not (tiny_census_config.parent / "~").exists()


def test_agent_start_hands_the_agent_a_tilde_store_as_the_home_folder(
    tiny_census_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agent start --store=~/runs`` gave the agent process the folder ``~/runs`` under
    the working directory (``Path.resolve`` does not expand ``~``) while the run's store
    is the home folder's: the agent's trials reused nothing of the user's runs."""
    from helix_tf.agent import commands

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tiny_census_config.parent)
    started: list[list[str]] = []

    class Exited:
        pid, returncode = -1, 1

        def __init__(self, cmd: list[str], **_: object) -> None:
            started.append(cmd)

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(commands.subprocess, "Popen", Exited)
    result = invoke("agent", "start", tiny_census_config, "--store=~/runs", "--wait", "1")
    assert result.exit_code != 0  # the fake agent exited at once
    (cmd,) = started
    assert cmd[cmd.index("--store") + 1] == str((home / "runs").resolve())
