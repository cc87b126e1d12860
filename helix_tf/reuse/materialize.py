"""Online materialization: right after a node finishes, keep its output or not.

Policies:

- ``helix`` (default): keep node i when 2·l_i < C(i) = c_i + Σ_{ancestors a} c_a
  (writing costs about one load and reading later another; recomputing costs
  the node and every ancestor), discounted by the probability that the node is
  still valid next iteration (learned from how often its fingerprint changed in
  this workflow's history), and only if it fits the storage budget; when it
  does not fit, entries of lower value per byte are evicted to make room
  (entries made by tagged runs, the agent's, go first; a tagged run keeps its
  entries within its tag's share: :mod:`helix_tf.reuse.tagged`).
- ``all``: keep everything (DeepDive, TFX-style caches).
- ``none``: keep nothing (a plain script).

Materialization is an optimisation: a failing or full store never fails a run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from helix_tf.reuse.tagged import TagQuota, entry_tag, eviction_order
from helix_tf.roles import NodeState

__all__ = ["POLICIES", "MaterializationPolicy", "parse_budget", "validity_probability"]

log = logging.getLogger(__name__)

POLICIES = ("helix", "all", "none")


def parse_budget(text: str | int | None) -> int | None:
    """``"2GB"``, ``"500MB"``, ``"1.5G"``, ``123`` → bytes (None: no budget)."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        text = str(text)
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    from helix_tf.errors import ConfigError

    try:
        size = int(float(s[:-1]) * units[s[-1]]) if s and s[-1] in units else int(float(s))
    except (ValueError, OverflowError):  # OverflowError: "inf"
        raise ConfigError(f"--budget must be a size like 500MB or 2GB, but got {text!r}") from None
    if size < 0:
        raise ConfigError(f"--budget must be a size >= 0 (like 500MB or 2GB), but got {text!r}")
    return size


def validity_probability(changes: Mapping[str, tuple[int, int]], name: str) -> float:
    """P(node still valid next iteration) from (times changed, versions seen), Laplace-smoothed."""
    changed, seen = changes.get(name, (0, 0))
    return (seen - changed + 1) / (seen + 2)


