"""What code can reach beyond the names it reads: a module used as a whole, and files
named by a value passed to any call (QA pass 7).

Each case writes a small project (a config-like module with a UDF and helper modules
beside it), fingerprints the UDF, makes one edit a user makes between runs, imports
everything afresh (as the next run does) and requires the digest to change; the same
files imported twice must give the same digest (no needless recompute).

Before this pass, a module used as a whole was hashed by its own source only (an edit of
a module it imports, a value another module set on it, or data it loaded when imported
reused the stale result), and a file was hashed only when opened by ``open``/``Path.read_*``
or a ``read_*``/``load`` function of numpy, pandas or pyarrow (``gzip.open(P)``,
``zipfile.ZipFile(P)``, ``sqlite3.connect(P)`` and a folder listed by ``os.listdir`` or
``glob`` were not read as far as the fingerprint knew).
"""

from __future__ import annotations

import array
import bz2
import collections
import gzip
import importlib
import itertools
import lzma
import pathlib
import sqlite3
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helix_tf.compiler.hashing import CodeFingerprint, canonical_json, code_fingerprint

_COUNTER = itertools.count()
Project = Callable[[dict[str, str | bytes]], CodeFingerprint]


@pytest.fixture
def project(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """Write files into one folder and fingerprint ``main.udf``, every module imported
    afresh each time (module names are unique per test, so nothing leaks between tests)."""
    prefix = f"reach{next(_COUNTER)}_"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # rewritten within a second

    def fingerprint(files: dict[str, str | bytes]) -> CodeFingerprint:
        for name in [m for m in sys.modules if m.startswith(prefix)]:
            del sys.modules[name]
        importlib.invalidate_caches()
        for rel, content in files.items():
            path = tmp_path / rel.replace("{p}", prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content).replace("{p}", prefix))
        main = importlib.import_module(f"{prefix}main")
        return code_fingerprint(main.udf)

    yield fingerprint
    for name in [m for m in sys.modules if m.startswith(prefix)]:
        del sys.modules[name]


# ------------------------------------------------------------------ a module used as a whole

HELPER = """
from {p}consts import K

def f(x):
    return x * K
"""

#: Ways a UDF uses a helper module as a whole rather than through ``helper.name``.
WHOLE_USES = {
    "getattr-computed-name": """
        import {p}helper as helper

        def udf(x):
            return getattr(helper, "f" + "")(x)
        """,
    "passed-on": """
        import {p}helper as helper

        def apply(module, x):
            return module.f(x)

        def udf(x):
            return apply(helper, x)
        """,
    "vars": """
        import {p}helper as helper

        def udf(x):
            return vars(helper)["f"](x)
        """,
}


@pytest.mark.parametrize("use", sorted(WHOLE_USES))
def test_a_module_used_as_a_whole_is_hashed_with_what_it_imports(project: Project, use: str):
    files: dict[str, str | bytes] = {
        "{p}main.py": WHOLE_USES[use],
        "{p}helper.py": HELPER,
        "{p}consts.py": "K = 2\n",
    }
    before = project(files)
    assert project(files).digest == before.digest  # imported again, nothing edited
    assert not before.refusals
    after = project({**files, "{p}consts.py": "K = 3\n"})
    assert after.digest != before.digest


def test_a_module_used_as_a_whole_is_hashed_with_values_set_on_it(project: Project):
    """Another module sets the helper's constant when imported (a plugin, a settings
    module); only the setter's file changes."""
    files: dict[str, str | bytes] = {
        "{p}main.py": """
            import {p}helper as helper
            import {p}settings

            def udf(x):
                return getattr(helper, "f")(x)
            """,
        "{p}helper.py": "K = 1\n\ndef f(x):\n    return x * K\n",
        "{p}settings.py": "import {p}helper\n{p}helper.K = 2\n",
    }
    before = project(files)
    after = project({**files, "{p}settings.py": "import {p}helper\n{p}helper.K = 3\n"})
    assert after.digest != before.digest


