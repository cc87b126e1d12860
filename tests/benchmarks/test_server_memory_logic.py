"""The memory benchmark counts the server's whole process tree (issue 9): trainer, spare."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from benchmarks.server_memory import (
    children,
    distinct_pages,
    growth,
    memory,
    reading,
    within_limit,
)


def _process(proc: Path, pid: int, ppid: int, rss_kb: int, pss_kb: int) -> None:
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    # A command name with a space and a parenthesis, as /proc allows.
    (folder / "stat").write_text(f"{pid} (python (x) y) S {ppid} 1 1 0 -1\n")
    (folder / "smaps_rollup").write_text(
        f"00400000-7ffd [rollup]\nRss:  {rss_kb} kB\nPss:  {pss_kb} kB\n"
        f"Pss_Anon: {pss_kb // 4} kB\nPss_File: {pss_kb - pss_kb // 4} kB\nShared_Clean: 1 kB\n"
    )


def _tree(proc: Path, trainer_rss_kb: int = 400_000) -> None:
    _process(proc, 1, 0, 10, 10)  # init: not the server's
    _process(proc, 100, 1, 800_000, 500_000)  # the server
    _process(proc, 101, 100, trainer_rss_kb, 200_000)  # its trainer
    _process(proc, 102, 100, 790_000, 20_000)  # its spare: nearly all pages shared
    _process(proc, 103, 101, 1000, 1000)  # below the trainer
    _process(proc, 200, 1, 999_999, 999_999)  # somebody else's
    (proc / "self").mkdir()


def test_the_whole_tree_below_the_server_is_read_by_role(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert children(100, tmp_path) == [101, 102, 103]
    assert memory(102, tmp_path) == {
        "rss_bytes": 790_000 * 1024,
        "pss_bytes": 20_000 * 1024,
        "pss_anon_bytes": 5_000 * 1024,  # the process' data
        "pss_file_bytes": 15_000 * 1024,  # its share of mapped files
    }
    assert set(memory(999, tmp_path).values()) == {0}  # gone meanwhile
    status = {"pid": 100, "trainer": {"pid": 101, "trainers": {"built": 1}}, "spare_pid": 102}
    got = reading(status, 7, tmp_path)
    assert got["runs"] == 7 and got["trainers"] == {"built": 1}
    assert {k: v["processes"] for k, v in got["roles"].items()} == {
        "server": 1,
        "trainer": 1,
        "spare": 1,
        "other": 1,
    }
    assert got["total_pss_bytes"] == (500_000 + 200_000 + 20_000 + 1000) * 1024
    assert got["total_rss_bytes"] == (800_000 + 400_000 + 790_000 + 1000) * 1024
    assert got["total_pss_anon_bytes"] == (125_000 + 50_000 + 5_000 + 250) * 1024


def test_growth_is_per_role_and_of_the_totals(tmp_path: Path) -> None:
    _tree(tmp_path / "a")
    _tree(tmp_path / "b", trainer_rss_kb=500_000)
    status = {"pid": 100, "trainer": {"pid": 101}, "spare_pid": 102}
    first, last = reading(status, 3, tmp_path / "a"), reading(status, 200, tmp_path / "b")
    g = growth(first, last)
    assert g["trainer_rss"] == 0.25 and g["server_rss"] == 0.0 and g["total_pss"] == 0.0
    assert g["total_pss_anon"] == 0.0 and g["distinct"] is None  # pagemap not read here
    assert not within_limit(g)  # the trainer grew by 25%
    # A role that appears only later (a trainer started after the first reading) is no
    # division by zero.
    del first["roles"]["trainer"]
    assert growth(first, last)["trainer_rss"] is None


def _pages(proc: Path, pid: int, mappings: list[tuple[str, list[tuple[int, bool]]]]) -> None:
    """``pid``'s maps and pagemap: per mapping its file (or "") and page entries."""
    page = os.sysconf("SC_PAGE_SIZE")
    lines, entries = [], b""
    for i, (path, frames) in enumerate(mappings):
        start = (16 + 32 * i) * page
        lines.append(f"{start:x}-{start + len(frames) * page:x} r--p 00000000 08:01 7 {path}")
        entries = entries.ljust(start // page * 8, b"\0")
        for frame, file_page in frames:
            bits = (1 << 63 | (1 << 61 if file_page else 0) | frame) if frame else 0
            entries += struct.pack("<Q", bits)
    (proc / str(pid) / "maps").write_text("\n".join(lines) + "\n")
    (proc / str(pid) / "pagemap").write_bytes(entries)


def test_distinct_pages_count_each_physical_page_once(tmp_path: Path) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    _tree(tmp_path)
    # The server and its fork share frames 5 and 6 (data) and 9 (a library's page); a
    # page not present (frame 0 here) counts for nothing.
    _pages(tmp_path, 100, [("", [(5, False), (6, False), (0, False)]), ("/lib/a.so", [(9, True)])])
    _pages(tmp_path, 102, [("", [(5, False), (6, False), (7, False)]), ("/lib/a.so", [(9, True)])])
    assert distinct_pages([100, 102, 999], tmp_path) == {"anon_bytes": 3 * page, "file_bytes": page}
    # Without root, pagemap shows every frame as 0: no count rather than a wrong one.
    _pages(tmp_path, 101, [("", [(0, False)])])
    (tmp_path / "101" / "pagemap").write_bytes(struct.pack("<Q", 1 << 63) * 100)
    assert distinct_pages([100, 101], tmp_path) is None


def test_the_verdict_leaves_out_the_pss_of_files_other_processes_share() -> None:
    # Another session's TensorFlow process ended: the libraries' share of PSS rose.
    moved = {"total_pss": 0.101, "total_pss_anon": 0.017, "distinct": 0.015, "trainer_rss": 0.016}
    assert within_limit(moved)
    assert not within_limit({**moved, "total_pss_anon": 0.12})
    assert not within_limit({**moved, "distinct": 0.10})
