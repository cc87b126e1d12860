"""Validation runs: evaluate on rows held out of the training split, never on the test split.

``helix_tf.run(config, validation=Validation())`` runs the same workflow with
every source replaced by :class:`~helix_tf.components.sources.Holdout`: the
model trains on the source's train rows minus a seeded fraction and is scored
on that fraction. The sources change, so every fingerprint downstream changes:
validation results have their own store entries and never mix with test
results. The agent searches with validation runs and reads the test split only
when it verifies a proposal.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from helix_tf.components.sources import Holdout, Source, train_only
from helix_tf.errors import ConfigError
from helix_tf.roles import Role
from helix_tf.workflow import Workflow

__all__ = ["Validation", "holdout_workflow", "is_validation_dag"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Validation:
    """Hold out ``fraction`` of the training rows (chosen by ``seed``) and evaluate on them.

    >>> Validation(fraction=0.25, seed=1).fraction
    0.25
    """

    fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
            raise ConfigError(f"Validation: fraction must be in (0, 1), but got {f!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"Validation: seed must be an int, but got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "seed": self.seed}


def holdout_workflow(wf: Workflow, validation: Validation) -> Workflow:
    """A copy of ``wf`` whose sources read only training rows, split into train and validation."""
    out = copy.copy(wf)
    out.declarations = [
        dataclasses.replace(
            d,
            op=Holdout(of=train_only(d.op), fraction=validation.fraction, seed=validation.seed),
        )
        if d.role == Role.SOURCE and isinstance(d.op, Source) and not isinstance(d.op, Holdout)
        else d
        for d in wf.declarations
    ]
    out.outputs = list(wf.outputs)
    out.notes = list(wf.notes)
    return out


def is_validation_dag(dag: dict[str, Any]) -> bool:
    """Whether a recorded version (``CompiledWorkflow.to_dict()``) is a validation run's."""
    return any(n.get("op") == "Holdout" for n in dag.get("nodes", []))