def test_a_module_used_as_a_whole_is_hashed_with_data_it_loaded(project: Project):
    """A lookup table read from a file beside the module when it is imported."""
    files: dict[str, str | bytes] = {
        "{p}main.py": WHOLE_USES["passed-on"].replace("module.f(x)", "module.TABLE[x]"),
        "{p}helper.py": """
            import json, os

            with open(os.path.join(os.path.dirname(__file__), "table.json")) as fh:
                TABLE = json.load(fh)
            """,
        "table.json": '{"a": 1}',
    }
    before = project(files)
    assert project(files).digest == before.digest
    assert project({**files, "table.json": '{"a": 2}'}).digest != before.digest


def test_modules_used_as_a_whole_that_import_each_other(project: Project):
    files: dict[str, str | bytes] = {
        "{p}main.py": WHOLE_USES["passed-on"],
        "{p}helper.py": "import {p}other as other\n\nK = 1\n\ndef f(x):\n    return other.g(x)\n",
        "{p}other.py": "import {p}helper as helper\n\nM = 2\n\ndef g(x):\n    return x * M\n",
    }
    before = project(files)
    assert project(files).digest == before.digest
    assert not before.refusals
    edited = files["{p}other.py"]
    assert isinstance(edited, str)
    assert project({**files, "{p}other.py": edited.replace("M = 2", "M = 5")}).digest != (
        before.digest
    )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=st.integers(-3, 3), b=st.integers(-3, 3))
def test_the_digest_changes_exactly_when_the_imported_constant_does(
    project: Project, a: int, b: int
):
    """For every pair of values: same constant, same digest; another, another digest."""
    files: dict[str, str | bytes] = {
        "{p}main.py": WHOLE_USES["getattr-computed-name"],
        "{p}helper.py": HELPER,
    }
    first = project({**files, "{p}consts.py": f"K = {a}\n"}).digest
    second = project({**files, "{p}consts.py": f"K = {b}\n"}).digest
    assert (first == second) == (a == b)


# ------------------------------------------------------------ files named by any call's value


def _zip(text: str) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("k", text)
    return buffer.getvalue()


#: (how the UDF reads ``P``, the file's bytes for a value, the file name).
READERS: dict[str, tuple[str, Callable[[str], bytes], str]] = {
    "gzip.open": (
        "gzip.open(P, 'rt').read()",
        lambda t: gzip.compress(t.encode(), mtime=0),
        "k.gz",
    ),
    "bz2.open": ("bz2.open(P, 'rt').read()", lambda t: bz2.compress(t.encode()), "k.bz2"),
    "lzma.open": ("lzma.open(P, 'rt').read()", lambda t: lzma.compress(t.encode()), "k.xz"),
    "zipfile": ("zipfile.ZipFile(P).read('k')", _zip, "k.zip"),
    "reader-of-ones-own": ("read_number(P)", lambda t: t.encode(), "k.txt"),
    # QA pass 12: a path written as an f-string or a sum of known texts.
    "f-string": ("open(f'{P}', encoding='utf-8').read()", lambda t: t.encode(), "k.csv"),
    "concatenated": ("open('' + P, encoding='utf-8').read()", lambda t: t.encode(), "k.tsv"),
    # QA pass 17: files named by a list, tuple or set given to the call
    "fileinput-tuple": ("''.join(fileinput.input(files=(P,)))", lambda t: t.encode(), "k.in"),
    "list-constant": ("read_first(PATHS)", lambda t: t.encode(), "k.lst"),
    "set-literal": ("read_first({P})", lambda t: t.encode(), "k.set"),
}


@pytest.mark.parametrize("how", sorted(READERS))
def test_a_file_passed_to_any_call_is_hashed_by_content(
    project: Project, how: str, tmp_path: pathlib.Path
):
    call, encode, name = READERS[how]
    main = f"""
        import bz2, fileinput, gzip, lzma, os, zipfile

        P = os.path.join(os.path.dirname(__file__), {name!r})
        PATHS = [P]

        def read_number(path):
            return path  # what it does with the path is its own business

        def read_first(paths):
            return open(list(paths)[0]).read()

        def udf(x):
            return x * float({call})
        """
    files: dict[str, str | bytes] = {"{p}main.py": main, name: encode("2")}
    before = project(files)
    assert project(files).digest == before.digest
    assert any(f.path == str(tmp_path / name) for f in before.files)
    assert project({**files, name: encode("3")}).digest != before.digest


