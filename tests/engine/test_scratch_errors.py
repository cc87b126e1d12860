"""A scratch folder that cannot be made is one clear error, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

import helix_tf
from helix_tf.errors import ExecutionError
from helix_tf.reuse.metadata import MetadataStore


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_scratch_path_under_a_file_fails_the_run_in_one_line(
    tiny_census_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Before: ``NotADirectoryError`` with a traceback from the engine's makedirs."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = tmp_path / "store"
    kwargs: dict[str, str] = {}
    if how == "argument":
        kwargs["scratch"] = str(blocker)
    else:
        monkeypatch.setenv("HELIX_TF_SCRATCH", str(blocker))
    with pytest.raises(ExecutionError, match=r"cannot create the run's scratch folder") as info:
        helix_tf.run(tiny_census_config, store=str(store), **kwargs)
    assert str(blocker) in str(info.value) and "--scratch" in str(info.value)
    with MetadataStore(f"sqlite:///{store / 'metadata.db'}") as md:
        assert [r.status for r in md.runs("tiny_census")] == ["failed"]
