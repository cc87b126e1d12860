"""A team shares a store folder under ``umask 002``: every file helix_tf creates there,
the SQLite metadata database and the agent's study included, must be group-writable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from helix_tf._database_files import create_database_file


@pytest.fixture
def team_umask() -> Iterator[None]:
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_database_file_takes_the_umask_and_an_existing_one_is_left_as_it_is(
    tmp_path: Path, team_umask: None
) -> None:
    new = tmp_path / "new.db"
    create_database_file(new)
    assert _mode(new) == 0o664
    kept = tmp_path / "kept.db"
    kept.write_bytes(b"stored")
    kept.chmod(0o600)
    create_database_file(kept)
    assert kept.read_bytes() == b"stored" and _mode(kept) == 0o600


def test_the_metadata_database_and_its_wal_are_group_writable_under_a_team_umask(
    tmp_path: Path, team_umask: None
) -> None:
    from helix_tf.reuse.metadata import MetadataStore

    path = tmp_path / "store" / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as metadata:
        metadata.compute_history("census")
        files = sorted(p for p in path.parent.iterdir() if p.name.startswith("metadata.db"))
        assert files and all(_mode(p) & 0o060 == 0o060 for p in files), {
            p.name: oct(_mode(p)) for p in files
        }
    assert _mode(path) == 0o664


def test_the_agents_study_database_is_group_writable_under_a_team_umask(
    tmp_path: Path, team_umask: None
) -> None:
    from helix_tf.agent._study import AgentPaths, _storage

    paths = AgentPaths(home=tmp_path / ".helix", metadata=None)
    _storage(paths, create=True)
    assert _mode(paths.study_db) == 0o664


@pytest.mark.slow
def test_every_file_and_folder_a_run_writes_into_the_store_is_group_writable(
    tiny_census_config: Path, tmp_path: Path, team_umask: None
) -> None:
    import helix_tf

    store = tmp_path / "shared"
    helix_tf.run(tiny_census_config, store=str(store), materialize="all")
    not_shared, seen = [], 0
    for root, folders, files in os.walk(store):
        seen += len(folders) + len(files)
        for name in folders:
            if _mode(Path(root, name)) & 0o070 != 0o070:
                not_shared.append(os.path.join(root, name))
        for name in files:
            if _mode(Path(root, name)) & 0o060 != 0o060:
                not_shared.append(os.path.join(root, name))
    assert seen > 10 and not not_shared, not_shared
