"""What a warm process imports before it forks, and the collector's view of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helix_tf import warm


def test_preload_builds_what_runs_keep_and_leaves_it_out_of_the_collectors_reach() -> None:
    # A fresh interpreter: the test process' own frozen objects must not count.
    code = (
        "import gc, helix_tf.warm as w\n"
        "w.PRELOAD = ('json', 'helix_tf.errors')\n"
        "assert gc.get_freeze_count() == 0\n"
        "w.preload()\n"
        "assert gc.get_freeze_count() > 0\n"
        "from helix_tf.reuse.metadata import _schema\n"
        "assert _schema._TABLES is not None  # built before the fork, not in each run\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_preload_skips_a_module_that_fails_only_when_not_strict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warm, "PRELOAD", ("json", "helix_tf_no_such_module"))
    monkeypatch.setattr(warm.gc, "freeze", lambda: None)  # not this test process' objects
    assert warm.preload(strict=False) >= 0.0
    with pytest.raises(ModuleNotFoundError):
        warm.preload(strict=True)


def _probe_package(root: object, name: str) -> None:
    from pathlib import Path

    folder = Path(str(root)) / name
    folder.mkdir()
    (folder / "__init__.py").write_text("VALUE = 1\n")


def test_passengers_are_hidden_while_the_libraries_import_and_importable_after(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import logging

    _probe_package(tmp_path, "helix_passenger_probe")
    _probe_package(tmp_path, "helix_passenger_loaded")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = importlib.import_module("helix_passenger_loaded")
    monkeypatch.setattr(warm, "PASSENGERS", ("helix_passenger_probe", "helix_passenger_loaded"))
    logger = logging.getLogger(warm.PASSENGER_LOGGERS[0])
    try:
        with warm.without_passengers():
            with pytest.raises(ImportError):
                importlib.import_module("helix_passenger_probe")
            # One imported before is left alone; the "missing package" notice is silent.
            assert importlib.import_module("helix_passenger_loaded") is loaded
            assert logger.disabled
        assert not logger.disabled
        assert importlib.import_module("helix_passenger_probe").VALUE == 1
    finally:
        sys.modules.pop("helix_passenger_probe", None)
        sys.modules.pop("helix_passenger_loaded", None)


@pytest.mark.slow
def test_a_run_imports_keras_and_beam_without_their_unused_passengers() -> None:
    # A fresh interpreter, the way a local run and the server import them: scikit-learn
    # (Keras' wrappers), pyplot (Keras' image gallery) and pymongo (Beam's MongoDB IO)
    # cost ~2-3 s of a cold run's imports and ~80 MB of the server's memory.
    code = (
        "import importlib.util, sys\n"
        "from helix_tf.components._keras_layers import keras\n"
        "from helix_tf.warm import PASSENGERS, without_passengers\n"
        "keras()\n"
        "with without_passengers():\n"
        "    import helix_tf.engine.beam_pipeline, helix_tf.engine.runners\n"
        "loaded = [n for n in PASSENGERS if n in sys.modules]\n"
        "assert not loaded, loaded\n"
        "if importlib.util.find_spec('sklearn') is not None:\n"
        "    import sklearn.base  # a user's config may still use it\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
