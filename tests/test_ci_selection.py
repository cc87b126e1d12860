"""README's list of the tests CI skips is the list pytest selects as ``slow and not ci``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

START, END = "<!-- ci-skips: start -->", "<!-- ci-skips: end -->"


def readme_list() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md lost its {START} … {END} block"
    block = text.split(START, 1)[1].split(END, 1)[0]
    return set(re.findall(r"`(tests/[^`]+::[^`]+)`", block))


def skipped_by_ci() -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "slow and not ci",
            "-p",
            "no:cacheprovider",
            "tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HELIX_TF_SERVER": "off"},
        check=False,
        timeout=300,
    )
    assert out.returncode in (0, 5), out.stdout[-3000:] + out.stderr[-3000:]  # 5: none selected
    return {line.strip() for line in out.stdout.splitlines() if "::" in line}


def test_readme_names_exactly_the_tests_ci_skips() -> None:
    listed, skipped = readme_list(), skipped_by_ci()
    assert listed == skipped, (
        f"README.md's list of tests CI skips is out of date: CI skips but README omits "
        f"{sorted(skipped - listed)}; README lists but CI runs {sorted(listed - skipped)}"
    )
