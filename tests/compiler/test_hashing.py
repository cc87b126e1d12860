"""Tests of helix_tf.compiler.hashing: canonical values and code fingerprints.

Code fingerprints are tested on real modules: each case writes a version 1 and
a version 2 of a config module (and of a helper module it uses as ``helpers``)
into temporary files, imports both under unique names and compares the
fingerprints of their ``udf``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import keyword
import logging
import math
import pathlib
import re
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from helix_tf.compiler import hashing
from helix_tf.compiler.hashing import (
    CodeFingerprint,
    canonical_json,
    code_fingerprint,
    stable_hash,
)
from tests.compiler.conftest import load_module

# --------------------------------------------------------------------------- module loading


_load = load_module


@pytest.fixture
def load(tmp_path: pathlib.Path):
    loaded: list[str] = []

    def _loader(source: str, inject: dict[str, object] | None = None) -> types.ModuleType:
        module = _load(tmp_path, source, inject)
        loaded.append(module.__name__)
        return module

    yield _loader
    for name in loaded:
        sys.modules.pop(name, None)


# --------------------------------------------------------------------------- edit tables

BASE = """
import numpy as np

SCALE = 2
OFFSET = 1
LIMIT = 100


def scale_of(x):
    return x * OFFSET


def normalise(x):
    return scale_of(x) / SCALE


def unused(x):
    return x - 1


def udf(row, k=3):
    total = 0
    for value in row:
        total += normalise(value) * k
    return np.log1p(min(total, LIMIT)) + helpers.FACTOR + helpers.double(total)
"""

HELPERS = """
FACTOR = 10
OTHER = 1


def double(x):
    return 2 * x
"""

CLOSURE = """
def make_udf(factor):
    def inner(row):
        return [x * factor for x in row]
    return inner


udf = make_udf(2)
"""

LAMBDAS = """
other, udf = (lambda x: x + 1), (lambda x: x * 2)
"""

MUTUAL = """
def is_even(n):
    return True if n == 0 else is_odd(n - 1)


def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def udf(n):
    return is_even(n)
"""

CLASSES = """
class Normaliser:
    def __init__(self, scale):
        self.scale = scale

    def apply(self, x):
        return x / self.scale


NORM = Normaliser(2)


def udf(x):
    return NORM.apply(x)
"""

VALUES = """
import numpy as np

WEIGHTS = np.array([1.0, 2.0, 3.0])
TABLE = {"a": [1, 2], "b": {"c": 3}}


def udf(x):
    return (WEIGHTS * x).sum() + TABLE["b"]["c"]
"""

INHERITANCE = """
class Base:
    def scale(self, x):
        return x * 2


class Child(Base):
    def __call__(self, x):
        return self.scale(x) + 1


udf = Child()
"""

#: Values of user classes built on data types: hashed by their data, and their methods
#: (called by the UDF through the value) by their code. One module per kind.
DATA_CLASSES = {
    "enum": """
import enum


class Mode(enum.Enum):
    FAST = 1

    def factor(self):
        return 2.0


MODE = Mode.FAST


def udf(x):
    return x * MODE.factor()
""",
    "namedtuple": """
from typing import NamedTuple


class Settings(NamedTuple):
    scale: float

    def scaled(self):
        return self.scale * 2


SETTINGS = Settings(2.0)


def udf(x):
    return x * SETTINGS.scaled()
""",
    "dict": """
class Table(dict):
    def get2(self, key):
        return self[key] * 2


TABLE = Table(a=2.0)


def udf(x):
    return x * TABLE.get2("a")
""",
    "ndarray": """
import numpy as np


class Weights(np.ndarray):
    def total(self):
        return float(self.sum())


WEIGHTS = np.array([1.0, 2.0]).view(Weights)


def udf(x):
    return x * WEIGHTS.total()