def test_a_sqlite_database_beside_the_code_is_hashed_by_content(
    project: Project, tmp_path: pathlib.Path
):
    main = """
        import os, sqlite3

        DB = os.path.join(os.path.dirname(__file__), "k.db")

        def udf(x):
            return x * sqlite3.connect(DB).execute("select k from t").fetchone()[0]
        """

    def database(k: int) -> bytes:
        path = tmp_path / "build.db"
        path.unlink(missing_ok=True)
        with sqlite3.connect(path) as con:
            con.execute("create table t(k)")
            con.execute("insert into t values (?)", (k,))
        con.close()
        return path.read_bytes()

    before = project({"{p}main.py": main, "k.db": database(2)})
    assert project({"{p}main.py": main, "k.db": database(3)}).digest != before.digest


#: Ways a UDF lists a folder of shards (``D``) or the files matching a pattern in it.
LISTINGS = {
    "os.listdir": "len(os.listdir(D))",
    "os.scandir": "len(list(os.scandir(D)))",
    "os.walk": "len(list(os.walk(D)))",
    "glob.glob": "len(glob.glob(os.path.join(D, '*.txt')))",
    "Path.iterdir": "len(list(pathlib.Path(D).iterdir()))",
    "Path.glob": "len(list(SHARDS.glob('*.txt')))",
}


@pytest.mark.parametrize("how", sorted(LISTINGS))
def test_a_folder_listed_by_code_is_hashed_by_its_files(project: Project, how: str):
    main = f"""
        import glob, os, pathlib

        D = os.path.join(os.path.dirname(__file__), "shards")
        SHARDS = pathlib.Path(D)

        def udf(x):
            return x * {LISTINGS[how]}
        """
    files: dict[str, str | bytes] = {"{p}main.py": main, "shards/a.txt": "1"}
    before = project(files)
    assert project(files).digest == before.digest
    assert not before.refusals  # a folder known at compile time is hashed, not refused
    assert project({**files, "shards/b.txt": "2"}).digest != before.digest  # a shard added
    assert project({**files, "shards/a.txt": "5"}).digest != before.digest  # a shard edited


def test_a_column_name_is_not_taken_for_a_file(
    project: Project, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
):
    """A text without a folder or a suffix is a name, even when a file in the working
    folder happens to be called so."""
    monkeypatch.chdir(tmp_path)
    main = """
        def udf(batch):
            return batch.get("age")
        """
    before = project({"{p}main.py": main, "age": "1"})
    assert not before.files
    assert project({"{p}main.py": main, "age": "2"}).digest == before.digest


# --------------------------------------------------------- a library reinstalled, same version


def _install(site: pathlib.Path, name: str, code: str) -> None:
    """Install ``name`` 1.0 into ``site`` as pip does: the package and a dist-info whose
    RECORD lists every file with its sha256."""
    import base64
    import hashlib

    package = site / name
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(code)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(code.encode()).digest()).rstrip(b"=")
    (info / "RECORD").write_text(
        f"{name}/__init__.py,sha256={digest.decode()},{len(code)}\n"
        f"{name}-1.0.dist-info/METADATA,,\n{name}-1.0.dist-info/RECORD,,\n"
    )


def test_a_library_reinstalled_with_other_code_under_the_same_version(
    project: Project, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
):
    """A team's own package, pip-installed (not editable) into site-packages, edited and
    installed again without a version bump: the version alone reused the old results."""
    from helix_tf.compiler.hashing import _origin

    name = f"teamlib{next(_COUNTER)}"
    site = tmp_path / "env" / "site-packages"  # a library by its location
    monkeypatch.syspath_prepend(str(site))
    main = f"""
        import {name}

        def udf(x):
            return {name}.scale(x)
        """

    def installed(factor: int) -> CodeFingerprint:
        _install(site, name, f"def scale(x):\n    return x * {factor}\n")
        for cached in ("_version_at", "_release_at"):
            getattr(getattr(_origin, cached, None), "cache_clear", lambda: None)()
        sys.modules.pop(name, None)
        return project({"{p}main.py": main})

    try:
        before = installed(2)
        assert installed(2).digest == before.digest  # the same files again: reused
        assert installed(3).digest != before.digest
    finally:
        sys.modules.pop(name, None)


