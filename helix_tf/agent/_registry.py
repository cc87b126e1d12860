"""Which agents run on this machine (for ``agent status``/``stop`` without a config).

One small file per running agent in ``$HELIX_TF_AGENT_REGISTRY`` (default
``~/.cache/helix_tf/agents``), naming its store folder, the cores it pinned
itself to, and when its process started. An entry counts only while a process
with its pid *and its start time* exists: after a SIGKILL the pid may soon be
another program's, which must neither count as the agent nor be signalled as
one. Entries of processes that no longer exist are dropped when read.

Cores: an agent on ``--cores N`` pins itself to the last N cores no other
running agent holds (:func:`claim_cpus`); where fewer are free, to the ones
the fewest agents hold. Before, every agent took the last N cores, so two
agents with ``--cores 1`` shared one core while another stayed idle.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from helix_tf.identity import process_alive, process_start

__all__ = [
    "claim_cpus",
    "is_running",
    "process_start",
    "register",
    "running_homes",
    "running_pid_of",
    "unregister",
]

ENV = "HELIX_TF_AGENT_REGISTRY"


def _folder() -> Path:
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "helix_tf" / "agents")


def is_running(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` runs and, given its ``start`` time, is the same process."""
    return process_alive(pid, start)


def _write(pid: int, home: Path, cpus: Sequence[int]) -> None:
    folder = _folder()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        entry = {"pid": pid, "home": str(home), "start": process_start(pid), "cpus": list(cpus)}
        (folder / f"{pid}.json").write_text(json.dumps(entry))


def register(pid: int, home: Path, cpus: Sequence[int] = ()) -> None:
    _write(pid, home, cpus)


def unregister(pid: int) -> None:
    with contextlib.suppress(OSError):
        (_folder() / f"{pid}.json").unlink()


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Hold the registry's lock (two agents starting at once choose cores in turn)."""
    folder = _folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _entries() -> list[dict[str, Any]]:
    """The entries of running agents; those of ended processes are removed."""
    out = []
    folder = _folder()
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(f.read_text())
            pid = int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if is_running(pid, entry.get("start")):
            out.append(entry)
        else:
            with contextlib.suppress(OSError):
                f.unlink()
    return out


def claim_cpus(pid: int, home: Path, allowed: Sequence[int], count: int) -> list[int]:
    """Register agent ``pid`` and choose its ``count`` cores among ``allowed``.

    The last cores no other running agent holds; where fewer are free, the ones
    held by the fewest (then the last ones). Returns them sorted.
    """
    with _locked():
        held = collections.Counter(
            int(c) for e in _entries() if int(e["pid"]) != pid for c in e.get("cpus") or ()
        )
        ranked = sorted(allowed, key=lambda c: (held[c], -c))
        chosen = sorted(ranked[: max(1, count)])
        _write(pid, home, chosen)
    return chosen


def running_homes() -> list[Path]:
    """Store folders of the agents running now."""
    return [Path(e["home"]) for e in _entries()]


def running_pid_of(home: Path) -> tuple[int, int | None] | None:
    """The pid and start time of the agent running for store folder ``home``, if any."""
    target = os.path.realpath(home)
    for e in _entries():
        if os.path.realpath(e["home"]) == target:
            return int(e["pid"]), e.get("start")
    return None
