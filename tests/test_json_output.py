"""Every ``--json`` output is strict JSON: one function writes it, NaN becomes null."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from helix_tf.json_output import json_text

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
