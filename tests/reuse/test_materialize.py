"""Materialization policies: Helix's rule, all, none, the budget and eviction."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from helix_tf.errors import ConfigError
from helix_tf.reuse.materialize import MaterializationPolicy, parse_budget, validity_probability


@dataclasses.dataclass
class Node:
    name: str
    role: str = "feature"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Measure:
    state: str = "compute"
    compute_seconds: float = 0.0
    bytes: int | None = 0


@dataclasses.dataclass
class Entry:
    fingerprint: str
    bytes: int
    compute_seconds: float
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


class FakeLeases:
    """The store's ``run_leases``: the pins of ``store.pins`` (lease id -> fingerprints)."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def pinned(self, *, exclude: str | None = None) -> set[str]:
        pins = self.store.pins
        return {fp for lease, fps in pins.items() if lease != exclude for fp in fps}


class FakeStore:
    def __init__(self, entries: list[Entry]) -> None:
        self.items = {e.fingerprint: e for e in entries}
        self.deleted: list[str] = []
        self.pins: dict[str, set[str]] = {}  # lease id -> fingerprints of a live run
        self.run_leases = FakeLeases(self)

    def entries(self) -> list[Entry]:
        return list(self.items.values())

    def delete(self, fp: str) -> None:
        self.deleted.append(fp)
        del self.items[fp]


def policy(name: str = "helix", **kw: Any) -> MaterializationPolicy:
    defaults: dict[str, Any] = {
        "load_cost": lambda role, nbytes: 0.01 + (nbytes or 0) / 100e6,
        "ancestors": {"feat": {"src"}, "src": set()},
        "history_compute": {},
    }
    return MaterializationPolicy(policy=name, **{**defaults, **kw})


def test_helix_keeps_a_node_whose_recomputation_costs_more_than_two_loads() -> None:
    p = policy()
    measures = {
        "src": Measure(compute_seconds=2.0),
        "feat": Measure(compute_seconds=0.1, bytes=10**6),
    }
    # 2 x (0.01 + 0.01) = 0.04 s < 0.5 x (0.1 + 2.0) s (validity 1/2 with no history)
    assert p.decide(Node("feat"), measures["feat"], measures)


def test_helix_drops_a_node_cheaper_to_recompute_than_to_write_and_read() -> None:
    p = policy(ancestors={"feat": set()})
    measures = {"feat": Measure(compute_seconds=0.001, bytes=50 * 10**6)}
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert "not kept" in p.decisions["feat"]


def test_helix_counts_ancestors_loaded_this_run_at_their_historical_cost() -> None:
    p = policy(history_compute={"src": 5.0})
    measures = {"src": Measure(state="load"), "feat": Measure(compute_seconds=0.0, bytes=10**7)}
    assert p.decide(Node("feat"), measures["feat"], measures)


def test_nodes_that_change_every_version_are_worth_less() -> None:
    often = {"feat": (9, 10)}
    assert validity_probability(often, "feat") < 0.2 < validity_probability({}, "feat")
    p = policy(changes=often, ancestors={"feat": set()})
    measures = {"feat": Measure(compute_seconds=0.5, bytes=5 * 10**6)}
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert policy(ancestors={"feat": set()}).decide(Node("feat"), measures["feat"], measures)


@pytest.mark.parametrize(("name", "kept"), [("all", True), ("none", False)])
def test_all_and_none(name: str, kept: bool) -> None:
    measures = {"feat": Measure(compute_seconds=0.0, bytes=10**9)}
    assert policy(name).decide(Node("feat"), measures["feat"], measures) is kept
    assert policy(name).writes_intermediates is (name != "none")


def test_budget_never_evicts_what_another_live_run_pinned() -> None:
    store = FakeStore([Entry("cheap", 600, 0.001), Entry("dear", 300, 50.0)])
    store.pins = {"other-run": {"cheap"}, "this-run": {"dear"}}
    p = policy("all", budget=1000, store=store, lease_id="this-run")
    measures = {"feat": Measure(compute_seconds=9.0, bytes=500)}
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == []
    store.pins = {"this-run": {"cheap"}}  # our own pins do not stop our eviction
    assert p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["cheap"]


