"""The order a folder is listed in joins a UDF's digest where it counts (QA pass 12).

``os.listdir``, ``glob.glob`` and ``Path.iterdir`` give names in the order the file system
keeps them: ext4 by a hash of the name seeded per file system, tmpfs by creation. The
files were hashed order-free, so the same files on another machine sharing the store (or
deleted and written again) kept the fingerprint while a UDF where the last file read wins
computed another result. A listing whose order cannot count (``sorted(...)``) keeps its
digest.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from helix_tf.compiler.hashing import _listing_order, code_fingerprint

_SOURCE = """
import glob
import json
import os
from pathlib import Path

FOLDER = Path({folder!r})


def listdir(row):
    table = {{}}
    for name in os.listdir(FOLDER):
        table.update(json.loads((FOLDER / name).read_text()))
    return table.get(row["k"], 0)


def globbed(row):
    table = {{}}
    for path in glob.glob(str(FOLDER / "*.json")):
        table.update(json.loads(Path(path).read_text()))
    return table.get(row["k"], 0)


def iterated(row):
    return [json.loads(p.read_text())["k"] for p in FOLDER.iterdir()][-1]


def walked(row):
    return [names for _, _, names in os.walk(FOLDER)][0][0]


def in_sorted_order(row):
    return sorted(os.listdir(FOLDER))[-1] + str(len(glob.glob(str(FOLDER / "*.json"))))
"""


def _write(folder: pathlib.Path, names: list[str]) -> None:
    for name in names:  # every file says the same key: the last one read wins
        (folder / f"{name}.json").write_text(json.dumps({"k": name}))


@pytest.fixture
def two_orders(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
    """The digests of each function over one folder, listed as this file system does and
    then in the reverse order (another machine's file system): the files are the same."""
    folder = tmp_path / "lookups"
    folder.mkdir()
    _write(folder, ["a", "b", "c", "d"])

    def digests(load) -> dict[str, str]:
        module = load(_SOURCE.format(folder=str(folder)))
        names = ["listdir", "globbed", "iterated", "walked", "in_sorted_order"]
        return {n: code_fingerprint(getattr(module, n)).digest for n in names}

    def both(load) -> tuple[dict[str, str], dict[str, str]]:
        first = digests(load)
        listed = _listing_order._names  # another file system: the same names reversed
        monkeypatch.setattr(_listing_order, "_names", lambda p: list(reversed(listed(p))))
        second = digests(load)
        monkeypatch.undo()
        return first, second

    return both


def test_a_listing_used_in_its_order_joins_the_digest(load, two_orders) -> None:
    first, second = two_orders(load)
    for name in ("listdir", "globbed", "iterated", "walked"):
        assert first[name] != second[name], name


def test_a_sorted_listing_keeps_its_digest(load, two_orders) -> None:
    first, second = two_orders(load)
    assert first["in_sorted_order"] == second["in_sorted_order"]


def test_the_digest_is_stable_while_nothing_changes(load, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "lookups"
    folder.mkdir()
    _write(folder, ["a", "b"])
    source = _SOURCE.format(folder=str(folder))
    first, again = code_fingerprint(load(source).listdir), code_fingerprint(load(source).listdir)
    assert first.digest == again.digest
    assert any("uses the names in" in n for n in first.notes)
