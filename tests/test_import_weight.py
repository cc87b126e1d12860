"""Importing the API, the CLI, the compiler and the planner loads neither TensorFlow nor Beam.

Each check runs in a fresh interpreter: a test process has long imported both.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import helix_tf.reuse
from tests.conftest import ROOT, TINY_CENSUS, write_config

HEAVY = ("tensorflow", "keras", "apache_beam")

REUSE_MODULES = sorted(
    f"helix_tf.reuse.{m.name}" for m in pkgutil.iter_modules(helix_tf.reuse.__path__)
)

REPORT = (
    "import json, sys\n"
    f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
    "print(json.dumps(heavy))\n"
)


def _heavy_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\n" + REPORT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_reuse_package_has_modules() -> None:
    assert {"helix_tf.reuse.store", "helix_tf.reuse.solver", "helix_tf.reuse.metadata"} <= set(
        REUSE_MODULES
    )


@pytest.mark.parametrize(
    "modules",
    [
        ["helix_tf", "helix_tf.api", "helix_tf.cli", "helix_tf.compiler.graph", *REUSE_MODULES],
        ["helix_tf.config", "helix_tf.workflow", "helix_tf.components.features"],
    ],
    ids=["api_cli_compiler_reuse", "config_and_specs"],
)
def test_imports_load_neither_tensorflow_nor_beam(modules: list[str]) -> None:
    code = "\n".join(f"import {m}" for m in modules) + "\nimport helix_tf\nhelix_tf.run\n"
    assert _heavy_after(code) == []


def test_plan_and_history_commands_load_neither_tensorflow_nor_beam(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = tmp_path / "store"
    code = (
        "from click.testing import CliRunner\n"
        "from helix_tf.cli import main\n"
        f"args = [{str(config)!r}, '--store', {str(store)!r}, '--json']\n"
        "r = CliRunner().invoke(main, ['plan', *args])\n"
        "assert r.exit_code == 0, (r.output, r.exception)\n"
        "# plan creates no store, so history answers that nothing has run into it\n"
        "r = CliRunner().invoke(main, ['history', *args])\n"
        "assert r.exit_code == 1 and 'nothing has run into it yet' in r.output, r.output\n"
    )
    assert _heavy_after(code) == []


def test_the_check_sees_a_heavy_import() -> None:
    assert _heavy_after("import apache_beam") == ["apache_beam"]


def test_no_change_rerun_loads_neither_tensorflow_nor_beam(
    tmp_path: Path, census_like: tuple[Path, Path]
) -> None:
    from helix_tf import api

    config = write_config(tmp_path, TINY_CENSUS, train=census_like[0], test=census_like[1])
    store = str(tmp_path / "store")
    first = api.run(config, store=store)  # in this process: computes everything
    code = (
        "from helix_tf import api\n"
        f"r = api.run({str(config)!r}, store={store!r})\n"
        "assert {n.state for n in r.nodes} <= {'load', 'prune'}, r\n"
        f"assert r.metrics == {first.metrics!r}, r.metrics\n"
    )
    assert _heavy_after(code) == []
