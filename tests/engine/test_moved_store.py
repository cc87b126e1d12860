"""A project moved or copied to another path (its config, data and ``.helix/`` store
together) reuses everything it stored: results are found by content, never by path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helix_tf import api
from helix_tf.reuse.store import ArtifactStore
from tests.conftest import TINY_CENSUS, write_config


@pytest.mark.slow
def test_a_moved_or_copied_project_reuses_its_store(
    census_like: tuple[Path, Path], tmp_path: Path
) -> None:
    first = tmp_path / "first"
    data = first / "data"
    data.mkdir(parents=True)
    for f in census_like:
        shutil.copy(f, data / f.name)
    train, test = (data / f.name for f in census_like)
    write_config(first, TINY_CENSUS, train=train, test=test)
    fresh = api.run(first / "cfg.py")
    before = first
    for make, where in ((shutil.move, "moved"), (shutil.copytree, "copied")):
        moved = tmp_path / where
        make(str(before), str(moved))
        # The config names its data by absolute path: point it at the data that moved.
        config = moved / "cfg.py"
        config.write_text(config.read_text().replace(str(before), str(moved)))
        before = moved
        again = api.run(config)
        assert {n.state for n in again.nodes} <= {"load", "prune"}, where
        assert again.metrics == fresh.metrics
        report = ArtifactStore(str(moved / ".helix")).verify()
        assert report.clean and report.ok, where
