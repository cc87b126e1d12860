"""`helix-tf store du` says how much of the store the agent's (tagged) entries hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helix_tf.cli import main


@pytest.mark.slow
@pytest.mark.ci
def test_du_counts_the_agents_entries_apart(tiny_census_config: Path, tmp_path: Path) -> None:
    import helix_tf
    from helix_tf.reuse.store import ArtifactStore
    from helix_tf.reuse.tagged import entry_tag

    store = str(tmp_path / "store")
    helix_tf.run(tiny_census_config, store=store)
    helix_tf.run(tiny_census_config, store=store, params=["learner.l2=0.01"], tag="agent")
    agent = sum(m.bytes for m in ArtifactStore(store).entries() if entry_tag(m) == "agent")
    assert agent > 0
    out = CliRunner().invoke(main, ["store", "du", "--store", store, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["tagged_bytes"] == {"agent": agent}
    text = CliRunner().invoke(main, ["store", "du", "--store", store]).output
    assert "made by agent runs, evicted first" in text
