"""The idle server gives back the library pages its imports touched, and nothing else:
what a process reads from any mapping stays the same bytes."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import pytest

from helix_tf.server._memory import file_pages, parse_smaps, release_library_pages, trim_heap

SMAPS = """\
7f0000000000-7f0000100000 r-xp 00000000 08:01 1234  /venv/lib/libtensorflow_cc.so.2
Size:               1024 kB
Rss:                 800 kB
Anonymous:             0 kB
Locked:                0 kB
VmFlags: rd ex mr mw me
7f0000100000-7f0000120000 r--p 00100000 08:01 1234  /venv/lib/libtensorflow_cc.so.2
Rss:                 128 kB
Anonymous:           128 kB
7f0000120000-7f0000130000 rw-p 00120000 08:01 1234  /venv/lib/libtensorflow_cc.so.2
Rss:                  64 kB
Anonymous:             0 kB
55d000000000-55d000400000 rw-p 00000000 00:00 0     [heap]
Rss:                4096 kB
Anonymous:          4096 kB
7f0000200000-7f0000210000 r--s 00000000 08:01 99    /data/file with spaces.bin
Rss:                  16 kB
Anonymous:             0 kB
7f0000300000-7f0000310000 r--p 00000000 08:01 98    /venv/lib/unused.so
Rss:                   0 kB
Anonymous:             0 kB
7f0000400000-7f0000410000 r-xp 00000000 08:01 97    /venv/lib/locked.so
Rss:                  64 kB
Anonymous:             0 kB
Locked:               64 kB
7f0000500000-7f0000510000 r--s 00000000 00:05 96    /dev/nvidiactl
Rss:                  64 kB
Anonymous:             0 kB
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]
Rss:                   4 kB
Anonymous:             0 kB
"""


def test_smaps_is_read_mapping_by_mapping() -> None:
    mappings = parse_smaps(SMAPS)
    assert [m.path for m in mappings] == [
        "/venv/lib/libtensorflow_cc.so.2",
        "/venv/lib/libtensorflow_cc.so.2",
        "/venv/lib/libtensorflow_cc.so.2",
        "[heap]",
        "/data/file with spaces.bin",
        "/venv/lib/unused.so",
        "/venv/lib/locked.so",
        "/dev/nvidiactl",
        "[vsyscall]",
    ]
    first = mappings[0]
    assert (first.start, first.end, first.perms) == (0x7F0000000000, 0x7F0000100000, "r-xp")
    assert (first.rss_kb, first.anonymous_kb, first.locked_kb) == (800, 0, 0)


def test_only_resident_read_only_file_pages_with_no_private_copy_are_released() -> None:
    # Not: relocated (copied-on-write) pages, writable mappings, the heap, pages not
    # resident, locked pages, a device's memory, the kernel's own mappings.
    chosen = file_pages(parse_smaps(SMAPS))
    assert [(m.path, m.perms) for m in chosen] == [
        ("/venv/lib/libtensorflow_cc.so.2", "r-xp"),
        ("/data/file with spaces.bin", "r--s"),
    ]


def _resident_kb(path: Path, perms: str) -> int:
    """The resident kB of this process' one mapping of ``path`` with ``perms``."""
    (found,) = [
        m
        for m in parse_smaps(Path("/proc/self/smaps").read_text())
        if m.path == str(path) and m.perms == perms
    ]
    return found.rss_kb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise: Linux")
def test_released_pages_read_back_the_same_and_written_memory_is_kept(tmp_path: Path) -> None:
    size = 64 * mmap.PAGESIZE
    data = bytes(range(256)) * (size // 256)
    path = tmp_path / "library.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        library = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    written = mmap.mmap(-1, size)  # anonymous, private: the process' own data
    written[:] = data[::-1]
    with open(path, "r+b") as f:  # a private copy of the file, written: copied-on-write
        copied = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE)
    copied[:4] = b"edit"
    assert library[:] == data  # every page resident
    assert _resident_kb(path, "r--s") == size // 1024

    assert release_library_pages() >= size // 1024

    assert _resident_kb(path, "r--s") == 0
    assert _resident_kb(path, "rw-p") > 0  # its written page is the process' own
    assert library[:] == data
    assert written[:] == data[::-1]
    assert copied[:4] == b"edit" and copied[4:] == data[4:]
    for view in (library, written, copied):
        view.close()


def _anonymous_kb() -> int:
    text = Path("/proc/self/smaps_rollup").read_text()
    return int(text.split("\nAnonymous:")[1].split()[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trimming_gives_freed_heap_memory_back() -> None:
    # What a training frees inside the heap (below memory still in use) stays the
    # process' until trimmed.
    blocks = [bytearray(16 * 1024) for _ in range(4096)]  # 64 MB on the heap
    kept = bytearray(16 * 1024)  # above them: the heap cannot shrink from its top
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])
    del blocks
    before = _anonymous_kb()
    assert trim_heap() is True
    assert _anonymous_kb() < before - 32 * 1024
    assert kept == bytearray(16 * 1024)
