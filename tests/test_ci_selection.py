"""README's list of the tests CI skips is the list pytest selects as ``slow and not ci``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import COLLECTED, ROOT

START, END = "<!-- ci-skips: start -->", "<!-- ci-skips: end -->"


def readme_list() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md lost its {START} … {END} block"
    block = text.split(START, 1)[1].split(END, 1)[0]
    return set(re.findall(r"`(tests/[^`]+::[^`]+)`", block))


def _slow_not_ci(items: list[pytest.Item]) -> set[str]:
    """What ``-m "slow and not ci"`` selects of ``items`` (a marker expression matches
    the names of an item's markers, its own and its module's and class's)."""
    found = set()
    for item in items:
        names = {mark.name for mark in item.iter_markers()}
        if "slow" in names and "ci" not in names:
            found.add(item.nodeid)
    return found


def _whole_suite(config: pytest.Config) -> list[pytest.Item] | None:
    """The items of every test file when this session collected them all (CI's run of
    the suite), else None. Collected before ``-m`` and ``-k`` deselect any."""
    items = config.stash.get(COLLECTED, None)
    if items is None or any("::" in arg for arg in config.args):
        return None
    files = {item.path for item in items}
    on_disk = {*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("tests/**/*_test.py")}
    if not on_disk <= files:  # a file given alone, ignored, or skipped whole: ask pytest
        return None
    return [item for item in items if item.nodeid.startswith("tests/")]


def _collected_apart() -> set[str]:
    """``pytest --collect-only -m "slow and not ci" tests`` in a process of its own."""
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


def skipped_by_ci(config: pytest.Config) -> set[str]:
    """The tests ``-m "slow and not ci"`` selects: read from this session's collection
    when it collected the whole suite (as CI's does), else from a collection of its own."""
    items = _whole_suite(config)
    return _collected_apart() if items is None else _slow_not_ci(items)


def test_readme_names_exactly_the_tests_ci_skips(pytestconfig: pytest.Config) -> None:
    listed, skipped = readme_list(), skipped_by_ci(pytestconfig)
    assert listed == skipped, (
        f"README.md's list of tests CI skips is out of date: CI skips but README omits "
        f"{sorted(skipped - listed)}; README lists but CI runs {sorted(listed - skipped)}"
    )


def test_the_marker_reading_deselects_what_pytest_deselects_in_ci(
    request: pytest.FixtureRequest,
) -> None:
    """In CI's run (``-m "not slow or ci"`` over the whole suite) the tests pytest left
    out are exactly those the marker reading above finds ``slow and not ci``."""
    config = request.config
    items = _whole_suite(config)
    if (
        items is None
        or config.option.markexpr != "not slow or ci"
        or config.option.keyword
        or config.option.deselect
    ):
        pytest.skip('not CI\'s run: -m "not slow or ci" over the whole suite')
    selected = {item.nodeid for item in request.session.items}
    assert {item.nodeid for item in items} - selected == _slow_not_ci(items)
