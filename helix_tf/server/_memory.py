"""The idle server gives back the library pages it touched only while importing.

The server imports TensorFlow and Keras itself (issue 9, third pass: its trainer is
forked from it). Importing runs the libraries' start-up code: relocations, static
initialisers, op and kernel registrations across ``libtensorflow_cc`` and its
companions, ~330 MB of their files' pages (~420 MB with pyarrow's, grpc's and the
others') that the server maps from then on and never runs again: its runs are
forks, which do not inherit those mappings' page-table entries (a fork copies them
only where a mapping has private, written pages), and its trainer was forked before.
Counted in its resident and proportional memory, they were ~half of what the idle
server, its trainer and its spare showed (``benchmarks.server_memory``).

:func:`release_library_pages` drops them from the server's page tables
(``madvise(MADV_DONTNEED)``) where that cannot change what the process reads: in
file mappings that are not writable and hold no private (anonymous) page, every page
is the file's own, so a later read finds the same bytes again (from the page cache,
or the file). The pages stay in the page cache, where the kernel may reclaim them
once nothing maps them; the process' own data (anonymous memory: the imported
objects, which its runs share copy-on-write) is untouched.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import mmap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mapping", "file_pages", "parse_smaps", "release_library_pages", "trim_heap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    """One mapping of ``/proc/<pid>/smaps``: its range, permissions, file and sizes (kB)."""

    start: int
    end: int
    perms: str
    path: str
    rss_kb: int = 0
    anonymous_kb: int = 0
    locked_kb: int = 0

    @property
    def file_pages_only(self) -> bool:
        """Whether every resident page of it is its file's own, now and later: a mapped
        file (not ``[heap]``, ``[vdso]``…, nor a device's memory), not writable, no
        anonymous (copied-on-write) page, none locked."""
        return (
            self.path.startswith("/")
            and not self.path.startswith("/dev/")
            and "w" not in self.perms
            and self.anonymous_kb == 0
            and self.locked_kb == 0
        )


def parse_smaps(text: str) -> list[Mapping]:
    """The mappings of a ``/proc/<pid>/smaps`` text, in order."""
    found: list[Mapping] = []
    head: list[str] | None = None
    sizes: dict[str, int] = {}

    def close() -> None:
        if head is not None:
            start, _, end = head[0].partition("-")
            found.append(
                Mapping(
                    start=int(start, 16),
                    end=int(end, 16),
                    perms=head[1],
                    path=head[5] if len(head) > 5 else "",
                    rss_kb=sizes.get("Rss", 0),
                    anonymous_kb=sizes.get("Anonymous", 0),
                    locked_kb=sizes.get("Locked", 0),
                )
            )

    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if not fields:
            continue
        if fields[0].endswith(":"):  # "Rss:  123 kB", "VmFlags: rd ex …"
            if len(fields) == 3 and fields[2] == "kB":
                sizes[fields[0][:-1]] = int(fields[1])
            continue
        close()
        head, sizes = fields, {}
    close()
    return found


def file_pages(mappings: list[Mapping]) -> list[Mapping]:
    """The mappings :func:`release_library_pages` releases: resident, file pages only."""
    return [m for m in mappings if m.file_pages_only and m.rss_kb > 0]


def release_library_pages(smaps: Path = Path("/proc/self/smaps")) -> int:
    """Drop this process' resident pages of read-only file mappings (see the module).

    What it released, in kB (0 where ``/proc`` or ``madvise`` is missing: not Linux).
    A page the process reads again comes back from the page cache (or the file).
    """
    dontneed = getattr(mmap, "MADV_DONTNEED", None)
    try:
        text = smaps.read_text()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    released = 0
    for mapping in file_pages(parse_smaps(text)) if dontneed is not None else ():
        with contextlib.suppress(OSError):
            if madvise(mapping.start, mapping.end - mapping.start, dontneed) == 0:
                released += mapping.rss_kb
    return released


def trim_heap() -> bool:
    """Give the C heap's free pages back (glibc's ``malloc_trim(0)``, every arena).

    For the trainer between trainings: freeing a training's arrays and graphs leaves
    free pages inside the heap, which ``free`` keeps (~10–15 MB after a census
    training here). Whether it released any (``False`` where there is no glibc).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))
