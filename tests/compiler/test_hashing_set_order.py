"""A set built while the code runs and used in its iteration order is a refusal (QA pass
12), as a set known at compile time has been since QA pass 10.

``" ".join(set(row["text"].split()))`` gave each process the words in another order (the
string-hash seed is drawn per process) under one fingerprint, so a stored result was not
what a fresh run computes; so did a helper returning ``set(...)`` whose caller iterated it.
A set bound to a local name is judged by the name's uses: ``unique = set(words)`` then
``len(unique)`` stays reusable.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from helix_tf.compiler.hashing import code_fingerprint
from tests.compiler.conftest import load_module

_HELPERS = """
def words(row):
    return set(row["text"].split())


def collected(row):
    found = set()
    for w in row["text"].split():
        found.add(w)
    return found


def listed(row):
    return sorted(set(row["text"].split()))
"""

#: Expressions giving a set whose order a process draws, and the statement binding it.
_BUILT = [
    'set(row["text"].split())',
    '{w.lower() for w in row["text"].split()}',
    '{row["a"], row["b"]}',
    'frozenset(row["text"])',
    "words(row)",
    "collected(row)",
    'words(row) | {"x"}',
]
_IN_ORDER = [
    "return ' '.join(S)",
    "return list(S)",
    "return [w for w in S]",
    "return dict(enumerate(S))",
    "return sum(len(w) / 3 for w in S)",  # a float sum follows the order of its terms
    "return {w: len(w) for w in S}",
    "return next(iter(S))",
    "return S.pop()",
    "out = []\n    for w in S:\n        out.append(w)\n    return out",
]
_ORDER_FREE = [
    "return len(S)",
    "return sorted(S)",
    "return 'spam' in S",
    "return max(S) if S else ''",
    "return len(S & {'a'})",
    "S.add('x')\n    return len(S)",
    "return any(w.startswith('f') for w in S)",
    "return sorted(w.upper() for w in S)",
    "return max([len(w) for w in S], default=0)",
    "return len({w.upper() for w in S})",
]


def _fingerprint(folder: pathlib.Path, built: str, use: str) -> object:
    body = f"S = {built}\n    {use}"
    module = load_module(folder, _HELPERS + f"\n\ndef udf(row):\n    {body}\n")
    try:
        return code_fingerprint(module.udf)
    finally:
        sys.modules.pop(module.__name__, None)


@settings(max_examples=60, deadline=None)
@given(built=st.sampled_from(_BUILT), in_order=st.booleans(), data=st.data())
def test_a_set_built_at_run_time_refuses_exactly_when_used_in_order(
    built: str, in_order: bool, data: st.DataObject
) -> None:
    use = data.draw(st.sampled_from(_IN_ORDER if in_order else _ORDER_FREE))
    with tempfile.TemporaryDirectory() as folder:
        fp = _fingerprint(pathlib.Path(folder), built, use)
    refusals = fp.refusals  # type: ignore[attr-defined]
    assert bool(refusals) == in_order, (built, use, refusals)
    assert all("in its iteration order" in r and "sorted(" in r for r in refusals)


@pytest.mark.parametrize(
    "body",
    [
        "return ' '.join(listed(row))",  # the helper sorts: a list comes back
        "return [n for n in set(range(3))]",  # numbers iterate alike in every process
        "return list({1, 2.5, None})",
        "return [c for c in set(NUMBERS)]",
        # Built at run time of what is written to give ints (QA pass 14):
        'return sum({len(w) for w in row["text"].split()})',
        'return list(set(map(len, row["text"].split())))',
        'return sum(set(int(w) * 2 + 1 for w in row["text"].split()))',
        'return [i for i in {i * i for i in range(len(row["text"]))}]',
        'return list({len(row["text"]), ord(row["text"][0]), 3})',
        'return sum({i for i, w in enumerate(row["text"].split()) if w})',
        'return list({w == "a" for w in row["text"].split()})',
    ],
)
def test_sets_whose_order_every_process_shares_stay_reusable(load, body: str) -> None:
    module = load(_HELPERS + f"\nNUMBERS = (3, 1, 2)\n\n\ndef udf(row):\n    {body}\n")
    fp = code_fingerprint(module.udf)
    assert fp.refusals == () and fp.analysable, fp.refusals


@pytest.mark.parametrize(
    "body",
    [
        'return sum({float(w) for w in row["text"].split()})',  # NaNs hash by address
        'return sum({abs(w) for w in row["values"]})',  # abs of what: not known
        'return list({len(w) or w for w in row["text"].split()})',
        'return list({w for i, w in enumerate(row["text"].split())})',
        'return sum(set(row["values"]))',
    ],
)
def test_sets_of_what_may_not_be_ints_stay_refused(load, body: str) -> None:
    module = load(_HELPERS + f"\n\ndef udf(row):\n    {body}\n")
    assert code_fingerprint(module.udf).refusals


def test_the_order_refused_does_differ_between_processes(tmp_path: pathlib.Path) -> None:
    """What the rule guards against: one UDF, one fingerprint, another output per process."""
    (tmp_path / "words_udf.py").write_text(
        "def udf(row):\n    return ' '.join(set(row['text'].split()))\n"
    )
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from words_udf import udf
        print(udf({"text": "free entry win cash prize now text claim call"}))
        """
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            env={"PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(outputs) > 1