""",
}


@dataclasses.dataclass(frozen=True)
class Edit:
    """One edit of a module (and of its helper module); ``target`` names the UDF in v1, v2."""

    id: str
    v1: str
    v2: str
    helpers_v1: str = HELPERS
    helpers_v2: str = HELPERS
    target: tuple[str, str] = ("udf", "udf")


def _edit(id: str, old: str, new: str, *, base: str = BASE, **kwargs: object) -> Edit:
    assert old in base, f"{id}: {old!r} is not in the base module"
    return Edit(id, base, base.replace(old, new), **kwargs)  # type: ignore[arg-type]


def _helper_edit(id: str, old: str, new: str) -> Edit:
    assert old in HELPERS
    return Edit(id, BASE, BASE, helpers_v2=HELPERS.replace(old, new))


MUST_CHANGE = [
    _edit("body", "total += normalise(value) * k", "total -= normalise(value) * k"),
    _edit("helper", "return scale_of(x) / SCALE", "return scale_of(x) / SCALE + 1"),
    _edit("helper-of-helper", "return x * OFFSET", "return x * OFFSET * OFFSET"),
    _edit("module-constant", "LIMIT = 100", "LIMIT = 101"),
    _edit("constant-read-by-helper", "SCALE = 2", "SCALE = 3"),
    _edit("constant-read-by-helper-of-helper", "OFFSET = 1", "OFFSET = 1.0"),
    _edit("closure-value", "udf = make_udf(2)", "udf = make_udf(3)", base=CLOSURE),
    _edit("closure-body", "[x * factor for x in row]", "[x + factor for x in row]", base=CLOSURE),
    _edit("default-argument", "def udf(row, k=3):", "def udf(row, k=4):"),
    _helper_edit("user-module-attribute", "FACTOR = 10", "FACTOR = 11"),
    _helper_edit("user-module-function", "return 2 * x", "return 3 * x"),
    _edit("library-function", "np.log1p(", "np.log("),
    _edit("lambda-body", "(lambda x: x * 2)", "(lambda x: x * 3)", base=LAMBDAS),
    _edit("mutual-recursion", "return False if n == 0", "return True if n == 0", base=MUTUAL),
    _edit(
        "method-of-instance-read", "return x / self.scale", "return x * self.scale", base=CLASSES
    ),
    _edit("state-of-instance-read", "NORM = Normaliser(2)", "NORM = Normaliser(3)", base=CLASSES),
    _edit("numpy-array-element", "[1.0, 2.0, 3.0]", "[1.0, 2.0, 3.5]", base=VALUES),
    _edit("nested-dict-leaf", '{"c": 3}', '{"c": 4}', base=VALUES),
    # Iterating a dict gives its keys in insertion order (list(TABLE) was ["a", "b"]).
    _edit(
        "dict-key-order",
        '{"a": [1, 2], "b": {"c": 3}}',
        '{"b": {"c": 3}, "a": [1, 2]}',
        base=VALUES,
    ),
    _edit(
        "dict-key-order-non-text",
        "{1: 2, 3: 4}",
        "{3: 4, 1: 2}",
        base=VALUES.replace('TABLE["b"]["c"]', 'TABLE["b"]["c"] + list(CODES)[0]').replace(
            "TABLE = {", "CODES = {1: 2, 3: 4}\nTABLE = {"
        ),
    ),
    _edit("base-class-method", "return x * 2", "return x * 3", base=INHERITANCE),
    _edit("enum-method", "return 2.0", "return 3.0", base=DATA_CLASSES["enum"]),
    _edit("namedtuple-method", "* 2", "* 3", base=DATA_CLASSES["namedtuple"]),
    _edit("dict-subclass-method", "* 2", "* 3", base=DATA_CLASSES["dict"]),
    _edit("ndarray-subclass-method", "self.sum()", "self.max()", base=DATA_CLASSES["ndarray"]),
    _edit("ndarray-subclass-data", "[1.0, 2.0]", "[1.0, 2.5]", base=DATA_CLASSES["ndarray"]),
]

MUST_NOT_CHANGE = [
    Edit("identical-copy", BASE, BASE),
    _edit(
        "comments",
        "def udf(row, k=3):\n    total = 0\n",
        "def udf(row, k=3):  # the UDF\n    # start from zero\n    total = 0  # running sum\n",
    ),
    Edit(
        "docstrings",
        BASE,
        BASE.replace(
            "def udf(row, k=3):\n", 'def udf(row, k=3):\n    """Sum it.\n\n    More."""\n'
        ).replace("def normalise(x):\n", 'def normalise(x):\n    """Normalise."""\n'),
    ),
    _edit(
        "formatting",
        "    return np.log1p(min(total, LIMIT)) + helpers.FACTOR + helpers.double(total)",
        "    return (\n        np.log1p( min(total,LIMIT) )\n        + helpers.FACTOR\n"
        "        + helpers.double(\n            total,\n        )\n    )",
    ),
    Edit(
        "reordering",
        BASE,
        BASE.replace("SCALE = 2\nOFFSET = 1\n", "OFFSET = 1\nSCALE = 2\n").replace(
            "def scale_of(x):\n    return x * OFFSET\n", ""
        )
        + "\n\ndef scale_of(x):\n    return x * OFFSET\n",
    ),
    _edit("unrelated-function-added", "LIMIT = 100\n", "LIMIT = 100\n\n\ndef more():\n    pass\n"),
    _edit("unrelated-function-changed", "return x - 1", "return x - 2"),
    _helper_edit("unrelated-helper-attribute", "OTHER = 1", "OTHER = 2"),
    Edit(
        "local-renamed",
        BASE,
        BASE.replace("total", "acc")
        .replace("for value in row", "for v in row")
        .replace("normalise(value)", "normalise(v)"),
    ),
    Edit("parameter-renamed", BASE, BASE.replace("row", "rows")),
    Edit(
        "function-renamed",
        BASE,
        BASE.replace("def udf(", "def transform("),
        target=("udf", "transform"),
    ),
    _edit("annotations", "def udf(row, k=3):", "def udf(row: list[float], k: int = 3) -> float:"),
    _edit(
        "closure-local-renamed",
        "[x * factor for x in row]",
        "[y * factor for y in row]",
        base=CLOSURE,
    ),
    _edit("sibling-lambda-changed", "(lambda x: x + 1)", "(lambda x: x + 2)", base=LAMBDAS),
    _edit(
        "lambda-formatting",
        "(lambda x: x * 2)",
        "(lambda y:\n    y*2)",
        base=LAMBDAS,
    ),
]


def _fingerprints(load: Callable[..., types.ModuleType], edit: Edit) -> tuple[CodeFingerprint, ...]:
    out = []
    for source, helpers, target in zip(
        (edit.v1, edit.v2), (edit.helpers_v1, edit.helpers_v2), edit.target, strict=True
    ):
        helper_module = load(helpers)
        module = load(source, {"helpers": helper_module})
        out.append(code_fingerprint(getattr(module, target)))
    return tuple(out)


@pytest.mark.parametrize("edit", MUST_CHANGE, ids=lambda e: e.id)
def test_semantic_edit_changes_digest(load, edit: Edit) -> None:
    before, after = _fingerprints(load, edit)
    assert before.digest != after.digest
    assert before.analysable and after.analysable, (before.notes, after.notes)


@pytest.mark.parametrize("edit", MUST_NOT_CHANGE, ids=lambda e: e.id)
def test_cosmetic_edit_keeps_digest(load, edit: Edit) -> None:
    before, after = _fingerprints(load, edit)
    assert before.digest == after.digest
    assert before.analysable and after.analysable, (before.notes, after.notes)


def test_notes_and_reads_explain_dependencies(load) -> None:
    module = load(BASE, {"helpers": load(HELPERS)})
    fp = code_fingerprint(module.udf)
    assert "calls helper normalise()" in fp.notes
    assert "reads module constant LIMIT = 100" in fp.notes
    assert "normalise: scale_of: reads module constant OFFSET = 1" in fp.notes
    assert {"LIMIT", "normalise", "normalise/SCALE", "helpers.FACTOR", "np"} <= set(fp.reads)
    assert list(fp.reads) == sorted(fp.reads)
    assert len(fp.digest) == 32 and re.fullmatch(r"[0-9a-f]{32}", fp.digest)


# --------------------------------------------------------------------------- other callables


def test_functions_defined_by_exec_fall_back_to_bytecode(caplog, monkeypatch) -> None:
    monkeypatch.setattr(hashing._origin, "_WARNED", set())  # where _warn_once looks
    namespace: dict[str, object] = {}
    exec("def udf(x):\n    return x + 1\n", namespace)
    exec("def udf2(x):\n    return x + 2\n", namespace)
    with caplog.at_level(logging.WARNING, logger=hashing.__name__):
        one = code_fingerprint(namespace["udf"])  # type: ignore[arg-type]
        two = code_fingerprint(namespace["udf2"])  # type: ignore[arg-type]
    assert not one.analysable and not two.analysable
    assert one.digest != two.digest
    assert any("cannot analyse the source" in r.getMessage() for r in caplog.records)


def test_c_extension_is_identity_only_and_warns_once(caplog, monkeypatch) -> None:
    monkeypatch.setattr(hashing._origin, "_WARNED", set())  # where _warn_once looks
    with caplog.at_level(logging.WARNING, logger=hashing.__name__):
        first = code_fingerprint(math.log)
        second = code_fingerprint(math.log)
    assert not first.analysable
    assert first.digest == second.digest != code_fingerprint(math.exp).digest
    warnings = [r for r in caplog.records if "math.log" in r.getMessage()]
    assert len(warnings) == 1
    assert "identity" in warnings[0].getMessage()


def test_source_edited_after_import_is_not_trusted(load, tmp_path: pathlib.Path) -> None:
    module = load("def udf(x):\n    return x + 1\n")
    fresh = code_fingerprint(module.udf)
    pathlib.Path(module.__file__).write_text("def udf(x):\n    return x + 1000\n")
    stale = code_fingerprint(module.udf)
    assert fresh.analysable and not stale.analysable
    assert stale.digest != code_fingerprint(load("def udf(x):\n    return x + 1000\n").udf).digest


def test_partial_bound_method_and_callable_instance(load) -> None:
    module = load(CLASSES)
    base = code_fingerprint(functools.partial(module.udf, 1))
    assert base.digest != code_fingerprint(functools.partial(module.udf, 2)).digest
    norm2, norm3 = module.Normaliser(2), module.Normaliser(3)
    assert code_fingerprint(norm2.apply).digest != code_fingerprint(norm3.apply).digest
    assert code_fingerprint(norm2.apply).digest == code_fingerprint(module.NORM.apply).digest
    callable_source = """
    class Scale:
        def __init__(self, k):
            self.k = k

        def __call__(self, x):
            return x * self.k
    """
    callables = load(callable_source)
    assert (
        code_fingerprint(callables.Scale(2)).digest != code_fingerprint(callables.Scale(3)).digest
    )


def test_decorated_function_includes_wrapper_and_wrapped(load) -> None:
    source = """
    import functools

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            return fn(*args)
        return wrapper

    @logged
    def udf(x):
        return x + {n}
    """
    one = load(source.replace("{n}", "1"))
    two = load(source.replace("{n}", "2"))
    assert code_fingerprint(one.udf).digest != code_fingerprint(two.udf).digest


def test_recursive_function_is_independent_of_its_name(load) -> None:
    source = """
    def {name}(n):
        return 1 if n <= 1 else n * {name}(n - 1)
    """
    one = load(source.replace("{name}", "fact"))
    two = load(source.replace("{name}", "factorial"))
    assert code_fingerprint(one.fact).digest == code_fingerprint(two.factorial).digest


def test_local_import_of_a_module_not_loaded_yet(tmp_path, monkeypatch, load) -> None:
    digests = []
    for version in (1, 2):
        folder = tmp_path / f"v{version}"
        folder.mkdir()
        (folder / "helix_hashing_local_helper.py").write_text(f"K = {version}\n")
        monkeypatch.syspath_prepend(str(folder))
        module = load("def udf(x):\n    import helix_hashing_local_helper\n    return x\n")
        fp = code_fingerprint(module.udf)
        assert fp.analysable, fp.notes
        digests.append(fp.digest)
    assert "helix_hashing_local_helper" not in sys.modules
    assert digests[0] != digests[1]


def _outputs_under_two_hash_seeds(folder: pathlib.Path, code: str) -> set[str]:
    """What ``code`` prints in two processes of different hash seeds (modules in ``folder``)."""
    outputs = set()
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PYTHONPATH": f"{folder}:{pathlib.Path.cwd()}"}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        outputs.add(out.stdout.strip())
    return outputs


def test_digests_agree_across_processes(tmp_path: pathlib.Path) -> None:
    """Different hash seeds, the second process loading the first one's .pyc."""
    (tmp_path / "helix_hashing_seeded.py").write_text(
        "SCALE = {'b', 'a', 'c'}\n\ndef udf(x):\n    return x in {'p', 'q', 'r'} or x in SCALE\n"
    )
    code = (
        "import helix_hashing_seeded as m; from helix_tf.compiler.hashing import "
        "code_fingerprint, stable_hash; fp = code_fingerprint(m.udf); "
        "print(fp.digest, fp.analysable, stable_hash({'x', 'y', 'z'}))"
    )
    outputs = _outputs_under_two_hash_seeds(tmp_path, code)
    assert len(outputs) == 1
    assert " True " in outputs.pop()


