"""Shared by the server tests: the tiny census config every client runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_CENSUS, write_config


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]) -> Path:
    """The tiny census workflow over the generated census-like files."""
    folder = tmp_path_factory.mktemp("served")
    return write_config(folder, TINY_CENSUS, train=census_like[0], test=census_like[1])