def test_metadata_written_beside_a_package_is_read_as_a_fresh_process_reads_it(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
):
    """A Dataflow job submitted from a source tree runs its ``setup.py sdist``, which writes
    ``NAME.egg-info`` beside the package, ahead of the installed dist-info on the path: a
    fresh process identifies the package by it. A long-lived process kept the identity it
    had read first, so the same code had one fingerprint there and another in a fresh
    process (the test session after tests/scaleout/test_dataflow_job.py)."""
    import os
    import subprocess

    from helix_tf.compiler.hashing import _origin

    name = f"teamlib{next(_COUNTER)}"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    site = tmp_path / "env" / "site-packages"
    _install(site, name, "def scale(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(checkout))
    os.utime(checkout, ns=(0, 0))  # whatever the file system's timestamp resolution
    assert _origin._package_release(name).startswith("1.0 (files ")
    info = checkout / f"{name}.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from helix_tf.compiler.hashing import _origin; "
            "print(_origin._package_release(sys.argv[1]))",
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    ).stdout.strip()
    assert fresh == "1.0"  # an egg-info has no RECORD
    assert _origin._package_release(name) == fresh


# ------------------------------------------------------------- a compiled module of one's own

_EXTENSION = """
#include <Python.h>
static PyObject* k(PyObject* self, PyObject* args) { return PyLong_FromLong(%d); }
static PyMethodDef M[] = {{"k", k, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, "%s", NULL, -1, M};
PyMODINIT_FUNC PyInit_%s(void) { return PyModule_Create(&D); }
"""


