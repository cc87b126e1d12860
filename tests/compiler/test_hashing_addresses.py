"""A memory address read as a value is a refusal (QA pass 12): ``id(x)`` and the text of
an object whose class keeps ``object``'s ``repr`` (``<Thing object at 0x7f...>``) differ
in every process, as ``hash()`` of text does, so a stored result was not what a fresh run
computes. Comparing addresses reads none."""

from __future__ import annotations

import pytest

from helix_tf.compiler.hashing import code_fingerprint

_MODULE = """
import dataclasses


class Thing:
    pass


@dataclasses.dataclass
class Named:
    name: str = "n"


class Keyed:
    def __hash__(self):
        return id(self)


THING, NAMED = Thing(), Named()


def udf(row):
    {body}
"""


@pytest.mark.parametrize(
    "body",
    [
        "return id(row) % 7",
        "return sorted([THING, row], key=id)[0] is THING",
        "return list(map(id, [row]))",
        "return str(THING)",
        "return f'{THING}'",
        "return repr(THING).split()[-1]",
    ],
)
def test_an_address_read_as_a_value_is_a_refusal(load, body: str) -> None:
    refusals = code_fingerprint(load(_MODULE.format(body=body)).udf).refusals
    assert len(refusals) == 1 and "memory address" in refusals[0], refusals


@pytest.mark.parametrize(
    "body",
    [
        "return id(row) == id(THING)",
        "return id(row) in {id(THING)}",
        "return str(NAMED) + f'{NAMED}' + str(row)",
        "return len({Keyed(): 1})",  # its own __hash__: lookups
        "return f'{Thing.__name__}' + str(Thing)",
    ],
)
def test_compared_addresses_and_texts_without_one_stay_reusable(load, body: str) -> None:
    fp = code_fingerprint(load(_MODULE.format(body=body)).udf)
    assert fp.refusals == (), fp.refusals