def test_values_of_user_data_classes_agree_across_processes(tmp_path: pathlib.Path) -> None:
    """An Enum, a NamedTuple, a dict and an ndarray subclass of the user's: their class's
    code is hashed by content, never by address or hash order."""
    for kind, source in DATA_CLASSES.items():
        (tmp_path / f"helix_hashing_{kind}_values.py").write_text(source)
    modules = [f"helix_hashing_{kind}_values" for kind in sorted(DATA_CLASSES)]
    code = (
        "import importlib; from helix_tf.compiler.hashing import code_fingerprint; "
        f"print([code_fingerprint(importlib.import_module(m).udf) for m in {modules}])"
    )
    outputs = _outputs_under_two_hash_seeds(tmp_path, code)
    assert len(outputs) == 1
    assert "analysable=False" not in outputs.pop()


def test_not_a_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expects a callable"):
        code_fingerprint(3)  # type: ignore[arg-type]


_IDENTIFIER = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in dir(__builtins__) and s not in {"x", "z"}
)
_RENAMED = """
def udf({p}, {q}=2):
    {r} = [{p} * {q} for _ in range(3)]

    def {h}(z):
        return z + {q}

    return sum({h}(x) for x in {r})
"""


@settings(max_examples=25, deadline=None)
@given(st.lists(_IDENTIFIER, min_size=4, max_size=4, unique=True))
def test_digest_is_invariant_under_any_renaming_of_locals(names: list[str]) -> None:
    p, q, r, h = names
    with tempfile.TemporaryDirectory() as folder:
        directory = pathlib.Path(folder)
        base = _load(directory, _RENAMED.format(p="a", q="b", r="c", h="d"))
        renamed = _load(directory, _RENAMED.format(p=p, q=q, r=r, h=h))
        try:
            assert code_fingerprint(base.udf).digest == code_fingerprint(renamed.udf).digest
        finally:
            sys.modules.pop(base.__name__, None)
            sys.modules.pop(renamed.__name__, None)


