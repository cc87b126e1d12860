"""What the team tests share: the CLI run in-process as a named person."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from helix_tf.cli import main
from helix_tf.settings import USER_ENV


def invoke(*args: Any, user: str = "ann", env: dict[str, str] | None = None) -> Any:
    """``helix-tf ARGS`` in this process as ``user`` (``HELIX_TF_USER``), with ``env`` set."""
    return CliRunner().invoke(main, [str(a) for a in args], env={USER_ENV: user, **(env or {})})


def as_json(result: Any) -> Any:
    """The JSON a command printed; fails the test with its output if it failed."""
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def states(payload: dict[str, Any]) -> dict[str, str]:
    """Node name → state (compute, load, ...) of a run's or a plan's JSON."""
    return {n["name"]: n["state"] for n in payload["nodes"]}
