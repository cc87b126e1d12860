"""State one node's code writes and another node's code reads is a refusal of both
(QA pass 14).

Before this pass a UDF writing into a module (``STATE["scale"] = 2.0``, ``global SCALE``,
``SCALER.fit(batch)``) and a UDF of another node reading that state were fingerprinted
with the state as the config's import left it: an edit of the writer left the reader's
fingerprint as it was, and the next run loaded the reader's stale result (census rows,
AUC 0.276 reused against 0.625 computed by a fresh store). Now both nodes are recomputed
every run; a lazy load that every reader makes itself, state no other node reads, and
unrelated state stay reusable.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from helix_tf.compiler._shared_state import SharedState, shared_state
from helix_tf.compiler.hashing import code_fingerprint

PRELUDE = """\
import os
import sys

import numpy as np
import pandas as pd

THIS = sys.modules[__name__]
STATE = {"inner": {}}
INNER = STATE["inner"]
CONFIG = {"state": STATE}
SCALE = 1.0
LIST = []
FRAME = pd.DataFrame({"k": ["a", "b"], "v": [1.0, 2.0]})
ARRAY = np.zeros(3)


class Cfg:
    scale = 1.0


CFG = Cfg()


class Scaler:
    def fit(self, value):
        self.mean = value

    def transform(self, value):
        return value - self.mean


SCALER = Scaler()


def _fill(target, value):
    target["scale"] = value


def _get():
    return STATE.get("scale", 1.0)


def _scale():
    return SCALE


_VOCAB = None


def _vocab():
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = {"a": 1}
    return _VOCAB
