"""Ctrl-C inside a library is the user's interrupt, never a node's failure.

A KeyboardInterrupt that lands inside Beam's runner or Keras' loop often surfaces as
another error raised while it unwinds (Beam: "RuntimeError: release unlocked lock");
reported as "the Beam pipeline failed", the run exited 1 and was recorded failed.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from helix_tf.engine._preprocess import unwrap_runner_error
from helix_tf.engine.execute import _run_step
from helix_tf.errors import ExecutionError, interrupted


def _raised_while_interrupted(kind: type[Exception] = RuntimeError) -> Exception:
    try:
        try:
            raise KeyboardInterrupt
        finally:
            raise kind("release unlocked lock")
    except Exception as exc:
        return exc


def _rewrapped(exc: Exception) -> Exception:
    """As Beam re-raises a DoFn's error: the same type, a longer message, ``from``."""
    try:
        raise type(exc)(f"{exc} [while running 'Read[rows]']") from exc
    except Exception as wrapped:
        return wrapped


def test_interrupted_finds_ctrl_c_anywhere_in_the_chain() -> None:
    assert interrupted(KeyboardInterrupt())
    assert interrupted(_raised_while_interrupted())
    assert interrupted(_rewrapped(_raised_while_interrupted(ValueError)))
    assert not interrupted(_rewrapped(RuntimeError("a real failure")))
    loop = RuntimeError("cycle")
    loop.__context__ = ValueError("back")
    loop.__context__.__context__ = loop
    assert not interrupted(loop)


@pytest.mark.parametrize(
    "make", [_raised_while_interrupted, lambda: _rewrapped(_raised_while_interrupted())]
)
def test_a_pipeline_error_raised_by_ctrl_c_is_reported_as_the_interrupt(make) -> None:
    assert isinstance(unwrap_runner_error(make()), KeyboardInterrupt)


def test_a_real_pipeline_error_is_still_reported_as_one() -> None:
    error = unwrap_runner_error(_rewrapped(RuntimeError("disk on fire")))
    assert isinstance(error, ExecutionError)
    assert "the Beam pipeline failed: RuntimeError: disk on fire" in str(error)


class _Node:
    name = "learner"


#: A run's outputs whose store takes data (so a step's failure is said as it is).
_OUTPUTS = SimpleNamespace(store_failure=None, ctx=SimpleNamespace(scratch="/scratch"))


def test_a_step_error_raised_by_ctrl_c_is_the_interrupt_not_the_nodes_failure() -> None:
    def step(node: object) -> None:
        raise _raised_while_interrupted()

    with pytest.raises(KeyboardInterrupt):
        _run_step(step, _Node(), _OUTPUTS)  # type: ignore[arg-type]

    def failing(node: object) -> None:
        raise RuntimeError("bad weights")

    with pytest.raises(ExecutionError, match="RuntimeError: bad weights"):
        _run_step(failing, _Node(), _OUTPUTS)  # type: ignore[arg-type]
