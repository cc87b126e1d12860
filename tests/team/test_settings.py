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