"""

#: Each piece of state: the ways code writes it (``{v}``: what it writes) and reads it.
STATES: dict[str, tuple[list[str], list[str]]] = {
    "STATE": (
        [
            'STATE["scale"] = {v}',
            "STATE.update(scale={v})",
            'STATE.setdefault("scale", {v})',
            "_fill(STATE, {v})",
        ],
        ['STATE.get("scale", 1.0)', "_get()", "dict(STATE)", 'CONFIG["state"]'],
    ),
    "INNER": (
        ['STATE["inner"]["scale"] = {v}', 'INNER["scale"] = {v}'],
        ['INNER.get("scale")', 'STATE["inner"].get("scale")'],
    ),
    "SCALE": (["global SCALE\nSCALE = {v}", "THIS.SCALE = {v}"], ["SCALE", "_scale()"]),
    "CFG": (
        ["CFG.scale = {v}", 'setattr(CFG, "scale", {v})', "Cfg.scale = {v}"],
        ["CFG.scale", "vars(CFG)"],
    ),
    "SCALER": (["SCALER.fit({v})"], ["SCALER.transform(1.0)", "SCALER"]),
    "LIST": (["LIST.append({v})", "LIST[:] = [{v}]"], ["sum(LIST)", "LIST[-1]"]),
    "FRAME": (
        [
            'FRAME["w"] = {v}',
            'FRAME.insert(0, "u", {v})',
            'FRAME.drop(columns=["k"], inplace=True)',
        ],
        ['FRAME["v"].sum()', "len(FRAME)"],
    ),
    "ARRAY": (["ARRAY.fill({v})", "ARRAY[0] = {v}"], ["ARRAY.sum()", "float(ARRAY[0])"]),
    "ENVIRON": (
        ['os.environ["HELIX_QA_SCALE"] = str({v})', "os.environ.update(HELIX_QA_SCALE=str({v}))"],
        ['os.environ.get("HELIX_QA_SCALE", "1")', 'os.getenv("HELIX_QA_SCALE")'],
    ),
}
#: What a write writes: a constant, or a value computed from the row.
VALUES = ["2.0", "float(len(row))"]


def _module(load: Callable[..., ModuleType], writer: str, reader: str, helper: bool) -> ModuleType:
    """A module with ``writer(row)`` (the write in its body, or in a helper it calls) and
    ``reader(row)``."""
    write = textwrap.indent(writer, "    ")
    if helper:
        body = f"def _write(row):\n{write}\n\n\ndef writer(row):\n    _write(row)\n    return row\n"
    else:
        body = f"def writer(row):\n{write}\n    return row\n"
    return load(PRELUDE + "\n\n" + body + f"\n\ndef reader(row):\n    return ({reader}, row)\n")


def _shared(module: ModuleType) -> SharedState:
    codes = {
        "writing": [code_fingerprint(module.writer)],
        "reading": [code_fingerprint(module.reader)],
    }
    return shared_state(codes)


def _refusals(module: ModuleType) -> dict[str, list[str]]:
    """The refusals, or the problems as refusals of both (either way: not reused)."""
    found = _shared(module)
    if found.problems:
        return {"writing": found.problems, "reading": found.problems}
    return found.refusals


#: Hypothesis with the ``load`` fixture (a module per example, removed after the test).
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.data())
def test_state_one_node_writes_and_another_reads_refuses_both(
    load: Callable[..., ModuleType], data: st.DataObject
) -> None:
    state = data.draw(st.sampled_from(sorted(STATES)))
    writes, reads = STATES[state]
    write = data.draw(st.sampled_from(writes)).format(v=data.draw(st.sampled_from(VALUES)))
    read = data.draw(st.sampled_from(reads))
    module = _module(load, write, read, helper=data.draw(st.booleans()))
    found = _shared(module)
    said = "node 'reading' reads state that node 'writing' writes"
    if "row" in write:  # written from the rows: no run can reproduce it
        assert found.problems and not found.refusals, (write, read)
        assert all(said in p and "from its rows" in p for p in found.problems)
    else:
        assert set(found.refusals) == {"writing", "reading"} and not found.problems
        assert all(said in r for r in found.refusals["reading"])


@SETTINGS
@given(data=st.data())
def test_state_another_node_does_not_read_is_no_refusal(
    load: Callable[..., ModuleType], data: st.DataObject
) -> None:
    """No needless recompute: a write into one piece of state, a read of another."""
    written, read_state = data.draw(
        st.sampled_from(sorted(STATES)).flatmap(
            lambda w: st.tuples(st.just(w), st.sampled_from(sorted(set(STATES) - {w})))
        )
    )
    write = data.draw(st.sampled_from(STATES[written][0])).format(v="2.0")
    read = data.draw(st.sampled_from(STATES[read_state][1]))
    # STATE holds INNER (a read of either through STATE reads STATE as a whole).
    assume({written, read_state} != {"INNER", "STATE"})
    assert _refusals(_module(load, write, read, helper=False)) == {}, (write, read)


@pytest.mark.parametrize(
    "write",
    ['FRAME.set_index("k")', "FRAME.fillna(0.0)", "ARRAY.copy().fill(2.0)", "sorted(LIST)"],
)
def test_a_method_giving_new_data_is_no_write(load: Callable[..., ModuleType], write: str) -> None:
    module = _module(load, write, "len(FRAME) + ARRAY.sum() + len(LIST)", helper=False)
    assert _refusals(module) == {}


def test_a_lazy_load_every_reader_makes_itself_is_no_refusal(
    load: Callable[..., ModuleType],
) -> None:
    """``global _VOCAB; if _VOCAB is None: _VOCAB = load(...)`` in a helper both nodes call:
    whichever runs first writes what the other would."""
    module = _module(load, "_vocab()", "_vocab()", helper=False)
    assert _refusals(module) == {}


def test_a_lazy_load_of_one_node_read_directly_by_another_is_refused(
    load: Callable[..., ModuleType],
) -> None:
    """The reader reads ``_VOCAB`` without making the write: a loaded writer leaves it None."""
    module = _module(load, "_vocab()", "_VOCAB", helper=False)
    assert set(_refusals(module)) == {"writing", "reading"}


def test_a_memo_cache_of_one_node_is_no_refusal(load: Callable[..., ModuleType]) -> None:
    module = load(
        PRELUDE
        + textwrap.dedent(
            """
            _CACHE = {}


            def writer(row):
                if row not in _CACHE:
                    _CACHE[row] = len(str(row))
                return _CACHE[row]


            def reader(row):
                return STATE.get("scale", 1.0)
            """
        )
    )
    assert _refusals(module) == {}
    fp = code_fingerprint(module.writer)
    assert fp.state_writes and fp.state_writes[0][1], "the write comes from the row"


def test_a_memo_cache_two_nodes_share_is_refused_not_an_error(
    load: Callable[..., ModuleType],
) -> None:
    module = load(
        PRELUDE
        + textwrap.dedent(
            """
            _CACHE = {}


            def _memo(key):
                if key not in _CACHE:
                    _CACHE[key] = len(str(key))
                return _CACHE[key]


            def writer(row):
                return _memo(row)


            def reader(row):
                return _memo(row) + 1
            """
        )
    )
    found = _shared(module)
    assert not found.problems and set(found.refusals) == {"writing", "reading"}


def test_a_parameter_changed_in_place_is_judged_where_it_is_passed(
    load: Callable[..., ModuleType],
) -> None:
    module = load(PRELUDE)
    ((name, derived, site),) = code_fingerprint(module._fill).mutated_parameters
    assert (name, derived) == ("target", True) and 'target["scale"] = value' in site
    assert code_fingerprint(module._fill).state_writes == ()


LAZY_METHOD = """
import json


