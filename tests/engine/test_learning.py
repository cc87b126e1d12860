"""The learning steps of a run (helix_tf.engine._learning): what a training does first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import helix_tf
from helix_tf.components import trainers
from helix_tf.engine._inputs import LearningInputs


class _Starting:
    """The trainer of a server still starting: the run waits for it, then trains here."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def ready(self) -> bool:
        self.order.append("wait for the trainer")
        return False

    def train(self, *args: Any) -> None:
        return None

    def call(self, request: dict[str, Any]) -> None:
        return None


def test_a_training_reads_its_examples_before_it_waits_for_a_starting_trainer(
    tiny_census_config: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run hands its training to the trainer of the server it started, which
    may still be importing TensorFlow: reading the examples (no TensorFlow needed) comes
    before that wait, not after it, and the run trains as it would have."""
    order: list[str] = []
    read = LearningInputs.examples_split

    def examples_split(self: LearningInputs, name: str, split: str, columns: Any = None) -> Any:
        order.append(f"read the {split} split")
        return read(self, name, split, columns)

    monkeypatch.setattr(LearningInputs, "examples_split", examples_split)
    trainers.use_remote(_Starting(order))
    try:
        waited = helix_tf.run(tiny_census_config, store=store)
    finally:
        trainers.use_remote(None)
    assert order[:2] == ["read the train split", "wait for the trainer"]
    alone = helix_tf.run(tiny_census_config, store=store + "-alone")
    assert waited.metrics == alone.metrics
