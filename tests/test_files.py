"""files_under: a folder's files as a reader sees them (links followed, cycles ended)."""

from __future__ import annotations

from pathlib import Path

from helix_tf._files import files_under


def test_links_to_folders_are_followed_and_cycles_end(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "deep").mkdir(parents=True)
    (real / "deep" / "b.bin").write_bytes(b"b")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a")
    (folder / "linked").symlink_to(real, target_is_directory=True)
    (folder / "linked_file").symlink_to(real / "deep" / "b.bin")
    (real / "back").symlink_to(folder, target_is_directory=True)  # a cycle through both
    found = [str(Path(p).relative_to(folder)) for p in files_under(folder)]
    assert found == ["a.bin", "linked_file", "linked/deep/b.bin"]
    assert files_under(folder) == files_under(folder)


def test_an_empty_or_missing_folder_has_no_files(tmp_path: Path) -> None:
    assert files_under(tmp_path) == []
    assert files_under(tmp_path / "missing") == []
