"""The next served run's process, forked before its request comes: the server's *spare*.

Forking the server (~0.9 GB resident: TensorFlow and Keras imported) took
25–90 ms here (the kernel copies its page tables), in the middle of every served
run's hand-over. The server keeps one child forked ahead of time: it waits on a
socket pair for a run's request, the client's connection and its standard streams,
then runs it exactly as a child forked at the request would (the same function,
:func:`helix_tf.server._daemon._child`): both start from the server's state after
its imports, which serving runs does not change. The server forks the next spare
between requests once no run is in progress: not while a run needs the CPU, and not
while the server holds a client's descriptors (a spare holding a client's pipe open
would keep a reader of the run's output waiting).

A spare that has died (killed by hand) is noticed when a run is handed to it: the
server forks for that run as before.

While it waits, a spare copies the memory pages a run's own Python code would write
first (:func:`_prefault`): a fork shares the server's pages until one is written, and
each first write costs a page fault and a copy (~7,000 per evaluation-only run here,
~40% of its CPU time, as system time). Touching the objects of the packages every run
goes through (:data:`PREFAULT`) moves most of them into the wait: ~8,000 pages
(~32 MB) copied ahead, ~4,500 fewer faults in the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helix_tf.server._protocol import receive, send

__all__ = ["PREFAULT", "Spare"]

log = logging.getLogger(__name__)

#: The packages whose module-level objects (and their classes' attributes) a waiting
#: spare touches: the Python code every served run runs (its CLI, config, compiler,
#: planner, metadata and tables), not the libraries a run may not use at all.
PREFAULT = ("helix_tf", "sqlalchemy", "rich", "click")

#: A class' own namespace, read without its metaclass' attribute lookup.
_CLASS_DICT = type.__dict__["__dict__"]

#: Modules touched between two looks for a request (a run is never kept waiting long).
_PREFAULT_CHUNK = 50

#: ``(connection, request, [stdin, stdout, stderr], trainer socket) -> exit code``.
RunRequest = Callable[[socket.socket, dict[str, Any], list[int], "Path | None"], int]


class Spare:
    """One pre-forked child waiting for a run (its pid and the server's end of its socket)."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    @classmethod
    def fork(cls, run: RunRequest, close_fds: tuple[int, ...]) -> Spare:
        """Fork a spare that will call ``run`` for the request it is handed.

        ``close_fds``: the server's own descriptors (its lock, its listening socket),
        closed in the spare as in any child of the server.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the spare
            code = 1
            try:
                ours.close()
                for fd in close_fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                # Until it has a run, a spare is the server's: SIGTERM ends it (the
                # server's handler would only set a flag in this copy of its state).
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                code = _wait_and_run(theirs, run)
            except BaseException:
                with contextlib.suppress(Exception):
                    log.exception("the spare run process failed")
            finally:
                os._exit(code)
        theirs.close()
        return cls(pid, ours)

    def hand_over(
        self,
        conn: socket.socket,
        request: dict[str, Any],
        fds: list[int],
        trainer: Path | None,
    ) -> bool:
        """Give the spare this run (the server keeps its own copies of the descriptors).

        ``False`` when the spare is gone; it is reaped, and the caller forks instead.
        """
        message = {"request": request, "trainer": None if trainer is None else str(trainer)}
        try:
            send(self.sock, message, fds=[conn.fileno(), *fds])
        except OSError as exc:
            log.warning("the spare run process (pid %d) is gone (%s): forking", self.pid, exc)
            self.discard()
            return False
        self.sock.close()
        return True

    def discard(self) -> None:
        """End the spare (it reads the end of its socket and exits) and reap it."""
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _prefault(sock: socket.socket, packages: tuple[str, ...] = PREFAULT) -> int:
    """Write now, while no run waits, to the pages a run's own code would write first.

    Holding a reference to an object writes its reference count, so the page it lies
    on is copied from the server's now rather than in the run. Touches the module
    names and every object in the namespaces of :data:`PREFAULT`'s modules and of
    their classes; reads nothing through attribute access (no descriptor, property or
    module ``__getattr__`` runs, no import happens), so the run starts from the same
    state. Stops as soon as ``sock`` has a request. The modules it went through.
    """
    _ = set(sys.modules)  # every module name string (a config load scans them)
    modules = [
        module
        for name, module in list(sys.modules.items())
        if type(module) is types.ModuleType
        and any(name == p or name.startswith(p + ".") for p in packages)
    ]
    for done, module in enumerate(modules):
        if done % _PREFAULT_CHUNK == 0 and select.select([sock], [], [], 0)[0]:
            return done
        for value in list(module.__dict__.values()):
            if issubclass(type(value), type):
                _ = list(_CLASS_DICT.__get__(value).values())
    return len(modules)


def _wait_and_run(sock: socket.socket, run: RunRequest) -> int:
    """In the spare: wait for a run, then run it; 0 when the server ended it without one."""
    _prefault(sock)
    with sock:
        message, fds = receive(sock, max_fds=4)
    if message is None or len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return 0
    conn = socket.socket(fileno=fds[0])
    trainer = message.get("trainer")
    return run(conn, message["request"], fds[1:], None if trainer is None else Path(trainer))