class Lookup:
    def __init__(self, table):
        self.table = table
        self._index = None

    def get(self, key):
        if self._index is None:
            self._index = dict(self.table)
        return self._index.get(key, 0)

    def learn(self, key, value):
        self._index = {key: value}


LOOKUP = Lookup([("a", 1)])


def writer(row):
    return LOOKUP.get(row)


def reader(row):
    {read}
"""


@pytest.mark.parametrize(
    ("read", "found"),
    [
        ("return LOOKUP.get(row) + 1", ""),  # the same lazy fill, from compile-time state
        ('LOOKUP.learn("a", 2)\n    return LOOKUP.get(row)', "refused"),  # writes what it passes
        ("return LOOKUP.learn(row, 1)", "problem"),  # from its row
    ],
)
def test_a_lazy_fill_through_self_is_one_write_for_every_caller(
    load: Callable[..., ModuleType], read: str, found: str
) -> None:
    shared = _shared(load(LAZY_METHOD.replace("{read}", read)))
    assert bool(shared.problems) == (found == "problem")
    assert bool(shared.refusals) == (found != ""), shared.refusals


def test_nodes_sharing_state_are_recomputed_every_run(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    """Compiled: both nodes and what reads them are volatile, with the write named."""
    from helix_tf.compiler.graph import compile_workflow
    from helix_tf.config import load_config
    from helix_tf.errors import CompileError
    from tests.conftest import write_config

    body = """\
STATE = {}


def workflow(params):
    wf = Workflow("shared")
    wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))

    @wf.udf("fit_scale", batched=True)
    def fit_scale(batch):
        STATE["scale"] = 2.0
        return batch["hours_per_week"] * 1.0

    @wf.udf("scaled_age", batched=True)
    def scaled_age(batch):
        return batch["age"] * STATE.get("scale", 1.0)

    @wf.udf("plain_age", batched=True)
    def plain_age(batch):
        return batch["age"] * 1.0

    ex = wf.examples("examples", [fit_scale, scaled_age], label=F.Label("income", positive=">50K"))
    other = wf.examples("other", [plain_age], label=F.Label("income", positive=">50K"))
    wf.output(wf.train("learner", ex, learners.Linear(epochs=1)))
    wf.output(wf.train("other_learner", other, learners.Linear(epochs=1)))
    return wf
"""
    path = write_config(tmp_path, body, train=census_like[0], test=census_like[1])
    loaded = load_config(path)
    compiled = compile_workflow(loaded.workflow, config_path=str(loaded.path))
    for name in ("fit_scale", "scaled_age"):
        (why,) = compiled.node(name).facts["volatile"]
        assert "node 'scaled_age' reads state that node 'fit_scale' writes" in why
        assert 'STATE["scale"] = 2.0' in why
    assert compiled.node("examples").facts["volatile"]
    assert "volatile" not in compiled.node("plain_age").facts
    assert "volatile" not in compiled.node("other_learner").facts

    # Written from the rows: what the reader computes follows the order batches ran in.
    path.write_text(
        path.read_text().replace('STATE["scale"] = 2.0', 'STATE["scale"] = batch["age"].mean()')
    )
    loaded = load_config(path)
    with pytest.raises(
        CompileError,
        match="node 'scaled_age' reads state that node 'fit_scale' writes when it runs, from its rows",
    ):
        compile_workflow(loaded.workflow, config_path=str(loaded.path))


@pytest.mark.parametrize("reader", ["READ_ITEM", "READ_CELL"])
def test_closures_a_factory_made_share_their_cells(
    load: Callable[..., ModuleType], reader: str
) -> None:
    """A dict or a ``nonlocal`` name two closures of one factory hold is shared state."""
    module = load(
        textwrap.dedent(
            """
            def make():
                state = {}
                total = 0

                def write(row):
                    nonlocal total
                    state["m"] = 1
                    total = row
                    return row

                def read_item(row):
                    return state.get("m", 0)

                def read_cell(row):
                    return total

                return write, read_item, read_cell


            WRITE, READ_ITEM, READ_CELL = make()
            """
        )
    )
    codes = {
        "w": [code_fingerprint(module.WRITE)],
        "r": [code_fingerprint(getattr(module, reader))],
    }
    found = shared_state(codes)
    assert set(found.refusals) == {"w", "r"} or found.problems


@pytest.mark.parametrize(
    ("read", "shared"),
    [
        ("LIST.append(len(str(row)))\n    return row", False),  # both only write: no read
        ('STATE["other"] = row\n    return row', False),
        ("LIST.append(1)\n    return len(LIST)", True),  # reads what the other appends
        ("LIST[0] += 1\n    return row", True),  # += reads the item it changes
        ("n = LIST.pop()\n    return n", True),  # a changing method whose result is used
    ],
)
def test_state_a_node_only_writes_into_is_no_read(
    load: Callable[..., ModuleType], read: str, shared: bool
) -> None:
    """Two nodes appending statistics to one list compute nothing from it."""
    source = PRELUDE + "\n\ndef writer(row):\n    LIST.append(len(str(row)))\n    return row\n"
    module = load(source + f"\n\ndef reader(row):\n    {read}\n")
    found = _shared(module)
    assert bool(found.problems or found.refusals) == shared, found


#: A class whose method writes a class attribute through ``type(self)`` or
#: ``self.__class__`` (QA pass 17): every object of the class, and of its subclasses, sees it.
CLASS_WRITES = """
class Scale:
    factor = 1.0

    def set_by_type(self, value):
        type(self).factor = value

    def set_by_class(self, value):
        self.__class__.factor = value

    def scaled(self, row):
        return row * type(self).factor