# --------------------------------------------------------------------------- canonical values


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float


class FakeOperator:
    def __init__(self, **params: object) -> None:
        self._params = params

    def params(self) -> dict[str, object]:
        return dict(self._params)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ((1, 2, 3), [1, 2, 3]),
        ({3, 1, 2}, frozenset({2, 3, 1})),
        ({1: "a", 2: "b"}, {2: "b", 1: "a"}),
        (pathlib.Path("data/x.csv"), "data/x.csv"),
        (np.arange(6).reshape(2, 3), np.arange(6).reshape(2, 3).copy(order="F")),
        (FakeOperator(l1=0.1, epochs=5), FakeOperator(epochs=5, l1=0.1)),
    ],
)
def test_canonical_json_equal(left: object, right: object) -> None:
    assert canonical_json(left) == canonical_json(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (0.0, -0.0),
        ("ab", b"ab"),
        ({"1": 1}, {1: 1}),
        ([1, [2]], [1, 2]),
        (Colour.RED, Colour.BLUE),
        (Point(x=1, y=2), Point(x=2, y=1)),
        (np.arange(3), np.arange(3).astype(np.int32)),
        (np.arange(3), np.arange(3).reshape(3, 1)),
        (np.float64(0.5), 0.5),
        (FakeOperator(l1=0.1), FakeOperator(l1=0.01)),
        (float("inf"), float("-inf")),
    ],
)
def test_canonical_json_distinct(left: object, right: object) -> None:
    assert canonical_json(left) != canonical_json(right)


