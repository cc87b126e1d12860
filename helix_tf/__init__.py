"""helix_tf: fast iteration loops for TensorFlow pipelines.

Declare a :class:`Workflow` in a config module, run it with ``helix-tf run``;
helix_tf reuses every intermediate result that is still valid.

Importing this package is cheap: TensorFlow and Beam load only when a node
that needs them computes.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
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
    "Validation",
    "HelixError",
    "ConfigError",
    "CompileError",
    "PlanError",
    "ExecutionError",
    "DataError",
    "StoreError",
]

__version__ = "0.1.0"

#: The public namespaces, also importable as ``helix_tf.<name>`` (``import
#: helix_tf.features as F``, ``from helix_tf.metrics import AUC``): both spellings give
#: the same module object, loaded only when first asked for (see :class:`_Aliases`).
PUBLIC_NAMESPACES = ("sources", "features", "learners", "metrics")


class _Aliases:
    """``import helix_tf.<namespace>`` imports ``helix_tf.components.<namespace>``.

    A meta path finder and its loader by their methods, not by ``importlib.abc``'s
    classes: importing ``importlib.abc`` loads ``importlib.resources`` (with
    ``tempfile``, ``shutil``, the compression modules, ``random``), ~5–15 ms of every
    ``helix-tf`` client here, which otherwise imports none of them.
    """

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in PUBLIC_NAMESPACES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        module = importlib.import_module(f"{__name__}.components.{spec.name.rpartition('.')[2]}")
        module.__dict__.setdefault("_helix_own_spec", module.__spec__)
        return module

    def exec_module(self, module: Any) -> None:
        """The module is the component package, already executed: keep its own spec."""
        module.__spec__ = module._helix_own_spec


if not any(isinstance(f, _Aliases) for f in sys.meta_path):
    sys.meta_path.insert(0, _Aliases())

#: Public names loaded on first use, so that ``import helix_tf.<anything>`` (the
#: ``helix-tf`` client handing a run to the warm server, above all) does not pay for
#: numpy, the operator specs or the compiler: ``name -> (module, attribute or None)``.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Workflow": ("helix_tf.workflow", "Workflow"),
    "NodeRef": ("helix_tf.types", "NodeRef"),
    **{name: (f"helix_tf.{name}", None) for name in PUBLIC_NAMESPACES},
    # The run API pulls in the compiler, the planner and SQLAlchemy.
    "run": ("helix_tf.api", "run"),
    "plan": ("helix_tf.api", "plan"),
    "Approx": ("helix_tf.approx.settings", "Approx"),
    "Validation": ("helix_tf.validation", "Validation"),
    # Tools build on these: a workflow's past by config path, and a run's progress events.
    "history": ("helix_tf.history", None),
    "events": ("helix_tf.events", None),
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
