"""The library versions in learning and preprocessing fingerprints (``compiler._runtime``)
follow what is installed, in a process that lives across an install (the warm server's
runs, the agent, a notebook) as in a fresh one.

Before, they were read once per process: a process that lived across ``pip install`` of
another version kept fingerprinting with the old one, so a fresh process's results under
the new version and this one's disagreed, and results computed before the install could be
taken for the new version's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helix_tf.compiler import _runtime
from helix_tf.roles import Stage

NAME = "helixfakelib"


def _install(site: Path, version: str, *, code: str = "") -> None:
    """Install ``NAME`` ``version`` into ``site`` as pip does: the package, and a dist-info
    that replaces the one of the version before."""
    for old in site.glob(f"{NAME}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    (site / NAME).mkdir(parents=True, exist_ok=True)
    (site / NAME / "__init__.py").write_text(code)
    info = site / f"{NAME}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{NAME}/__init__.py,,\n")
    stamp = site.stat().st_mtime_ns + 1_000_000_000  # coarse file-system clocks
    os.utime(site, ns=(stamp, stamp))


def _fresh(site: Path) -> str:
    """The version a fresh process fingerprints the preprocessing with."""
    code = (
        "from helix_tf.compiler import _runtime\n"
        f"_runtime.LIBRARIES['preprocess'] = (*_runtime.LIBRARIES['preprocess'], {NAME!r})\n"
        f"print(_runtime.runtime_identity('preprocess')['libraries'][{NAME!r}])\n"
    )
    path = os.pathsep.join([str(site), *sys.path])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "env" / "site-packages"
    folder.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(folder))
    libraries = (*_runtime.LIBRARIES[Stage.PREPROCESS], NAME)
    monkeypatch.setitem(_runtime.LIBRARIES, Stage.PREPROCESS, libraries)
    monkeypatch.delitem(sys.modules, NAME, raising=False)
    return folder


def _version() -> str:
    return _runtime.runtime_identity(Stage.PREPROCESS)["libraries"][NAME]


def test_an_install_during_the_process_is_read_as_a_fresh_process_reads_it(site: Path) -> None:
    _install(site, "1.0")
    _runtime.read_versions()  # what the warm server does before it forks its runs
    assert _version() == "1.0" == _fresh(site)
    _install(site, "2.0")
    assert _version() == "2.0" == _fresh(site)
    _install(site, "1.0")  # a downgrade too
    assert _version() == "1.0"


def test_a_library_loaded_before_an_install_is_identified_by_the_loaded_version(
    site: Path,
) -> None:
    """The process still computes with the code it imported: its results must not be
    stored under the new version's fingerprint (a fresh process computes with the new)."""
    _install(site, "1.0", code='__version__ = "1.0"\n')
    __import__(NAME)
    assert _version() == "1.0"
    _install(site, "2.0", code='__version__ = "2.0"\n')
    assert _version() == "2.0 (loaded 1.0)"
    assert _fresh(site) == "2.0"
