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

from collections.abc import Callable
from types import ModuleType

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
