"""The order a folder is listed in joins a UDF's digest where it counts (QA pass 12).

``os.listdir``, ``glob.glob`` and ``Path.iterdir`` give names in the order the file system
keeps them: ext4 by a hash of the name seeded per file system, tmpfs by creation. The
files were hashed order-free, so the same files on another machine sharing the store (or
deleted and written again) kept the fingerprint while a UDF where the last file read wins
computed another result. A listing whose order cannot count (``sorted(...)``) keeps its
digest.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import pathlib
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(["a", "b", "c", "d"]))
def test_the_digest_follows_the_listing_order_exactly_when_the_code_does(
    order: list[str],
) -> None:
    """Whatever order a file system lists the same files in: a UDF using the order gets
    another digest than under the sorted order exactly when the order differs, a UDF
    sorting them the same digest."""
    with tempfile.TemporaryDirectory() as folder:
        lookups = pathlib.Path(folder) / "lookups"
        lookups.mkdir()
        _write(lookups, ["a", "b", "c", "d"])
        path = pathlib.Path(folder) / f"helix_listing_case_{next(_CASES)}.py"
        path.write_text(_SOURCE.format(folder=str(lookups)))
        listed = _listing_order._names
        digests = {}
        for listing in (sorted, lambda names: sorted(names, key=lambda n: order.index(n[0]))):
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _listing_order._names = lambda p, f=listing: f(listed(p))  # type: ignore[misc]
            try:
                digests[listing is sorted] = (
                    code_fingerprint(module.listdir).digest,
                    code_fingerprint(module.in_sorted_order).digest,
                )
            finally:
                _listing_order._names = listed  # type: ignore[assignment]
    (in_order, by_name), (in_order_sorted, by_name_sorted) = digests[False], digests[True]
    assert (in_order != in_order_sorted) == (order != sorted(order))
    assert by_name == by_name_sorted


_CASES = itertools.count()
