"""The server's trainer: one long-lived process that trains for the served runs.

Every served run is a fresh fork (:mod:`helix_tf.server._daemon`), so whatever a
run builds dies with it — including the compiled Keras model and its traced train
step, ~1–1.5 s of every training. The trainer is a process forked from the server
once, right after its imports; it keeps
:data:`helix_tf.components.trainers.TRAINERS` across runs. A served run hands a
training (the learner, the examples as arrays, the head, the epochs and the dtype
policy) to it over a Unix socket beside the server's and gets back the trained
weights and the losses, with a progress message per epoch. It computes what the
run would compute itself (``TRAINERS`` gives a fresh process' bits): the run
builds its model from those weights.

One training at a time: a run that finds the trainer busy (its lock held by
another run) trains by itself, as does one whose trainer cannot be reached or
fails. The trainer exits with the server (and when the server dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["RemoteTrainer", "start_trainer", "trainer_path"]

log = logging.getLogger(__name__)


def trainer_path(server_socket: Path) -> Path:
    """The trainer's socket, beside the server's."""
    return server_socket.with_suffix(".trainer")


def start_trainer(server_socket: Path, close_fds: tuple[int, ...] = ()) -> int:
    """Fork the trainer process (after the server's imports, before any TensorFlow op).

    ``close_fds``: the server's own (its lock, its listening socket), closed in the trainer.
    """
    path = trainer_path(server_socket)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(4)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for fd in close_fds:
                os.close(fd)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            _serve(listener, parent)
        except BaseException:
            log.exception("the trainer failed")
            code = 1
        finally:
            os._exit(code)
    listener.close()
    return pid


def _serve(listener: socket.socket, parent: int) -> None:
    from helix_tf.components.trainers import TRAINERS

    TRAINERS.keep(4)  # this process lives as long as the server: trainers pay off
    while os.getppid() == parent:  # the server is gone: so is its trainer
        ready, _, _ = select.select([listener], [], [], 1.0)
        if not ready:
            continue
        sock, _ = listener.accept()
        conn = Connection(sock.detach())
        try:
            _handle(conn)
        except (EOFError, OSError):  # the run went away (Ctrl-C): the next one is served
            log.info("a run left during its training")
        except Exception:
            log.exception("a training failed")
        finally:
            conn.close()


def _handle(conn: Connection) -> None:
    from helix_tf.components import keras_models, trainers

    request = conn.recv()
    if request.get("op") == "stats":
        conn.send({"stats": trainers.TRAINERS.stats()})
        return

    def progress(epoch: int, epochs: int, loss: float, seconds: float) -> None:
        conn.send({"epoch": (epoch, epochs, loss, seconds)})

    try:
        weights, losses = keras_models.train_weights(
            request["training"], on_epoch=progress if request.get("progress") else None
        )
    except Exception as exc:
        conn.send({"error": repr(exc)})
        return
    conn.send({"weights": weights, "losses": losses})


class RemoteTrainer:
    """A served run's handle on the server's trainer (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _turn(self) -> Iterator[Connection | None]:
        """A connection while this run holds the trainer; ``None`` when busy or absent."""
        lock_path = self.path.with_suffix(".trainer-lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield None
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another run is training there
                yield None
                return
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                yield None
                return
            conn = Connection(sock.detach())
            try:
                yield conn
            finally:
                conn.close()
        finally:
            os.close(fd)

    def fit(
        self,
        training: dict[str, Any],
        on_epoch: Callable[[int, int, float, float], None] | None,
        meanwhile: Callable[[], None] | None = None,
    ) -> tuple[list[Any], list[float]] | None:
        """The trained weights and losses, or ``None`` to train in this process.

        ``meanwhile()`` runs here while the trainer trains (once the training is sent).
        """
        t0 = time.perf_counter()
        with self._turn() as conn:
            if conn is None:
                return None
            try:
                conn.send({"training": training, "progress": on_epoch is not None})
            except Exception as exc:  # gone, or a training it cannot take (e.g. unpicklable)
                log.info("the server's trainer did not take the training (%r)", exc)
                return None
            if meanwhile is not None:
                meanwhile()
            try:
                while True:
                    reply = conn.recv()
                    if "epoch" in reply:
                        if on_epoch is not None:
                            on_epoch(*reply["epoch"])
                        continue
                    break
            except Exception as exc:  # the trainer went away mid-training
                log.info("the server's trainer did not answer (%r): training here", exc)
                return None
        if "error" in reply:
            log.info("the server's trainer failed (%s): training here", reply["error"])
            return None
        log.debug("trained by the server's trainer in %.2fs", time.perf_counter() - t0)
        return reply["weights"], reply["losses"]

    def stats(self, timeout: float = 2.0) -> dict[str, int] | None:
        """The trainer's builds and reuses; ``None`` when it is busy or absent."""
        with self._turn() as conn:
            if conn is None:
                return None
            conn.send({"op": "stats"})
            if not conn.poll(timeout):
                return None
            reply = conn.recv()
            return reply.get("stats")
