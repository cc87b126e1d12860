"""Census preprocessing in plain pandas/pyarrow: the baseline of ``preprocess_scale.py``.

The same transforms as ``benchmarks/configs/census_preprocess.py`` (the source
and features of ``configs/census.py``), in one process, without Beam or helix_tf:

- read ``adult.data`` and ``adult.test`` with pyarrow's CSV reader, only the
  nine columns the workflow uses (the test file's junk first line skipped,
  values trimmed, ``""``/``"?"`` missing, the test labels' trailing ``.``
  dropped); parse each file once and repeat the training rows ``--scale``
  times, as helix_tf's ``Csv(replicate=N)`` does;
- learn on the training split the mean/std of age, hours_per_week and
  capital_gain (missing -> mean, population std) and the vocabularies of
  education, occupation, marital_status, relationship and sex (missing ->
  ``<missing>``; ordered by count, then text; one out-of-vocabulary bucket);
- write the examples (3 float32 columns, 5 int32 indices, an int8 label) of
  each split as one snappy Parquet file.

Run it::

    .venv/bin/python benchmarks/pandas_census_preprocess.py --scale 100 [--out DIR]

It prints one JSON line: in-process seconds per step, row counts and bytes written.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402  (timed from the very start)
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _census_by_hand import (  # noqa: E402
    CATEGORICAL,
    DEFAULT_DATA,
    MISSING,
    NUMERIC,
    read_split,
    transform,
)


def learn(train: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Mean/std of the numerics and vocabularies of the strings, on the training rows."""
    numeric = {}
    for c in NUMERIC:
        x = train[c].to_numpy(dtype=np.float64)
        x = x[~np.isnan(x)]
        mean = float(x.mean()) if len(x) else 0.0
        std = float(np.sqrt(max(float((x * x).mean()) - mean * mean, 0.0))) if len(x) else 1.0
        numeric[c] = {"mean": mean, "std": std or 1.0}
    vocab = {}
    for c in CATEGORICAL:
        counts = train[c].fillna(MISSING).value_counts(sort=False)
        pairs = sorted(
            zip(counts.index, counts.tolist(), strict=True), key=lambda tc: (-tc[1], tc[0])
        )
        vocab[c] = [t for t, _ in pairs]
    return {"numeric": numeric, "vocab": vocab}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA), help="folder with adult.data/test")
    parser.add_argument("--scale", type=int, default=1, help="replicate the training rows N times")
    parser.add_argument("--out", help="output folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    t = {"imports_s": time.perf_counter() - T_START}
    out_dir = args.out or tempfile.mkdtemp(prefix="pandas-census-")
    try:
        t0 = time.perf_counter()
        train = read_split(os.path.join(args.data_dir, "adult.data"), skip_first_line=False)
        test = read_split(os.path.join(args.data_dir, "adult.test"), skip_first_line=True)
        if args.scale > 1:
            train = pd.concat([train] * args.scale, ignore_index=True)
        t1 = time.perf_counter()
        stats = learn(train)
        t2 = time.perf_counter()
        tables = {"train": transform(train, stats), "test": transform(test, stats)}
        t3 = time.perf_counter()
        written = 0
        for split, table in tables.items():
            path = os.path.join(out_dir, "examples", f"{split}.parquet")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            pq.write_table(table, path, compression="snappy")
            written += os.path.getsize(path)
        t4 = time.perf_counter()
    finally:
        if not args.out:
            shutil.rmtree(out_dir, ignore_errors=True)
    t |= {"read_s": t1 - t0, "learn_s": t2 - t1, "transform_s": t3 - t2, "write_s": t4 - t3}
    result = {
        **t,
        "work_s": t4 - t0,
        "in_process_s": time.perf_counter() - T_START,
        "train_rows": tables["train"].num_rows,
        "test_rows": tables["test"].num_rows,
        "bytes": written,
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
