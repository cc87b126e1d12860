"""What zero-weight feature pruning saves at inference, and the sparsity L1 reaches.

Two workloads, each trained once with an L1-regularised FTRL linear model and
then predicted with and without pruning (same stored model, same examples):

- census: iteration 10 of census10 (linear, L1 1e-2, FTRL) — the real features;
- weak: census plus --weak noise features (hashed categoricals of fnlwgt), which
  L1 drives to exactly zero.

Reported: the share of exactly-zero weights, the features pruned, inference
(predict node) seconds with and without pruning, and that predictions match.

    python -m benchmarks.zero_weight --scale 10 --weak 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq

from helix_tf import api
from helix_tf.reuse.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]

CONFIG = textwrap.dedent(
    """
    import numpy as np
    from helix_tf import Workflow, features as F, learners, metrics, sources
    from helix_tf.sample_data import CENSUS_COLUMNS

    PARAMS = {"scale": 1, "weak": 0}


    def _noise(seed):
        def noise(batch):
            x = batch["fnlwgt"].fillna(0).to_numpy().astype(np.int64)
            return (x * (2 * seed + 7919) + seed) % 200
        return noise


    def workflow(params):
        wf = Workflow("zero_weight")
        folder = params.data("census")
        wf.source("rows", sources.Csv(
            train=str(folder / "adult.data"), test=str(folder / "adult.test"),
            columns=CENSUS_COLUMNS, skip_lines={"test": 1},
            replace={"income": {">50K.": ">50K", "<=50K.": "<=50K"}},
            replicate=int(params.scale)))
        feats = [wf.feature(c, F.Numeric(c)) for c in ("age", "hours_per_week", "capital_gain")]
        feats += [wf.feature(c, F.Vocabulary(c))
                  for c in ("education", "occupation", "marital_status", "relationship", "sex")]
        for i in range(int(params.weak)):
            feats.append(wf.feature(f"weak{i}", F.Udf(_noise(i), batched=True,
                                                      output="categorical", size=200)))
        ex = wf.examples("examples", feats, label=F.Label("income", positive=">50K"))
        model = wf.train("learner", ex, learners.Linear(
            optimizer="ftrl", l1=1e-2, l2=0.0, learning_rate=0.5, epochs=5))
        preds = wf.predict("predictions", model, ex)
        wf.output(wf.evaluate("evaluation", preds, metrics.Accuracy(), metrics.AUC()))
        return wf
    """
)


def _scores(store: str, fingerprint: str) -> list[float]:
    s = ArtifactStore(store)
    m = s.lookup(fingerprint)
    assert m is not None
    local = s.open_local(m)
    assert local is not None
    return pq.read_table(Path(local) / "test" / "000000.parquet").column("__score").to_pylist()


def measure(config: Path, scale: int, weak: int, data_dir: str) -> dict:
    params = {"scale": scale, "weak": weak}
    with tempfile.TemporaryDirectory() as store:
        first = api.run(config, params=params, data_dir=data_dir, store=store, materialize="all")
        learner = next(n for n in first.nodes if n.name == "learner")
        predict = next(n for n in first.nodes if n.name == "predictions")
        note = next((n for n in first.notes if n.startswith("learner:")), "")
        out = {
            "scale": scale,
            "weak_features": weak,
            "sparsity_note": note,
            "metrics": first.metrics,
        }
        timings = {}
        scores = {}
        for prune in (True, False):
            # Drop predictions and metrics so inference reruns from the stored model.
            s = ArtifactStore(store)
            for n in first.nodes:
                if n.name in ("predictions", "evaluation"):
                    s.delete(n.fingerprint)
            t0 = time.perf_counter()
            r = api.run(
                config,
                params=params,
                data_dir=data_dir,
                store=store,
                materialize="all",
                prune_zero_weight=prune,
            )
            wall = time.perf_counter() - t0
            p = next(n for n in r.nodes if n.name == "predictions")
            timings["pruned" if prune else "full"] = {
                "predict_s": p.seconds,
                "run_s": wall,
                "reason": p.reason,
            }
            scores[prune] = _scores(store, p.fingerprint)
        out["inference"] = timings
        out["predictions_identical"] = scores[True] == scores[False]
        out["learner_fingerprint"] = learner.fingerprint
        out["predict_fingerprint"] = predict.fingerprint
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--weak", type=int, default=20)
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "zero_weight.py"
        config.write_text(CONFIG)
        rows = [
            measure(config, args.scale, 0, args.data_dir),
            measure(config, args.scale, args.weak, args.data_dir),
        ]
    print(f"\n### Zero-weight pruning at inference, census x{args.scale}\n")
    print("| workload | sparsity | predict with pruning (s) | without (s) | identical |")
    print("|---|---|---:|---:|---|")
    for r in rows:
        name = (
            "census10 it10 (8 features)"
            if not r["weak_features"]
            else f"+{r['weak_features']} weak features"
        )
        print(
            f"| {name} | {r['sparsity_note'].removeprefix('learner: ')} | "
            f"{r['inference']['pruned']['predict_s']:.3f} | {r['inference']['full']['predict_s']:.3f} | "
            f"{r['predictions_identical']} |"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
