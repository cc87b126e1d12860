"""The spare's wait: pages a run would copy are copied ahead, and nothing else changes."""

from __future__ import annotations

import socket
import sys
import types
from collections.abc import Iterator

import pytest

from helix_tf.server import _spare

#: Every attribute looked up on a class of :class:`_Watched`.
_LOOKED_UP: list[str] = []


class _Watched(type):
    """A metaclass that records every attribute looked up on its classes."""

    def __getattribute__(cls, name: str) -> object:
        _LOOKED_UP.append(name)
        return super().__getattribute__(name)


@pytest.fixture
def package() -> Iterator[types.ModuleType]:
    """A package ``helix_prefault_demo`` whose module ``__getattr__`` and metaclass record
    every lookup the spare's touching would make."""
    calls: list[str] = []
    module = types.ModuleType("helix_prefault_demo")

    def lazy(name: str) -> object:
        calls.append(name)
        raise AttributeError(name)

    module.__getattr__ = lazy  # type: ignore[method-assign]
    module.calls = calls  # type: ignore[attr-defined]
    module.Watched = _Watched("Watched", (), {"x": 1})  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    _LOOKED_UP.clear()
    try:
        yield module
    finally:
        del sys.modules[module.__name__]


def test_a_waiting_spare_touches_the_packages_modules_and_runs_no_code_of_theirs(
    package: types.ModuleType,
) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        before = set(sys.modules)
        assert _spare._prefault(theirs, ("helix_prefault_demo",)) == 1
        assert set(sys.modules) == before  # nothing imported
        assert package.calls == []  # no module __getattr__
        assert _LOOKED_UP == []  # no metaclass lookup
        assert "helix_tf.server._spare" in sys.modules
        assert _spare._prefault(theirs) >= 1  # the real packages: this module at least


def test_a_spare_stops_touching_as_soon_as_a_run_is_handed_to_it(
    package: types.ModuleType,
) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"x")  # a request waits: the run must not wait for the touching
        assert _spare._prefault(theirs, ("helix_prefault_demo",)) == 0
        assert theirs.recv(1) == b"x"  # and the request is still there to read
