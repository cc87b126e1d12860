"""Model inputs from examples tables: numpy arrays per feature, or streamed batches.

One encoding for every learner (see :mod:`helix_tf.components.keras_models`):
a numeric feature is a float column of shape (1,), a categorical an int index of
shape (1,), a bag two padded columns ``x__idx`` and ``x__val`` of shape (L,) whose
padding has weight 0. No Keras here: a process that only prepares inputs (a served
run handing its training and scoring to the server's trainer) never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helix_tf.components._scaling import standardized
from helix_tf.components.learners import STREAM_BYTES_SETTING, training_setting
from helix_tf.types import BAG, CATEGORICAL, LABEL, NUMERIC, ROW_ID

if TYPE_CHECKING:  # Arrow only for the tables' type: the server's trainer never loads it
    import pyarrow as pa

    from helix_tf.components._model_build import Head
    from helix_tf.components.learners import Learner

__all__ = ["arrays_from_table", "feature_columns", "labels_from_table", "streamed_examples"]


def feature_columns(spec: Mapping[str, Any]) -> list[str]:
    """The examples columns a feature occupies."""
    name = spec["name"]
    return [f"{name}.idx", f"{name}.val"] if spec["kind"] == BAG else [name]


def arrays_from_table(
    table: pa.Table, features: Sequence[Mapping[str, Any]], *, zeros: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Model inputs from an examples table: one array (or two for a bag) per feature.

    Features named in ``zeros`` are not read: they get all-zero inputs (used for
    features whose learned weights are all zero, so the result is the same).
    """
    out: dict[str, np.ndarray] = {}
    n = table.num_rows
    for spec in features:
        name, kind = spec["name"], spec["kind"]
        if name in zeros:
            if kind == BAG:
                out[f"{name}__idx"] = np.zeros((n, 1), dtype=np.int32)
                out[f"{name}__val"] = np.zeros((n, 1), dtype=np.float32)
            else:
                out[name] = np.zeros((n, 1), dtype=np.float32 if kind == NUMERIC else np.int32)
        elif kind == NUMERIC:
            out[name] = table.column(name).to_numpy().astype(np.float32).reshape(-1, 1)
        elif kind == CATEGORICAL:
            out[name] = table.column(name).to_numpy().astype(np.int32).reshape(-1, 1)
        elif kind == BAG:
            out[f"{name}__idx"], out[f"{name}__val"] = _padded(table, name)
        else:
            raise ValueError(f"feature {name!r} has kind {kind!r}, which a model cannot read")
    return out


def _padded(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    idx = table.column(f"{name}.idx").combine_chunks()
    val = table.column(f"{name}.val").combine_chunks()
    offsets = np.asarray(idx.offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    n = len(lengths)
    flat_idx = np.asarray(idx.values, dtype=np.int32)[offsets[0] : offsets[-1]]
    flat_val = np.asarray(val.values, dtype=np.float32)[offsets[0] : offsets[-1]]
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(flat_idx)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    pad_idx = np.zeros((n, width), dtype=np.int32)
    pad_val = np.zeros((n, width), dtype=np.float32)
    pad_idx[rows, cols] = flat_idx
    pad_val[rows, cols] = flat_val
    return pad_idx, pad_val


def labels_from_table(table: pa.Table) -> np.ndarray:
    return table.column(LABEL).to_numpy().astype(np.float32)


def streamed_examples(
    learner: Learner,
    folder: str,
    features: Sequence[Mapping[str, Any]],
    head: Head,
    target: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> Any:
    """Global batches streamed from the training Parquet files under ``folder``, or None.

    Only for a learner with a ``strategy`` (the custom loop reads batches; ``model.fit``
    takes arrays) and files larger than ``distributed.STREAM_BYTES`` together. A
    regression needs ``target(label values, row ids)`` (the label's transform): its
    target is standardised with a mean and std streamed over all rows first.
    """
    if getattr(learner, "strategy", None) is None:
        return None
    from helix_tf.components import distributed

    split = os.path.join(folder, "train")
    if not os.path.isdir(split):
        return None
    files = sorted(os.path.join(split, f) for f in os.listdir(split) if f.endswith(".parquet"))
    limit = training_setting(STREAM_BYTES_SETTING, distributed.STREAM_BYTES)
    if sum(os.path.getsize(f) for f in files) <= limit:
        return None
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    dtype = np.int32 if head.task == "multiclass" else np.float32
    scale = None
    if head.task == "regression":  # stream section (issue 14): the target, standardised
        if target is None:
            raise ValueError("a streamed regression needs the label's target transform")

        def regression_target(table: pa.Table) -> np.ndarray:
            return target(table.column(LABEL).to_numpy(), table.column(ROW_ID).to_numpy())

        scale = distributed.target_scale(files, regression_target, [LABEL, ROW_ID])

    def convert(table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if scale is None:
            return arrays_from_table(table, features), labels_from_table(table).astype(dtype)
        y = standardized(regression_target(table), scale[0], scale[1])
        return arrays_from_table(table, features), y.astype(np.float32)

    return distributed.ParquetBatches(
        files,
        convert,
        rows=rows,
        batch_size=int(learner.batch_size),
        seed=int(learner.seed),
        scale=scale,
    )
