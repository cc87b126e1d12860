"""The TFDS source's executor: reading a prepared dataset with TensorFlow Datasets.

The spec (``_tfds.py``) holds and checks the parameters and lists the prepared files
without importing TensorFlow Datasets; this module is the only one of the source
that imports it (the import-linter contract names it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from helix_tf.components.sources._base import _emit, _frame
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from helix_tf.components.sources._tfds import Tfds


def builder(source: Tfds) -> Any:
    """The TFDS builder of the prepared dataset (a ConfigError when TFDS cannot load it)."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(source.name, data_dir=source.data_dir)
    except Exception as exc:  # TFDS raises many kinds (not found, bad version, ...)
        raise ConfigError(
            f"Tfds: cannot load dataset {source.name!r} from data_dir {source.data_dir!r}: {exc}"
        ) from exc


def read_tfds(
    source: Tfds, split: str, *, batch_rows: int, counters: dict[str, int] | None
) -> Iterator[pd.DataFrame]:
    """Stream a split of ``source`` from the prepared dataset (never downloads)."""
    import numpy as np
    import pyarrow as pa
    import tensorflow_datasets as tfds

    source._require_split(split)
    spec = dict(source.tfds_splits)[split]
    kinds = source.schema()
    tfds_builder = builder(source)
    try:
        dataset = tfds_builder.as_dataset(split=spec, shuffle_files=False)
    except (AssertionError, FileNotFoundError) as exc:
        raise ConfigError(source._not_prepared(str(exc).splitlines()[0])) from exc
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"Tfds: cannot read split {spec!r} of {source.name!r}: {exc}; "
            f"check tfds_splits (splits: {list(tfds_builder.info.splits)})"
        ) from exc
    missing = [c for c in kinds if _feature(tfds_builder.info.features, c) is None]
    if missing or not kinds:
        missing = missing or ["(none)"]
        raise ConfigError(
            f"Tfds: dataset {source.name!r} has no feature {missing[0]!r}; its scalar "
            f"features are: {', '.join(scalar_features(source))}"
        )
    dataset = dataset.map(lambda ex: {c: _feature(ex, c) for c in kinds})
    offset = 0
    for batch in tfds.as_numpy(dataset.batch(batch_rows)):
        count = len(next(iter(batch.values()))) if batch else 0
        columns = {}
        for name, kind in kinds.items():
            values = np.asarray(batch[name])
            if values.ndim != 1:
                raise DataError(
                    f"Tfds: feature {name!r} of {source.name!r} has shape {values.shape[1:]} "
                    "per example; only scalar features can be read"
                )
            if kind == "string":
                texts = [
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in values.tolist()
                ]
                columns[name] = pa.array(texts, pa.string())
            else:
                if values.dtype.kind not in "biuf":
                    raise DataError(
                        f"Tfds: feature {name!r} of {source.name!r} holds {values.dtype} "
                        f"values, not numbers; declare it as 'string'"
                    )
                columns[name] = pa.array(values.astype(np.float64), pa.float64())
        ids = np.arange(offset, offset + count, dtype=np.int64)
        offset += count
        if count:
            yield from _emit(_frame(columns, ids), batch_rows, counters)


def scalar_features(source: Tfds) -> dict[str, str]:
    """Every scalar feature of the dataset as TFDS describes it: name -> kind."""
    found: dict[str, str] = {}
    _scalar_features(builder(source).info.features, "", found)
    return found


def _feature(example: Any, path: str) -> Any:
    """``example["a"]["b"]`` for ``"a/b"``; None when absent."""
    value = example
    for key in path.split("/"):
        try:
            value = value[key]
        except (KeyError, TypeError):
            return None
    return value


def _scalar_features(features: Any, prefix: str, found: dict[str, str]) -> None:
    """Collect the scalar leaves of a TFDS FeaturesDict as name -> kind."""
    import numpy as np

    shape = getattr(features, "shape", None)
    if isinstance(shape, dict) and hasattr(features, "items"):  # a FeaturesDict
        for key, value in features.items():
            _scalar_features(value, f"{prefix}{key}/", found)
        return
    if shape is None or tuple(shape) != ():
        return
    dtype = np.dtype(getattr(features, "np_dtype", None) or object)
    if dtype.kind in "biu":
        found[prefix[:-1]] = "int"
    elif dtype.kind == "f":
        found[prefix[:-1]] = "float"
    elif dtype.kind in "OSU":
        found[prefix[:-1]] = "string"
