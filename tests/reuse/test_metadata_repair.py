"""A damaged metadata database: found by ``damage_of`` before anything changes, set aside
(kept, renamed) by ``set_aside``."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata import DatabaseCheck, MetadataStore, check_database, set_aside


def _database(path: Path) -> str:
    url = f"sqlite:///{path}"
    with MetadataStore(url) as md:
        for n in range(200):
            md.record_version("w", "c.py", {"nodes": [], "pad": "p" * 500}, f"d{n}")
    return url


def test_a_sound_database_and_a_missing_file_are_not_damaged(tmp_path: Path) -> None:
    assert check_database(_database(tmp_path / "m.db")) == DatabaseCheck()
    assert check_database(f"sqlite:///{tmp_path / 'none.db'}") == DatabaseCheck()
    assert not (tmp_path / "none.db").exists()  # looking created nothing


@pytest.mark.parametrize("offset", [0, 0.5])
def test_damage_anywhere_in_the_file_is_found(tmp_path: Path, offset: float) -> None:
    """A damaged page in the middle opens fine: only reading every page finds it."""
    path = tmp_path / "m.db"
    url = _database(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(int(size * offset))
        f.write(b"\xde\xad" * 2000)
    found = check_database(url)
    assert found.damaged and found.problem is not None and str(path) in found.problem
    assert "malformed" in found.problem or "not a database" in found.problem


def test_set_aside_keeps_the_file_under_a_new_name_and_never_over_another(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    url = _database(path)
    first = set_aside(url, clock=0.0)
    assert first.is_file() and not path.exists() and first.name.startswith("m.db.damaged-")
    _database(path)
    second = set_aside(url, clock=0.0)  # the same second: a new name, the first kept
    assert second != first and first.is_file() and second.is_file()
    with MetadataStore(url) as md:  # the next run starts a fresh database
        assert md.versions("w") == []


def test_a_server_database_is_not_set_aside() -> None:
    with pytest.raises(StoreError, match=r"not a SQLite file.*repair it on its server"):
        set_aside("postgresql://u@db.example/helix")


def test_a_newer_schema_is_a_problem_but_not_damage(tmp_path: Path) -> None:
    """Before: verify called a database a newer helix_tf wrote damaged (--repair moved it)."""
    import sqlite3

    path = tmp_path / "m.db"
    url = _database(path)
    with sqlite3.connect(path) as conn:
        conn.execute("update helix_meta set value = '99' where key = 'schema_version'")
    found = check_database(url)
    assert not found.damaged and found.problem and "newer helix_tf" in found.problem