def test_a_compiled_module_of_ones_own_is_hashed_by_its_bytes(
    project: Project, tmp_path: pathlib.Path
):
    """A C (or Cython) extension built in the project folder, rebuilt with another
    constant: its functions have no source, and its name and version ("unknown") stayed."""
    import shutil
    import subprocess
    import sysconfig

    include = sysconfig.get_paths()["include"]
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not (pathlib.Path(include) / "Python.h").exists():
        pytest.skip("no C compiler or Python headers to build an extension with")
    name = f"fastk{next(_COUNTER)}"
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    main = f"""
        import {name}

        def udf(x):
            return x * {name}.k()
        """

    def built(k: int) -> CodeFingerprint:
        source = tmp_path / f"{name}.c"
        source.write_text(_EXTENSION % (k, name, name))
        target = tmp_path / f"{name}{suffix}"
        target.unlink(missing_ok=True)
        subprocess.run(
            [compiler, "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)],
            check=True,
            capture_output=True,
        )
        sys.modules.pop(name, None)  # an extension cannot be reloaded: a fresh name each test
        return project({"{p}main.py": main})

    try:
        before = built(2)
        assert built(2).digest == before.digest
        assert built(3).digest != before.digest
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("write", ["np.save(OUT, x)", "pd.DataFrame({'x': [x]}).to_csv(OUT)"])
def test_a_file_the_code_writes_is_not_an_input(project: Project, write: str):
    """A debugging dump the UDF writes changes between runs; it is not what it reads."""
    main = f"""
        import os
        import numpy as np
        import pandas as pd

        OUT = os.path.join(os.path.dirname(__file__), "dump.npy")

        def udf(x):
            {write}
            return x
        """
    before = project({"{p}main.py": main, "dump.npy": b"first"})
    assert not before.files
    assert project({"{p}main.py": main, "dump.npy": b"second"}).digest == before.digest


# ------------------------------------------------- values of a class of one's own on a C type


class _Window(collections.deque):  # type: ignore[type-arg]
    """A user class on a C container: its items live outside ``__dict__``."""

    def total(self) -> float:
        return float(sum(self))


class _Numbers(array.array):  # type: ignore[type-arg]
    pass


class _Missing(Exception):
    pass


NATIVE = {
    "deque": lambda xs: _Window(xs),
    "array": lambda xs: _Numbers("d", xs),
    "exception": lambda xs: _Missing(*xs),
}


@pytest.mark.parametrize("kind", sorted(NATIVE))
@settings(max_examples=25, deadline=None)
@given(a=st.lists(st.integers(-5, 5), max_size=4), b=st.lists(st.integers(-5, 5), max_size=4))
def test_a_user_class_on_a_c_type_is_hashed_by_its_data(kind: str, a: list[int], b: list[int]):
    """For every pair of contents: equal data, equal form; other data, another form.
    Before, ``class Window(deque)`` (or on ``array.array``, ``Exception``) was hashed by
    its empty ``__dict__``: a UDF reading it reused results of other items."""
    make = NATIVE[kind]
    assert (canonical_json(make(a)) == canonical_json(make(b))) == (a == b)


def test_a_module_used_as_a_whole_hashes_alike_in_every_process(tmp_path: pathlib.Path):
    """No needless recompute: its names (a set of text, a logger, a class, a function) give
    the same digest under other hash seeds, the second process loading the first's .pyc."""
    from tests.compiler.test_hashing import _outputs_under_two_hash_seeds

    (tmp_path / "reach_whole_helper.py").write_text(
        "import logging\n\nLOG = logging.getLogger(__name__)\nWORDS = {'b', 'a', 'c'}\n\n"
        "class Scale:\n    k = 2\n\ndef f(x):\n    return x * Scale.k + len(WORDS)\n"
    )
    (tmp_path / "reach_whole_main.py").write_text(
        "import reach_whole_helper as helper\n\ndef udf(x):\n    return getattr(helper, 'f')(x)\n"
    )
    code = (
        "import reach_whole_main as m; from helix_tf.compiler.hashing import code_fingerprint; "
        "fp = code_fingerprint(m.udf); print(fp.digest, fp.refusals)"
    )
    outputs = _outputs_under_two_hash_seeds(tmp_path, code)
    assert len(outputs) == 1 and outputs.pop().endswith(" ()")


#: Ways a UDF reads a data file shipped inside a package of its own.
PACKAGE_READS = {
    "resources.files-joinpath": "importlib.resources.files('{p}lookups').joinpath('k.txt')"
    ".read_text()",
    "resources.files-module-div": "(importlib.resources.files(lookups) / 'k.txt').read_bytes()",
    "pkgutil.get_data": "pkgutil.get_data('{p}lookups', 'k.txt')",
}


@pytest.mark.parametrize("how", sorted(PACKAGE_READS))
def test_a_data_file_of_a_package_is_hashed_by_content(project: Project, how: str):
    main = f"""
        import importlib.resources
        import pkgutil

        import {{p}}lookups as lookups

        def udf(x):
            return x * float({PACKAGE_READS[how]})
        """
    files: dict[str, str | bytes] = {
        "{p}main.py": main,
        "{p}lookups/__init__.py": "",
        "{p}lookups/k.txt": "2",
    }
    before = project(files)
    assert project(files).digest == before.digest
    assert not before.refusals
    assert project({**files, "{p}lookups/k.txt": "3"}).digest != before.digest


@pytest.mark.parametrize(
    "call", ["os.getpid()", "os.getppid()", "threading.get_ident()", "threading.get_native_id()"]
)
def test_a_value_of_this_process_is_a_refusal(project: Project, call: str):
    """A generator seeded by the process id gives other draws in every run: its results
    are recomputed every run, never reused (it passed as seeded)."""
    main = f"""
        import os, threading

        import numpy as np

        def udf(x):
            return x + np.random.default_rng({call}).random()
        """
    refusals = project({"{p}main.py": main}).refusals
    assert refusals and call in refusals[0] and "every process" in refusals[0]


@pytest.mark.parametrize(
    ("call", "patched"),
    [
        ("socket.gethostname()", ("socket", "gethostname")),
        ("platform.node()", ("platform", "node")),
        ("getpass.getuser()", ("getpass", "getuser")),
        ("os.cpu_count()", ("os", "cpu_count")),
        ("os.getcwd()", ("os", "getcwd")),
    ],
)
def test_a_fact_of_the_machine_joins_the_digest_by_value(
    project: Project, monkeypatch: pytest.MonkeyPatch, call: str, patched: tuple[str, str]
):
    """Two machines (or users) sharing a store: a UDF computing with the host name, the
    user, the core count or the working folder gives each its own result."""
    from helix_tf.compiler.hashing import _effects

    main = f"""
        import getpass, os, platform, socket

        def udf(x):
            return x, {call}
        """
    name = call.removesuffix("()")

    def on(machine: str) -> CodeFingerprint:
        def fact() -> str:
            return machine

        monkeypatch.setattr(importlib.import_module(patched[0]), patched[1], fact)
        monkeypatch.setitem(getattr(_effects, "MACHINE_FACTS", {}), name, fact)
        return project({"{p}main.py": main})

    before = on("machine-a")
    assert on("machine-a").digest == before.digest
    assert not before.refusals
    assert on("machine-b").digest != before.digest


@pytest.mark.parametrize(
    "call",
    [
        "datetime.datetime.fromtimestamp(x).hour",
        "datetime.datetime.fromtimestamp(x, None).hour",
        "pd.Timestamp.fromtimestamp(x).hour",
        "time.localtime(x).tm_hour",
        "time.ctime(x)",
        "time.mktime(time.gmtime(x))",
    ],
)
def test_a_conversion_in_the_local_time_zone_joins_the_digest_by_zone(
    project: Project, monkeypatch: pytest.MonkeyPatch, call: str
):
    """``datetime.fromtimestamp(ts).hour`` is another hour in another zone: a run with
    another ``TZ`` (a colleague's machine sharing the store) loaded the first zone's
    result."""
    main = f"""
        import datetime, time
        import pandas as pd

        def udf(x):
            return {call}
        """

    def in_zone(zone: str) -> CodeFingerprint:
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        return project({"{p}main.py": main})

    try:
        before = in_zone("UTC")
        assert in_zone("UTC").digest == before.digest and not before.refusals
        assert in_zone("Asia/Tokyo").digest != before.digest
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_conversion_with_its_own_zone_does_not_read_the_local_one(
    project: Project, monkeypatch: pytest.MonkeyPatch
):
    main = """
        import datetime

        def udf(x):
            return datetime.datetime.fromtimestamp(x, tz=datetime.timezone.utc).hour
        """
    try:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        before = project({"{p}main.py": main})
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        assert project({"{p}main.py": main}).digest == before.digest
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("call", "reads"),
    [
        ("open(P).read()", True),
        ("open(P, 'r').read()", True),
        ("pathlib.Path(P).read_text()", True),
        ("open(P, encoding='utf-8').read()", False),
        ("open(P, 'rb').read().decode('utf-8')", False),
        ("pathlib.Path(P).read_text(encoding='latin-1')", False),
    ],
)
def test_text_decoded_by_the_locale_joins_the_digest_by_its_encoding(
    project: Project, monkeypatch: pytest.MonkeyPatch, call: str, reads: bool
):
    """``open(path).read()`` decodes with the locale's encoding: a machine (or shell) whose
    locale is Latin-1 reads other text from the same bytes than one in UTF-8."""
    from helix_tf.compiler.hashing import _effects

    main = f"""
        import pathlib

        P = pathlib.Path(__file__).with_name("words.txt")

        def udf(x):
            return x, {call}
        """

    def under(encoding: str) -> CodeFingerprint:
        monkeypatch.setitem(_effects.MACHINE_FACTS, _effects.LOCALE_TEXT, lambda: encoding)
        return project({"{p}main.py": main, "words.txt": "café\n"})

    before = under("UTF-8")
    assert under("UTF-8").digest == before.digest and not before.refusals
    assert (under("ISO-8859-1").digest != before.digest) is reads


