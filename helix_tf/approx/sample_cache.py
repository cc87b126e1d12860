"""The sampled training rows of stored examples, kept between a process's runs.

An approximate run over stored exact examples reads their whole training split (325k
rows at census x10: ~0.03 s warm) and keeps the sample's rows (:func:`.sampling.keep_mask`)
before it trains. A served run's process answers one approximate run after another
over the same stored examples, with the same sample: :func:`sampled_rows` keeps the
sampled rows it drew (a few MB) and hands them to the next run over the same files.

The key is what the rows are drawn from and how: the files' content as the store
recorded it (each file's sha256, from the entry's manifest), the files as they are now
(name, size and modification time: a file changed since is drawn again), the sample's
fraction and seed. A copy of the store (copied with its files' times) draws the same
rows and finds them kept. The rows kept are read-only (pyarrow tables), so a later run
gets exactly what drawing them again gives. A draw that fails (a sample that keeps one
label: its error) is not kept.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["clear", "sampled_rows"]

T = TypeVar("T")

#: At most this many bytes of sampled rows are kept, the least recently used dropped first.
MAX_BYTES = 128 << 20

_Key = tuple[tuple[Any, ...], tuple[tuple[str, int, int], ...], float, int]
_kept: collections.OrderedDict[_Key, tuple[Any, int]] = collections.OrderedDict()
_lock = threading.Lock()


def sampled_rows(
    folder: str,
    content: tuple[Any, ...],
    fraction: float,
    seed: int,
    draw: Callable[[], T],
) -> T:
    """``draw()``: the rows a sample of ``fraction`` (``seed``) keeps of the files in
    ``folder``, whose content ``content`` names (e.g. the stored files' sha256s), kept in
    memory for later calls over the same content in unchanged files.

    ``draw`` must depend on nothing but those files, ``fraction`` and ``seed``, and return
    an immutable value with an ``nbytes`` (a pyarrow table); one larger than
    :data:`MAX_BYTES` is not kept.
    """
    files = _signature(folder)
    if files is None or not content:
        return draw()
    key: _Key = (tuple(content), files, float(fraction), int(seed))
    with _lock:
        hit = _kept.get(key)
        if hit is not None:
            _kept.move_to_end(key)
            return hit[0]  # type: ignore[no-any-return]
    rows = draw()
    size = int(getattr(rows, "nbytes", MAX_BYTES + 1))
    if size <= MAX_BYTES:
        with _lock:
            _kept[key] = (rows, size)
            while sum(s for _, s in _kept.values()) > MAX_BYTES:
                _kept.popitem(last=False)
    return rows


def clear() -> None:
    """Forget every kept sample."""
    with _lock:
        _kept.clear()


def _signature(folder: str) -> tuple[tuple[str, int, int], ...] | None:
    """The files of ``folder`` by name, size and modification time; None when the folder
    cannot be listed or holds no file (nothing to key on: drawn every time)."""
    try:
        with os.scandir(folder) as entries:
            stats = [(e.name, e.stat()) for e in entries if e.is_file()]
    except OSError:
        return None
    if not stats:
        return None
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))
