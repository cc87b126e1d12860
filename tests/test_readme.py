"""What README.md and docs/guide.md claim holds: configs exist and show what is said,
every ``helix-tf`` command line shown uses real commands and options, and the README
says how to activate the virtualenv its commands create."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from helix_tf.cli import main
from helix_tf.config import load_config
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
BLOCK = re.compile(r"^```(?:bash|text)?\n(.*?)^```$", re.S | re.M)


def _command_lines(path: Path) -> list[str]:
    lines = []
    for block in BLOCK.findall(path.read_text(encoding="utf-8")):
        for line in block.splitlines():
            for part in _without_comment(line).split("&&"):
                part = part.strip()
                part = re.sub(r"^\.venv/bin/", "", part)
                if part.startswith("helix-tf "):
                    lines.append(part)
    return lines


def _without_comment(line: str) -> str:
    """``line`` without its shell comment (``# ...`` after a space); a line the shell
    could not read (text in a ``text`` block) as it is."""
    try:
        return shlex.join(shlex.split(line, comments=True))
    except ValueError:
        return line.strip()


def _command(words: list[str]) -> tuple[click.Command, list[str]]:
    cmd: click.Command = main
    rest = list(words)
    while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest.pop(0)]
    return cmd, rest


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_line_shown_uses_real_commands_and_options(doc: Path) -> None:
    lines = _command_lines(doc)
    assert lines, f"no helix-tf command lines found in {doc.name}"
    problems = []
    for line in lines:
        cmd, rest = _command(shlex.split(line)[1:])
        if isinstance(cmd, click.Group):
            problems.append(f"{line}: no such command")
            continue
        known = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
        for word in rest:
            option = word.split("=", 1)[0]
            if option.startswith("-") and option not in known:
                problems.append(f"{line}: {cmd.name} has no option {option}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_line_shown_parses_as_written(
    doc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line's arguments and option values as the command parses them (their number,
    choices and types), from the repository root as the README's commands run; nothing
    runs. Before: a comment after one space was taken for arguments, unnoticed."""
    monkeypatch.chdir(ROOT)
    problems = []
    for line in _command_lines(doc):
        cmd, rest = _command(shlex.split(line)[1:])
        try:
            cmd.make_context(cmd.name, rest)
        except click.exceptions.Exit:
            pass
        except click.ClickException as exc:
            problems.append(f"{line}: {exc.format_message()}")
    assert not problems, "\n".join(problems)


def test_configs_named_in_the_readme_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"configs/\w+\.py", text))
    assert {"configs/census.py", "configs/census_features.py"} <= named
    assert [n for n in named if not (ROOT / n).is_file()] == []


def test_census_features_shows_what_the_readme_says(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`configs/census_features.py` (the same\ndata with bucketize, a hashed cross" in text
    # a copy, so the generated data lands in tmp_path, not next to the real config
    config = tmp_path / "census_features.py"
    config.write_text((ROOT / "configs" / "census_features.py").read_text())
    loaded = load_config(config, data_dir=str(tmp_path))
    ops = {type(d.op).__name__ for d in loaded.workflow.declarations}
    assert {"Bucketize", "Cross", "Udf", "Numeric", "Vocabulary", "Label"} <= ops
    udfs = [d.op for d in loaded.workflow.declarations if type(d.op).__name__ == "Udf"]
    assert {u.batched for u in udfs} == {True, False}  # a batched and a per-row UDF
    metric_ops = loaded.workflow.declaration("evaluation").refs["metrics"]
    assert any(m.slice_by for m in metric_ops)


def test_readme_says_how_to_activate_the_virtualenv() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text[text.index("## Set up on a fresh machine") : text.index("## Using it")]
    assert "python3 -m venv .venv" in setup and "source .venv/bin/activate" in setup


def _setup_blocks() -> tuple[str, str]:
    """The README's two set-up commands: install-and-run, and the tests."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in BLOCK.findall(section)]
    install = next(b for b in blocks if "pip install" in b)
    tests = next(b for b in blocks if "pytest" in b)
    return install, tests


def test_ci_runs_the_readme_set_up_commands() -> None:
    """A fresh clone's CI (.ci/run) installs as the README says and runs its test command."""
    install, tests = _setup_blocks()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m venv" in install and "python3 -m venv" in ci
    assert "pip install" in ci and "-e '.[test]'" in install and "-e '.[test]'" in ci
    assert install.rstrip().endswith("helix-tf run configs/census.py"), install
    test_args = tests.split("python", 1)[1].strip()  # e.g. -m pytest -q -m "not slow or ci"
    ci_lines = [
        line for line in ci.splitlines() if "pytest" in line and not line.lstrip().startswith("#")
    ]
    assert any(line.rstrip().endswith(test_args) for line in ci_lines), (
        f".ci/run must run the README's test command ({tests!r}); its pytest lines: {ci_lines}"
    )


def test_the_main_job_config_loads_on_its_embedded_defaults() -> None:
    """The README's main job (configs/census.py, no parameters) compiles as a fresh clone has it."""
    loaded = load_config(ROOT / "configs" / "census.py", [])
    assert loaded.workflow.name == "census"
