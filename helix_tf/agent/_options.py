"""The agent's options, its run tag, and what it optimises (shared by the agent and its worker)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any

from helix_tf.agent._study import LOWER_IS_BETTER
from helix_tf.errors import HelixError
from helix_tf.roles import Role
from helix_tf.validation import Validation

__all__ = [
    "TAG",
    "AgentBusyError",
    "AgentOptions",
    "agent_share_bytes",
    "metric_direction",
    "preferred_metric",
]

#: The tag of every run the agent makes (``history --agent`` shows them).
TAG = "agent"


class AgentBusyError(HelixError):
    """Another agent already searches for this store."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AgentOptions:
    config: str
    data_dir: str | None = None
    store: str | None = None
    cores: int = 1
    seed: int = 0
    max_trials: int | None = None
    resume_after: float = 3.0
    validation: Validation = dataclasses.field(default_factory=Validation)
    #: Approximate rung: this share of the training rows, bfloat16 where fast. Half, not
    #: a quarter: at census x10 a quarter ranked 30 points against exact validation with
    #: Kendall tau 0.57 (deep models at many epochs overfit the exact run's ten passes
    #: over each row an epoch and not the sample's 2.5), half 0.79, at 0.58x the exact
    #: run's CPU (README, "Think-time agent"); ``approx_max_share`` still skips the rung
    #: where the plan says it saves less.
    approx_sample: float = 0.5
    #: Use the approximate rung only when the plan estimates it at most this share of
    #: the exact run's cost.
    approx_max_share: float = 0.6
    verify_top: int = 3
    #: Verification (test-split runs, ablations) may take at most this share of the
    #: worker's time: the search is not starved by verifying every new leader.
    verify_share: float = 0.25
    #: During the search a new leader is verified only when its validation gain over
    #: the user's version exceeds the best verified trial's by this share of it.
    verify_min_gain: float = 0.1
    preload: bool = True
    poll: float = 0.02
    #: The store's budget in bytes (every agent run honours it); None: the size of
    #: the store's file system.
    budget: int | None = None
    #: The share of the budget the agent's entries may hold together.
    share: float = 0.25
    #: Trials asked of the sampler at a time and run in reuse-aware order (1: as asked).
    batch: int = 4
    #: The trial worker is replaced between runs once its resident memory passes this.
    worker_max_rss: int | None = 4 << 30

    def __post_init__(self) -> None:
        if isinstance(self.cores, bool) or not isinstance(self.cores, int) or self.cores < 1:
            raise ValueError(f"AgentOptions: cores must be an integer >= 1, but got {self.cores!r}")
        if self.max_trials is not None and (
            isinstance(self.max_trials, bool)
            or not isinstance(self.max_trials, int)
            or self.max_trials < 1
        ):
            raise ValueError(
                f"AgentOptions: trials must be an integer >= 1, but got {self.max_trials!r}"
            )
        if not 0 <= self.resume_after < float("inf"):  # NaN too
            raise ValueError(
                "AgentOptions: resume_after must be a number of seconds >= 0, but got "
                f"{self.resume_after!r}"
            )
        if not 0 < self.share <= 1:
            raise ValueError(f"AgentOptions: share must be in (0, 1], but got {self.share!r}")
        if not 0 < self.verify_share <= 1:
            raise ValueError(
                f"AgentOptions: verify_share must be in (0, 1], but got {self.verify_share!r}"
            )
        if not self.verify_min_gain >= 0:  # NaN too
            raise ValueError(
                f"AgentOptions: verify_min_gain must be >= 0, but got {self.verify_min_gain!r}"
            )
        if self.batch < 1:
            raise ValueError(f"AgentOptions: batch must be >= 1, but got {self.batch!r}")


def agent_share_bytes(opts: AgentOptions, home: os.PathLike[str] | str) -> int | None:
    """What the agent's store entries may hold together: ``share`` of the budget.

    Without a budget, of the size of the file system the store is on (None where
    that cannot be read, e.g. a remote store: no cap).
    """
    if opts.budget is not None:
        return int(opts.share * opts.budget)
    try:
        return int(opts.share * shutil.disk_usage(home).total)
    except OSError:
        return None


def preferred_metric(metrics: dict[str, float]) -> str:
    """The metric the agent optimises: AUC, else accuracy, else the first one."""
    for key in ("auc", "accuracy"):
        if key in metrics:
            return key
    return sorted(metrics)[0]


def metric_direction(dag: dict[str, Any]) -> str:
    """Whether the workflow's metrics are maximised (AUC, accuracy, ...) or minimised (losses)."""
    ops = [
        str(m.get("op", "")).lower()
        for n in dag.get("nodes", [])
        if n.get("role") == Role.EVALUATE
        for m in (n.get("extra") or {}).get("metrics") or []
    ]
    if any(o in ("auc", "accuracy") for o in ops):
        return "maximize"
    if ops and all(any(w in o for w in LOWER_IS_BETTER) for o in ops):
        return "minimize"
    return "maximize"
