"""The trainer of a server still starting: the run that started it trains there once ready.

A ``run`` into an empty store that finds no server forks one
(:func:`helix_tf.server._starting.start_by_fork`) and goes on with its own work:
config, plan, reading and preprocessing the data, which need pandas and Arrow
but not TensorFlow. The server imports TensorFlow and Keras meanwhile, on another
CPU, and forks its trainer (phase ``training``) before it imports the rest. When
the run reaches its first training it
waits for that server's trainer (:class:`StartingTrainer`, installed with
:func:`helix_tf.components.trainers.use_remote`) rather than importing TensorFlow
itself: the trainer computes what the run would (the same path a served run takes,
:class:`helix_tf.server._trainer.RemoteTrainer`), and keeps the model for the runs
that follow.

The wait is bounded: at most about as long as importing here would take (the last
server's import seconds here, :func:`~helix_tf.server._starting.expected_import_seconds`),
and not at all when the server is gone, was replaced, or waits for this run to end
(phase ``waiting``). Then the run imports and trains by itself, as a run without a
server does; a later training of the same run still goes to the trainer if it is
ready by then. The engine waits before a training's timer starts
(:func:`helix_tf.components.keras_models.prepare_training`), as it imports TensorFlow
there: neither is the node's computation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helix_tf.server._starting import expected_import_seconds, holder

__all__ = ["POLL_S", "StartingTrainer"]

#: How often a waiting run looks at the server lock (its phase) again, in seconds. A look
#: is a ``flock`` and a read of a few bytes (microseconds); the first run noticed its
#: trainer half a poll late on average: 25 ms at 0.05 s, on its critical path.
POLL_S = 0.01


class StartingTrainer:
    """A :class:`helix_tf.components.trainers.Remote` for a server that may still be starting.

    ``server_pid``: the server this run started (the holder of the server lock);
    ``socket``: its socket (the trainer's lies beside it); ``wait_s``: the longest the
    first training waits for it (default: what importing here would take).
    """

    def __init__(self, server_pid: int, socket: Path, wait_s: float | None = None) -> None:
        from helix_tf.server._trainer import RemoteTrainer, trainer_path

        self.server_pid = server_pid
        self.trainer = RemoteTrainer(trainer_path(socket))
        self.wait_s = expected_import_seconds() if wait_s is None else wait_s
        #: None until the first training asks; then whether the trainer was ready.
        self._ready: bool | None = None

    def ready(self) -> bool:
        """Whether the server's trainer takes trainings now: waits for it the first time
        (bounded, see the module docstring); later, a look without waiting."""
        if self._ready:
            return True
        deadline = time.monotonic() + (self.wait_s if self._ready is None else 0.0)
        while True:
            found = holder()
            if found is None or found[0] != self.server_pid:  # gone, or another server
                self._ready = False
                return False
            if found[1] in ("training", "ready"):  # its trainer is forked
                self._ready = self.trainer.path.exists()  # no trainer: HELIX_TF_TRAINER=off
                return self._ready
            if found[1] == "waiting" or time.monotonic() >= deadline:
                self._ready = False
                return False
            time.sleep(POLL_S)

    def train(
        self,
        training: dict[str, Any],
        on_epoch: Callable[[int, int, float, float], None] | None,
        recipe: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Train in the server's trainer when it is ready; ``None``: train here."""
        if not self.ready():
            return None
        return self.trainer.train(training, on_epoch, recipe)

    def call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """A request on a model the trainer keeps (it trained it, so it was ready)."""
        if not self._ready:
            return None
        return self.trainer.call(request)
