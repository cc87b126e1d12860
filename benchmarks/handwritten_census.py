"""The census workflow of ``configs/census.py``, hand-written without helix_tf.

The baseline of ``benchmarks/cold_run.py``: the same work as a cold
``helix-tf run configs/census.py --materialize none``, written the way an engineer
would write it by hand with the same libraries:

- ONE Apache Beam pipeline on the same runner (in-process ``FnApiRunner``,
  ``--direct_num_workers=1``), elements are pandas frames of 50,000 rows:
  read ``adult.data`` and ``adult.test`` with pyarrow's CSV reader, only the
  nine columns the workflow uses (its junk first line skipped, values
  trimmed, ``""``/``"?"`` missing, the test labels' trailing ``.`` dropped);
  learn on the training split the mean/std of age, hours_per_week and
  capital_gain (missing -> mean) and the vocabularies of education,
  occupation, marital_status, relationship and sex (missing -> ``<missing>``;
  ordered by count, then text; one out-of-vocabulary bucket); write the
  examples of both splits as Parquet (one file per batch) and the statistics
  as JSON;
- the same Keras linear model: one weight per numeric feature and per index of
  each categorical feature plus a bias, L2 1e-4 on the weights, Adam 0.01,
  binary cross-entropy on the logit, 5 epochs, batch 1024, seed 0,
  deterministic ops; predict the test split; accuracy (score >= 0.5) and AUC
  (rank-sum, average ranks for ties).

It imports nothing from helix_tf. Run it alone::

    .venv/bin/python benchmarks/handwritten_census.py [--data-dir DIR] [--scale N] [--out DIR]
                                                      [--fast-exit]

It prints one JSON line: in-process timings, row counts, accuracy and AUC. With
``--fast-exit`` it then ends as the ``helix-tf`` console script does once
TensorFlow or Beam is loaded: output flushed, ``os._exit`` (no interpreter
teardown).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402  (timed from the very start)
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _census_by_hand import (  # noqa: E402
    CATEGORICAL,
    DEFAULT_DATA,
    MISSING,
    NUMERIC,
    read_split,
    transform,
)
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from apache_beam.runners.portability.fn_api_runner import FnApiRunner  # noqa: E402

BATCH_ROWS = 50_000


# ----------------------------------------------------------------------------- Beam


class ReadSplit(beam.DoFn):
    """Read one split's CSV; emit it as (split, k, frame) frames of ``batch_rows`` rows."""

    def __init__(self, data_dir: str, batch_rows: int, scale: int) -> None:
        self.data_dir, self.batch_rows, self.scale = data_dir, batch_rows, scale

    def process(self, split):  # type: ignore[no-untyped-def]
        path = os.path.join(self.data_dir, "adult.data" if split == "train" else "adult.test")
        copies = self.scale if split == "train" else 1
        whole = read_split(path, skip_first_line=split == "test")
        k = 0
        for start in range(0, len(whole), self.batch_rows):
            frame = whole.iloc[start : start + self.batch_rows]
            for _ in range(copies):
                yield split, k, frame
                k += 1


class CensusStats(beam.CombineFn):
    """Moments of the numeric columns and value counts of the string columns."""

    def create_accumulator(self):  # type: ignore[no-untyped-def]
        return {
            "moments": {c: [0.0, 0.0, 0.0] for c in NUMERIC},
            "counts": {c: Counter() for c in CATEGORICAL},
        }

    def add_input(self, acc, element):  # type: ignore[no-untyped-def]
        _, _, frame = element
        for c in NUMERIC:
            x = frame[c].to_numpy(dtype=np.float64)
            x = x[~np.isnan(x)]
            m = acc["moments"][c]
            m[0] += len(x)
            m[1] += float(x.sum())
            m[2] += float((x * x).sum())
        for c in CATEGORICAL:
            counts = frame[c].fillna(MISSING).value_counts(sort=False)
            acc["counts"][c].update(dict(zip(counts.index, counts.tolist(), strict=True)))
        return acc

    def merge_accumulators(self, accs):  # type: ignore[no-untyped-def]
        out = self.create_accumulator()
        for acc in accs:
            for c in NUMERIC:
                out["moments"][c] = [
                    a + b for a, b in zip(out["moments"][c], acc["moments"][c], strict=True)
                ]
            for c in CATEGORICAL:
                out["counts"][c].update(acc["counts"][c])
        return out

    def extract_output(self, acc):  # type: ignore[no-untyped-def]
        numeric = {}
        for c in NUMERIC:
            n, s, ss = acc["moments"][c]
            mean = s / n if n else 0.0
            std = (max(ss / n - mean * mean, 0.0) ** 0.5 or 1.0) if n else 1.0
            numeric[c] = {"mean": mean, "std": std}
        vocab = {
            c: [t for t, _ in sorted(acc["counts"][c].items(), key=lambda tc: (-tc[1], tc[0]))]
            for c in CATEGORICAL
        }
        return {"numeric": numeric, "vocab": vocab}


