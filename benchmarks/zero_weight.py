"""What zero-weight feature pruning saves at inference, and the sparsity L1 reaches.

Two workloads, each trained once with an L1-regularised FTRL linear model and
then predicted with and without pruning (same stored model, same examples):

- census: iteration 10 of census10 (linear, L1 1e-2, FTRL) — the real features;
- weak: census plus --weak noise features (hashed categoricals of fnlwgt), which
  L1 drives to exactly zero.

Reported per workload and L1 strength: the share of exactly-zero weights, the
features pruned, inference (predict node) seconds with and without pruning, that
predictions match, and — with the opt-in ``retrain_without_zero`` — the features
dropped, the metrics of the retrained model against the full one, and both
training times.

    python -m benchmarks.zero_weight --scale 10 --weak 20 --l1 0.01 0.1 --json out.json
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

    PARAMS = {"scale": 1, "weak": 0, "l1": 0.01}


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
            optimizer="ftrl", l1=float(params.l1), l2=0.0, learning_rate=0.5, epochs=5))
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


def measure(config: Path, scale: int, weak: int, l1: float, data_dir: str) -> dict:
    params = {"scale": scale, "weak": weak, "l1": l1}
    with tempfile.TemporaryDirectory() as store:
        first = api.run(config, params=params, data_dir=data_dir, store=store, materialize="all")
        learner = next(n for n in first.nodes if n.name == "learner")
        predict = next(n for n in first.nodes if n.name == "predictions")
        note = next((n for n in first.notes if n.startswith("learner:")), "")
        out = {
            "scale": scale,
            "weak_features": weak,
            "l1": l1,
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
        # The opt-in: train again without the features whose weights are all zero.
        t0 = time.perf_counter()
        again = api.run(
            config,
            params=params,
            data_dir=data_dir,
            store=store,
            materialize="all",
            retrain_without_zero=True,
        )
        wall = time.perf_counter() - t0
        retrain = again.retrained or {}
        retrained_learner = next(n for n in again.nodes if n.name == "learner")
        out["retrain"] = {
            "dropped": retrain.get("dropped", {}),
            "full_metrics": retrain.get("full_metrics", first.metrics),
            "metrics": again.metrics,
            "difference": retrain.get("difference", {}),
            "train_s_full": learner.seconds,
            "train_s_retrained": retrained_learner.seconds if retrain else None,
            "run_s": wall,
            "notes": list(again.notes),
        }
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--weak", type=int, default=20)
    ap.add_argument("--l1", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "zero_weight.py"
        config.write_text(CONFIG)
        rows = [
            measure(config, args.scale, weak, l1, args.data_dir)
            for l1 in args.l1
            for weak in (0, args.weak)
        ]
    print(f"\n### Zero-weight pruning, census x{args.scale}\n")
    print(
        "| workload | L1 | sparsity | predict pruned / not (s) | identical "
        "| retrained without | accuracy full → retrained | AUC full → retrained "
        "| train s full / retrained |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "census10 it10" if not r["weak_features"] else f"+{r['weak_features']} weak"
        rt = r["retrain"]
        dropped = ", ".join(f for fs in rt["dropped"].values() for f in fs) or "nothing"
        m0, m1 = rt["full_metrics"], rt["metrics"]
        train = (
            f"{rt['train_s_full']:.2f} / {rt['train_s_retrained']:.2f}"
            if rt["train_s_retrained"] is not None
            else f"{rt['train_s_full']:.2f} / -"
        )
        print(
            f"| {name} | {r['l1']:g} | {r['sparsity_note'].removeprefix('learner: ')} | "
            f"{r['inference']['pruned']['predict_s']:.3f} / "
            f"{r['inference']['full']['predict_s']:.3f} | {r['predictions_identical']} | "
            f"{dropped} | {m0['accuracy']:.4f} → {m1['accuracy']:.4f} | "
            f"{m0['auc']:.4f} → {m1['auc']:.4f} | {train} |"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
