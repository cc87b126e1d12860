"""helix_tf: fast iteration loops for TensorFlow pipelines.

Declare a :class:`Workflow` in a config module, run it with ``helix-tf run``;
helix_tf reuses every intermediate result that is still valid.

Importing this package is cheap: TensorFlow and Beam load only when a node
that needs them computes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from helix_tf.errors import (
    CompileError,
    ConfigError,
    DataError,
    ExecutionError,
    HelixError,
    PlanError,
    StoreError,
)

if TYPE_CHECKING:
    from helix_tf.api import plan, run
    from helix_tf.approx.settings import Approx
    from helix_tf.components import features, learners, metrics, sources
    from helix_tf.types import NodeRef
    from helix_tf.workflow import Workflow

__all__ = [
    "Workflow",
    "NodeRef",
    "sources",
    "features",
    "learners",
    "metrics",
    "run",
    "plan",
    "Approx",
    "HelixError",
    "ConfigError",
    "CompileError",
    "PlanError",
    "ExecutionError",
    "DataError",
    "StoreError",
]

__version__ = "0.1.0"


#: Public names loaded on first use, so that ``import helix_tf.<anything>`` (the
#: ``helix-tf`` client handing a run to the warm server, above all) does not pay for
#: numpy, the operator specs or the compiler: ``name -> (module, attribute or None)``.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Workflow": ("helix_tf.workflow", "Workflow"),
    "NodeRef": ("helix_tf.types", "NodeRef"),
    "sources": ("helix_tf.components.sources", None),
    "features": ("helix_tf.components.features", None),
    "learners": ("helix_tf.components.learners", None),
    "metrics": ("helix_tf.components.metrics", None),
    # The run API pulls in the compiler, the planner and SQLAlchemy.
    "run": ("helix_tf.api", "run"),
    "plan": ("helix_tf.api", "plan"),
    "Approx": ("helix_tf.approx.settings", "Approx"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'helix_tf' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    if name not in ("run", "plan"):  # helix_tf.run stays the function, not a submodule
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
