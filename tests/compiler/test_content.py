"""ContentHasher: data files by content, memoised on path, inode, size, mtime and ctime.

The memo must never return the digest of bytes a file no longer holds: an in-place
edit that keeps the size and sets the modification time back still moves the inode
change time (what git and DVC also key on), and ``rehash`` ignores the memo.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from helix_tf.compiler import content
from helix_tf.compiler.content import ContentHasher
from helix_tf.compiler.hashing import sha256_file


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Same path, same size, modification time set back to what it was."""
    st = path.stat()
    assert len(data) == st.st_size
    time.sleep(0.05)  # past the kernel's coarse timestamp tick: the ctime moves
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memoise even files written a moment ago (the racy-file rule is tested on its own)."""
    monkeypatch.setattr(content, "RACY_SECONDS", 0.0)


def test_in_place_edit_with_mtime_restored_changes_the_digest(
    tmp_path: Path, trusted: None
) -> None:
    data = tmp_path / "rows.csv"
    data.write_bytes(b"39, State-gov, 77516\n")
    memo = tmp_path / "memo.json"
    hasher = ContentHasher(memo)
    before = hasher.file_digest(str(data))
    hasher.save()
    assert str(data.resolve()) in json.loads(memo.read_text())  # memoised: the memo is in play
    _rewrite_in_place(data, b"39, State-gov, 77517\n")
    after = ContentHasher(memo).file_digest(str(data))  # a later run, reading the saved memo
    assert after != before
    assert after == sha256_file(data)


def test_a_file_changed_just_before_hashing_is_not_memoised(tmp_path: Path) -> None:
    """Git's racy-clean rule: a write within the timestamp granularity could keep the times."""
    data = tmp_path / "rows.csv"
    data.write_bytes(b"1,2\n")
    hasher = ContentHasher(tmp_path / "memo.json")
    hasher.file_digest(str(data))
    hasher.save()
    assert str(data.resolve()) not in json.loads((tmp_path / "memo.json").read_text())


def test_rehash_ignores_the_memo(tmp_path: Path, trusted: None) -> None:
    data = tmp_path / "rows.csv"
    data.write_bytes(b"1,2\n")
    memo = tmp_path / "memo.json"
    first = ContentHasher(memo)
    first.file_digest(str(data))
    first.save()
    entries = json.loads(memo.read_text())
    entries[str(data.resolve())][-1] = "0" * 32  # a memo that lies
    memo.write_text(json.dumps(entries))
    assert ContentHasher(memo).file_digest(str(data)) == "0" * 32  # the memo is trusted...
    assert ContentHasher(memo, rehash=True).file_digest(str(data)) == sha256_file(data)


def test_a_replaced_file_with_the_same_times_is_hashed_again(tmp_path: Path, trusted: None) -> None:
    """A new inode (an editor's save-by-rename) is a new file, whatever its times."""
    data = tmp_path / "rows.csv"
    data.write_bytes(b"a,b\n")
    hasher = ContentHasher()
    before = hasher.file_digest(str(data))
    st = data.stat()
    other = tmp_path / "new.csv"
    other.write_bytes(b"a,c\n")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, data)
    assert hasher.file_digest(str(data)) != before


def test_a_declared_folder_is_identified_by_the_files_under_it(tmp_path: Path) -> None:
    """``files=[folder]`` on a UDF: editing, adding or renaming a file under the folder
    changes its digest (it once raised IsADirectoryError while compiling)."""
    folder = tmp_path / "lookup"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("1")
    (folder / "sub" / "b.txt").write_text("2")

    def digest() -> str:
        return ContentHasher().file_digest(str(folder))

    seen = {digest()}
    (folder / "sub" / "b.txt").write_text("3")
    seen.add(digest())
    (folder / "c.txt").write_text("")
    seen.add(digest())
    (folder / "c.txt").rename(folder / "d.txt")
    seen.add(digest())
    assert len(seen) == 4
    assert digest() == digest()


def test_a_declared_folder_is_read_through_links_to_folders(tmp_path: Path) -> None:
    """A UDF reading ``lookup/shared/x.json`` reads through a link to a folder: editing,
    adding or removing a file behind the link changes the folder's digest (the walk once
    stayed out of linked folders, so such edits reused stale results); a link back to an
    ancestor ends the walk instead of looping."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "x.json").write_text("1")
    folder = tmp_path / "lookup"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "shared").symlink_to(real, target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)

    def digest() -> str:
        return ContentHasher().file_digest(str(folder))

    seen = {digest()}
    (real / "x.json").write_text("2")
    seen.add(digest())
    (real / "y.json").write_text("")
    seen.add(digest())
    (real / "y.json").unlink()
    assert digest() in seen  # back to the second state
    assert len(seen) == 3


def test_a_file_that_cannot_be_read_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_tf.errors import ConfigError

    data = tmp_path / "data.csv"
    data.write_text("a\n")

    def denied(path: object) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(content, "sha256_file", denied)
    with pytest.raises(ConfigError, match=r"data\.csv' cannot be read \(Permission denied\)"):
        ContentHasher().file_digest(str(data))


def test_a_remote_file_without_a_checksum_is_identified_by_its_bytes() -> None:
    """``memory://`` reports only a size and a creation date: a rewrite of the same size
    must change the digest (it once kept it, and a run reused stale results)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    path = f"/helix-content-{os.getpid()}-{time.time_ns()}.csv"
    try:
        fs.pipe(path, b"a,b\n1,2\n")
        before = ContentHasher().file_digest(f"memory://{path}")
        fs.pipe(path, b"a,b\n3,4\n")
        after = ContentHasher().file_digest(f"memory://{path}")
        fs.pipe(path, b"a,b\n1,2\n")
        assert before != after
        assert ContentHasher().file_digest(f"memory://{path}") == before
    finally:
        fs.rm(path)


@pytest.mark.parametrize(
    ("info", "keys"),
    [
        ({"crc32c": "AAA=", "md5Hash": "x", "etag": "CAE=", "size": 3}, ["crc32c", "md5Hash"]),
        ({"ETag": '"9b2c"', "LastModified": "2026-01-01", "size": 3}, ["ETag"]),
        ({"size": 3, "created": "2026-01-01", "mtime": 5.0}, []),
        ({"size": 3, "md5": None, "etag": ""}, []),
    ],
    ids=["gcs", "s3", "nothing", "empty"],
)
def test_checksum_keys_of_object_stores(info: dict[str, object], keys: list[str]) -> None:
    assert content._checksum_keys(info) == keys


def test_files_changed_since_they_were_hashed_are_named(tmp_path: Path, trusted: None) -> None:
    """A run asks before it stores a result computed from the files: a file rewritten (even
    to the same size and modification time), replaced or removed since it was hashed."""
    kept, edited, removed = (tmp_path / n for n in ("kept.csv", "edited.csv", "removed.csv"))
    for path in (kept, edited, removed):
        path.write_bytes(b"a,b\n1,2\n")
    hasher = ContentHasher(tmp_path / "memo.json")
    for path in (kept, edited, removed):
        hasher.file_digest(str(path))
    assert hasher.changed_files() == []
    _rewrite_in_place(edited, b"a,b\n3,4\n")
    removed.unlink()
    assert hasher.changed_files() == [str(edited), str(removed)]