def test_budget_evicts_entries_worth_less_per_byte() -> None:
    store = FakeStore([Entry("cheap", 600, 0.001), Entry("dear", 300, 50.0)])
    p = policy("all", budget=1000, store=store)
    measures = {"feat": Measure(compute_seconds=10.0, bytes=500)}
    assert p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["cheap"]
    assert p.used_bytes == 800


def test_eviction_values_an_entry_by_its_recompute_cost_with_ancestors() -> None:
    # "assembled" is cheap itself but needs 40 s of ancestors to rebuild: it stays.
    store = FakeStore(
        [
            Entry("assembled", 400, 0.01, {"recompute_seconds": 40.0}),
            Entry("raw", 400, 0.5),
        ]
    )
    p = policy("all", budget=1000, store=store)
    measures = {"feat": Measure(compute_seconds=10.0, bytes=500)}
    assert p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["raw"]


def test_budget_refuses_when_only_more_valuable_entries_could_make_room() -> None:
    store = FakeStore([Entry("dear", 900, 100.0)])
    p = policy("all", budget=1000, store=store)
    measures = {"feat": Measure(compute_seconds=0.001, bytes=500)}
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == []


def test_a_failing_store_is_never_fatal() -> None:
    class Broken(FakeStore):
        def entries(self) -> list[Entry]:
            raise OSError("disk on fire")

    p = policy("all", budget=10, store=Broken([]))
    measures = {"feat": Measure(compute_seconds=1.0, bytes=500)}
    assert not p.decide(Node("feat"), measures["feat"], measures)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GB", 2 * 10**9),
        ("500MB", 500 * 10**6),
        ("1.5G", 15 * 10**8),
        ("123", 123),
        (None, None),
        (7, 7),
    ],
)
def test_parse_budget(text: Any, expected: int | None) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["lots", "2XB", "-", "-1GB", "-5", -5, "inf", "nan"])
def test_parse_budget_rejects_nonsense(text: str | int) -> None:
    """A negative size was taken (and evicted everything); "inf" was an OverflowError."""
    with pytest.raises(ConfigError, match="--budget must be a size"):
        parse_budget(text)


def test_unknown_policy() -> None:
    with pytest.raises(ConfigError, match="--materialize must be one of helix, all, none"):
        policy("some")


def test_entries_the_run_uses_are_never_evicted() -> None:
    # Evicting the examples this run loaded would pull them from under its predict node.
    store = FakeStore([Entry("in-use", 900, 0.0001)])
    p = policy("all", budget=1000, store=store, protected={"in-use"})
    measures = {"feat": Measure(compute_seconds=10.0, bytes=500)}
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == []
    # Once the run has read it for the last time, it may go.
    p.release("in-use")
    assert p.decide(Node("feat"), measures["feat"], measures)
    assert store.deleted == ["in-use"]


@pytest.mark.parametrize("name", ["helix", "all"])
def test_a_node_recomputed_every_run_is_never_kept(name: str) -> None:
    """Its fingerprint carries a nonce (it reads state that cannot be hashed): no later run
    could load it, so storing it only wastes the budget."""
    measures = {"src": Measure(compute_seconds=20.0), "feat": Measure(compute_seconds=5.0)}
    volatile = Node("feat", extra={"volatile": ["cannot read the state of GUARD"]})
    p = policy(name)
    assert not p.decide(volatile, measures["feat"], measures)
    assert "never reused" in p.decisions["feat"]
    assert policy(name).decide(Node("feat"), measures["feat"], measures)


@pytest.mark.parametrize("name", ["helix", "all"])
def test_nothing_is_kept_once_a_data_file_changed_during_the_run(name: str) -> None:
    """A result computed while its data file was rewritten holds neither version's content:
    stored under the fingerprint of the version hashed, a later run would load it."""
    measures = {"src": Measure(compute_seconds=20.0), "feat": Measure(compute_seconds=5.0)}
    changed: list[str] = []
    p = policy(name, data_changed=lambda: list(changed))
    assert p.decide(Node("src"), measures["src"], measures)
    changed.append("/data/adult.data")
    assert not p.decide(Node("feat"), measures["feat"], measures)
    assert p.decisions["feat"] == "not kept: data file /data/adult.data changed during the run"
    changed.clear()  # changed back: the run's results are still of mixed content
    assert not p.decide(Node("src"), measures["src"], measures)
