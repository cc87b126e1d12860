"""Which agents run on this machine (for ``agent status``/``stop`` without a config).

One small file per running agent in ``$HELIX_TF_AGENT_REGISTRY`` (default
``~/.cache/helix_tf/agents``), naming its store folder; entries of processes
that no longer exist are dropped when read.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

__all__ = ["register", "unregister", "running_homes"]

ENV = "HELIX_TF_AGENT_REGISTRY"


def _folder() -> Path:
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "helix_tf" / "agents")


def register(pid: int, home: Path) -> None:
    folder = _folder()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{pid}.json").write_text(json.dumps({"pid": pid, "home": str(home)}))


def unregister(pid: int) -> None:
    with contextlib.suppress(OSError):
        (_folder() / f"{pid}.json").unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_homes() -> list[Path]:
    """Store folders of the agents running now."""
    out = []
    folder = _folder()
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(entry["pid"])):
            out.append(Path(entry["home"]))
        else:
            with contextlib.suppress(OSError):
                f.unlink()
    return out
