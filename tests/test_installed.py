"""What is installed in a folder of the import path, as the server stamp and the
fingerprints' library identities read it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helix_tf._installed import distributions, path_state
from tests.conftest import TINY_CENSUS, write_config


def _later(path: Path) -> None:
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))  # coarse clocks


def test_only_installed_distributions_change_what_a_folder_holds(tmp_path: Path) -> None:
    before = distributions(str(tmp_path))
    assert before == ""
    (tmp_path / "store").mkdir()  # a project writing its own files there
    (tmp_path / "results.json").write_text("{}")
    _later(tmp_path)
    assert distributions(str(tmp_path)) == before
    (tmp_path / "pandas-2.2.0.dist-info").mkdir()
    _later(tmp_path)
    installed = distributions(str(tmp_path))
    assert installed.startswith("pandas-2.2.0.dist-info")
    (tmp_path / "mylib.egg-info").mkdir()  # setup.py sdist beside a source tree
    _later(tmp_path)
    assert distributions(str(tmp_path)) not in (before, installed)
    assert distributions(str(tmp_path / "absent")) == ""


def test_a_folder_without_distributions_leaves_the_path_state_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    state = path_state()
    sys.path.append(str(tmp_path))  # as loading a config puts its folder on the path
    assert path_state() == state
    (tmp_path / "mylib-1.0.dist-info").mkdir()  # something installed there after all
    _later(tmp_path)
    assert path_state() != state
    sys.path.append(str(tmp_path / "helpers.zip"))  # an archive may hold metadata: kept
    assert path_state()[-1] == (str(tmp_path / "helpers.zip"), "")


def test_loading_a_config_keeps_the_library_versions_read_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, census_like: tuple[Path, Path]
) -> None:
    # The warm server reads them before it forks its runs; each run loads its config.
    from helix_tf.compiler import _runtime
    from helix_tf.config import load_config
    from helix_tf.roles import Stage

    monkeypatch.setattr(sys, "path", list(sys.path))
    _runtime.read_versions()
    before = _runtime.runtime_identity(Stage.TRAIN)
    misses = _runtime._installed_version.cache_info().misses
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    load_config(config)
    assert str(tmp_path) in sys.path
    assert _runtime.runtime_identity(Stage.TRAIN) == before
    assert _runtime._installed_version.cache_info().misses == misses
