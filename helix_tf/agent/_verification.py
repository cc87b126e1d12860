"""The agent's verification: exact test runs of the best trials that beat the user's
version on validation, their predictions compared with the user's, and the ablation of a
winner (which of its changes matter)."""

from __future__ import annotations

from typing import Any

from helix_tf import history
from helix_tf.agent._runs import AgentRuns
from helix_tf.agent._verdicts import is_winner, keep_what_matters, moved_meaningfully
from helix_tf.errors import HelixError

__all__ = ["Verification"]


class Verification(AgentRuns):
    """Verifies the search's leaders (:meth:`verify`) and weighs a winner's changes."""

    def verify(
        self, study: Any, metric: str, baseline_value: float, *, final: bool = False
    ) -> None:
        """Exact test runs of the best trials that beat the user's version on validation.

        During the search only a new leader is verified, and only when it moved
        meaningfully: its validation gain over the user's version exceeds the best
        verified trial's by more than ``verify_min_gain`` of that gain (a leader a
        hair above a verified one would repeat its test runs and its ablation for
        the same answer). Each verification starts only within ``verify_share`` of
        the worker's time (the first always may). ``final`` (the search is over):
        the ``verify_top`` best, whatever their gain and the time taken.
        """
        self.purpose = "verify"
        try:
            from optuna.trial import TrialState

            sign = 1 if study.direction.name == "MAXIMIZE" else -1
            done = [
                t
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if sign * (t.value - baseline_value) > 0
            ]
            done.sort(key=lambda t: -sign * t.value)
            for t in done[: self.opts.verify_top]:
                if f"verified:{t.number}" in study.user_attrs or self.stop_requested:
                    continue
                if not final and not moved_meaningfully(
                    study, t, done, baseline_value, sign, self.opts.verify_min_gain
                ):
                    continue
                spent = self.spent
                if not final and spent["verify"] > self.opts.verify_share * sum(spent.values()):
                    break
                self.update(state="verifying", reason=f"trial {t.number} on the test split")
                if "baseline_test" not in study.user_attrs:
                    base = self.run_until_done({}, validation=None, materialize="all")
                    if base is None or base.result is None:
                        return
                    study.set_user_attr("baseline_test", base.result)
                mine = self.run_until_done(dict(t.params), validation=None, materialize="all")
                if mine is None:
                    return
                record: dict[str, Any] = {"test": mine.result, "error": mine.error}
                if mine.result is not None:
                    try:
                        old = history.stored_predictions(
                            self.opts.config, data_dir=self.opts.data_dir, store=self.opts.store
                        )
                        new = history.stored_predictions(
                            self.opts.config,
                            params=dict(t.params),
                            data_dir=self.opts.data_dir,
                            store=self.opts.store,
                        )
                        record["difference"] = history.compare_predictions(
                            old, new, seed=self.opts.seed
                        ).to_dict()
                    except HelixError as exc:
                        record["error"] = str(exc)
                # Recorded before the ablation (one run per change): the report shows the
                # verified proposal while its changes are being weighed.
                study.set_user_attr(f"verified:{t.number}", record)
                if is_winner(study, t.number, sign):
                    record["ablation"] = self.ablate(dict(t.params), float(t.value), metric, sign)
                    if self.moved:  # reverted on another version: not this study's
                        return
                    study.set_user_attr(f"verified:{t.number}", record)
                    keep_what_matters(study, t, record["ablation"])
        finally:
            self.purpose = "search"

    def ablate(
        self, params: dict[str, Any], value: float, metric: str, sign: int
    ) -> dict[str, Any]:
        """Revert each change of a winner in turn (validation runs): which ones matter.

        A change *matters* when reverting it alone makes the validation metric worse.
        """
        current = self.space.current if self.space is not None else {}
        changed = [k for k, v in params.items() if k in current and current[k] != v]
        out: dict[str, Any] = {}
        if len(changed) < 2:
            return out
        for key in changed:
            self.update(state="verifying", reason=f"ablation: reverting {key}")
            done = self.run_until_done(
                {**params, key: current[key]}, validation=self.opts.validation
            )
            if done is None:
                break
            if done.result is None or metric not in done.result["metrics"]:
                out[key] = {"error": done.error}
                continue
            without = float(done.result["metrics"][metric])
            effect = sign * (value - without)
            out[key] = {"without": without, "effect": effect, "matters": effect > 0}
        return out
