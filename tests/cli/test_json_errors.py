"""Every command that takes ``--json`` fails in JSON too: one ``{"error": {...}}`` object on
standard output (the message standard error shows, the exit code), nothing else there.

The commands are found by walking the ``helix-tf`` command tree, so a new command with
``--json`` is checked without being listed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from helix_tf.cli import main
from helix_tf.cli_common import _asks_for_json, error_object
from helix_tf.errors import ConfigError, ExecutionError
from tests.conftest import TINY_CENSUS, write_config


def _json_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found += _json_commands(command, path)
        elif any(p.name == "as_json" for p in command.params):
            found.append(path)
    return found


JSON_COMMANDS = _json_commands(main)


def _takes_config(path: tuple[str, ...]) -> bool:
    command: Any = main
    for name in path:
        command = command.commands[name]
    return any(p.name == "config" for p in command.params)


def _invoke(tmp_path: Path, *args: str) -> Result:
    with CliRunner().isolated_filesystem(temp_dir=tmp_path):
        return CliRunner().invoke(main, list(args))


def _error(result: Result) -> dict[str, Any]:
    """The one JSON object on standard output: an error, with the exit code the command ended with."""
    assert result.exit_code != 0, result.output
    payload = json.loads(result.stdout)  # the whole of stdout: one object, nothing else
    error = payload["error"]
    assert set(payload) == {"error"}
    assert error["exit_code"] == result.exit_code
    assert error["message"] and error["type"]
    return error


def test_the_walk_finds_the_commands_that_take_json() -> None:
    names = {" ".join(p) for p in JSON_COMMANDS}
    assert {"run", "plan", "history", "diff", "report", "status", "store du"} <= names
    assert {"store verify", "store gc", "agent report", "agent space", "server status"} <= names


@pytest.mark.parametrize("path", JSON_COMMANDS, ids=" ".join)
def test_a_usage_error_with_json_is_a_json_error(tmp_path: Path, path: tuple[str, ...]) -> None:
    result = _invoke(tmp_path, *path, "--json", "--no-such-option")
    error = _error(result)
    assert result.exit_code == 2
    assert "--no-such-option" in error["message"] and error["message"] in result.stderr


#: ``agent status`` of a config that is no file answers (an agent whose config was deleted
#: is still found by its store folder): ``tests/agent`` checks what it says.
_ANSWERS_WITHOUT_CONFIG = {("agent", "status")}


@pytest.mark.parametrize(
    "path",
    [p for p in JSON_COMMANDS if _takes_config(p) and p not in _ANSWERS_WITHOUT_CONFIG],
    ids=" ".join,
)
def test_a_missing_config_with_json_is_a_json_error(tmp_path: Path, path: tuple[str, ...]) -> None:
    extra = ["1", "2"] if path == ("diff",) else []
    result = _invoke(tmp_path, *path, "missing.py", *extra, "--json")
    error = _error(result)
    # The message standard error shows, whole (click wraps nothing: one line of text).
    assert error["message"].splitlines()[0] in result.stderr
    assert "missing.py" in error["message"] or ".helix" in error["message"]


@pytest.fixture(scope="module")
def printing_config(
    tmp_path_factory: pytest.TempPathFactory, census_like: tuple[Path, Path]
) -> tuple[Path, Path]:
    """A config that prints as it loads, and a store its one run (in JSON) wrote."""
    folder = tmp_path_factory.mktemp("printing")
    body = TINY_CENSUS.replace("PARAMS =", 'print("hello from the config")\nPARAMS =', 1)
    config = write_config(folder, body, train=census_like[0], test=census_like[1])
    ran = _invoke(folder, "run", str(config), "--store", str(folder / "store"), "--json")
    json.loads(ran.stdout)
    assert ran.exit_code == 0 and "hello from the config" in ran.stderr, ran.output
    return config, folder / "store"


@pytest.mark.parametrize("path", [p for p in JSON_COMMANDS if _takes_config(p)], ids=" ".join)
def test_what_a_config_prints_never_mixes_into_the_json(
    printing_config: tuple[Path, Path], tmp_path: Path, path: tuple[str, ...]
) -> None:
    """A ``print`` in a config (or a UDF) went to standard output before the JSON object
    of every command that loads the config, and a script's ``json.loads`` failed; now it
    goes to standard error."""
    config, store = printing_config
    extra = ["1", "1"] if path == ("diff",) else []
    result = _invoke(tmp_path, *path, str(config), *extra, "--store", str(store), "--json")
    json.loads(result.stdout)  # the whole of standard output: one JSON value
    assert "hello" not in result.stdout


def test_without_json_an_error_prints_nothing_on_stdout(tmp_path: Path) -> None:
    for args in (["plan", "missing.py"], ["plan", "--no-such-option"]):
        result = _invoke(tmp_path, *args)
        assert result.exit_code in (1, 2) and result.stdout == ""
        assert "rror" in result.stderr


def test_a_store_command_error_names_the_store(tmp_path: Path) -> None:
    error = _error(_invoke(tmp_path, "store", "verify", "--store", str(tmp_path / "no"), "--json"))
    assert error["type"] == "StoreError" and str(tmp_path / "no") in error["message"]


def test_the_error_object_carries_what_the_error_knows() -> None:
    config = error_object(ConfigError(["a is wrong", "b is wrong"], path="c.py"), 1)["error"]
    assert config["path"] == "c.py" and config["problems"] == ["a is wrong", "b is wrong"]
    assert config["message"].startswith("2 errors in c.py")
    failed = error_object(ExecutionError("boom", node="learner"), 1, context="--save")["error"]
    assert failed == {
        "type": "ExecutionError",
        "message": "--save: operator 'learner' failed: boom",
        "exit_code": 1,
        "node": "learner",
    }


@pytest.mark.parametrize(
    ("args", "asked"),
    [
        (["plan", "c.py", "--json"], True),
        (["plan", "c.py"], False),
        (["plan", "--", "--json"], False),  # after --: an argument, not the option
        (["plan", "--jsonx"], False),
    ],
)
def test_json_is_asked_for_by_the_option_only(args: list[str], asked: bool) -> None:
    assert _asks_for_json(args) is asked


def test_an_unexpected_failure_with_json_is_a_json_error_and_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import helix_tf.history

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(helix_tf.history, "workflow_history", broken)
    result = _invoke(tmp_path, "history", "c.py", "--json")
    assert result.exit_code == 1 and isinstance(result.exception, OSError)  # not swallowed
    error = json.loads(result.stdout)["error"]
    assert error == {"type": "OSError", "message": "disk on fire", "exit_code": 1}