@dataclasses.dataclass(slots=True, kw_only=True)
class MaterializationPolicy:
    """The engine's materializer (see :class:`helix_tf.engine.execute.Materializer`).

    ``load_cost(role, bytes)`` estimates l_i; ``ancestors`` lists each node's
    ancestors; ``changes`` feeds the validity probability; ``store`` is used
    for budget accounting and eviction.
    """

    policy: str
    load_cost: Callable[[str, int | None], float]
    ancestors: Mapping[str, set[str]]
    history_compute: Mapping[str, float]
    changes: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    budget: int | None = None
    store: Any = None
    #: Fingerprints this run still has to read: never evicted (see ``release``).
    protected: set[str] = dataclasses.field(default_factory=set)
    #: This run's lease id on the store: other live runs' pins are never evicted.
    lease_id: str | None = None
    used_bytes: int = 0
    decisions: dict[str, str] = dataclasses.field(default_factory=dict)
    #: A tagged run's (the agent's): its entries' mark and their cap.
    quota: TagQuota | None = None
    #: The data files written since they were hashed (``Session.data_changed``): once
    #: one is, nothing more is kept (results computed while it changed are neither
    #: version's, and would be stored under the fingerprint of the one hashed).
    data_changed: Callable[[], list[str]] | None = None
    _changed: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            from helix_tf.errors import ConfigError

            raise ConfigError(
                f"--materialize must be one of {', '.join(POLICIES)}, but got {self.policy!r}"
            )
        if self.budget is not None and self.store is not None:
            try:
                self.used_bytes = sum(m.bytes for m in self.store.entries())
            except Exception:
                self.used_bytes = 0
        if self.quota is not None and self.quota.limit is not None and self.store is not None:
            try:
                self.quota.start(self.store.entries())
            except Exception:
                self.quota.used = 0

    def entry_meta(self) -> dict[str, Any]:
        """What every entry this run commits carries in its meta (a tagged run's tag)."""
        return self.quota.meta() if self.quota is not None else {}

    def release(self, fingerprint: str) -> None:
        """The running workflow no longer reads this entry: it may be evicted."""
        self.protected.discard(fingerprint)

    @property
    def writes_intermediates(self) -> bool:
        """Whether intermediate feature columns are written at all (not under ``none``)."""
        return self.policy != "none"

    def recompute_cost(self, name: str, measures: Mapping[str, Any]) -> float:
        """C(n) = c_n + sum of c_a over its ancestors (measured this run, else history)."""
        return self._recompute_cost(name, measures)

    def _recompute_cost(self, name: str, measures: Mapping[str, Any]) -> float:
        def cost(n: str) -> float:
            m = measures.get(n)
            if m is not None and m.state == NodeState.COMPUTE and m.compute_seconds:
                return float(m.compute_seconds)
            return float(self.history_compute.get(n, 0.0))

        return cost(name) + sum(cost(a) for a in self.ancestors.get(name, ()))

    def decide(self, node: Any, measure: Any, measures: Mapping[str, Any]) -> bool:
        name = node.name
        if self.policy == "none":
            self.decisions[name] = "policy none"
            return False
        if self._data_changed():
            self.decisions[name] = f"not kept: data file {self._changed[0]} changed during the run"
            return False
        if (getattr(node, "extra", None) or {}).get("volatile"):
            # Its fingerprint is new every run (it reads something that cannot be hashed):
            # no later run could load it.
            self.decisions[name] = "not kept: recomputed every run (never reused)"
            return False
        nbytes = int(measure.bytes or 0)
        if self.policy == "helix":
            load = self.load_cost(node.role, nbytes)
            recompute = self._recompute_cost(name, measures)
            p_valid = validity_probability(self.changes, name)
            if not 2 * load < p_valid * recompute:
                self.decisions[name] = (
                    f"not kept: 2 x load {load:.3f}s >= {p_valid:.2f} x recompute {recompute:.3f}s"
                )
                return False
        if self.quota is not None:
            fits, evicted, why = self.quota.make_room(
                self.store, nbytes, self._value(name, nbytes, measures), spare=self._spare
            )
            self.used_bytes -= evicted
            if not fits:
                self.decisions[name] = why
                return False
        over = self.budget is not None and self.used_bytes + nbytes > self.budget
        if over and not self._make_room(nbytes, self._value(name, nbytes, measures)):
            self.decisions[name] = f"not kept: {nbytes} bytes exceed the budget"
            return False
        self.used_bytes += nbytes
        if self.quota is not None:
            self.quota.used += nbytes
        self.decisions[name] = "kept"
        return True

    def _data_changed(self) -> bool:
        if not self._changed and self.data_changed is not None:
            self._changed = self.data_changed()
            if self._changed:
                log.warning(
                    "data file %s changed while this run read it: nothing more of this run is "
                    "stored (its results may mix the old and the new content); run again to "
                    "compute and store results of the new content",
                    ", ".join(self._changed),
                )
        return bool(self._changed)

    def _spare(self, fingerprint: str) -> bool:
        """This run reads it, or another live run pinned it: not to be evicted."""
        if fingerprint in self.protected:
            return True
        try:
            return fingerprint in self.store.run_leases.pinned(exclude=self.lease_id)
        except Exception:
            return True

    def _value(self, name: str, nbytes: int, measures: Mapping[str, Any]) -> float:
        """Seconds saved per byte if kept."""
        saved = validity_probability(self.changes, name) * self._recompute_cost(name, measures)
        return saved / max(nbytes, 1)

    def _make_room(self, needed: int, value_per_byte: float) -> bool:
        """Evict stored entries worth less per byte than the newcomer, until it fits."""
        if self.store is None or self.budget is None or needed > self.budget:
            return False
        try:
            entries = self.store.entries()
        except Exception:
            return False
        # An entry is worth what recomputing it would cost: itself and its ancestors.
        # Tagged runs' entries go first; a tagged run evicts only its own tag's.
        scored = eviction_order(entries, tag=self.quota.tag if self.quota is not None else None)
        # What other live runs on the store may read (their leases' pins) is not ours
        # to evict, however cheap.
        try:
            pinned = self.store.run_leases.pinned(exclude=self.lease_id)
        except Exception as exc:
            log.warning("cannot read the store's run leases (%s); not evicting", exc)
            return False
        freed = 0
        victims = []
        for v, e in scored:
            if self.used_bytes - freed + needed <= self.budget:
                break
            if v >= value_per_byte and (self.quota is not None or entry_tag(e) is None):
                break
            if e.fingerprint in self.protected or e.fingerprint in pinned:
                continue
            victims.append(e)
            freed += e.bytes
        if self.used_bytes - freed + needed > self.budget:
            return False
        for e in victims:
            try:
                self.store.delete(e.fingerprint)
                log.info("evicted %s (%d bytes) to stay within the budget", e.fingerprint, e.bytes)
            except Exception as exc:
                log.warning("could not evict %s: %s", e.fingerprint, exc)
                return False
        self.used_bytes -= freed
        return True
