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
