"""What of the running environment joins a fingerprint: the libraries that compute a role.

A result computed by TensorFlow 2.16 is not what TensorFlow 2.20 computes from the same
inputs (kernels, initialisers and float rounding change between releases), and the
same holds, more rarely, for pandas, pyarrow and numpy in preprocessing. A reused
result must equal what a fresh run computes, so the versions of the libraries a
node's stage computes with, and the settings read when they load (Keras' backend and
float type, oneDNN's switch) or when a learner trains (helix_tf's own
``learners.TRAINING_SETTINGS``, when set), join its fingerprint: upgrading one
recomputes what it computes and nothing else. Versions are read from the installed distributions'
metadata, never by importing TensorFlow or Keras.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Any

from helix_tf.components.learners import TRAINING_SETTINGS
from helix_tf.roles import Stage

__all__ = ["LIBRARIES", "runtime_identity"]

_PREPROCESSING = ("numpy", "pandas", "pyarrow")
_LEARNING = ("numpy", "tensorflow", "keras")
#: The distributions whose version can change a stage's results.
LIBRARIES: dict[str, tuple[str, ...]] = {
    Stage.SOURCE: _PREPROCESSING,
    Stage.PREPROCESS: _PREPROCESSING,
    Stage.TRAIN: _LEARNING,
    Stage.PREDICT: _LEARNING,
    Stage.EXPLAIN: _LEARNING,
    Stage.EVALUATE: ("numpy", "pandas"),
}
#: Environment variables TensorFlow and Keras read when they load that change numbers.
_LEARNING_ENV = ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")


@functools.lru_cache(maxsize=64)
def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def read_versions() -> None:
    """Look up every distribution of :data:`LIBRARIES` once (kept for the process).

    Called by the warm server before it forks its runs (``helix_tf.warm.WARM_CALLS``):
    reading packages' metadata took ~5–20 ms of every served run. A server whose
    packages changed is stale and replaced (``helix_tf.server``), so what it read
    stays true for every run it forks.
    """
    for names in LIBRARIES.values():
        for name in names:
            _version(name)


def _keras_settings() -> dict[str, Any]:
    """Keras' float type and backend: from Keras when it is loaded (a config may have set
    them), else as Keras will read them when it loads (``$KERAS_BACKEND``, then its
    ``keras.json``, then its defaults), so both give the same answer."""
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    if config is not None and hasattr(config, "floatx") and hasattr(config, "backend"):
        return {"floatx": str(config.floatx()), "backend": str(config.backend())}
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        saved = json.loads((Path(home) / "keras.json").read_text())
    except (OSError, ValueError):
        saved = {}
    saved = saved if isinstance(saved, dict) else {}
    return {
        "floatx": str(saved.get("floatx") or "float32"),
        "backend": os.environ.get("KERAS_BACKEND") or str(saved.get("backend") or "tensorflow"),
    }


def runtime_identity(stage: str) -> dict[str, Any]:
    """The library versions (and, for learning stages, settings) a ``stage`` computes with.

    >>> sorted(runtime_identity("preprocess")["libraries"])
    ['numpy', 'pandas', 'pyarrow', 'python']
    """
    libraries = {name: _version(name) for name in LIBRARIES[stage]}
    libraries["python"] = f"{sys.version_info.major}.{sys.version_info.minor}"
    out: dict[str, Any] = {"libraries": libraries}
    if "tensorflow" in LIBRARIES[stage]:
        out["env"] = {k: os.environ.get(k) for k in _LEARNING_ENV}
        out["keras"] = _keras_settings()
        # helix_tf's own settings join only when set: unset, fingerprints stay as they were.
        settings = {k: v for k in TRAINING_SETTINGS if (v := os.environ.get(k, "").strip())}
        if settings:
            out["settings"] = settings
    return out
