"""docs/guide.md works as written: its files are written and its commands run, in order.

Blocks of the guide, in order: a ```python block whose first line is ``# file: NAME``
is written to NAME; one starting ``# in NAME, replace the line`` replaces the lines up
to ``# with`` by the lines after it (the old text must occur exactly once); a ```bash
block is run with bash in the guide's folder (``text`` blocks are only shown). Each
command must exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "guide.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def guide_steps() -> list[tuple[str, str]]:
    """(language, body) of every code block of the guide, in order."""
    return [(m[1], m[2]) for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]


def test_the_guide_has_files_edits_and_commands() -> None:
    steps = guide_steps()
    assert any(lang == "bash" for lang, _ in steps)
    assert any(body.startswith("# file: ") for lang, body in steps if lang == "python")
    assert {lang for lang, _ in steps} <= {"bash", "python", "text"}


def _apply(folder: Path, body: str) -> None:
    first, _, rest = body.partition("\n")
    if first.startswith("# file: "):
        (folder / first.removeprefix("# file: ").strip()).write_text(rest)
        return
    m = re.fullmatch(r"# in (\S+), replace the line", first)
    assert m, f"a python block must start with '# file: NAME' or '# in NAME, ...': {first}"
    old, sep, new = rest.partition("# with\n")
    assert sep, "an edit block needs a '# with' line"
    path = folder / m[1]
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {m[1]}"
    path.write_text(text.replace(old, new))


@pytest.mark.slow
def test_every_command_of_the_guide_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIX_TF")}
    env.update(
        PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]),
        PYTHONPATH=str(ROOT),
        HELIX_TF_SERVER="off",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    for lang, body in guide_steps():
        if lang == "python":
            _apply(tmp_path, body)
        elif lang == "bash":
            done = subprocess.run(
                ["bash", "-e", "-c", body],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"$ {body}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
