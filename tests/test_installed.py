"""What is installed in a folder of the import path, as the server stamp and the
fingerprints' library identities read it."""

from __future__ import annotations

import os
from pathlib import Path

from helix_tf._installed import distributions


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
