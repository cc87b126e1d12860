"""``helix-tf report``: where the page goes (never a stray file in the working folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from helix_tf.cli import main
from tests.conftest import TINY_CENSUS, write_config


@pytest.fixture
def config(tmp_path: Path, census_like: tuple[Path, Path]) -> Path:
    train, test = census_like
    return write_config(tmp_path / "project", TINY_CENSUS, train=train, test=test)


def recorded(store: Path) -> Path:
    """A store folder whose metadata database runs have recorded into (here: none yet)."""
    from helix_tf.reuse.metadata import MetadataStore

    store.mkdir(exist_ok=True)
    MetadataStore(f"sqlite:///{store / 'metadata.db'}").close()
    return store


def report(*args: str, cwd: Path) -> dict:
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, ["report", *args, "--json"])
    finally:
        os.chdir(before)
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_without_html_the_report_goes_into_the_store(config: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    store = recorded(tmp_path / "store")  # one no run wrote is refused (tests/cli/test_cli.py)
    written = report(str(config), "--store", str(store), cwd=cwd)
    assert written == {"report": f"{store}/reports/tiny_census.html"}
    assert "helix_tf report: tiny_census" in Path(written["report"]).read_text()
    assert list(cwd.iterdir()) == []  # nothing left in the working folder


def test_the_default_store_is_beside_the_config(config: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    recorded(config.parent / ".helix")
    written = report(str(config), cwd=cwd)
    assert Path(written["report"]) == config.parent / ".helix" / "reports" / "tiny_census.html"
    assert Path(written["report"]).is_file() and list(cwd.iterdir()) == []


def test_html_puts_it_where_the_user_asked(config: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "page.html"
    recorded(tmp_path / "s")
    written = report(
        str(config), "--store", str(tmp_path / "s"), "--html", str(target), cwd=tmp_path
    )
    assert written == {"report": str(target)} and target.is_file()
