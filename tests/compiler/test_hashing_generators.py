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


# ------------------------------------------- every way user code can reach a generator

HELPERS = """\
import numpy as np


class Config:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.scale = 2.0

    def draw(self):
        return self.rng.normal()


CFG = Config(5)
RNG = np.random.default_rng(6)
"""

REACH = """\
import copy
import functools
import random
import types

import numpy as np

import qa14_helpers
from qa14_helpers import CFG, RNG, Config

SEED = 11
NO_SEED = None
PARAMS = {"rng": np.random.default_rng(8), "scale": 3}
NS = types.SimpleNamespace(rng=random.Random(9), scale=4)


class Settings:
    RNG = np.random.default_rng(10)
    SCALE = 5


def attribute_chain(x):
    return x + CFG.rng.normal()


def class_attribute(x):
    return x + Settings.RNG.normal()


def dict_item(x):
    return x + PARAMS["rng"].normal()


def namespace(x):
    return x + NS.rng.random()


def other_module_attribute(x):
    return x + qa14_helpers.CFG.rng.normal()


def imported_from_other_module(x):
    return x + RNG.normal()


def method_of_a_holder(x):
    return x + CFG.draw()


def _noise(cfg):
    return cfg.rng.normal()


def holder_passed_on(x):
    return x + _noise(CFG)


def _make(cfg):
    def inner(x):
        return x + cfg.rng.normal()

    return inner


closure_holder = _make(Config(12))


def default_holder(x, cfg=CFG):
    return x + cfg.rng.normal()


def _add_noise(x, rng):
    return x + rng.normal()


partial_generator = functools.partial(_add_noise, rng=np.random.default_rng(13))


class Noise:
    RNG = np.random.default_rng(14)

    def __call__(self, x):
        return x + self.RNG.normal()


noise = Noise()


def made_without_a_seed(x):
    return x + np.random.default_rng().normal()


def seed_that_is_none(x):
    return x + np.random.default_rng(NO_SEED).normal()


def python_random_without_a_seed(x):
    return x + random.Random().random()


def reads_only_a_value_beside_it(x):
    return x * CFG.scale * PARAMS["scale"] * NS.scale * Settings.SCALE


def copies_it(x):
    return x + copy.deepcopy(CFG.rng).normal()


def made_with_a_seed(x):
    return x + np.random.default_rng(SEED).normal() + random.Random(SEED).random()
"""

HELD = [
    "attribute_chain",
    "class_attribute",
    "dict_item",
    "namespace",
    "other_module_attribute",
    "imported_from_other_module",
    "method_of_a_holder",
    "holder_passed_on",
    "closure_holder",
    "default_holder",
    "partial_generator",
    "noise",
]
NO_SEED = ["made_without_a_seed", "seed_that_is_none", "python_random_without_a_seed"]
SEEDED_OR_APART = ["reads_only_a_value_beside_it", "copies_it", "made_with_a_seed"]


