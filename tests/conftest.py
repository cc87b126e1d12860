"""Shared fixtures: small census data (cut from the shared copy, or generated), config files
written into a temporary folder, an isolated artifact store per test.

Nothing here downloads anything. The shared data folder is ``../shared/data`` next to the
project root; tests that need it skip with the reason when it is absent.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import string
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis fails an example slower than 200 ms (its default deadline), and a test whose
# data generation is slow (the too_slow health check): both are the machine's load, not
# the rule tested. The profile is every test's default; a test's @settings adds to it.
settings.register_profile("helix_tf", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("helix_tf")

#: Variables of the machine that change what helix_tf does (a team database, a data
#: folder, a user name, a warm server's folder, training settings, a TensorFlow cluster, a
#: GCS endpoint): the tests start without them, as on CI's clean machine, and a test
#: that needs one sets it (``monkeypatch.setenv``, a subprocess's ``env``). Before, a
#: developer's ``HELIX_TF_METADATA`` sent every test's runs to the team's database, and
#: an inherited ``TF_CONFIG`` made every run a multi-worker one.
INHERITED_PREFIXES = ("HELIX_TF_", "HELIX_EAGER_")
INHERITED_NAMES = ("TF_CONFIG", "STORAGE_EMULATOR_HOST")


def _scrub_inherited(environ: Any) -> list[str]:
    """Remove the variables above from ``environ``; return their names."""
    gone = sorted(k for k in environ if k.startswith(INHERITED_PREFIXES) or k in INHERITED_NAMES)
    for k in gone:
        del environ[k]
    return gone


SCRUBBED = _scrub_inherited(os.environ)
# No helix-tf process a test starts may start a warm server that outlives the tests (they
# would find a terminal when pytest runs in one). The server tests pass their own value
# and an isolated HELIX_TF_SERVER_DIR.
os.environ["HELIX_TF_SERVER"] = "off"
#: The session's own folder for what is otherwise the machine's: the warm server's
#: socket folder and the agents' registry. A test that forgets to isolate them sees this
#: session's only, never a developer's running server or agents (nor stops them).
SESSION_HOME = Path(tempfile.mkdtemp(prefix="helix-tests-"))
os.environ["HELIX_TF_SERVER_DIR"] = str(SESSION_HOME / "server")
os.environ["HELIX_TF_AGENT_REGISTRY"] = str(SESSION_HOME / "agents")

_OWNER = os.getpid()

#: A suite started in the background of a script (``pytest &`` in a non-interactive
#: shell, nohup) has Ctrl-C ignored, and every process a test starts inherits that: the
#: tests that press Ctrl-C in a run would see it finish instead. A terminal's Ctrl-C is
#: what they test, so the session takes it back (its processes then start with the
#: default, as from a terminal).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: Every test item the session collected, before ``-m``, ``-k`` and ``--deselect`` left
#: some out (tests/test_ci_selection.py reads the markers of the whole suite from it).
COLLECTED = pytest.StashKey[list[pytest.Item]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the collected items before the marker and keyword selections deselect any."""
    config.stash[COLLECTED] = list(items)


def pytest_report_header() -> str | None:
    """Say which of the machine's settings the tests ignore (none on a clean machine)."""
    return f"ignored from the environment: {', '.join(SCRUBBED)}" if SCRUBBED else None


@atexit.register
def _remove_session_home() -> None:
    if os.getpid() == _OWNER:  # not in a child forked from this process
        shutil.rmtree(SESSION_HOME, ignore_errors=True)


SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
SHARED_CENSUS = SHARED_DATA / "census"
SHARED_SMS = SHARED_DATA / "sms_spam"

#: Rows cut from each real census file (the tests stay fast; the format stays real).
CUT_TRAIN_ROWS = 400
CUT_TEST_ROWS = 200

#: The header every generated config starts with.
CONFIG_HEADER = """\
from helix_tf import Workflow, learners, metrics, sources
from helix_tf import features as F
from helix_tf.sample_data import CENSUS_COLUMNS, CENSUS_CSV_OPTIONS
"""

#: A tiny census workflow: two numeric and two vocabulary features, a one-epoch linear model.
#: ``$train`` and ``$test`` are replaced by the data files.
TINY_CENSUS = """\
PARAMS = {"epochs": 1}


def workflow(params):
    wf = Workflow("tiny_census")
    wf.source("rows", sources.Csv(train=r"$train", test=r"$test", **CENSUS_CSV_OPTIONS))
    age = wf.feature("age", F.Numeric("age"))
    hours = wf.feature("hours", F.Numeric("hours_per_week"))
    education = wf.feature("education", F.Vocabulary("education"))
    occupation = wf.feature("occupation", F.Vocabulary("occupation"))
    examples = wf.examples(
        "examples", [age, hours, education, occupation], label=F.Label("income", positive=">50K")
    )
    model = wf.train(
        "learner", examples, learners.Linear(epochs=params.epochs, batch_size=128, learning_rate=0.05)
    )
    predictions = wf.predict("predictions", model, examples)
    wf.output(wf.evaluate("evaluation", predictions, metrics.Accuracy(), metrics.AUC()))
    return wf
"""