def test_a_library_function_replaced_by_ones_own_is_hashed_by_its_code(project: Project):
    """A helper puts its own function in a library module's place (``np.log1p =
    patched``) and the UDF calls it through the library's name: the library was named with
    its version only, so an edit of the replacement kept the digest (QA pass 17)."""
    import statistics

    files: dict[str, str | bytes] = {
        "{p}main.py": """
            import statistics
            import {p}patch

            def udf(x):
                return statistics.qa17_scaled(x) + statistics.fmean([x])
            """,
        "{p}patch.py": "import statistics\n\ndef scaled(x):\n    return x * 2\n\n"
        "statistics.qa17_scaled = scaled\n",
    }
    try:
        before = project(files)
        assert project(files).digest == before.digest
        assert not before.refusals
        after = project({**files, "{p}patch.py": files["{p}patch.py"].replace("* 2", "* 3")})
        assert after.digest != before.digest
    finally:
        del statistics.qa17_scaled  # type: ignore[attr-defined]


#: Edits an outside tester made to what a UDF reaches (QA pass 21: each already changed
#: the digest; kept so that each still does): files read through ``__file__``, a helper
#: module's code. Name -> (files, the file edited, its new content).
OUTSIDE_EDITS: dict[str, tuple[dict[str, str | bytes], str, str | bytes]] = {
    "np.loadtxt beside the module": (
        {
            "{p}main.py": """
                import os
                import numpy as np
                P = os.path.join(os.path.dirname(__file__), "w.txt")

                def udf(x):
                    return x * np.loadtxt(P)[()]
                """,
            "w.txt": "2\n",
        },
        "w.txt",
        "3\n",
    ),
    "np.load of an .npy file": (
        {
            "{p}main.py": """
                import pathlib
                import numpy as np
                P = pathlib.Path(__file__).parent / "w.npy"

                def udf(x):
                    return x * np.load(P)[0]
                """,
            "w.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }                                                            \n\x00\x00\x00\x00\x00\x00\x00@",
        },
        "w.npy",
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }                                                            \n\x00\x00\x00\x00\x00\x00\x08@",
    ),
    "pickle.load of an open file": (
        {
            "{p}main.py": """
                import os
                import pickle
                P = os.path.join(os.path.dirname(__file__), "k.pkl")

                def udf(x):
                    with open(P, "rb") as fh:
                        return x * pickle.load(fh)
                """,
            "k.pkl": b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00G@\x00\x00\x00\x00\x00\x00\x00.",
        },
        "k.pkl",
        b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00G@\x08\x00\x00\x00\x00\x00\x00.",
    ),
    "a lambda's default from a helper": (
        {
            "{p}main.py": "import {p}h\n\nudf = lambda x, k={p}h.K: x * k\n",
            "{p}h.py": "K = 2.0\n",
        },
        "{p}h.py",
        "K = 3.0\n",
    ),
    "a helper's keyword-only default": (
        {
            "{p}main.py": "import {p}h\n\ndef udf(x):\n    return {p}h.g(x)\n",
            "{p}h.py": "def g(v, *, k=2.0):\n    return v * k\n",
        },
        "{p}h.py",
        "def g(v, *, k=3.0):\n    return v * k\n",
    ),
    "a helper made by exec": (
        {
            "{p}main.py": "import {p}h\n\ndef udf(x):\n    return {p}h.g(x)\n",
            "{p}h.py": "exec('def g(v):\\n    return v * 2.0')\n",
        },
        "{p}h.py",
        "exec('def g(v):\\n    return v * 3.0')\n",
    ),
    "a method of a helper's instance, in a base class of another module": (
        {
            "{p}main.py": "import {p}h\n\ndef udf(x):\n    return {p}h.SCALER.apply(x)\n",
            "{p}h.py": "from {p}base import Base\n\nclass Scaler(Base):\n"
            "    def __init__(self, k):\n        self.k = k\n\nSCALER = Scaler(2.0)\n",
            "{p}base.py": "class Base:\n    def apply(self, v):\n        return v * self.k\n",
        },
        "{p}base.py",
        "class Base:\n    def apply(self, v):\n        return v + self.k\n",
    ),
}


@pytest.mark.parametrize("edit", sorted(OUTSIDE_EDITS))
def test_an_outside_testers_edit_of_what_a_udf_reaches_changes_its_digest(
    project: Project, edit: str
) -> None:
    files, edited, content = OUTSIDE_EDITS[edit]
    before = project(files)
    assert project(files).digest == before.digest
    assert not before.refusals
    assert project({**files, edited: content}).digest != before.digest
