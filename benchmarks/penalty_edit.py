"""What an ``l1``/``l2`` edit costs a long-lived process that keeps trainers (issue 9).

Run ``python -m benchmarks.penalty_edit`` in each checkout to compare (alternate them).

In one process with trainers kept (``HELIX_TF_TRAINERS=4``, as the server's trainer and
the agent's worker), it trains a linear model on census-sized synthetic arrays (32,000
rows, 3 numeric and 6 categorical features: census ×10 sampled at 10%), once to build
and trace a trainer and once with another learning rate (a reuse), then three ``l2``
edits, and prints each edit's wall and CPU seconds with the trainer cache's counts and
the load average. Before penalty strengths were variables every edit built a new
trainer; now they reuse one.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np


def main() -> int:
    os.environ.setdefault("HELIX_TF_TRAINERS", "4")
    from helix_tf.components import keras_models as km, learners
    from helix_tf.components.trainers import TRAINERS

    rng = np.random.default_rng(0)
    rows = 32_000
    features = [{"name": f"n{i}", "kind": "numeric"} for i in range(3)] + [
        {"name": f"c{i}", "kind": "categorical", "size": 20} for i in range(6)
    ]
    x = {f"n{i}": rng.normal(size=(rows, 1)).astype(np.float32) for i in range(3)}
    x.update({f"c{i}": rng.integers(0, 20, size=(rows, 1)).astype(np.int32) for i in range(6)})
    y = (rng.random(rows) > 0.7).astype(np.float32)
    km.train_model(learners.Linear(l2=1e-4), features, x, y)  # builds and traces
    km.train_model(learners.Linear(l2=1e-4, learning_rate=0.02), features, x, y)  # reuse
    edits = []
    for l2 in (1e-3, 3e-3, 1e-2):
        wall, cpu = time.perf_counter(), time.process_time()
        km.train_model(learners.Linear(l2=l2), features, x, y)
        edits.append(
            {
                "l2": l2,
                "wall_s": round(time.perf_counter() - wall, 3),
                "cpu_s": round(time.process_time() - cpu, 3),
            }
        )
    report = {"edits": edits, "trainers": TRAINERS.stats(), "load_avg": os.getloadavg()}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