class TransformWrite(beam.DoFn):
    """Standardise, index and label one batch; write it as Parquet."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def process(self, element, stats):  # type: ignore[no-untyped-def]
        split, k, frame = element
        folder = os.path.join(self.out_dir, split)
        os.makedirs(folder, exist_ok=True)
        pq.write_table(
            transform(frame, stats), os.path.join(folder, f"{k:06d}.parquet"), compression="snappy"
        )
        yield split, len(frame)


def write_json(stats, path):  # type: ignore[no-untyped-def]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(stats, f)
    return path


def preprocess(data_dir: str, out_dir: str, scale: int, batch_rows: int) -> None:
    """The one Beam pipeline: CSV -> statistics -> examples as Parquet."""
    options = PipelineOptions(["--direct_num_workers=1"])
    with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
        batches = (
            p
            | "Splits" >> beam.Create(["train", "test"])
            | "Read" >> beam.ParDo(ReadSplit(data_dir, batch_rows, scale))
        )
        stats = (
            batches
            | "Train" >> beam.Filter(lambda b: b[0] == "train")
            | "Stats" >> beam.CombineGlobally(CensusStats())
        )
        _ = batches | "Examples" >> beam.ParDo(
            TransformWrite(out_dir), beam.pvalue.AsSingleton(stats)
        )
        _ = stats | "StatsJson" >> beam.Map(write_json, os.path.join(out_dir, "stats.json"))


# ----------------------------------------------------------------------------- Keras


def read_examples(out_dir: str, split: str) -> pa.Table:
    folder = os.path.join(out_dir, split)
    files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
    return pa.concat_tables(pq.read_table(os.path.join(folder, f)) for f in files)


def model_inputs(table: pa.Table) -> dict[str, np.ndarray]:
    x = {c: table.column(c).to_numpy().astype(np.float32).reshape(-1, 1) for c in NUMERIC}
    x |= {c: table.column(c).to_numpy().astype(np.int32).reshape(-1, 1) for c in CATEGORICAL}
    return x


def build_model(keras, sizes: dict[str, int]):  # type: ignore[no-untyped-def]
    """Logistic regression: a weight per numeric feature and per categorical index, a bias."""
    reg = keras.regularizers.L2(1e-4)
    inputs = {c: keras.Input((1,), name=c, dtype="float32") for c in NUMERIC}
    inputs |= {c: keras.Input((1,), name=c, dtype="int32") for c in CATEGORICAL}
    numeric = keras.layers.Concatenate()([inputs[c] for c in NUMERIC])
    # Weights of the numerics (L2) and the bias (not regularised), zeros to start.
    parts = [keras.layers.Dense(1, kernel_initializer="zeros", kernel_regularizer=reg)(numeric)]
    for c in CATEGORICAL:
        emb = keras.layers.Embedding(
            sizes[c], 1, embeddings_initializer="zeros", embeddings_regularizer=reg
        )(inputs[c])
        parts.append(keras.layers.Reshape((1,))(emb))
    return keras.Model(inputs=inputs, outputs=keras.layers.Add()(parts))


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, average ranks for ties."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    pos = int(y.sum())
    neg = len(y) - pos
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def train_and_evaluate(out_dir: str) -> dict[str, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    t0 = time.perf_counter()
    import keras
    import tensorflow as tf

    t_import = time.perf_counter() - t0
    with open(os.path.join(out_dir, "stats.json")) as f:
        stats = json.load(f)
    sizes = {c: len(stats["vocab"][c]) + 1 for c in CATEGORICAL}
    train = read_examples(out_dir, "train")
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    model = build_model(keras, sizes)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    t1 = time.perf_counter()
    model.fit(
        model_inputs(train),
        train.column("label").to_numpy().astype(np.float32),
        batch_size=1024,
        epochs=5,
        shuffle=True,
        verbose=0,
    )
    t2 = time.perf_counter()
    test = read_examples(out_dir, "test")
    logits = np.asarray(model.predict(model_inputs(test), batch_size=8192, verbose=0))
    score = 1.0 / (1.0 + np.exp(-logits.reshape(-1).astype(np.float64)))
    y = test.column("label").to_numpy().astype(np.int64)
    t3 = time.perf_counter()
    return {
        "accuracy": float(((score >= 0.5).astype(np.int64) == y).mean()),
        "auc": auc(y, score),
        "train_rows": train.num_rows,
        "test_rows": test.num_rows,
        "keras_import_s": t_import,
        "fit_s": t2 - t1,
        "predict_s": t3 - t2,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder with adult.data/test")
    parser.add_argument("--scale", type=int, default=1, help="replicate the training rows N times")
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--out", help="output folder (default: a temporary one, removed)")
    parser.add_argument(
        "--fast-exit", action="store_true", help="end with os._exit, as helix-tf does"
    )
    args = parser.parse_args(argv)
    t_imports = time.perf_counter() - T_START
    out_dir = args.out or tempfile.mkdtemp(prefix="handwritten-census-")
    try:
        t0 = time.perf_counter()
        preprocess(os.path.abspath(args.data_dir), out_dir, args.scale, args.batch_rows)
        t_pre = time.perf_counter() - t0
        result = train_and_evaluate(out_dir)
    finally:
        if not args.out:
            shutil.rmtree(out_dir, ignore_errors=True)
    result |= {
        "imports_s": t_imports,
        "preprocess_s": t_pre,
        "in_process_s": time.perf_counter() - T_START,
    }
    print(json.dumps(result, sort_keys=True))
    if args.fast_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
