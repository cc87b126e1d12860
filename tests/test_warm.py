"""What a warm process imports before it forks, and the collector's view of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helix_tf import warm
from tests.conftest import TINY_CENSUS, write_config


def _in_fresh_interpreter(code: str, *args: str) -> str:
    """``python -c code args`` (a test process' own imports and frozen objects must not
    count); its standard output. Fails the test when it fails."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_preload_builds_what_runs_keep_and_leaves_it_out_of_the_collectors_reach() -> None:
    code = (
        "import gc, helix_tf.warm as w\n"
        "w.PRELOAD = ('json', 'helix_tf.errors')\n"
        "assert gc.get_freeze_count() == 0\n"
        "w.preload()\n"
        "assert gc.get_freeze_count() > 0\n"
        "from helix_tf.reuse.metadata import _schema\n"
        "assert _schema._TABLES is not None  # built before the fork, not in each run\n"
        "from helix_tf.compiler import _runtime\n"
        "assert _runtime._installed_version.cache_info().currsize == len(\n"
        "    {n for names in _runtime.LIBRARIES.values() for n in names})  # versions read\n"
    )
    _in_fresh_interpreter(code)


def test_preload_skips_a_module_that_fails_only_when_not_strict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warm, "PRELOAD", ("json", "helix_tf_no_such_module"))
    monkeypatch.setattr(warm.gc, "freeze", lambda: None)  # not this test process' objects
    assert warm.preload(strict=False) >= 0.0
    with pytest.raises(ModuleNotFoundError):
        warm.preload(strict=True)


def test_preload_imports_a_trainers_part_first_and_the_rest_after() -> None:
    # The server imports what its trainer needs, forks it, then imports the rest.
    code = (
        "import sys, helix_tf.warm as w\n"
        "w.PRELOAD, w.TRAINING = ('fractions', 'wave'), ('fractions',)\n"
        "w.preload(others=False)\n"
        "print('fractions' in sys.modules, 'wave' in sys.modules)\n"
        "w.preload(tensorflow=False)\n"
        "print('wave' in sys.modules)\n"
    )
    assert _in_fresh_interpreter(code).split() == ["True", "False", "True"]


