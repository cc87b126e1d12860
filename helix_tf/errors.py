"""The exception hierarchy: one root, one class per stage that can fail.

Every message names what is wrong, the value received, what was expected and how
to fix it, with a file/line or row number where there is one.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "HelixError",
    "ConfigError",
    "CompileError",
    "PlanError",
    "ExecutionError",
    "DataError",
    "StoreError",
]


class HelixError(Exception):
    """Root of every error helix_tf raises on purpose."""


class ConfigError(HelixError):
    """A config module cannot be loaded or declares something invalid.

    ``problems`` holds every problem found, so one run reports them all.
    """

    def __init__(self, problems: str | Sequence[str], *, path: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        super().__init__(_join(self.problems, path))


class CompileError(ConfigError):
    """The workflow's DAG is invalid (types, names, cycles, unknown columns)."""


class PlanError(HelixError):
    """No valid reuse plan exists (e.g. an output can be neither computed nor loaded)."""


class ExecutionError(HelixError):
    """An operator failed while running; ``node`` names it."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        self.node = node
        super().__init__(f"operator {node!r} failed: {message}" if node else message)


class DataError(ExecutionError):
    """Input data is malformed: the message names the file, the line and the fix."""


class StoreError(HelixError):
    """The artifact store or metadata database cannot be used."""


def _join(problems: Sequence[str], path: str | None) -> str:
    where = f" in {path}" if path else ""
    if len(problems) == 1:
        return f"{problems[0]}" if not path else f"{path}: {problems[0]}"
    lines = [f"{len(problems)} errors{where}:"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)
