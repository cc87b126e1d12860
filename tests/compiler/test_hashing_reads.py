"""What code reads besides Python values, and values whose ``repr`` hides their state.

Each case loads a module twice, before and after one edit of something a UDF reads (a
long constant, an environment variable, a file, a generator's seed), and requires the
fingerprints to differ; what cannot be read reliably must be a refusal that names it.
Issue 12: each of these once served a stale result.
"""

from __future__ import annotations

import collections
import datetime as dt
import pathlib
import re
import zoneinfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from helix_tf.compiler.hashing import canonical_json, code_fingerprint, stable_hash

# ------------------------------------------------------------- values whose repr is not state

_CATS = [f"c{i}" for i in range(300)]


def _long_regex(n: int) -> re.Pattern[str]:
    return re.compile("|".join(f"alternative_number_{i}" for i in range(n)))


def _with(values: list[object], i: int, new: object) -> list[object]:
    out = list(values)
    out[i] = new
    return out


STATE_EDITS = {
    # a regex longer than repr's 200 characters, its last alternative removed
    "regex-last-alternative": (_long_regex(40), _long_regex(39)),
    "regex-flags": (re.compile("a"), re.compile("a", re.IGNORECASE)),
    "arrow-table-middle-value": (
        pa.table({"x": list(range(1000))}),
        pa.table({"x": _with(list(range(1000)), 500, -1)}),
    ),
    "arrow-array": (pa.array(range(500)), pa.array(_with(list(range(500)), 250, 0))),
    "categorical-dtype-one-category": (
        pd.CategoricalDtype(_CATS),
        pd.CategoricalDtype(_with(_CATS, 150, "changed")),  # type: ignore[arg-type]
    ),
    "categorical-dtype-ordered": (
        pd.CategoricalDtype(["a", "b"]),
        pd.CategoricalDtype(["a", "b"], ordered=True),
    ),
    "defaultdict-factory": (collections.defaultdict(int), collections.defaultdict(list)),
    "numpy-generator-seed": (np.random.default_rng(1), np.random.default_rng(2)),
    "numpy-random-state-seed": (np.random.RandomState(1), np.random.RandomState(2)),
    "python-random-seed": (__import__("random").Random(1), __import__("random").Random(2)),
    "deque-late-item": (
        collections.deque(range(300)),
        collections.deque(_with(list(range(300)), 299, -1)),
    ),
    # QA pass 7: a time zone's rules beyond this instant's offset (DST), and pandas
    # extension arrays, which hash_pandas_object refused (every reader was a refusal)
    "datetime-zone-not-offset": (
        dt.datetime(2020, 6, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2020, 6, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    ),
    "timestamp-zone-not-offset": (
        pd.Timestamp("2020-06-01", tz="Etc/GMT-2"),
        pd.Timestamp("2020-06-01", tz="Europe/Paris"),
    ),
    "categorical-array-value": (pd.Categorical(["a", "b"]), pd.Categorical(["b", "a"])),
    "integer-array-value": (pd.array([1, None, 3], dtype="Int64"), pd.array([1, None, 4])),
}


@pytest.mark.parametrize("edit", sorted(STATE_EDITS))
def test_state_hidden_by_repr_changes_the_digest(load, edit: str) -> None:
    before, after = STATE_EDITS[edit]
    assert stable_hash(before) != stable_hash(after)
    # VALUE only compared: a generator handed on (returned) could be drawn from (a refusal)
    source = "def udf(x):\n    return x if VALUE is not None else -x\n"
    one, two = load(source, VALUE=before), load(source, VALUE=after)
    fp_one, fp_two = code_fingerprint(one.udf), code_fingerprint(two.udf)
    assert fp_one.digest != fp_two.digest
    assert not fp_one.refusals and not fp_two.refusals


def test_equal_state_gives_equal_digests() -> None:
    assert stable_hash(_long_regex(40)) == stable_hash(_long_regex(40))
    assert stable_hash(np.random.default_rng(5)) == stable_hash(np.random.default_rng(5))
    assert stable_hash(pd.CategoricalDtype(_CATS)) == stable_hash(pd.CategoricalDtype(_CATS))


def test_state_that_cannot_be_read_is_a_refusal_naming_the_object(load) -> None:
    import threading

    module = load("def udf(x):\n    return GUARD, x\n", GUARD=threading.Lock())
    fp = code_fingerprint(module.udf)
    assert fp.refusals and "GUARD" in fp.refusals[0] and "lock" in fp.refusals[0]


# ------------------------------------------------------------------ environment variables

ENV_READS = {
    "environ.get": "os.environ.get('HELIX_TEST_K', '1')",
    "getenv": "os.getenv('HELIX_TEST_K')",
    "environ[]": "os.environ['HELIX_TEST_K']",
    "in environ": "'HELIX_TEST_K' in os.environ",
    "from os import getenv": "getenv('HELIX_TEST_K')",
    # QA pass 17: the bytes forms and a text the environment is expanded into
    "getenvb": "os.getenvb(b'HELIX_TEST_K')",
    "environb[]": "os.environb.get(b'HELIX_TEST_K')",
    "expandvars": "os.path.expandvars('${HELIX_TEST_K}/x')",
    "expandvars of a path": "os.path.expandvars(pathlib.Path('$HELIX_TEST_K'))",
}


@pytest.mark.parametrize("call", sorted(ENV_READS))
def test_environment_variables_read_by_a_helper_join_the_digest(
    load, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    module = load(
        f"""
        import os
        import pathlib
        from os import getenv


        def setting():
            return {ENV_READS[call]}


        def udf(x):
            return x * 2 if setting() else x
        """
    )
    monkeypatch.setenv("HELIX_TEST_K", "1")
    one = code_fingerprint(module.udf)
    monkeypatch.setenv("HELIX_TEST_K", "2")
    two = code_fingerprint(module.udf)
    monkeypatch.delenv("HELIX_TEST_K")
    three = code_fingerprint(module.udf)
    if call == "in environ":  # presence is what it reads (the value is hashed too: safe)
        assert one.digest != three.digest
    else:
        assert len({one.digest, two.digest, three.digest}) == 3
    assert "setting/$HELIX_TEST_K" in one.reads
    assert not one.refusals


def test_environment_read_by_a_computed_name_is_a_refusal(load) -> None:
    module = load(
        """
        import os


        def udf(x, name="K"):
            return os.environ.get("PREFIX_" + name), dict(os.environ)


        def expanded(x, text="$HOME"):
            return os.path.expandvars(text), os.environb
        """
    )
    refusals = code_fingerprint(module.udf).refusals
    assert any('os.environ.get("PREFIX_" + name)' in r for r in refusals)
    assert any("used as a whole" in r for r in refusals)
    refusals = code_fingerprint(module.expanded).refusals  # QA pass 17
    assert any("os.path.expandvars(text)" in r for r in refusals)
    assert any("os.environb used as a whole" in r for r in refusals)


# ------------------------------------------------------------------ files read by code


def test_a_file_opened_by_a_cached_helper_joins_the_digest(load, tmp_path: pathlib.Path) -> None:
    table = tmp_path / "lookup.json"
    table.write_text('{"a": 1}')
    module = load(
        f"""
        import functools
        import json

        LOOKUP = {str(table)!r}


        @functools.lru_cache
        def lookup():
            with open(LOOKUP) as f:
                return json.load(f)


        def udf(row):
            return lookup().get(row, 0)
        """
    )
    before = code_fingerprint(module.udf)
    table.write_text('{"a": 2}')
    after = code_fingerprint(module.udf)
    assert before.digest != after.digest
    (read,) = {(f.call, f.path, f.function) for f in after.files}
    assert read == ("open(LOOKUP)", str(table), "lookup")


def test_path_reads_and_library_readers_are_found(load, tmp_path: pathlib.Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("x\n")
    module = load(
        f"""
        import pathlib
        import numpy as np

        HERE = pathlib.Path({str(tmp_path)!r})


        def udf(row, name="y.npy"):
            return (HERE / "words.txt").read_text(), np.load(HERE / name)
        """
    )
    files = {f.call: f.path for f in code_fingerprint(module.udf).files}
    assert files['(HERE / "words.txt").read_text()'] == str(words)
    assert files["np.load(HERE / name)"] is None  # named only when it runs


# ------------------------------------------------------------------ random generators


def test_unseeded_random_calls_are_reported(load) -> None:
    module = load(
        """
        import random
        import numpy as np

        RNG = np.random.default_rng(3)


        def udf(x):
            random.seed(3)
            np.random.seed(3)
            a = np.random.rand()
            b = random.random()
            c = np.random.default_rng()
            d = RNG.normal()
            e = np.random.default_rng(7)
            return a + b + c.normal() + d + e.normal()
        """
    )
    unseeded = code_fingerprint(module.udf).unseeded
    assert [u.split(" (")[0] for u in unseeded] == [
        "np.random.rand()",
        "random.random()",
        "np.random.default_rng()",
    ]


def test_canonical_json_of_arrow_is_stable_across_calls() -> None:
    assert canonical_json(pa.table({"x": [1, 2, 3]})) == canonical_json(pa.table({"x": [1, 2, 3]}))


# ------------------------------------------- names, modules and draws known only at run time


@pytest.mark.parametrize(
    "body",
    [
        "return x * globals()['SCALE']",
        "return x * eval('SCALE')",
        "return x * getattr(importlib.import_module(x.module), 'SCALE')",
        "return x * sys.modules[x.module].SCALE",
    ],
)
def test_names_read_only_when_the_code_runs_are_refusals(load, body: str) -> None:
    """A value found by a name computed at run time cannot be hashed at compile time:
    the node is recomputed every run instead of reusing a result for another value."""
    module = load(
        f"""
        import importlib
        import sys

        SCALE = 2


        def udf(x):
            {body}
        """
    )
    (refusal,) = code_fingerprint(module.udf).refusals
    assert "known only when it runs" in refusal and "read the values it needs by name" in refusal


def test_a_module_imported_by_a_literal_name_is_hashed_like_an_import(load) -> None:
    helper = load("SCALE = 2\n")
    source = """
        import importlib
        import sys


        def udf(x):
            a = importlib.import_module(HELPER).SCALE
            b = sys.modules.get(HELPER).SCALE
            return x * a * b
        """.replace("HELPER", repr(helper.__name__))
    module = load(source)
    before = code_fingerprint(module.udf)
    assert before.refusals == ()
    helper.SCALE = 3  # the module as a whole: its source is hashed
    pathlib.Path(helper.__file__).write_text("SCALE = 3\n")
    assert code_fingerprint(load(source).udf).digest != before.digest


def test_draws_from_the_process_wide_generators_are_refusals(load) -> None:
    """``np.random.seed(1)`` at import, then ``np.random.rand()`` in a UDF: what it draws
    depends on every earlier draw in the process (other nodes, earlier runs, which nodes
    were loaded), so a reused result can never be what a fresh run draws."""
    module = load(
        """
        import random

        import numpy as np

        np.random.seed(1)
        RNG = np.random.default_rng(3)


        def udf(x):
            return x + np.random.rand() + random.random() + RNG.normal()


        def seeded(x):
            return x + np.random.default_rng(7).normal() + RNG.normal()
        """
    )
    refusals = code_fingerprint(module.udf).refusals
    assert [r.split(": ")[1].split(" (")[0] for r in refusals] == [
        "np.random.rand()",
        "random.random()",
        "RNG.normal()",  # a module-level generator: drawn from by every call (QA pass 9)
    ]
    assert "np.random.default_rng(seed)" in refusals[0]
    assert [r.split(": ")[1].split(" (")[0] for r in code_fingerprint(module.seeded).refusals] == [
        "RNG.normal()"
    ]


def test_a_helper_class_on_an_abc_and_a_type_alias_are_hashed_not_refused(load) -> None:
    module = load(
        """
        import abc

        Number = int | float
        Pair = tuple[int, "Number"]


        class Base(abc.ABC):
            @abc.abstractmethod
            def scale(self) -> float: ...


        class Twice(Base):
            FACTOR = 2

            def scale(self) -> float:
                return self.FACTOR


        def udf(x):
            return x * Twice().scale() if isinstance(x, Number) else Pair
        """
    )
    fp = code_fingerprint(module.udf)
    assert fp.refusals == () and fp.analysable
    module.Twice.FACTOR = 3
    assert code_fingerprint(module.udf).digest != fp.digest


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("return hash(x) % 7", "zlib.crc32"),
        ("return [hash(s) % 7 for s in x]", "zlib.crc32"),
        ("return x * 0 + datetime.date.today().year", "reads the clock"),
        ("return x * 0 + datetime.datetime.now().hour", "reads the clock"),
        ("return x * 0 + now().hour", "reads the clock"),
        ("return x * 0 + pd.Timestamp.now().hour", "reads the clock"),
        ("return x * 0 + time.time()", "reads the clock"),
        ("return x * 0 + time.localtime().tm_hour", "reads the clock"),
        ("return x + len(time.strftime('%Y'))", "reads the clock"),
        # QA pass 12: the interval clocks, the clock asked for by a word, Period.now.
        ("return x * 0 + time.perf_counter()", "reads the clock"),
        ("return x * 0 + time.monotonic_ns()", "reads the clock"),
        ("return x * 0 + time.process_time()", "reads the clock"),
        ("return str(np.datetime64('now'))", "reads the clock"),
        ("return pd.Timestamp('today').day", "reads the clock"),
        ("return pd.to_datetime(WHEN).day", "reads the clock"),
        ("return len(pd.date_range(end='now', periods=3))", "reads the clock"),
        ("return pd.Period.now('D').day", "reads the clock"),
    ],
)
def test_reads_of_the_clock_and_of_the_hash_seed_are_refusals(load, body: str, why: str) -> None:
    """What these return differs from run to run on the same code and data (another day,
    another process's string-hash seed): a stored result is never what a fresh run gives,
    so the node is recomputed every run, and the refusal names the call and the fix."""
    module = load(
        f"""
        import datetime
        import time
        from datetime import datetime as dt_class

        import numpy as np
        import pandas as pd

        now = dt_class.now
        WHEN = "Now"


        def udf(x):
            {body}
        """
    )
    (refusal,) = code_fingerprint(module.udf).refusals
    assert "udf calls " in refusal and why in refusal


@pytest.mark.parametrize(
    "body",
    [
        "return x + time.localtime(0).tm_year",
        "return x + len(time.strftime('%Y', time.gmtime(0)))",
        "return x + datetime.date(2024, 1, 1).year",
        "return x + zlib.crc32(str(x).encode())",
        "return x + len({Key(x)})",
        "return x + pd.Timestamp('2024-01-01').day + pd.to_datetime(x).day",
        "return str(np.datetime64('2024-01-01')) + x.get('now')",
    ],
)
def test_fixed_times_and_stable_hashes_are_not_refusals(load, body: str) -> None:
    """A class's own ``__hash__`` may call ``hash()``: it serves set and dict lookups."""
    module = load(
        f"""
        import datetime
        import time
        import zlib

        import numpy as np
        import pandas as pd


        class Key:
            def __init__(self, x):
                self.x = x

            def __hash__(self):
                return hash(("key", self.x))


        def udf(x):
            {body}
        """
    )
    assert code_fingerprint(module.udf).refusals == ()


def test_fresh_entropy_is_reported_as_unseeded(load) -> None:
    module = load(
        """
        import os
        import secrets
        import uuid


        def udf(x):
            return x + os.urandom(1)[0] + uuid.uuid4().int + secrets.randbelow(3) + secrets.choice([1])
        """
    )
    unseeded = code_fingerprint(module.udf).unseeded
    assert [u.split(" (")[0] for u in unseeded] == [
        "os.urandom(1)",
        "uuid.uuid4()",
        "secrets.randbelow(3)",
        "secrets.choice([1])",
    ]


@pytest.mark.parametrize(
    "body",
    [
        "return [i for i, c in enumerate(CUTS) if c == x]",
        "return list(CUTS).index(x)",
        "return ','.join(CUTS)",
        "return [c for c in CUTS | {'Other'}]",
        "return list(CUTS.union(OTHER))",
        "return [c for c in {'a', 'b', x}]",
        "return next(iter(KEYS))",
    ],
)
def test_iterating_a_set_of_text_is_a_refusal(load, body: str) -> None:
    """A set of strings iterates in an order drawn from the process's string-hash seed:
    ``enumerate(CUTS)`` gave each process other indices under one fingerprint (a stored
    result was not what a fresh run computes). Sorting it is the fix the refusal names."""
    module = load(
        f"""
        CUTS = {{"Fair", "Good", "Very Good", "Premium", "Ideal"}}
        OTHER = frozenset({{"Other"}})
        KEYS = {{("a", 1), ("b", 2)}}


        def udf(x):
            {body}
        """
    )
    refusals = code_fingerprint(module.udf).refusals
    assert refusals and all("in its iteration order" in r for r in refusals), refusals
    assert all("iterate sorted(" in r for r in refusals), refusals


@pytest.mark.parametrize(
    "body",
    [
        "return x in CUTS",
        "return x not in CUTS | OTHER",
        "return sorted(CUTS).index(x)",
        "return len(CUTS) + len(CUTS - OTHER)",
        "return max(CUTS) == x or CUTS.issuperset(OTHER)",
        "return [n for n in NUMBERS]",
        # Returned whole (an operator's inert_params): the caller gets the set itself.
        "return CUTS",
        "return {'by'} if x else set()",
        "return (CUTS - OTHER) if x else OTHER",
    ],
)
def test_order_free_uses_of_a_set_of_text_and_sets_of_numbers_stay_reusable(
    load, body: str
) -> None:
    module = load(
        f"""
        CUTS = {{"Fair", "Good", "Very Good", "Premium", "Ideal"}}
        OTHER = frozenset({{"Other"}})
        NUMBERS = {{3, 1, 2}}


        def udf(x):
            {body}
        """
    )
    fp = code_fingerprint(module.udf)
    assert fp.refusals == () and fp.analysable
