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
from collections.abc import Iterator

__all__ = ["PASSENGERS", "PRELOAD", "WARM_CALLS", "preload", "without_passengers"]

#: Imported before the first fork: what every training run needs and pays seconds for.
#: Only imports: nothing here may start a thread or open a connection (a fork keeps
#: neither working).
PRELOAD = (
    "tensorflow",
    "keras",
    "apache_beam",
    "apache_beam.runners.portability.fn_api_runner",
    "pyarrow.parquet",
    "pandas",
    "helix_tf.cli",
    "helix_tf.api",
    "helix_tf.engine.execute",
    "helix_tf.engine.beam_pipeline",
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
    "helix_tf.engine.runners",
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
    # What a served run's fork imports to hand its training to the server's trainer.
    "helix_tf.components.trainers",
    "helix_tf.server._trainer",
)


#: Built once before the first fork, (module, function) called without arguments: what
#: every run builds per process and keeps (the metadata schema's SQLAlchemy tables,
#: ~7 ms per run otherwise).
WARM_CALLS = (("helix_tf.reuse.metadata._schema", "_tables"),)


#: Packages that TensorFlow/Keras and Beam import, when installed, only for features
#: helix_tf never calls: Keras' scikit-learn wrappers (``keras.wrappers``, scipy.stats
#: with them) and image-gallery plotting (``matplotlib.pyplot``), Beam's MongoDB IO.
#: Each of those imports falls back when its package is missing, so
#: :func:`without_passengers` hides them while helix_tf imports the libraries: ~2-3 s of a
#: cold run's ~9 s of imports here, and their memory in the warm server. A later
#: ``import sklearn`` (a user's config) imports it as usual.
PASSENGERS = ("sklearn", "matplotlib", "pymongo")

#: Loggers that say a passenger is missing (Beam: "Could not find a compatible bson
#: package."): silent while :func:`without_passengers` hides them.
PASSENGER_LOGGERS = ("apache_beam.io.mongodbio",)


@contextlib.contextmanager
def without_passengers() -> Iterator[None]:
    """Within: importing a :data:`PASSENGERS` package not yet imported raises ImportError.

    For the import of TensorFlow, Keras and Beam only (a ``None`` in ``sys.modules``
    makes ``import name`` raise, the documented way to block a module); afterwards
    the packages import normally again. Ones already imported are left alone.
    """
    import logging

    hidden = [name for name in PASSENGERS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    loggers = [logging.getLogger(name) for name in PASSENGER_LOGGERS]
    disabled = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, disabled, strict=True):
            logger.disabled = was
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def preload(*, strict: bool = True) -> float:
    """Import every module of :data:`PRELOAD`, make :data:`WARM_CALLS`, freeze the collector's view.

    The seconds it took. ``strict=False`` skips a module that fails to import (the
    run that needs it reports the error itself).

    Every object alive by then (~0.5 million: the modules, TensorFlow's and Keras'
    registries) lives as long as the process: :func:`gc.freeze` takes them out of
    the collector's generations. A full collection scanned them all, 0.3–0.85 s
    each here, in the middle of a run, and in a fork it also wrote to every page
    they lie on, copying the parent's memory; freezing gives neither results nor
    what is freed later any difference.
    """
    t0 = time.perf_counter()
    with without_passengers():
        for name in PRELOAD:
            if strict:
                importlib.import_module(name)
                continue
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    for module, function in WARM_CALLS:
        with contextlib.nullcontext() if strict else contextlib.suppress(Exception):
            getattr(importlib.import_module(module), function)()
    gc.freeze()
    return time.perf_counter() - t0
