"""Reading a run's stored result back: what is not there, or is damaged, says which and
how to get the result (a run that must deliver the node: ``--materialize all`` alone
prunes it while the results after it are stored)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helix_tf.errors import StoreError
from helix_tf.reuse.store import ArtifactStore
from helix_tf.views import _stored


def _explanation_store(tmp_path: Path) -> tuple[str, Path]:
    store = ArtifactStore(str(tmp_path / "store"))
    staging = store.begin("fpmodel")
    with staging.open("explanation.json") as f:
        f.write(json.dumps({"features": {"age": 0.1}}).encode())
    store.commit(staging, kind="explanation")
    data = next((tmp_path / "store" / "artifacts" / "fpmodel").rglob("explanation.json"))
    return store.url, data


def _damage(data: Path, how: str) -> None:
    if how == "truncated":
        data.write_bytes(data.read_bytes()[:5])
    elif how == "same size":
        data.write_bytes(b"x" * data.stat().st_size)
    elif how == "manifest":
        (data.parents[1] / "MANIFEST.json").write_text('{"format_vers')


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("truncated", "has 5 bytes"),
        ("same size", "sha256"),
        ("manifest", "manifest"),
    ],
)
def test_a_damaged_result_is_named_damaged_with_a_way_to_get_it(
    tmp_path: Path, how: str, problem: str
) -> None:
    """Before: "not in the store: the materialization policy did not keep it, or it was
    evicted. Run again with --materialize all", which recomputed nothing."""
    url, data = _explanation_store(tmp_path)
    assert _stored.read_explanation(url, "fpmodel", "explanation") == {"features": {"age": 0.1}}
    _damage(data, how)
    with pytest.raises(StoreError) as info:
        _stored.read_explanation(url, "fpmodel", "explanation")
    message = str(info.value)
    assert "'explanation'" in message and "is damaged" in message and problem in message
    assert "outputs=['explanation'], materialize='all'" in message


def test_a_result_not_kept_says_so_with_a_way_to_get_it(tmp_path: Path) -> None:
    url, _ = _explanation_store(tmp_path)
    with pytest.raises(StoreError) as info:
        _stored.read_explanation(url, "fpother", "explanation")
    message = str(info.value)
    assert "is not in the store" in message and "did not keep it" in message
    assert "outputs=['explanation'], materialize='all'" in message