class Sub(Scale):
    pass


class Unrelated:
    def set_by_type(self, value):
        type(self).factor = value


def writer(row):
    {write}
    return row


def reader(row):
    return {read}
"""


@pytest.mark.parametrize(
    ("write", "read", "refused"),
    [
        ("Scale().set_by_type(2.0)", "Scale().scaled(row)", True),
        ("Scale().set_by_class(2.0)", "Scale().scaled(row)", True),
        ("Sub().set_by_type(2.0)", "Scale().scaled(row)", True),
        ("Scale().set_by_class(2.0)", "Sub().scaled(row)", True),
        ("Unrelated().set_by_type(2.0)", "Scale().scaled(row)", False),
    ],
)
def test_a_class_attribute_a_method_writes_through_its_object_is_shared_state(
    load: Callable[..., ModuleType], write: str, read: str, refused: bool
) -> None:
    """Before QA pass 17, ``type(self).factor = value`` was no write (its target's root is
    a call), so a node calling it and another reading ``factor`` were both reused: the
    reader's stale result after an edit of the value written."""
    module = load(CLASS_WRITES.replace("{write}", write).replace("{read}", read))
    shared = _shared(module)
    assert not shared.problems
    assert bool(shared.refusals) == refused, shared.refusals
    if refused:
        assert any("factor = value" in r for r in shared.refusals["reading"])


SETTINGS_SOURCE = """
import decimal
import locale

import numpy as np
import pandas as pd


def writer(row):
    {write}
    return row


def reader(row):
    return str(pd.Series([row / 7]))
"""


@pytest.mark.parametrize(
    ("write", "refused"),
    [
        ('pd.set_option("display.precision", 2)', True),
        ("pd.options.display.precision = 2", True),
        ('pd.reset_option("display.precision")', True),
        ('np.seterr(divide="raise")', True),
        ("np.set_printoptions(precision=3)", True),
        ("decimal.getcontext().prec = 6", True),
        ('locale.setlocale(locale.LC_NUMERIC, "C")', True),
        ("locale.setlocale(locale.LC_NUMERIC)", False),  # asks, changes nothing
        ('with pd.option_context("display.precision", 2):\n        str(row)', False),
        ('with np.errstate(divide="raise"):\n        row / 1', False),
    ],
)
def test_a_process_setting_a_udf_changes_as_it_runs_is_shared_with_every_node(
    load: Callable[..., ModuleType], write: str, refused: bool
) -> None:
    """QA pass 17: ``pd.set_option(...)`` in one node's UDF holds for every node after it
    in the process (pandas' text of a frame, numpy's errors, Decimal's precision), which no
    fingerprint shows: an edit of the writer reused the others' results. Both are refused,
    naming the setting's fix; a setting scoped to a ``with`` block is restored."""
    module = load(SETTINGS_SOURCE.replace("{write}", write))
    shared = _shared(module)
    assert not shared.problems
    assert bool(shared.refusals) == refused, shared.refusals
    if refused:
        (why,) = shared.refusals["reading"]
        assert "pd.option_context" in why and "config's top level" in why
