"""Temp-then-rename writers: a write that fails (a full disk) leaves nothing behind.

Every writer of a file that readers must see whole or not at all goes through
``helix_tf._atomic``; each case below fails its write with ENOSPC, once while the
temporary file is written and once when it is renamed, and requires the folder to
hold exactly what it held before (no ``.tmp``, ``.partial`` or hidden leftovers) and
the target to be unchanged.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from helix_tf import _atomic
from helix_tf.errors import HelixError


def _disk_full(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


class _FullFile:
    """A file whose writes fail as on a full disk (the file itself is created)."""

    def __init__(self, path: str, mode: str) -> None:
        self._f = open(path, mode)  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def _content_memo(folder: Path) -> Callable[[], None]:
    from helix_tf.compiler.content import ContentHasher

    data = folder / "data.csv"
    data.write_text("a\n1\n")
    hasher = ContentHasher(folder / "memo.json")
    hasher.file_digest(str(data))
    return hasher.save


def _report(folder: Path) -> Callable[[], None]:
    from helix_tf.report import write_report

    return lambda: write_report(folder / "report.html", "<html></html>")


def _agent_status(folder: Path) -> Callable[[], None]:
    from helix_tf.agent._study import AgentPaths

    paths = AgentPaths(home=folder)
    paths.folder.mkdir()
    return lambda: paths.write_status({"state": "idle"})


def _batch(folder: Path) -> Callable[[], None]:
    from helix_tf.engine.tables import write_batch

    (folder / "t" / "train").mkdir(parents=True)
    return lambda: write_batch(str(folder / "t"), "train", 0, pa.table({"x": [1, 2]}))


WRITERS = {
    "content memo": _content_memo,
    "report": _report,
    "agent status": _agent_status,
    "table batch": _batch,
}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fault", ["write", "rename"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str, fault: str
) -> None:
    write = WRITERS[writer](tmp_path)
    before = _files(tmp_path)
    if fault == "rename":
        monkeypatch.setattr(os, "replace", _disk_full)  # every writer, old or new
    elif writer == "table batch":  # parquet writes through its own file object
        import pyarrow.parquet as pq

        def full_parquet(table: object, where: str, **kw: object) -> None:
            Path(where).write_bytes(b"PAR1")  # part written, then the disk is full
            _disk_full()

        monkeypatch.setattr(pq, "write_table", full_parquet)
    else:
        monkeypatch.setattr(_atomic, "open", _FullFile, raising=False)
    try:
        write()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    except HelixError as exc:  # a writer that names the file and the fix (the report)
        assert isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.ENOSPC
    # The memo's save logs and goes on (a memo is an optimisation): nothing raised.
    assert _files(tmp_path) == before, "a temporary file was left behind"


def test_a_write_that_succeeds_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")
    _atomic.atomic_write(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["f.json"]


def test_an_fsspec_write_that_fails_leaves_no_temporary_object(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/qa-atomic/keep.txt", b"kept")

    def fail(f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        _disk_full()

    with pytest.raises(OSError):
        _atomic.atomic_write_fs(fs, "/qa-atomic/state.json", fail)
    assert fs.ls("/qa-atomic", detail=False) == ["/qa-atomic/keep.txt"]
    fs.rm("/qa-atomic", recursive=True)
