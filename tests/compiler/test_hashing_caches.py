"""A cache a library function keeps (weak references filled by its calls) is no part of
what a UDF reads (QA pass 14).

``functools.singledispatch`` keeps a dispatch cache (a ``WeakKeyDictionary``) in its
wrapper's closure, filled by each call with the types seen. It was hashed with the
registry, so a UDF calling such a function had another fingerprint after it ran: a second
compile in the same process (``--retrain-without-zero``'s derived workflow, a notebook,
the agent) recomputed what it could have loaded. What the function does follows from its
registry, which is still hashed: a new registration changes the digest.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from types import ModuleType

import pytest

from helix_tf.compiler.hashing import code_fingerprint

SOURCE = """\
import functools


@functools.singledispatch
def convert(value):
    return value


@convert.register
def _(value: int):
    return value * 2


def udf(row):
    return convert(row)
"""


def test_a_singledispatch_functions_calls_leave_the_digest_as_it_was(
    load: Callable[..., ModuleType],
) -> None:
    module = load(SOURCE)
    before = code_fingerprint(module.udf)
    for value in (3, "a", 2.5, [1]):
        module.udf(value)
    assert code_fingerprint(module.udf) == before
    assert before.refusals == ()


def test_a_singledispatch_registration_changes_the_digest(
    load: Callable[..., ModuleType],
) -> None:
    module = load(SOURCE)
    plain = code_fingerprint(module.udf).digest
    module.convert.register(str, lambda value: value.upper())
    assert code_fingerprint(module.udf).digest != plain


VECTORIZED = """\
import numpy as np


class Squares(np.vectorize):
    pass


square = np.vectorize(lambda x: x * x, otypes=[float])
cube = Squares(lambda x: x * x * x, otypes=[float])


def udf(row):
    return square(row) + cube(row)
"""


def test_a_vectorized_functions_first_call_leaves_the_digest_as_it_was(
    load: Callable[..., ModuleType],
) -> None:
    """``np.vectorize(f, otypes=...)`` keeps the ufunc its first call builds from ``f``
    (unpicklable): a UDF using one was refused after it ran (QA 16), so the warm server's
    next compile of the same config recomputed it. What it does is still hashed."""
    module = load(VECTORIZED)
    before = code_fingerprint(module.udf)
    module.udf(2.0)
    after = code_fingerprint(module.udf)
    assert after == before and after.refusals == ()
    module.square.otypes = "i"
    assert code_fingerprint(module.udf).digest != before.digest


_REAL_LOCALTIME = time.localtime
KERAS_SOURCE = """\
import keras
import numpy as np

SCALE = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant({factor}))
WORDS = keras.layers.StringLookup(vocabulary=["a", "b"])


def udf(row):
    return float(SCALE(np.array([[row, 1.0]]))[0][0]), WORDS("a")
"""


def test_a_keras_layers_digest_holds_its_state_not_the_time(
    load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Keras object pickles to a ``.keras`` zip stamped with the second it was saved (its
    ``metadata.json`` and the zip's entry times): a UDF reading a module-level layer had
    another digest in every process and every second, so it was recomputed every run (QA
    pass 17). Its configuration, weights and assets are its state."""
    saving_lib = pytest.importorskip("keras.src.saving.saving_lib")
    module = load(KERAS_SOURCE.replace("{factor}", "2.0"))
    before = code_fingerprint(module.udf).digest

    class _Later(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> _Later:
            return cls(2031, 5, 6, 7, 8, 9)

    monkeypatch.setattr(saving_lib.datetime, "datetime", _Later)
    monkeypatch.setattr(time, "time", lambda: 1_936_000_000.0)  # the zip's entry times
    monkeypatch.setattr(time, "localtime", lambda *a: _REAL_LOCALTIME(1_936_000_000.0))
    assert code_fingerprint(module.udf).digest == before
    edited = load(KERAS_SOURCE.replace("{factor}", "3.0"))
    assert code_fingerprint(edited.udf).digest != before
