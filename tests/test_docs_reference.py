"""docs/reference.md is generated from the code and must list every public name and option."""

from __future__ import annotations

import difflib

import pytest

from helix_tf.docs_reference import NAMESPACES, cli_options, public_names, render_reference
from tests.conftest import ROOT

REFERENCE = ROOT / "docs" / "reference.md"
FIX = "regenerate it: python -m helix_tf.docs_reference > docs/reference.md"


def _committed() -> str:
    return REFERENCE.read_text(encoding="utf-8")


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_public_name_is_in_the_reference(namespace: str) -> None:
    text = _committed()
    missing = [n for n in public_names(namespace) if f"### `{namespace}.{n}`" not in text]
    assert not missing, f"docs/reference.md lacks {namespace}: {missing}; {FIX}"


def test_every_cli_command_and_option_is_in_the_reference() -> None:
    text = _committed()
    cli = text[text.index("## Command line: `helix-tf`") :]
    missing = []
    for path, options in cli_options():
        section_head = f"### `helix-tf {path}`"
        if section_head not in cli:
            missing.append(path)
            continue
        section = cli[cli.index(section_head) :].split("\n### ", 1)[0]
        missing += [f"{path} {o}" for o in options if f"`{o}`" not in section]
    assert not missing, f"docs/reference.md lacks {missing}; {FIX}"


def test_the_reference_is_up_to_date() -> None:
    expected = render_reference()
    got = _committed()
    if got != expected:
        diff = "".join(
            difflib.unified_diff(
                got.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/reference.md",
                "generated",
                n=1,
            )
        )
        pytest.fail(f"docs/reference.md is out of date; {FIX}\n{diff[:3000]}")
