"""What the agent's two rungs cost, as it measured them: CPU seconds of its own search runs."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["MEASURED_RUNS", "RungCosts"]

#: Runs of each rung measured before their medians price the rungs instead of the planner.
MEASURED_RUNS = 3


class RungCosts:
    """CPU seconds of the last search runs per rung ("approx", "exact")."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {"approx": [], "exact": []}

    def add(self, outcome: Any) -> None:
        """Keep a finished search run's CPU seconds (a ``_worker.Finished``) by its rung."""
        if outcome.result is None or outcome.cpu_seconds is None:
            return
        runs = self.cpu["approx" if outcome.result.get("approx") else "exact"]
        runs.append(float(outcome.cpu_seconds))
        del runs[: -2 * MEASURED_RUNS]

    def ratio(self) -> float | None:
        """Median CPU of the last approximate runs over the last exact ones.

        The planner prices a run by one wall-clock measurement per node, which knows
        neither the epochs a trial asks for nor the machine's load (it swung 5× here);
        once both rungs are measured ``MEASURED_RUNS`` times, their CPU medians decide
        (at census ×1 an approximate run took 0.86× the exact one's CPU: no rung;
        README). None until then.
        """
        approx, exact = self.cpu["approx"], self.cpu["exact"]
        if min(len(approx), len(exact)) < MEASURED_RUNS:
            return None
        return statistics.median(approx) / max(statistics.median(exact), 1e-9)
