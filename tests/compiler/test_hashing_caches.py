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