def test_canonical_json_literals() -> None:
    assert canonical_json({"b": (0.1, None), "a": True}) == '{"a":true,"b":[0.1,null]}'
    assert canonical_json(float("nan")) == '{"__float__":"nan"}'
    assert canonical_json(-0.0) == '{"__float__":"-0.0"}'
    assert canonical_json(1e100) == "1e+100"
    assert canonical_json(b"\x00\xff") == '{"__bytes__":"00ff"}'
    assert canonical_json({"z", "a"}) == '{"__set__":["a","z"]}'
    operator = json.loads(canonical_json(FakeOperator(k=1)))
    assert operator["__op__"] == "FakeOperator" and operator["params"] == {"k": 1}
    assert "code" in operator  # an operator class written in user code: its code counts too
    assert canonical_json(re.compile("a+")) == '{"__regex__":"a+","flags":32}'


def test_canonical_json_of_callables_uses_code_fingerprint() -> None:
    assert canonical_json(_pinned) == f'{{"__code__":"{code_fingerprint(_pinned).digest}"}}'


def test_canonical_json_rejects_objects_whose_state_cannot_be_read() -> None:
    import threading

    with pytest.raises(TypeError, match=r"cannot read the state of .*lock"):
        canonical_json({"x": threading.Lock()})
    # A stateless object is its (empty) state, whatever its address.
    assert canonical_json(object()) == canonical_json(object())
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="contains itself"):
        canonical_json(loop)