def write_config(folder: Path, body: str, *, name: str = "cfg.py", **subs: object) -> Path:
    """Write a config module ``folder/name``: :data:`CONFIG_HEADER` plus ``body``.

    ``body`` is dedented; ``$key`` placeholders are replaced by ``subs`` (``string.Template``,
    so braces in the Python code need no escaping). Returns the file's path.
    """
    text = string.Template(textwrap.dedent(body)).substitute({k: str(v) for k, v in subs.items()})
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG_HEADER + "\n" + text, encoding="utf-8")
    return path


def _cut(src: Path, dst: Path, rows: int, *, junk_first_line: bool) -> None:
    """Copy the junk first line (if any) and ``rows`` data lines, ending with a blank line."""
    with open(src, encoding="utf-8") as f:
        lines = f.read().split("\n")
    head = lines[:1] if junk_first_line else []
    body = [line for line in lines[len(head) :] if line.strip()][:rows]
    dst.write_text("\n".join([*head, *body]) + "\n\n", encoding="utf-8")


@pytest.fixture(scope="session")
def census_cut(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A few hundred real census rows cut from the shared copy, in the real format.

    ``adult.test`` keeps its junk first line and its labels ending in ".", both files end
    with a blank line, missing values stay empty fields.
    """
    data, test = SHARED_CENSUS / "adult.data", SHARED_CENSUS / "adult.test"
    if not data.is_file() or not test.is_file():
        pytest.skip(f"the shared UCI Adult files are not in {SHARED_CENSUS}")
    folder = tmp_path_factory.mktemp("census_cut")
    _cut(data, folder / "adult.data", CUT_TRAIN_ROWS, junk_first_line=False)
    _cut(test, folder / "adult.test", CUT_TEST_ROWS, junk_first_line=True)
    return folder / "adult.data", folder / "adult.test"


@pytest.fixture(scope="session")
def census_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Generated census-like files (600 train, 300 test rows) in the exact UCI format."""
    from helix_tf.sample_data import write_census_like

    folder = tmp_path_factory.mktemp("census_like")
    return write_census_like(folder, train_rows=600, test_rows=300, seed=0)


@pytest.fixture(scope="session")
def sms_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated SMSSpamCollection of 400 messages."""
    from helix_tf.sample_data import write_sms_like

    return write_sms_like(tmp_path_factory.mktemp("sms_like"), messages=400, seed=0)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    """``make_config(body, name="cfg.py", **subs)`` writes a config into ``tmp_path``."""

    def make(body: str, *, name: str = "cfg.py", **subs: object) -> Path:
        return write_config(tmp_path, body, name=name, **subs)

    return make


@pytest.fixture
def tiny_census_config(tmp_path: Path, census_like: tuple[Path, Path]) -> Path:
    """:data:`TINY_CENSUS` on the generated census data, written into ``tmp_path``."""
    train, test = census_like
    return write_config(tmp_path, TINY_CENSUS, train=train, test=test)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An isolated artifact store (and metadata database) for one test."""
    return str(tmp_path / "store")


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ignore an inherited ``$HELIX_TF_DATA`` (for tests of the default data folder)."""
    monkeypatch.delenv("HELIX_TF_DATA", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _no_settings_file_above_the_tests(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A ``helix_tf.toml`` above the tests' temporary folder (a stray ``/tmp/helix_tf.toml``)
    would be every test config's project settings (runs are found by walking up from the
    config's folder): stop with its name instead of letting it change what tests do."""
    from helix_tf.settings import find_settings_file

    found = find_settings_file(tmp_path_factory.getbasetemp())
    if found is not None:
        pytest.exit(
            f"{found} would be the project settings of every test's config (it is above "
            "the tests' temporary folder); move it away, or run pytest with "
            "--basetemp=<a folder with no helix_tf.toml above it>",
            returncode=4,
        )


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI reconfigures logging (a rich handler on the root, levels); undo that per test."""
    root = logging.getLogger()
    helix = logging.getLogger("helix_tf")
    root_level, helix_level = root.level, helix.level
    yield
    for h in list(root.handlers):
        if type(h).__name__ == "RichHandler":
            root.removeHandler(h)
    root.setLevel(root_level)
    helix.setLevel(helix_level)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for the session (see tests/_postgres.py).

    Skips when the server binaries or the psycopg driver are absent.
    """
    import importlib.util

    from tests._postgres import find_binaries, running_server

    binaries = find_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed")
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip('the PostgreSQL driver is not installed: pip install "psycopg[binary]"')
    with running_server(binaries) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()
