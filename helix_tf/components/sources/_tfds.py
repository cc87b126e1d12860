"""The TFDS source: a TensorFlow Datasets dataset already prepared in a folder.

TensorFlow Datasets is imported inside the methods that read data only, so
importing this module (and listing a prepared dataset's files) stays cheap.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf.components.base import normalized
from helix_tf.components.sources._base import (
    Source,
    _as_pairs,
    _column_problems,
    _emit,
    _frame,
)
from helix_tf.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tfds(Source):
    """A TensorFlow Datasets dataset that is already prepared in ``data_dir``.

    helix_tf never downloads: a dataset that is not in ``data_dir`` is a
    ConfigError that says how to prepare it.

    Parameters
    ----------
    name
        The TFDS name, optionally with config and version: ``"mnist"``,
        ``"wine_quality/white:1.0.0"``.
    data_dir
        The folder the dataset was prepared in.
    tfds_splits
        Our split name -> TFDS split spec, e.g. ``{"train": "train[:80%]",
        "test": "train[80%:]"}``.
    columns
        Scalar features to read: name -> type; nested features as ``"a/b"``.
        Default: every scalar feature (finding them imports TensorFlow Datasets,
        so declare them to keep compilation light).

    Notes
    -----
    ``__row`` is the 0-based example index in the split, read in TFDS's
    deterministic order (``shuffle_files=False``). :meth:`files` lists the
    prepared files without importing TensorFlow.
    """

    VERSION: ClassVar[int] = 1

    name: str
    data_dir: str = normalized(lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v)
    tfds_splits: dict[str, str] | tuple[tuple[str, str], ...] = normalized(
        _as_pairs, default=(("train", "train"), ("test", "test"))
    )
    columns: dict[str, str] | tuple[tuple[str, str], ...] | None = normalized(
        _as_pairs, default=None
    )

    def validate(self) -> list[str]:
        """Return the problems with these parameters (empty when valid)."""
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a TFDS dataset name, but got {self.name!r}")
        if not isinstance(self.data_dir, str) or not self.data_dir:
            problems.append(f"data_dir must be a folder, but got {self.data_dir!r}")
        if (
            not isinstance(self.tfds_splits, tuple)
            or not self.tfds_splits
            or not all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in self.tfds_splits
            )
        ):
            problems.append(
                "tfds_splits must map split names to TFDS split specs, e.g. "
                f"{{'train': 'train', 'test': 'test'}}, but got {self.tfds_splits!r}"
            )
        if self.columns is not None:
            problems += _column_problems(self.columns)
        return problems

    def splits(self) -> tuple[str, ...]:
        """Our split names (the keys of ``tfds_splits``)."""
        return tuple(k for k, _ in self.tfds_splits)

    def schema(self) -> dict[str, str]:
        """The declared columns, or every scalar feature of the dataset."""
        if self.columns is not None:
            return dict(self.columns)
        builder = self._builder()
        found: dict[str, str] = {}
        _scalar_features(builder.info.features, "", found)
        return found

    def files(self) -> tuple[str, ...]:
        """The prepared dataset's files under ``data_dir`` (empty when not prepared)."""
        directory, _ = self._variant_dir()
        if directory is None:
            return ()
        found = []
        for root, dirs, names in os.walk(directory):
            dirs.sort()
            found += [os.path.join(root, n) for n in sorted(names)]
        return tuple(found)

    def content_files(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """The prepared files under ``data_dir``, labelled by their path inside it."""
        directory, _ = self._variant_dir()
        return {
            "data_dir": tuple(
                (os.path.relpath(p, directory) if directory else p, p) for p in self.files()
            )
        }

    def check(self) -> list[str]:
        """Whether the dataset is prepared in ``data_dir``, and how to prepare it if not."""
        directory, why = self._variant_dir()
        return [] if directory is not None else [self._not_prepared(why)]

    def _not_prepared(self, why: str) -> str:
        dataset = self.name.partition(":")[0]
        return (
            f"TFDS dataset {self.name!r} is not prepared in data_dir {self.data_dir!r} ({why}); "
            "helix_tf never downloads. Prepare it once with `tfds build "
            f"{dataset} --data_dir {self.data_dir}` or, in Python, "
            f"tfds.builder({self.name!r}, data_dir={self.data_dir!r}).download_and_prepare()"
        )

    def _variant_dir(self) -> tuple[str | None, str]:
        """The prepared ``data_dir/dataset[/config]/version`` folder, or (None, why)."""
        dataset, _, version = self.name.partition(":")
        base = os.path.join(self.data_dir, *dataset.split("/"))
        if not os.path.isdir(base):
            return None, f"no folder {base}"
        if version:
            chosen = os.path.join(base, version)
            return (chosen, "") if _prepared(chosen) else (None, f"no prepared {chosen}")
        versions = _versions(base)
        if versions:
            return os.path.join(base, versions[-1]), ""
        configs = sorted(c for c in os.listdir(base) if _versions(os.path.join(base, c)))
        if len(configs) == 1:
            return os.path.join(base, configs[0], _versions(os.path.join(base, configs[0]))[-1]), ""
        if configs:
            return None, f"it has configs {configs}; name one, e.g. '{dataset}/{configs[0]}'"
        return None, f"no prepared version under {base}"

    def _builder(self) -> Any:
        import tensorflow_datasets as tfds

        try:
            return tfds.builder(self.name, data_dir=self.data_dir)
        except Exception as exc:  # TFDS raises many kinds (not found, bad version, ...)
            raise ConfigError(
                f"Tfds: cannot load dataset {self.name!r} from data_dir {self.data_dir!r}: {exc}"
            ) from exc

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream a split from the prepared dataset (never downloads)."""
        import numpy as np
        import pyarrow as pa
        import tensorflow_datasets as tfds

        self._require_split(split)
        spec = dict(self.tfds_splits)[split]
        kinds = self.schema()
        builder = self._builder()
        try:
            dataset = builder.as_dataset(split=spec, shuffle_files=False)
        except (AssertionError, FileNotFoundError) as exc:
            raise ConfigError(self._not_prepared(str(exc).splitlines()[0])) from exc
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"Tfds: cannot read split {spec!r} of {self.name!r}: {exc}; "
                f"check tfds_splits (splits: {list(builder.info.splits)})"
            ) from exc
        missing = [c for c in kinds if _feature(builder.info.features, c) is None]
        if missing or not kinds:
            missing = missing or ["(none)"]
            raise ConfigError(
                f"Tfds: dataset {self.name!r} has no feature {missing[0]!r}; its scalar "
                f"features are: {', '.join(self._scalars(builder))}"
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
                        f"Tfds: feature {name!r} of {self.name!r} has shape {values.shape[1:]} "
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
                            f"Tfds: feature {name!r} of {self.name!r} holds {values.dtype} "
                            f"values, not numbers; declare it as 'string'"
                        )
                    columns[name] = pa.array(values.astype(np.float64), pa.float64())
            ids = np.arange(offset, offset + count, dtype=np.int64)
            offset += count
            if count:
                yield from _emit(_frame(columns, ids), batch_rows, counters)

    @staticmethod
    def _scalars(builder: Any) -> list[str]:
        found: dict[str, str] = {}
        _scalar_features(builder.info.features, "", found)
        return list(found)


def _prepared(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "dataset_info.json"))


def _versions(directory: str) -> list[str]:
    """Prepared version folders (``1.2.3``) in ``directory``, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        parts = name.split(".")
        if (
            len(parts) == 3
            and all(p.isdigit() for p in parts)
            and _prepared(os.path.join(directory, name))
        ):
            found.append(name)
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


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