def test_stable_hash_length() -> None:
    assert len(stable_hash("x", length=12)) == 12
    assert stable_hash("x", length=12) == stable_hash("x")[:12]
    with pytest.raises(ValueError, match="length"):
        stable_hash("x", length=0)


_LEAVES = st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False))
_NESTED = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


def _reversed_insertion(value: object) -> object:
    if isinstance(value, dict):
        return {k: _reversed_insertion(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_insertion(v) for v in value]
    return value


def _leaf_paths(value: object, path: tuple = ()) -> list[tuple]:
    """Paths to every scalar and every empty container."""
    if isinstance(value, dict | list) and not value:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _replaced(value: object, path: tuple, leaf: object) -> object:
    if not path:
        return leaf
    head, *rest = path
    if isinstance(value, dict):
        return {k: _replaced(v, tuple(rest), leaf) if k == head else v for k, v in value.items()}
    assert isinstance(value, list)
    return [_replaced(v, tuple(rest), leaf) if i == head else v for i, v in enumerate(value)]


def _get(value: object, path: tuple) -> object:
    for step in path:
        value = value[step]  # type: ignore[index]
    return value


@given(_NESTED)
def test_stable_hash_ignores_dict_insertion_order(value: object) -> None:
    """Parameters are equal whatever their order (values code reads are not, see
    ``dict-key-order``: a UDF may iterate them)."""
    assert stable_hash(value) == stable_hash(_reversed_insertion(value))


def test_a_dict_in_sorted_order_keeps_its_form_when_code_reads_it() -> None:
    """Values code reads are hashed with their key order only where it is not sorted: the
    digests of dicts written in sorted order stay what they were before order counted."""
    canon = hashing._canonical._Canon(lambda obj: None, ordered=True)
    assert canon({"a": 1, "b": 2}) == json.loads(canonical_json({"b": 2, "a": 1}))
    assert canon({1: 2, 3: 4}) == json.loads(canonical_json({3: 4, 1: 2}))
    assert canon({"b": 2, "a": 1}) != canon({"a": 1, "b": 2})


@given(_NESTED, st.data())
def test_stable_hash_sees_every_leaf(value: object, data: st.DataObject) -> None:
    paths = _leaf_paths(value)
    path = data.draw(st.sampled_from(paths))
    old = _get(value, path)
    new = data.draw(_LEAVES)
    assume((type(new), repr(new)) != (type(old), repr(old)))
    assert stable_hash(value) != stable_hash(_replaced(value, path, new))


# --------------------------------------------------------------------------- pinned scheme


def _pinned(x, y=2):
    """Do not edit: its digest is pinned below."""
    z = x * y
    return z + 1


def test_pinned_digests() -> None:
    """An accidental change to the hashing scheme must fail here (Python 3.11 AST dump)."""
    assert stable_hash({"a": 1, "b": [1.5, "x"]}) == "253252306831c7a53e616d2fac19ec1f"
    assert code_fingerprint(_pinned).digest == "074071c1edc526b200d97c9807c3e049"


def test_hashing_never_imports_tensorflow_or_beam() -> None:
    code = (
        "import sys; import helix_tf.compiler.hashing as h; "
        "h.code_fingerprint(h.canonical_json); h.canonical_json({'a': 1}); "
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'tensorflow', 'keras', 'apache_beam'}); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_numpy_is_imported_only_for_numpy_values() -> None:
    """Loads the module file alone, so imports elsewhere in helix_tf do not interfere."""
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('standalone', {hashing.__file__!r}); "
        "h = importlib.util.module_from_spec(spec); sys.modules['standalone'] = h; "
        "spec.loader.exec_module(h); h.canonical_json({'a': [1.5, 'x']}); "
        "h.code_fingerprint(lambda x: x + 1); print(sorted({'numpy', 'pandas'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
