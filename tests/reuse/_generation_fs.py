"""A fake object store that enforces GCS's create-if-absent precondition (for the tests).

The GCS emulator the store tests run against ignores ``ifGenerationMatch=0``, so it
cannot show that two writers on two machines never both publish one manifest. This
in-memory file system behaves as GCS does where that matters:

* an object appears only when its upload completes (``close()``), all at once;
* ``open(path, "xb")`` is an upload with ``ifGenerationMatch=0``: it fails with
  ``FileExistsError`` (what gcsfs raises for HTTP 412) when the object exists at the
  moment the upload completes, atomically with respect to every other upload;
* every completed upload gets a new generation number.

``enforce=False`` gives the emulator's behaviour (the precondition is ignored), so
the same race shows what the store's read-back does and does not guarantee there.

Faults a test can arm (class attributes, reset by :func:`reset`):

* :attr:`GenerationFileSystem.turnstile` lines up the uploads of one path:
  each racer waits until all have arrived, then they go one at a time, the next one
  only once the previous has read the path back (its read-back or inspection). This
  is the interleaving in which a store without the precondition lets two writers both
  believe they won.
* :attr:`GenerationFileSystem.lose_reply` names paths whose next exclusive create
  reaches the store but whose reply is lost: the client's retry meets the
  precondition and raises ``FileExistsError``, as gcsfs's retry of a timed-out upload
  does.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

PROTOCOL = "gcsfake"


class Turnstile:
    """Lines up ``parties`` racers on one path, then lets them through one by one."""

    def __init__(self, path_suffix: str, parties: int) -> None:
        self.path_suffix = path_suffix
        self.barrier = threading.Barrier(parties, timeout=60)
        self.lock = threading.Condition()
        self.tickets = 0
        self.turn = 0
        self.holder: dict[int, int] = {}  # thread id -> its ticket, until it reads back

    def enter(self) -> None:
        with self.lock:
            ticket = self.tickets
            self.tickets += 1
            self.holder[threading.get_ident()] = ticket
        self.barrier.wait()
        with self.lock:
            if not self.lock.wait_for(lambda: self.turn == ticket, timeout=60):
                raise TimeoutError("turnstile: the previous racer never read back")

    def read_back(self) -> None:
        """The caller read the path: if it holds the turn, pass it on."""
        with self.lock:
            ticket = self.holder.pop(threading.get_ident(), None)
            if ticket is not None and ticket == self.turn:
                self.turn += 1
                self.lock.notify_all()


class _Upload(io.BytesIO):
    """A write-mode file whose object appears (or fails) only when it is closed."""

    def __init__(self, fs: GenerationFileSystem, path: str, exclusive: bool) -> None:
        super().__init__()
        self.fs = fs
        self.path = path
        self.exclusive = exclusive

    def close(self) -> None:
        if self.closed:
            return
        data = self.getvalue()
        super().close()
        self.fs.upload(self.path, data, exclusive=self.exclusive)


class GenerationFileSystem(MemoryFileSystem):
    """In-memory object store with GCS's generation precondition on exclusive creates."""

    protocol = PROTOCOL
    store: dict[str, Any] = {}  # noqa: RUF012 - shared by every instance, as memory:// is
    pseudo_dirs = [""]  # noqa: RUF012
    generations: dict[str, int] = {}  # noqa: RUF012
    enforce = True
    turnstile: Turnstile | None = None
    lose_reply: set[str] = set()  # noqa: RUF012
    _lock = threading.Lock()
    _next_generation = 1

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        if mode in ("wb", "xb"):
            return _Upload(self, path, exclusive=mode == "xb")
        return super()._open(path, mode=mode, **kwargs)

    def upload(self, path: str, data: bytes, *, exclusive: bool) -> None:
        """Complete an upload: atomically check the precondition and publish."""
        cls = type(self)
        turnstile = cls.turnstile
        if turnstile is not None and path.endswith(turnstile.path_suffix):
            turnstile.enter()
        with cls._lock:
            if exclusive and cls.enforce and path in self.store:
                raise FileExistsError(f"412 Precondition Failed (ifGenerationMatch=0): {path}")
            self.store[path] = MemoryFile(self, path, data)
            cls.generations[path] = cls._next_generation
            cls._next_generation += 1
            lost = exclusive and path in cls.lose_reply
            cls.lose_reply.discard(path)
        if lost:
            # The object is there; the reply never came; the retry meets the precondition.
            raise FileExistsError(f"412 Precondition Failed on retry: {path}")

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> bytes:
        turnstile = type(self).turnstile
        if turnstile is not None:
            turnstile.read_back()
        return super().cat_file(path, start=start, end=end, **kwargs)


def reset(*, enforce: bool = True) -> None:
    """Empty the fake store and disarm every fault."""
    GenerationFileSystem.store.clear()
    GenerationFileSystem.pseudo_dirs[:] = [""]
    GenerationFileSystem.generations.clear()
    GenerationFileSystem.enforce = enforce
    GenerationFileSystem.turnstile = None
    GenerationFileSystem.lose_reply = set()


fsspec.register_implementation(PROTOCOL, GenerationFileSystem, clobber=True)
