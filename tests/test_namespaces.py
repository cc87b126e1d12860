"""Every public namespace of ``helix_tf`` imports both ways, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import helix_tf

MODULES = [
    name for name in helix_tf.__all__ if isinstance(getattr(helix_tf, name), types.ModuleType)
]


def test_every_module_in_all_is_a_public_namespace() -> None:
    assert sorted(MODULES) == sorted(helix_tf.PUBLIC_NAMESPACES)


@pytest.mark.parametrize("name", MODULES)
def test_namespace_imports_both_ways(name: str) -> None:
    code = (
        f"import helix_tf.{name} as a\n"
        f"from helix_tf import {name} as b\n"
        "assert a is b, (a, b)\n"
        "ns = {}\n"
        f"exec('from helix_tf.{name} import *', ns)\n"
        "missing = [n for n in a.__all__ if n not in ns]\n"
        "assert not missing, missing\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


MISSPELLED = {"sources": "CSV", "features": "Numerc", "learners": "Liner", "metrics": "AUCC"}
CLOSEST = {"sources": "Csv", "features": "Numeric", "learners": "Linear", "metrics": "AUC"}


@pytest.mark.parametrize("name", MODULES)
def test_a_misspelled_name_says_which_names_there_are(name: str) -> None:
    """``metrics.AUCC`` in a config: the closest public name and all of them, not
    Python's bare "module 'helix_tf.components.metrics' has no attribute"."""
    module = getattr(helix_tf, name)
    with pytest.raises(AttributeError) as info:
        getattr(module, MISSPELLED[name])
    text = str(info.value)
    assert text.startswith(f"helix_tf.{name} has no {MISSPELLED[name]!r}")
    assert f"(did you mean {CLOSEST[name]!r}?)" in text
    assert all(n in text for n in module.__all__ if not n.startswith("_"))
    assert not hasattr(module, "__wrapped__")  # Python's own probes still just fail
