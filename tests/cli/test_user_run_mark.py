"""``helix-tf run`` (through ``helix_tf.run``, which takes it for every untagged run) holds
the user-run mark the agent yields to, and only while it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helix_tf import api
from helix_tf.activity import home_of, user_run_active
from helix_tf.cli import main
from helix_tf.results import RunResult


@pytest.mark.parametrize("store", [None, "custom-store"])
def test_run_holds_the_mark_in_the_store_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str | None
) -> None:
    cfg = tmp_path / "cfg.py"
    cfg.write_text("")
    store_arg = str(tmp_path / store) if store else None
    home = home_of(cfg, store_arg)
    home.mkdir()  # an agent works on this store
    seen: list[bool] = []

    def fake_run_once(loaded: Any, opts: Any, **kwargs: Any) -> tuple[RunResult, Any]:
        seen.append(user_run_active(home))
        result = RunResult(
            workflow="w",
            version=1,
            run_id=1,
            approx=False,
            metrics={},
            intervals={},
            nodes=(),
            wall_seconds=0.0,
        )
        return result, None

    # The work beneath helix_tf.run is stubbed: the mark is taken by run itself.
    monkeypatch.setattr(api, "_load", lambda *args, **kwargs: None)
    monkeypatch.setattr(api, "run_once", fake_run_once)
    args = ["run", str(cfg), "--json", "--no-server"] + (
        ["--store", store_arg] if store_arg else []
    )
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert seen == [True]
    assert not user_run_active(home)


def test_history_and_comparison_ignore_the_agents_runs(
    tiny_census_config: Path, store: str
) -> None:
    api.run(tiny_census_config, store=store, tag="agent")
    mine = api.run(tiny_census_config, store=store, params=["learner.l2=0.001"])
    # The user's run is compared with the user's runs only: there is none before it.
    assert mine.comparison is not None and mine.comparison.previous_version is None

    def history(*extra: str) -> list[dict[str, Any]]:
        result = CliRunner().invoke(
            main, ["history", str(tiny_census_config), "--store", store, "--json", *extra]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert len(history()) == 1
    assert len(history("--agent")) == 2
