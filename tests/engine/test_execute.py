"""The engine's contract with its materializer: every member the engine reads is declared."""

from __future__ import annotations

import inspect

from helix_tf.engine.execute import Materializer
from helix_tf.reuse.materialize import MaterializationPolicy


def _members(cls: type) -> set[str]:
    return {n for n in vars(cls) if not n.startswith("_")}


def test_the_policy_provides_every_member_the_engine_reads() -> None:
    policy = MaterializationPolicy(
        policy="none", load_cost=lambda role, nbytes: 0.0, ancestors={}, history_compute={}
    )
    for name in _members(Materializer):
        assert hasattr(policy, name), name
        assert callable(getattr(Materializer, name)) == callable(getattr(policy, name)), name
    assert policy.writes_intermediates is False


def test_a_materializer_that_keeps_nothing_needs_only_decide() -> None:
    class Never(Materializer):
        def decide(self, node, result, results):  # type: ignore[no-untyped-def]
            return False

    never = Never()
    assert never.writes_intermediates is True
    assert never.recompute_cost("x", {}) is None
    assert not inspect.isabstract(Never)


def test_the_engine_reads_no_materializer_member_by_name() -> None:
    """``getattr(materializer, "...")`` hid what the engine needs; the base class says it."""
    from pathlib import Path

    import helix_tf.engine as engine_pkg

    for path in Path(engine_pkg.__file__).parent.glob("*.py"):
        assert "getattr(self.materializer" not in path.read_text(), path
        assert "getattr(self.ctx.materializer" not in path.read_text(), path


def test_every_role_table_step_has_an_executor() -> None:
    """A role is one table entry plus its executor: the engine has a step by each name."""
    from unittest import mock

    from helix_tf.engine._learning import LearningSteps
    from helix_tf.roles import PREPROCESS_STEP, ROLE_SPECS

    steps = LearningSteps(mock.Mock(), mock.Mock(), mock.Mock()).steps()
    for role, spec in ROLE_SPECS.items():
        assert spec.step == PREPROCESS_STEP or spec.step in steps, role


def test_a_write_with_no_room_in_scratch_names_the_folder_and_the_fix() -> None:
    """The message a step's write failure gets (``engine._outputs.no_room``): only a write
    failure, only once the store takes nothing more, only one that was not elsewhere (a
    temporary folder of Keras, say) names the scratch folder. EFBIG (``ulimit -f``) counts
    as no room; a background write's error is named by the OS error it wraps."""
    import errno
    from types import SimpleNamespace

    from helix_tf.engine._outputs import no_room as _no_room
    from helix_tf.engine._writer import BackgroundWriteError

    scratch = "/tmp/helix-run-x"

    def no_room(exc: BaseException, failure: str | None) -> str | None:
        outputs = SimpleNamespace(store_failure=failure, ctx=SimpleNamespace(scratch=scratch))
        return _no_room(outputs, exc)  # type: ignore[arg-type]

    too_large = OSError(errno.EFBIG, "File too large")
    said = no_room(too_large, "OSError: [Errno 27] File too large")
    assert said is not None and scratch in said and "ulimit -f" in said and "--scratch DIR" in said
    assert no_room(too_large, None) is None
    elsewhere = OSError(errno.ENOSPC, "No space left on device", "/tmp/keras-unpack")
    assert no_room(elsewhere, "full") is None
    assert no_room(ValueError("bad"), "full") is None
    wrapped = BackgroundWriteError("writing its output failed: OSError: ...", node="rows")
    wrapped.__cause__ = too_large
    said = no_room(wrapped, "full")
    assert said is not None and "(OSError: [Errno 27] File too large)" in said
