"""Write a file whole or not at all: a temporary file beside it, then a rename.

Every temp-then-rename writer of helix_tf goes through :func:`atomic_write` (local
paths) or :func:`atomic_write_fs` (an fsspec file system), so a failed write (a full
disk, a quota, a killed worker's exception) removes its temporary file instead of
leaving it behind: ``tests/test_atomic.py`` checks that no module renames a temporary
file of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_fs", "temporary_beside"]


def temporary_beside(path: str | os.PathLike[str], suffix: str = ".tmp") -> str:
    """A fresh name in ``path``'s folder for a file that will become ``path``.

    Hidden (a leading dot) and unique per call, so readers listing the folder skip it
    and two writers never share one.
    """
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


@contextlib.contextmanager
def _removed_on_failure(remove: Callable[[], None]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError, FileNotFoundError):
            remove()
        raise


def atomic_write(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    encoding: str = "utf-8",
    mode: int | None = None,
    fsync: bool = False,
) -> None:
    """Write ``data`` to the local file ``path`` atomically; on any failure the
    temporary file is removed and the error raised (``path`` is left as it was)."""
    tmp = temporary_beside(path)
    raw = data.encode(encoding) if isinstance(data, str) else data
    with _removed_on_failure(lambda: os.unlink(tmp)):
        with open(tmp, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)


def atomic_write_fs(
    fs: Any, path: str, write: Callable[[IO[Any]], None], *, mode: str = "wb"
) -> None:
    """Write ``path`` on the fsspec file system ``fs`` through ``{path}.tmp-<random>``:
    ``write(f)`` fills it, then it is moved onto ``path``; on failure it is removed."""
    tmp = f"{path}.tmp-{secrets.token_hex(16)}"
    with _removed_on_failure(lambda: fs.rm_file(tmp)):
        with fs.open(tmp, mode) as f:
            write(f)
        fs.mv(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[str]:
    """A temporary path for a writer that takes a file name (``pq.write_table``): on a
    clean exit it is renamed onto ``path``; on any failure it is removed."""
    tmp = temporary_beside(path, suffix)
    with _removed_on_failure(lambda: os.unlink(tmp)):
        yield tmp
        os.replace(tmp, path)
