"""helix_tf: fast iteration loops for TensorFlow pipelines.

Declare a :class:`Workflow` in a config module, run it with ``helix-tf run``;
helix_tf reuses every intermediate result that is still valid.

Importing this package is cheap: TensorFlow and Beam load only when a node
that needs them computes.
"""

from __future__ import annotations

import sys
from typing import Any

from helix_tf.components import features, learners, metrics, sources
from helix_tf.errors import (
    CompileError,
    ConfigError,
    DataError,
    ExecutionError,
    HelixError,
    PlanError,
    StoreError,
)
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

#: The public namespaces re-exported above, also importable as ``helix_tf.<name>``
#: (``import helix_tf.features as F``, ``from helix_tf.metrics import AUC``): each is
#: registered under that name, so both spellings give the same module object.
PUBLIC_NAMESPACES = ("sources", "features", "learners", "metrics")
for _name in PUBLIC_NAMESPACES:
    sys.modules.setdefault(f"{__name__}.{_name}", globals()[_name])
del _name


def __getattr__(name: str) -> Any:
    # The run API pulls in the compiler, the planner and SQLAlchemy: load it on first use.
    if name in ("run", "plan"):
        from helix_tf import api

        return getattr(api, name)
    if name == "Approx":
        from helix_tf.approx.settings import Approx

        return Approx
    raise AttributeError(f"module 'helix_tf' has no attribute {name!r}")