def test_no_collection_runs_while_preloading_and_the_collector_is_left_as_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each collection scanned everything imported so far, all of which lives on. The
    # module counts the collections made while it is imported (50k cycles: ~140 if on).
    (tmp_path / "helix_tf_test_cycles.py").write_text(
        "import gc\n\n"
        "class Node:\n    pass\n\n"
        "before = sum(s['collections'] for s in gc.get_stats())\n"
        "NODES = []\n"
        "for _ in range(50_000):\n"
        "    a, b = Node(), Node()\n"
        "    a.other, b.other = b, a\n"
        "    NODES.append(a)\n"
        "COLLECTIONS = sum(s['collections'] for s in gc.get_stats()) - before\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(warm, "PRELOAD", ("helix_tf_test_cycles", "helix_tf_no_such_module"))
    monkeypatch.setattr(warm, "WARM_CALLS", ())
    monkeypatch.setattr(warm.gc, "freeze", lambda: None)  # not this test process' objects
    assert warm.gc.isenabled()
    with pytest.raises(ModuleNotFoundError):
        warm.preload(strict=True)
    import helix_tf_test_cycles  # type: ignore[import-not-found]

    assert helix_tf_test_cycles.COLLECTIONS == 0
    assert warm.gc.isenabled()  # on again, though an import failed
    warm.gc.disable()
    try:
        warm.preload(strict=False)
        assert not warm.gc.isenabled()  # a caller's choice is kept
    finally:
        warm.gc.enable()
        sys.modules.pop("helix_tf_test_cycles", None)


#: Run in a fresh interpreter: a package named like Keras' integrations imports two
#: stand-ins for their optional dependencies, then a module of nobody's does.
_EXTRAS = """
import json, sys, types
from pathlib import Path
root = Path(sys.argv[1])
for name in ('fake_sklearn', 'fake_plots'):
    (root / name).mkdir()
    (root / name / '__init__.py').write_text('LOADED = True\\n')
sys.path.insert(0, str(root))
import helix_tf.warm as w
w.KERAS_EXTRAS = (('keras.src.wrappers', 'fake_sklearn'), ('keras.src.visualization', 'fake_plots'))
w.skip_library_extras()
w.skip_library_extras()  # once is enough: not a second finder
seen = {'finders': sum(type(f).__name__ == '_SkipLibraryExtras' for f in sys.meta_path)}
for importer, code in (
    ('keras.src.wrappers.fixes', 'import fake_sklearn'),
    ('keras.src.visualization.plot_image_gallery', 'import fake_plots'),
    ('keras.src.wrappers_other', 'import fake_sklearn as again'),
):
    try:
        exec(code, {'__name__': importer})
        seen[importer] = 'loaded'
    except ImportError as exc:
        seen[importer] = 'refused: ' + str(exc)
        assert 'fake_sklearn' not in sys.modules or importer.endswith('other')
print(json.dumps(seen))
"""


def test_keras_extras_are_refused_to_keras_only(tmp_path: Path) -> None:
    """Keras' optional scikit-learn and matplotlib imports are skipped in helix-tf runs
    (~1 s of every TensorFlow import); anyone else importing them gets them."""
    seen = json.loads(_in_fresh_interpreter(_EXTRAS, str(tmp_path)).strip().splitlines()[-1])
    assert seen["finders"] == 1
    assert seen["keras.src.wrappers.fixes"].startswith("refused: fake_sklearn is not loaded")
    assert seen["keras.src.visualization.plot_image_gallery"].startswith("refused: fake_plots")
    # A package whose name only starts like Keras' (and a config, the report) loads it.
    assert seen["keras.src.wrappers_other"] == "loaded"


@pytest.mark.slow
def test_a_preloaded_process_has_neither_scikit_learn_nor_pyplot_and_users_still_can() -> None:
    code = (
        "import sys\n"
        "from helix_tf.warm import preload\n"
        "preload(strict=False)\n"
        "assert 'sklearn' not in sys.modules and 'matplotlib.pyplot' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('sklearn', 'matplotlib')))[:5]\n"
        "import keras.src.wrappers.fixes as fixes\n"
        "assert fixes.sklearn is None  # Keras' own branch for a machine without it\n"
        "import sklearn, matplotlib.pyplot  # a config may still use both\n"
    )
    _in_fresh_interpreter(code)


@pytest.mark.slow
def test_the_servers_tensorflow_part_loads_neither_pandas_nor_arrow_and_runs_still_can() -> None:
    """The server forks its trainer once TensorFlow, Keras and the trainer's modules are in
    (the first run waits for that): Keras' DataFrame slicing and Arrow's table types are
    not among them; the rest of the preload, and a config, import pandas as usual."""
    code = (
        "import sys\n"
        "from helix_tf.warm import preload\n"
        "preload(others=False)\n"
        "assert 'tensorflow' in sys.modules and 'helix_tf.server._trainer' in sys.modules\n"
        "loaded = sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "from keras.src.trainers.data_adapters import array_slicing\n"
        "assert array_slicing.pandas is None  # Keras' own branch for a machine without it\n"
        "preload()\n"
        "import pandas, pyarrow  # the runs' own, and a config's\n"
    )
    _in_fresh_interpreter(code)


def test_beams_mongodb_extras_are_skipped_silently_and_users_still_can() -> None:
    """``import apache_beam`` loads its MongoDB IO, which imports pymongo and bson when
    installed (~0.9 s); helix-tf processes skip them, without Beam's notice of it."""
    code = (
        "import importlib.util, logging, sys\n"
        "logging.basicConfig(level=logging.WARNING)  # a notice would reach stderr\n"
        "from helix_tf.warm import skip_library_extras\n"
        "skip_library_extras()\n"
        "import apache_beam\n"
        "from apache_beam.io import mongodbio\n"
        "assert mongodbio.MongoClient is None  # Beam's own branch for a machine without it\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pymongo', 'bson'))\n"
        "assert not loaded, loaded[:5]\n"
        "if importlib.util.find_spec('pymongo') is not None:\n"
        "    import pymongo  # a config may still use it\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "bson" not in done.stderr, done.stderr[-3000:]


#: Run in a fresh interpreter: the warm server's state (``preload``), then a run in a fork
#: of it per command line, as the server serves them; prints what each run imported.
_SERVED_IMPORTS = """
import json, os, sys
import helix_tf.warm as w
w.preload()
before = set(sys.modules)
for argv in json.loads(sys.argv[1]):
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        from helix_tf.cli import run_cli
        sys.stdout = open(os.devnull, 'w')
        code = run_cli(argv)
        os.write(wfd, json.dumps([code, sorted(set(sys.modules) - before)]).encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(r) as f:
        print(f.read())
    os.waitpid(pid, 0)
"""


@pytest.mark.slow
def test_a_run_forked_from_the_preloaded_server_imports_only_its_config(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    """What every run imports is imported once, by the server (each served run paid
    ~8 ms for the tables' rendering, which the command line imports lazily)."""
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = str(tmp_path / "store")
    first = subprocess.run(
        [sys.executable, "-m", "helix_tf", "run", str(config), "--store", store, "--no-server"],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    runs = [
        ["run", str(config), "--store", store, "--json"],  # evaluation only: all stored
        ["run", str(config), "--store", store, "--json", "-p", "epochs=2"],  # a learner edit
    ]
    env = {**os.environ, "HELIX_TF_SERVER": "off"}
    done = subprocess.run(
        [sys.executable, "-c", _SERVED_IMPORTS, json.dumps(runs)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(results) == len(runs)
    for code, imported in results:
        assert code == 0
        assert [m for m in imported if not m.startswith("helix_config_")] == []
