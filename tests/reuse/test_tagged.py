"""Entries of tagged runs (the agent's): marked, evicted before the user's, capped at a share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helix_tf.reuse.tagged import ENTRY_TAG, TagQuota, entry_tag, eviction_order
from tests.reuse.test_materialize import Entry, FakeStore, Measure, Node, policy

AGENT = {ENTRY_TAG: "agent"}


def test_a_users_run_evicts_the_agents_entries_first_however_valuable() -> None:
    store = FakeStore(
        [
            Entry("user-cheap", 300, 0.001),
            Entry("agent-dear", 300, 90.0, dict(AGENT)),
            Entry("agent-cheap", 300, 1.0, dict(AGENT)),
        ]
    )
    p = policy("all", budget=1000, store=store)
    measures = {"feat": Measure(compute_seconds=10.0, bytes=500)}
    assert p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["agent-cheap", "agent-dear"]  # the user's cheap one stays
    assert p.entry_meta() == {}


def test_an_agent_run_evicts_only_agent_entries_and_marks_its_own() -> None:
    store = FakeStore([Entry("user-cheap", 400, 0.001), Entry("agent-old", 400, 0.5, AGENT)])
    p = policy("all", budget=1000, store=store, quota=TagQuota(tag="agent"))
    measures = {"feat": Measure(compute_seconds=10.0, bytes=500)}
    assert p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["agent-old"]  # not the user's entry, however cheap
    assert p.entry_meta() == AGENT
    # Only the user's entry could make room now: not kept, nothing evicted.
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["agent-old"]


def test_the_agents_entries_stay_within_their_share() -> None:
    store = FakeStore(
        [
            Entry("user", 5000, 0.001),
            Entry("agent-a", 400, 0.1, dict(AGENT)),
            Entry("agent-b", 400, 50.0, dict(AGENT)),
        ]
    )
    quota = TagQuota(tag="agent", limit=1000)
    p = policy("all", store=store, quota=quota, ancestors={})
    assert quota.used == 800
    measures = {"feat": Measure(compute_seconds=10.0, bytes=500)}
    assert p.decide(Node("feat"), measures["feat"], measures)  # evicts the cheaper one
    assert store.deleted == ["agent-a"] and quota.used == 900
    cheap = {"feat": Measure(compute_seconds=0.001, bytes=500)}
    assert not p.decide(Node("feat"), cheap["feat"], cheap)  # only dearer ones could go
    assert "share" in p.decisions["feat"] and quota.used == 900
    huge = {"feat": Measure(compute_seconds=99.0, bytes=2000)}
    assert not p.decide(Node("feat"), huge["feat"], huge)  # bigger than the share itself
    assert store.deleted == ["agent-a"]


def test_eviction_order_and_tags() -> None:
    entries = [Entry("u", 10, 1.0), Entry("a", 10, 9.0, AGENT), Entry("o", 10, 0.1, {"tag": "x"})]
    assert [e.fingerprint for _, e in eviction_order(entries)] == ["o", "a", "u"]
    assert [e.fingerprint for _, e in eviction_order(entries, tag="agent")] == ["a"]
    assert [entry_tag(e) for e in entries] == [None, "agent", "x"]
    with pytest.raises(ValueError, match="limit"):
        TagQuota(tag="agent", limit=-1)


def _entries(store: str) -> dict[str, Any]:
    from helix_tf.reuse.store import ArtifactStore

    return {m.fingerprint: m for m in ArtifactStore(store).entries()}


@pytest.mark.slow
@pytest.mark.ci
def test_real_runs_agent_entries_capped_then_evicted_first(
    tiny_census_config: Path, tmp_path: Path
) -> None:
    import helix_tf

    store = str(tmp_path / "store")
    run = dict(store=store, materialize="all")
    helix_tf.run(tiny_census_config, **run)
    user = {fp for fp, m in _entries(store).items() if entry_tag(m) is None}
    helix_tf.run(tiny_census_config, params=["learner.l2=0.001"], tag="agent", **run)
    tagged = {fp: m.bytes for fp, m in _entries(store).items() if entry_tag(m) == "agent"}
    assert tagged and user <= set(_entries(store))  # learner and downstream: the agent's
    cap = sum(tagged.values()) + 10
    for l2 in ("0.01", "0.1"):
        helix_tf.run(
            tiny_census_config, params=[f"learner.l2={l2}"], tag="agent", tag_budget=cap, **run
        )
        now = _entries(store)
        assert sum(m.bytes for m in now.values() if entry_tag(m) == "agent") <= cap
        assert user <= set(now)  # the agent never evicts the user's entries
    # The user's next run needs room: the agent's entries go first, none of the user's.
    before = _entries(store)
    total = sum(m.bytes for m in before.values())
    helix_tf.run(tiny_census_config, params=["learner.l2=0.005"], budget=total, **run)
    after = _entries(store)
    gone = set(before) - set(after)
    assert any(entry_tag(before[fp]) == "agent" for fp in gone)
    if not user <= set(after):
        # A user entry goes only once no agent entry is left (a model's file size varies
        # by a few bytes with its weights, so the agent's entries may just miss the room).
        assert not any(entry_tag(m) == "agent" for m in after.values()), gone
    assert any(entry_tag(m) is None and fp not in user for fp, m in after.items())
