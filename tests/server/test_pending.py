"""The trainer of a server still starting: a first run waits for it only while it may come.

The server's phase is the lock file's (written here as the server writes it); the trainer
is there once its socket is.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helix_tf.server._pending import StartingTrainer
from helix_tf.server._protocol import socket_path
from helix_tf.server._starting import take_lock, write_owner
from helix_tf.server._trainer import trainer_path

#: A pid that is not ours (the lock names the server's).
SERVER = 424242


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The server lock of an isolated server folder, held as a starting server holds it."""
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(tmp_path / "sock"))
    fd = take_lock()
    assert fd is not None
    yield fd
    os.close(fd)


def _trainer_socket() -> None:
    trainer_path(socket_path()).write_bytes(b"")


# "training": the server has forked its trainer and still imports the rest.
@pytest.mark.parametrize("phase", ["training", "ready"])
def test_waits_while_the_server_imports_then_trains_there(lock: int, phase: str) -> None:
    write_owner(lock, SERVER, "importing")

    def become_ready() -> None:
        time.sleep(0.3)
        _trainer_socket()
        write_owner(lock, SERVER, phase)

    threading.Thread(target=become_ready).start()
    pending = StartingTrainer(SERVER, socket_path(), wait_s=60)
    t0 = time.monotonic()
    assert pending.ready()
    assert 0.2 < time.monotonic() - t0 < 30
    assert pending.ready()  # decided: no second wait


def test_waits_no_longer_than_importing_here_would_take(lock: int) -> None:
    write_owner(lock, SERVER, "importing")
    pending = StartingTrainer(SERVER, socket_path(), wait_s=0.2)
    t0 = time.monotonic()
    assert not pending.ready()
    assert time.monotonic() - t0 < 5
    # Ready by a later training of the same run: that one goes there, without waiting.
    _trainer_socket()
    write_owner(lock, SERVER, "ready")
    assert pending.ready()


@pytest.mark.parametrize(
    ("owner", "phase", "trainer"),
    [
        (SERVER, "waiting", True),  # waits for this run to end before importing
        (SERVER + 1, "importing", True),  # another server holds the lock now
        (SERVER, "ready", False),  # ready without a trainer (HELIX_TF_TRAINER=off)
    ],
    ids=["waiting-for-this-run", "another-server", "no-trainer"],
)
def test_never_waits_for_a_trainer_that_cannot_come(
    lock: int, owner: int, phase: str, trainer: bool
) -> None:
    if trainer:
        _trainer_socket()
    write_owner(lock, owner, phase)
    pending = StartingTrainer(SERVER, socket_path(), wait_s=60)
    t0 = time.monotonic()
    assert not pending.ready()
    assert time.monotonic() - t0 < 5
    assert pending.train({}, None, {}) is None  # this run trains itself
    assert pending.call({"op": "predict"}) is None


def test_a_server_gone_is_not_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIX_TF_SERVER_DIR", str(tmp_path / "sock"))
    (tmp_path / "sock").mkdir(mode=0o700)
    _trainer_socket()
    pending = StartingTrainer(SERVER, socket_path(), wait_s=60)  # nobody holds the lock
    t0 = time.monotonic()
    assert not pending.ready()
    assert time.monotonic() - t0 < 5


def test_a_reader_never_sees_the_lock_record_half_written(lock: int) -> None:
    # The server rewrites its record as its phase moves on (importing, ready) while a
    # starting run polls it: a read between the old record's removal and the new one's
    # write found no holder, and the run stopped waiting for a server that was there.
    from helix_tf.server._starting import holder

    stop = threading.Event()

    def rewrite() -> None:
        phases = ("importing", "ready")
        i = 0
        while not stop.is_set():
            write_owner(lock, SERVER + i % 7, phases[i % 2])
            i += 1

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        seen = [holder() for _ in range(20_000)]
    finally:
        stop.set()
        writer.join()
    assert None not in seen
    assert {p for _, p in seen} == {"importing", "ready"}  # type: ignore[misc]
