"""What a warm process imports before it forks: the warm server and the agent's worker.

One list for both (:mod:`helix_tf.server` forks a child per user run from a process
that imported it; :mod:`helix_tf.agent` forks its trial worker from one), so a run
in either starts without paying the imports. Names only: this module imports
nothing of helix_tf, so any layer may use it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = [
    "BEAM_EXTRAS",
    "KERAS_EXTRAS",
    "PRELOAD",
    "TRAINING",
    "WARM_CALLS",
    "imports_tensorflow",
    "preload",
    "skip_library_extras",
    "trains",
]

#: Imported before the first fork: what every training run needs and pays seconds for.
#: Only imports: nothing here may start a thread or open a connection (a fork keeps
#: neither working). Not Beam: a local run preprocesses without it
#: (:func:`helix_tf.engine._preprocess.preprocesses_here`); a run on another runner
#: imports it when it launches its pipeline.
PRELOAD = (
    "tensorflow",
    "keras",
    "pyarrow.parquet",
    "pandas",
    "helix_tf.cli",
    "helix_tf.api",
    "helix_tf.engine.execute",
    "helix_tf.engine.preprocess_steps",
    "helix_tf.engine._learning",
    "helix_tf.components.keras_models",
    # What a run imports lazily after those (measured: ~0.15 s per run otherwise).
    "sqlite3",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "pyarrow.csv",
    "pyarrow.dataset",
    "fsspec.implementations.chained",
    "rich.logging",
    "rich.json",
    "tensorflow.python.data.ops.concatenate_op",
    "tensorflow.python.data.ops.flat_map_op",
    "tensorflow.python.data.ops.from_tensors_op",
    "tensorflow.python.data.ops.range_op",
    "tensorflow.python.data.ops.zip_op",
    "helix_tf.reuse.metadata",
    "helix_tf.reuse.materialize",
    "helix_tf.reuse.store",
    "helix_tf.sample_data",
    # What an evaluation-only run imports after those (measured: ~0.05 s per run).
    "tomllib",
    "rich._emoji_codes",
    "helix_tf.settings",
    "helix_tf.activity",
    "helix_tf._inflight",
    "helix_tf.features",
    "helix_tf.learners",
    "helix_tf.metrics",
    "helix_tf.sources",
    "helix_tf._workers",
    "helix_tf.components.distributed",
    # What every run imports since the command line imports its rendering lazily (the
    # first run's read of its store before the fork must not: session 13): the tables and
    # the held results' reader (~8 ms a served run otherwise).
    "helix_tf.rendering",
    "helix_tf.views._stored",
    "helix_tf.approx.worth",
    "helix_tf.engine._runner_args",
    "helix_tf.approx.sampling",  # an approximate run's
    # What a served run's fork imports to hand its training to the server's trainer.
    "helix_tf.components.trainers",
    "helix_tf.server._trainer",
)


#: Built once before the first fork, (module, function) called without arguments: what
#: every run builds per process and keeps (the metadata schema's SQLAlchemy tables,
#: ~7 ms per run otherwise; the library versions fingerprints name).
WARM_CALLS = (
    ("helix_tf.reuse.metadata._schema", "_tables"),
    # The library versions in every fingerprint (packages' metadata: ~5–20 ms per run).
    ("helix_tf.compiler._runtime", "read_versions"),
)


#: helix_tf's modules of :data:`PRELOAD` that a process training for others needs beside
#: TensorFlow and Keras (the server's trainer, :mod:`helix_tf.server._trainer`).
TRAINING = (
    "helix_tf.components.keras_models",
    "helix_tf.components.trainers",
    "helix_tf.server._trainer",
)


def imports_tensorflow(name: str) -> bool:
    """Whether :data:`PRELOAD`'s module ``name`` is TensorFlow's or Keras' (the rest of
    the list imports neither: a run that trains elsewhere needs only the rest)."""
    return name.partition(".")[0] in ("tensorflow", "keras")


def trains(name: str) -> bool:
    """Whether :data:`PRELOAD`'s module ``name`` is one a trainer needs: TensorFlow's,
    Keras' or :data:`TRAINING`'s (neither Beam nor the engine and metadata of a run)."""
    return imports_tensorflow(name) or name in TRAINING


def preload(*, strict: bool = True, tensorflow: bool = True, others: bool = True) -> float:
    """Import every module of :data:`PRELOAD`, make :data:`WARM_CALLS`, freeze the collector's view.

    The seconds it took. ``strict=False`` skips a module that fails to import (the
    run that needs it reports the error itself). ``tensorflow=False`` leaves out
    TensorFlow and Keras (:func:`imports_tensorflow`): what a run whose trainings go
    to another process imports (:func:`helix_tf.server._starting.start_by_fork`).
    ``others=False`` imports only what a trainer needs (:func:`trains`), without
    :data:`WARM_CALLS`: what the server imports before it forks its trainer, the rest
    after (:func:`helix_tf.server._daemon.serve`).

    Every object alive by then (~0.5 million: the modules, TensorFlow's and Keras'
    registries) lives as long as the process: :func:`gc.freeze` takes them out of
    the collector's generations. A full collection scanned them all, 0.3–0.85 s
    each here, in the middle of a run, and in a fork it also wrote to every page
    they lie on, copying the parent's memory; freezing gives neither results nor
    what is freed later any difference.

    The collector is off while importing: every collection the imports triggered
    scanned the objects they had made so far, all of which live on (~25% of the
    imports' CPU here: 6.65 s against 4.64 s for the whole list, 1.65 s against
    1.35 s for a run's part). What they left unreachable (~4 thousand objects, ~2 MB
    of the process' ~740 MB) is frozen with the rest, never freed.
    """
    t0 = time.perf_counter()
    skip_library_extras()
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name in PRELOAD:
            if (not tensorflow and imports_tensorflow(name)) or (not others and not trains(name)):
                continue
            if strict:
                importlib.import_module(name)
                continue
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        for module, function in WARM_CALLS if others else ():
            with contextlib.nullcontext() if strict else contextlib.suppress(Exception):
                getattr(importlib.import_module(module), function)()
        gc.freeze()
    finally:
        if collecting:
            gc.enable()
    return time.perf_counter() - t0


#: Optional imports of Keras' integrations that no helix_tf run uses, skipped in the
#: ``helix-tf`` command and the warm server: (the importing Keras package, the module it
#: would import). ``import tensorflow`` loads Keras, whose scikit-learn wrappers import
#: scikit-learn (with SciPy's statistics) and whose image-gallery plots import
#: ``matplotlib.pyplot``: ~0.8–1.1 s of the ~5 s TensorFlow import here, paid by every
#: cold run and every server start. Keras guards both with ``except ImportError``.
#: Its array data adapters import pandas (with Arrow) to slice DataFrames (a run hands
#: Keras numpy arrays only): ~0.15–0.3 s of the warm server's TensorFlow import, which
#: the first run waits for before its training (the server imports pandas right after
#: forking its trainer; a process that imported pandas first is unchanged).
KERAS_EXTRAS: tuple[tuple[str, str], ...] = (
    ("keras.src.wrappers", "sklearn"),
    ("keras.src.visualization", "matplotlib"),
    ("keras.src.trainers.data_adapters", "pandas"),
)


#: The same for Beam: ``import apache_beam`` loads its MongoDB IO, which imports pymongo
#: and its bson when installed (~0.9 s here, and ~80 MB of the server's memory with
#: Keras' extras). Beam guards them with ``except ImportError`` and logs "Could not find
#: a compatible bson package." on that logger (:data:`QUIET_WHEN_SKIPPED`).
BEAM_EXTRAS: tuple[tuple[str, str], ...] = (
    ("apache_beam.io.mongodbio", "bson"),
    ("apache_beam.io.mongodbio", "pymongo"),
)

#: Loggers whose only record about a skipped extra is its absence: silent in processes
#: that skip them.
QUIET_WHEN_SKIPPED = ("apache_beam.io.mongodbio",)


class _SkipLibraryExtras:
    """A meta path finder that refuses :data:`KERAS_EXTRAS` (and :data:`BEAM_EXTRAS`) to
    the package named.

    Only an import made by that package's own code is refused (the frame that runs
    the ``import``); the same module imported by anyone else (a config, the report's
    charts) loads as usual, and once loaded Keras finds it in ``sys.modules`` too.
    ``extras``: (library package, module refused to it) pairs.
    """

    def __init__(self, extras: Sequence[tuple[str, str]]) -> None:
        # Each refused top-level module, with the packages it is refused to.
        self._blocked = {module: tuple(p for p, m in extras if m == module) for _, module in extras}

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        blocked = self._blocked.get(name.partition(".")[0])
        if blocked is None:  # every import of the process passes here: one dict lookup
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
            frame = frame.f_back
        importer = frame.f_globals.get("__name__", "") if frame is not None else ""
        if any(importer == p or importer.startswith(p + ".") for p in blocked):
            raise ModuleNotFoundError(
                f"{name} is not loaded for {importer} in helix-tf runs: no run uses "
                "Keras' scikit-learn wrappers, gallery plots or DataFrame slicing, nor Beam's "
                "MongoDB IO, and importing them took ~2 s of every start; use them in a "
                "plain Python process",
                name=name,
            )
        return None


def skip_library_extras() -> None:
    """Refuse :data:`KERAS_EXTRAS` to Keras and :data:`BEAM_EXTRAS` to Beam in this
    process (once; before they load).

    For the ``helix-tf`` command and the processes it forks (the server, its runs, the
    trainer): results do not change (Keras and Beam take the ``ImportError`` branches they
    have for a machine without those packages; no helix_tf computation goes through them).
    """
    if not any(isinstance(finder, _SkipLibraryExtras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SkipLibraryExtras((*KERAS_EXTRAS, *BEAM_EXTRAS)))
        import logging

        for name in QUIET_WHEN_SKIPPED:
            logging.getLogger(name).disabled = True
