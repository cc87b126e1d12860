"""Optional dependencies: a missing one names the extra that installs it, and every
import of one goes through ``helix_tf._optional`` (so none is left bare)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from helix_tf import _optional
from helix_tf._optional import OPTIONAL, MissingDependencyError
from helix_tf.errors import HelixError
from tests.conftest import ROOT


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib as if not installed: importing it raises ImportError."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_the_report_without_matplotlib_names_the_report_extra(
    no_matplotlib: None, tmp_path: Path
) -> None:
    from helix_tf.report import render_report
    from helix_tf.reuse.metadata import MetadataStore
    from tests.test_report import V1, record

    with MetadataStore(f"sqlite:///{tmp_path}/helix.db") as store:
        record(store, V1, {}, wall=1.0, metrics={"accuracy": 0.8})
        with pytest.raises(MissingDependencyError, match=r"pip install 'helix-tf\[report\]'"):
            render_report("census", store)


def test_a_view_without_matplotlib_names_the_report_extra(no_matplotlib: None) -> None:
    with pytest.raises(HelixError, match=r"helix_tf.views draws its figures with matplotlib"):
        _optional.agg_figure(1, 1, purpose="helix_tf.views draws its figures")
    with pytest.raises(ImportError):  # still an ImportError for code that catches those
        _optional.optional_import("matplotlib.figure", purpose="x")


def _setup_requirements() -> tuple[set[str], set[str]]:
    """Top-level names of install_requires and of every extra, from setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    core: set[str] = set()
    extras: set[str] = set()

    def names(node: ast.AST) -> set[str]:
        out = set()
        for c in ast.walk(node):
            if isinstance(c, ast.Constant) and isinstance(c.value, str):
                out.add(c.value.split("[")[0].split(">")[0].split("=")[0].strip().lower())
        return out

    for call in ast.walk(tree):
        if isinstance(call, ast.Call):
            for kw in call.keywords:
                if kw.arg == "install_requires":
                    core |= names(kw.value)
                elif kw.arg == "extras_require":
                    extras |= names(kw.value)
    return core, extras


def test_every_optional_package_is_an_extra_and_imported_through_the_guard() -> None:
    core, extras = _setup_requirements()
    for top, (extra, requirement) in OPTIONAL.items():
        assert requirement.split("[")[0].split(">")[0] in extras, (top, extra)
        assert top not in core
    bare = []
    for path in sorted((ROOT / "helix_tf").rglob("*.py")):
        if path.name == "_optional.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            bare += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {t}" for t in tops if t in OPTIONAL
            ]
    assert not bare, "import these through helix_tf._optional.optional_import: " + "; ".join(bare)