@pytest.fixture
def reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    (tmp_path / "qa14_helpers.py").write_text(HELPERS, encoding="utf-8")
    (tmp_path / "qa14_reach.py").write_text(REACH, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    for name in ("qa14_reach", "qa14_helpers"):
        sys.modules.pop(name, None)
    yield importlib.import_module("qa14_reach")
    for name in ("qa14_reach", "qa14_helpers"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("name", HELD)
def test_a_generator_reached_through_objects_modules_or_arguments_is_a_refusal(
    reach, name: str
) -> None:
    """Attribute chains, class attributes, items, another module's names, a method or a
    helper handed the object holding it, closures, defaults and partials: each reaches a
    generator kept outside the call (before, only a name bound to the generator itself,
    or a callable object's own attribute, was seen)."""
    refusals = code_fingerprint(getattr(reach, name)).refusals
    assert len(refusals) == 1, refusals
    assert "random generator" in refusals[0] and "np.random.default_rng(seed)" in refusals[0]


def test_a_refusal_names_the_file_line_and_what_holds_the_generator(reach) -> None:
    (attribute,) = code_fingerprint(reach.attribute_chain).refusals
    line = REACH.splitlines().index("    return x + CFG.rng.normal()") + 1
    assert "CFG.rng.normal()" in attribute and f"qa14_reach.py:{line}" in attribute
    (passed,) = code_fingerprint(reach.holder_passed_on).refusals
    assert "_noise(CFG)" in passed and "CFG.rng" in passed and "qa14_reach.py:" in passed


@pytest.mark.parametrize("name", NO_SEED)
def test_a_generator_made_without_a_seed_is_a_refusal(reach, name: str) -> None:
    refusals = code_fingerprint(getattr(reach, name)).refusals
    assert len(refusals) == 1, refusals
    assert "no seed fixes" in refusals[0] and "qa14_reach.py:" in refusals[0]


@pytest.mark.parametrize("name", SEEDED_OR_APART)
def test_seeded_generators_and_values_beside_a_generator_stay_reusable(reach, name: str) -> None:
    assert code_fingerprint(getattr(reach, name)).refusals == ()


def test_a_seed_read_from_a_module_constant_is_fingerprinted(reach) -> None:
    before = code_fingerprint(reach.made_with_a_seed).digest
    reach.SEED = 12
    assert code_fingerprint(reach.made_with_a_seed).digest != before


LIBRARY_DRAWS = """\
import keras
import tensorflow as tf

SEED = 3
GENERATOR = tf.random.Generator.from_seed(4)


def tf_stateful(x):
    return x + tf.random.normal([1], seed=SEED)


def keras_without_a_seed(x):
    return x + keras.random.normal((1,))


def tf_kept_generator(x):
    return x + GENERATOR.normal([1])


def tf_not_deterministic(x):
    return x + tf.random.Generator.from_non_deterministic_state().normal([1])


def tf_stateless(x):
    return x + tf.random.stateless_normal([1], seed=[SEED, 0])


def keras_with_a_seed(x):
    return x + keras.random.normal((1,), seed=SEED)
"""


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("tf_stateful", "the whole process shares"),
        ("keras_without_a_seed", "the whole process shares"),
        ("tf_kept_generator", "kept outside the call"),
        ("tf_not_deterministic", "no seed fixes"),
        ("tf_stateless", None),
        ("keras_with_a_seed", None),
    ],
)
def test_tensorflow_and_keras_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, why: str | None
) -> None:
    """TensorFlow's stateful ops draw another value at every call, seed or not (its op-seed
    counter); Keras' draw from a global SeedGenerator unless given an integer seed."""
    pytest.importorskip("tensorflow")
    (tmp_path / "qa14_tf.py").write_text(LIBRARY_DRAWS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("qa14_tf", None)
    try:
        refusals = code_fingerprint(getattr(importlib.import_module("qa14_tf"), name)).refusals
    finally:
        sys.modules.pop("qa14_tf", None)
    if why is None:
        assert refusals == ()
    else:
        assert len(refusals) == 1 and why in refusals[0], refusals


HANDED_ON = """\
import numpy as np

RNG = np.random.default_rng(0)


class Config:
    @property
    def rng(self):
        return RNG


CFG = Config()


def through_a_property(x):
    return x + CFG.rng.normal()


def returned(x):
    return RNG


def packed(x):
    pair = (x, RNG)
    return pair[1].normal()


def only_compared(x):
    return x if RNG is not None else -x
"""


@pytest.mark.parametrize(
    ("name", "refused"),
    [("through_a_property", True), ("returned", True), ("packed", True), ("only_compared", False)],
)
def test_a_generator_handed_on_is_a_draw_a_comparison_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, refused: bool
) -> None:
    """What gets a generator (returned by a property, packed in a tuple) can draw from it;
    where it goes is not followed, so handing it on is a draw."""
    (tmp_path / "qa14_handed.py").write_text(HANDED_ON, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("qa14_handed", None)
    try:
        fn = getattr(importlib.import_module("qa14_handed"), name)
        refusals = code_fingerprint(fn).refusals
    finally:
        sys.modules.pop("qa14_handed", None)
    assert bool(refusals) is refused, refusals


def test_reading_items_at_compile_time_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items and attributes are looked up without running code: a defaultdict's missing
    item is not made, a property is not called."""
    source = """\
import collections

CALLS = []
TABLE = collections.defaultdict(list)


class Lazy:
    @property
    def value(self):
        CALLS.append(1)
        return 1


LAZY = Lazy()


def udf(x):
    return x + len(TABLE["missing"]) + LAZY.value
"""
    (tmp_path / "qa14_static.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("qa14_static", None)
    try:
        module = importlib.import_module("qa14_static")
        assert code_fingerprint(module.udf).refusals == ()
        assert dict(module.TABLE) == {} and module.CALLS == []
    finally:
        sys.modules.pop("qa14_static", None)
