"""Project settings: where the metadata URL comes from, and who is running."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf.errors import ConfigError
from helix_tf.settings import (
    METADATA_ENV,
    USER_ENV,
    current_user,
    database_url,
    mask_password,
    metadata_setting,
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METADATA_ENV, raising=False)
    monkeypatch.delenv(USER_ENV, raising=False)


def test_option_then_variable_then_file_upward_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "project" / "configs" / "census.py"
    config.parent.mkdir(parents=True)
    config.write_text("")
    assert metadata_setting(None, config).origin == "default"
    toml = tmp_path / "project" / "helix_tf.toml"
    toml.write_text('metadata = "postgresql://team@db/helix"\n')
    found = metadata_setting(None, config)
    assert (found.value, found.origin) == ("postgresql://team@db/helix", str(toml))
    monkeypatch.setenv(METADATA_ENV, "postgresql://env@db/helix")
    assert metadata_setting(None, config).value == "postgresql://env@db/helix"
    assert metadata_setting(None, config).describe() == f" (set by {METADATA_ENV})"
    given = metadata_setting("sqlite:///x.db", config)
    assert (given.value, given.describe()) == ("sqlite:///x.db", "")


@pytest.mark.parametrize(
    ("written", "file"),
    [
        ("team.db", "team.db"),
        ("db/team.db", "db/team.db"),
        ("sqlite:///team.db", "team.db"),
        ("sqlite:///my runs/team.db?timeout=5", "my runs/team.db"),
    ],
)
def test_a_relative_database_in_the_settings_file_is_beside_it_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, file: str
) -> None:
    """Before: relative to the working directory, so ``history`` run from the project's
    root read another database than a run started in its ``configs/`` folder."""
    from helix_tf.reuse.metadata import sqlite_file

    config = tmp_path / "project" / "configs" / "census.py"
    config.parent.mkdir(parents=True)
    (tmp_path / "project" / "helix_tf.toml").write_text(f'metadata = "{written}"\n')
    found = set()
    for cwd in (tmp_path, config.parent):
        monkeypatch.chdir(cwd)
        found.add(sqlite_file(metadata_setting(None, config).value))
    assert found == {tmp_path / "project" / file}
    assert "timeout=5" in metadata_setting(None, config).value or "?" not in written


def test_an_absolute_or_server_database_in_the_settings_file_is_kept(tmp_path: Path) -> None:
    for written in ("postgresql://team@db/helix", f"sqlite:///{tmp_path}/a.db", "sqlite://"):
        (tmp_path / "helix_tf.toml").write_text(f'metadata = "{written}"\n')
        assert metadata_setting(None, tmp_path / "c.py").value == written


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('metdata = "postgresql://db/h"\n', r"unknown setting 'metdata' \(did you mean 'metadata'"),
        ("metadata = 5\n", r"'metadata' must be a non-empty string, but got 5"),
        ("metadata = \n", r"cannot read the project settings .*helix_tf.toml"),
    ],
)
def test_a_bad_settings_file_names_itself(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "helix_tf.toml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        metadata_setting(None, tmp_path / "c.py")


def test_user_from_the_variable_else_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    login = current_user()
    assert login
    monkeypatch.setenv(USER_ENV, "ann")
    assert current_user() == "ann"
    monkeypatch.setenv(USER_ENV, "")
    assert current_user() == login


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///a.db", "sqlite:///a.db"),
    ],
)
def test_database_url_picks_the_installed_driver(url: str, expected: str) -> None:
    pytest.importorskip("psycopg")
    assert database_url(url) == expected


def test_mask_password() -> None:
    assert mask_password("postgresql://ann:s3cret@h:5432/db") == "postgresql://ann:***@h:5432/db"
    assert mask_password("postgresql://ann@h/db") == "postgresql://ann@h/db"
    assert mask_password("sqlite:///x.db") == "sqlite:///x.db"
