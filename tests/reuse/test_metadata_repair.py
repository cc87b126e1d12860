"""A damaged metadata database: found by ``damage_of`` before anything changes, set aside
(kept, renamed) by ``set_aside``."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_tf.errors import StoreError
from helix_tf.reuse.metadata import MetadataStore, damage_of, set_aside


def _database(path: Path) -> str:
    url = f"sqlite:///{path}"
    with MetadataStore(url) as md:
        for n in range(200):
            md.record_version("w", "c.py", {"nodes": [], "pad": "p" * 500}, f"d{n}")
    return url


def test_a_sound_database_and_a_missing_file_are_not_damaged(tmp_path: Path) -> None:
    assert damage_of(_database(tmp_path / "m.db")) is None
    assert damage_of(f"sqlite:///{tmp_path / 'none.db'}") is None
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
    found = damage_of(url)
    assert found is not None and str(path) in found
    assert "malformed" in found or "not a database" in found


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
