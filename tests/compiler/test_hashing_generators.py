"""A generator object kept outside the call (a module's or closure's ``RNG``, a default
argument) that a UDF draws from is a refusal: recomputed every run, never stored
(QA pass 9).

Before this pass such a generator was hashed by its state when the config was compiled
and the UDF's result was stored and reused; but what a call draws depends on every
earlier draw from the generator in the process: a second UDF drawing from the same
``RNG`` (loaded in the next run, so no longer drawing first), or another ``--batch-rows``
(the first batch's row-local check draws again), made the reused result differ from a
fresh run's. A copy (``copy.deepcopy(RNG)``), a generator made inside the call from a
seed, and reading its state draw nothing from the kept one and stay reusable.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helix_tf.compiler.hashing import code_fingerprint

MODULE = """\
import copy
import random

import numpy as np

RNG = np.random.default_rng(0)
PYTHONS = random.Random(1)
LEGACY = np.random.RandomState(2)


def numpy_generator(x):
    return x + RNG.normal()


def python_random(x):
    return x + PYTHONS.random()


def passed_to_a_library(batch):
    return batch.sample(frac=1.0, random_state=LEGACY)


def in_a_nested_helper(x):
    def draw():
        return RNG.integers(5)

    return x + draw()


def an_alias(x):
    rng = RNG
    return x + rng.normal()


def default_argument(x, rng=np.random.default_rng(3)):
    return x + rng.normal()


def a_copy(x):
    return x + copy.deepcopy(RNG).normal()


def made_inside(x, seed=7):
    return x + np.random.default_rng(seed).normal()


def reads_the_state(x):
    return x if RNG.bit_generator.state and LEGACY.get_state() else -x


class Jitter:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def __call__(self, x):
        return x + self.rng.normal()

    def method(self, x):
        return x + self.rng.normal()


jitter = Jitter(4)
jitter_method = jitter.method
"""

REFUSED = [
    "numpy_generator",
    "python_random",
    "passed_to_a_library",
    "in_a_nested_helper",
    "an_alias",
]
KEPT_BY_AN_OBJECT = ["jitter", "jitter_method"]
REUSABLE = ["a_copy", "made_inside", "reads_the_state"]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    (tmp_path / "qa9_generators.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    sys.modules.pop("qa9_generators", None)
    yield importlib.import_module("qa9_generators")
    sys.modules.pop("qa9_generators", None)


@pytest.mark.parametrize("name", REFUSED)
def test_a_draw_from_a_generator_kept_outside_the_call_is_a_refusal(module, name: str) -> None:
    fn: Callable[..., object] = getattr(module, name)
    refusals = code_fingerprint(fn).refusals
    assert len(refusals) == 1, refusals
    assert "draws from a random generator kept outside the call" in refusals[0]
    assert "qa9_generators.py:" in refusals[0] and "np.random.default_rng(seed)" in refusals[0]


def test_a_generator_as_a_default_argument_is_a_refusal(module) -> None:
    refusals = code_fingerprint(module.default_argument).refusals
    assert len(refusals) == 1 and "random generator as a default argument" in refusals[0]


@pytest.mark.parametrize("name", REUSABLE)
def test_a_copy_a_generator_made_inside_or_its_state_read_stay_reusable(module, name: str) -> None:
    assert code_fingerprint(getattr(module, name)).refusals == ()


@pytest.mark.parametrize("name", KEPT_BY_AN_OBJECT)
def test_a_callable_object_keeping_a_generator_is_a_refusal(module, name: str) -> None:
    refusals = code_fingerprint(getattr(module, name)).refusals
    assert len(refusals) == 1 and "keeps a random generator in self.rng" in refusals[0]
