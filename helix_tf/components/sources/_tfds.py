"""The TFDS source: a TensorFlow Datasets dataset already prepared in a folder.

TensorFlow Datasets is imported inside the methods that read data only, so
importing this module (and listing a prepared dataset's files) stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from helix_tf._files import files_under
from helix_tf.components.base import normalized
from helix_tf.components.sources._base import (
    Source,
    _as_pairs,
    _column_problems,
)

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
        """The declared columns, or every scalar feature of the prepared dataset.

        Undeclared columns are read from the prepared folder's ``features.json``
        (no TensorFlow Datasets import: this runs at compile time); a feature kind
        that file does not make plain falls back to TFDS's own description.
        """
        if self.columns is not None:
            return dict(self.columns)
        directory, _ = self._variant_dir()
        found = _scalars_from_features_json(directory) if directory is not None else None
        if found is not None:
            return found
        from helix_tf.components.sources._tfds_reader import scalar_features

        return scalar_features(self)

    def files(self) -> tuple[str, ...]:
        """The prepared dataset's files under ``data_dir`` (empty when not prepared)."""
        directory, _ = self._variant_dir()
        if directory is None:
            return ()
        return tuple(files_under(directory))

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

    def read(
        self, split: str, *, batch_rows: int = 50_000, counters: dict[str, int] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Stream a split from the prepared dataset (never downloads)."""
        from helix_tf.components.sources._tfds_reader import read_tfds

        yield from read_tfds(self, split, batch_rows=batch_rows, counters=counters)


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


#: features.json kinds that are never one scalar per example (skipped, as TFDS's shapes say).
_NOT_SCALAR = {"image", "video", "audio", "sequence", "boundingBox", "boundingBoxes"}


def _scalars_from_features_json(directory: str) -> dict[str, str] | None:
    """The scalar features of a prepared dataset from its ``features.json`` (name -> kind),
    in the file's order; None when the file is missing or holds a kind not known here."""
    try:
        with open(os.path.join(directory, "features.json"), encoding="utf-8") as handle:
            root = json.load(handle)
    except (OSError, ValueError):
        return None
    found: dict[str, str] = {}
    return found if _collect_scalars(root, "", found) else None


def _collect_scalars(feature: Any, prefix: str, found: dict[str, str]) -> bool:
    """Add the scalar leaves under ``feature`` to ``found``; False on an unknown kind."""
    if not isinstance(feature, dict):
        return False
    if "featuresDict" in feature:
        children = feature["featuresDict"].get("features", {})
        return all(_collect_scalars(v, f"{prefix}{k}/", found) for k, v in children.items())
    if "classLabel" in feature:
        found[prefix[:-1]] = "int"
        return True
    if "text" in feature:
        found[prefix[:-1]] = "string"
        return True
    if "tensor" in feature:
        tensor = feature["tensor"]
        if tensor.get("shape", {}).get("dimensions"):
            return True  # not a scalar
        kind = _JSON_DTYPES.get(str(tensor.get("dtype")))
        if kind is None:
            return False
        found[prefix[:-1]] = kind
        return True
    return any(k in _NOT_SCALAR for k in feature)


_JSON_DTYPES = {
    **{t: "int" for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16")},
    **{t: "int" for t in ("uint32", "uint64")},
    **{t: "float" for t in ("float16", "bfloat16", "float32", "float64")},
    "string": "string",
}
