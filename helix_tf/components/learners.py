"""Learner specs: the Keras models helix_tf trains (binary classifiers).

Specs are pure data; :mod:`helix_tf.components.keras_models` builds and trains
them (and is the only place that imports TensorFlow for learning).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import ClassVar, NoReturn

from helix_tf.components.base import Operator
from helix_tf.errors import ConfigError, missing_name

__all__ = ["Learner", "Linear", "DNN", "WideDeep", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "sgd", "ftrl", "adagrad", "rmsprop")
#: The ``tf.distribute`` strategies a learner may train under (``strategy=``).
STRATEGIES = ("one-device", "mirrored", "multi-worker")
#: helix_tf's own environment settings that change what a training computes, by name:
#: the most steps trained eagerly (more are traced: another graph, other float rounding)
#: and, under a strategy, the examples' size above which they stream from disk (another
#: row order). Read when a learner trains, never at import (a served run is a fork of a
#: process started with another environment); when set, each joins the fingerprints of
#: the learning stages (``compiler._runtime``), so a result is reused only under it.
EAGER_STEPS_SETTING = "HELIX_EAGER_MAX_STEPS"
STREAM_BYTES_SETTING = "HELIX_TF_STREAM_BYTES"
TRAINING_SETTINGS = (EAGER_STEPS_SETTING, STREAM_BYTES_SETTING)


def _finite(v: object) -> bool:
    """A finite real number, not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: object) -> bool:
    """An integer, not a bool (``epochs=True`` is no epoch count)."""
    return isinstance(v, int) and not isinstance(v, bool)


def training_setting(name: str, default: int) -> int:
    """The value of :data:`TRAINING_SETTINGS` ``name`` in the environment, else ``default``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={text!r} must be a whole number; set it to one "
            f"or unset it (default {default})"
        ) from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Learner(Operator):
    """Common training parameters. ``seed`` makes training deterministic."""

    KIND: ClassVar[str] = "learner"
    optimizer: str = "adam"
    learning_rate: float = 0.01
    epochs: int = 5
    batch_size: int = 1024
    l1: float = 0.0
    l2: float = 0.0
    seed: int = 0
    #: None: Keras ``model.fit`` in one process. A ``tf.distribute`` strategy
    #: ("one-device", "mirrored", "multi-worker" from TF_CONFIG) trains with a custom
    #: loop (helix_tf.components.distributed): same math, other float rounding.
    strategy: str | None = None

    def inert_params(self) -> set[str]:
        """``strategy`` when None: results trained before it existed keep their identity."""
        return {"strategy"} if self.strategy is None else set()

    def validate(self) -> list[str]:
        problems = []
        if self.strategy is not None and self.strategy not in STRATEGIES:
            problems.append(
                f"strategy must be None or one of {STRATEGIES}, but got {self.strategy!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, but got {self.optimizer!r}")
        if not (_finite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning_rate must be > 0, but got {self.learning_rate!r}")
        if not _whole(self.epochs) or self.epochs < 1:
            problems.append(f"epochs must be an integer >= 1, but got {self.epochs!r}")
        if not _whole(self.batch_size) or self.batch_size < 1:
            problems.append(f"batch_size must be an integer >= 1, but got {self.batch_size!r}")
        for name in ("l1", "l2"):
            v = getattr(self, name)
            if not _finite(v):  # NaN passed "v < 0" and trained to NaN weights
                problems.append(f"{name} must be >= 0 and finite, but got {v!r}")
            elif v < 0:
                problems.append(f"{name} must be >= 0, but got {v!r}")
        return problems


@dataclasses.dataclass(frozen=True, kw_only=True)
class Linear(Learner):
    """Logistic regression over every feature (one weight per index of each feature)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DNN(Learner):
    """A feed-forward network: numerics as they are, categoricals and bags embedded."""

    hidden: tuple[int, ...] = (64,)
    embedding_dim: int = 8
    activation: str = "relu"
    dropout: float = 0.0

    def validate(self) -> list[str]:
        problems = super().validate()
        if not self.hidden or any((not isinstance(h, int)) or h < 1 for h in self.hidden):
            problems.append(f"hidden must be positive layer widths, but got {self.hidden!r}")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 1:
            problems.append(
                f"embedding_dim must be an integer >= 1, but got {self.embedding_dim!r}"
            )
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), but got {self.dropout!r}")
        return problems


@dataclasses.dataclass(frozen=True, kw_only=True)
class WideDeep(DNN):
    """A linear (wide) part plus a DNN (deep) part whose logits are summed.

    ``wide`` and ``deep`` name the features each part reads (None: all).
    """

    hidden: tuple[int, ...] = (64, 32)
    wide: tuple[str, ...] | None = None
    deep: tuple[str, ...] | None = None

    def features_for(self, part: str, all_features: Sequence[str]) -> tuple[str, ...]:
        chosen = self.wide if part == "wide" else self.deep
        return tuple(all_features) if chosen is None else tuple(chosen)


def __getattr__(name: str) -> NoReturn:
    raise missing_name(__name__, name, __all__)
