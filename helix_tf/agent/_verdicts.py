"""Reading a study: its counts and best trial, which verified trial wins, what an ablation keeps."""

from __future__ import annotations

import logging
from typing import Any

from helix_tf.agent._study import AS_WRITTEN

__all__ = ["is_winner", "keep_what_matters", "moved_meaningfully", "study_counts"]

log = logging.getLogger(__name__)


def study_counts(study: Any) -> dict[str, Any]:
    """The status fields of a study: trials by state, and the best so far."""
    from optuna.trial import TrialState

    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    best = None
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        b = study.best_trial
        best = {"trial": b.number, "value": b.value, "params": b.params}
    return {"trials": counts, "best": best}


def keep_what_matters(study: Any, trial: Any, ablation: dict[str, Any]) -> None:
    """Queue the winner with only the changes that matter (the rest as written).

    It runs as any trial (validation, then verification when it beats the
    user's version), so the report can propose the smaller change.
    """
    matters = [k for k, a in ablation.items() if a.get("matters") or "error" in a]
    if not matters or len(matters) == len(ablation):
        return
    reverted = [k for k in ablation if k not in matters]
    # The reverted changes are left as the config writes them, not queued as values:
    # the config's own value may lie outside the searched range (an L1 of 0 under a
    # log range), where the sampler could not take it.
    reduced = {k: v for k, v in trial.params.items() if k not in reverted}
    as_written = sorted({*reverted, *(trial.user_attrs.get(AS_WRITTEN) or ())})
    study.enqueue_trial(reduced, user_attrs={"ablated_from": trial.number, AS_WRITTEN: as_written})
    log.info("trial %d: queued with only the changes that matter: %s", trial.number, matters)


def is_winner(study: Any, number: int, sign: int) -> bool:
    """Whether trial ``number`` is verified better, by more than every other verified better."""
    verified = {
        int(k.partition(":")[2]): v.get("difference")
        for k, v in study.user_attrs.items()
        if k.startswith("verified:")
    }
    mine = verified.get(number)
    if not mine or not mine["significant"] or sign * mine["difference"] <= 0:
        return False
    return all(
        sign * d["difference"] <= sign * mine["difference"]
        for n, d in verified.items()
        if n != number and d and d["significant"]
    )


def moved_meaningfully(
    study: Any, trial: Any, done: list[Any], baseline_value: float, sign: int, min_gain: float
) -> bool:
    """Whether ``trial`` beats every verified trial's gain by ``min_gain`` of it."""
    verified = {int(k.partition(":")[2]) for k in study.user_attrs if k.startswith("verified:")}
    gains = [sign * (t.value - baseline_value) for t in done if t.number in verified]
    if not gains:
        return True
    return sign * (trial.value - baseline_value) > (1 + min_gain) * max(gains)
