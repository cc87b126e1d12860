"""Fixtures of the compiler's tests."""

from __future__ import annotations

import itertools
import pathlib
import sys
import textwrap
import types

import pytest

_COUNTER = itertools.count()


def load_module(
    directory: pathlib.Path, source: str, inject: dict[str, object] | None = None
) -> types.ModuleType:
    """A module of ``source`` (dedented) in a new file of ``directory``, imported under a
    new name, with ``inject`` set among its names before it runs."""
    import importlib.util

    name = f"helix_compiler_case_{next(_COUNTER)}"
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(inject or {})
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load(tmp_path: pathlib.Path):
    loaded: list[str] = []

    def _load(source: str, **inject: object) -> types.ModuleType:
        module = load_module(tmp_path, source, inject)
        loaded.append(module.__name__)
        return module

    yield _load
    for name in loaded:
        sys.modules.pop(name, None)
