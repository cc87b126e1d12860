"""Every ``--json`` output is strict JSON: one function writes it, NaN becomes null."""

from __future__ import annotations

import ast
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from rich.console import Console

from helix_tf.json_output import json_text, print_json

PACKAGE = Path(__file__).resolve().parents[1] / "helix_tf"
#: The modules that print the CLI's output (commands and their helpers).
COMMAND_MODULES = ("cli.py", "cli_store.py", "cli_common.py", "agent/commands.py",
                   "server/commands.py")  # fmt: skip


def test_non_finite_numbers_become_null_at_any_depth() -> None:
    value = {"auc": math.nan, "rows": [1, math.inf, {"x": -math.inf}], "ok": (0.5,)}
    text = json_text(value, sort_keys=True)
    assert json.loads(text) == {"auc": None, "ok": [0.5], "rows": [1, None, {"x": None}]}
    assert "NaN" not in text and "Infinity" not in text


def test_other_objects_go_through_default() -> None:
    assert json.loads(json_text({"path": Path("/a/b")}, default=str)) == {"path": "/a/b"}
    with pytest.raises(TypeError):
        json_text({"path": Path("/a/b")})


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_no_command_writes_json_itself(module: str) -> None:
    """``json.dumps`` there would print the NaN token (an AUC on a one-class slice)."""
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "dumps"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "json"
    ]
    assert not calls, f"helix_tf/{module} lines {calls}: print --json through json_text"


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_JSON_VALUES)
def test_json_printed_without_a_terminal_is_the_text_rich_prints(value: object) -> None:
    # Written directly where no colours show (pipes, files): the very text Rich prints.
    text = json_text(value)
    ours, theirs = io.StringIO(), io.StringIO()
    print_json(Console(file=ours, soft_wrap=True), text)
    Console(file=theirs, soft_wrap=True).print_json(text)
    assert ours.getvalue() == theirs.getvalue()


def test_json_at_a_terminal_is_printed_by_rich() -> None:
    out = io.StringIO()
    print_json(Console(file=out, force_terminal=True, color_system="standard"), '{"a": 1}')
    assert "\x1b[" in out.getvalue()  # highlighted
