"""Store entries made by tagged runs (the think-time agent's): marked, evicted first, capped.

A run made with a tag (``helix_tf.run(..., tag="agent")``) marks every entry it
commits with ``meta["tag"]``. Two rules follow, applied by the materialization
policy (:class:`helix_tf.reuse.materialize.MaterializationPolicy`):

- **Evicted first.** When a run must make room within its storage budget,
  tagged entries go before any untagged (user's) entry, whatever their value;
  untagged entries then go in order of value per byte, as before. A tagged run
  evicts only entries with its own tag: the agent never evicts the user's
  results.
- **Capped.** A tagged run may keep a new entry only while all entries with its
  tag hold at most :attr:`TagQuota.limit` bytes together (the agent passes a
  share of the budget); to stay under it, it evicts its own tag's entries of
  lower value per byte, else it does not keep the newcomer.

Pure: no TensorFlow, Beam or I/O beyond the store object it is handed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["ENTRY_TAG", "TagQuota", "entry_tag", "eviction_order", "value_per_byte"]

log = logging.getLogger(__name__)

#: The key of a manifest's ``meta`` that holds the tag of the run that made the entry.
ENTRY_TAG = "tag"


def entry_tag(entry: Any) -> str | None:
    """The tag of the run that committed ``entry`` (a store manifest); None for a user's."""
    tag = (getattr(entry, "meta", None) or {}).get(ENTRY_TAG)
    return str(tag) if tag is not None else None


def value_per_byte(entry: Any) -> float:
    """Seconds a stored entry saves per byte: recomputing it and its ancestors."""
    meta = getattr(entry, "meta", None) or {}
    seconds = float(meta.get("recompute_seconds", entry.compute_seconds) or 0.0)
    return seconds / max(int(entry.bytes), 1)


def eviction_order(entries: Iterable[Any], *, tag: str | None = None) -> list[tuple[float, Any]]:
    """``(value per byte, entry)`` in the order a run evicts them.

    For an untagged run (``tag=None``): every tagged entry first (cheapest first),
    then untagged entries, cheapest first. For a run tagged ``tag``: only entries
    with that tag.
    """
    scored = [(value_per_byte(e), e) for e in entries]
    if tag is not None:
        return sorted(((v, e) for v, e in scored if entry_tag(e) == tag), key=lambda t: t[0])
    return sorted(scored, key=lambda t: (entry_tag(t[1]) is None, t[0]))


@dataclasses.dataclass(slots=True, kw_only=True)
class TagQuota:
    """The entries of runs tagged ``tag``: their mark, and at most ``limit`` bytes together.

    ``used`` is what the tag's entries hold now (read from the store by :meth:`start`,
    then counted as entries are kept or evicted).
    """

    tag: str
    limit: int | None = None
    used: int = 0

    def __post_init__(self) -> None:
        if not self.tag:
            raise ValueError("TagQuota: tag must be a non-empty string")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"TagQuota: limit must be >= 0 bytes, but got {self.limit!r}")

    def meta(self) -> dict[str, str]:
        """What the run adds to the meta of every entry it commits."""
        return {ENTRY_TAG: self.tag}

    def start(self, entries: Sequence[Any]) -> None:
        self.used = sum(int(e.bytes) for e in entries if entry_tag(e) == self.tag)

    def make_room(
        self,
        store: Any,
        needed: int,
        value: float,
        *,
        spare: Callable[[str], bool],
    ) -> tuple[bool, int, str]:
        """Fit ``needed`` more bytes under the limit, evicting the tag's cheaper entries.

        ``value``: the newcomer's value per byte (only cheaper entries are evicted);
        ``spare(fingerprint)``: entries that must stay (this run reads them, another
        live run pinned them). Returns (fits, bytes evicted, the reason when it does not).
        """
        if self.limit is None or self.used + needed <= self.limit:
            return True, 0, ""
        refused = (
            f"not kept: the {self.tag} runs' entries would hold {self.used + needed} bytes, "
            f"over their share {self.limit}"
        )
        if needed > self.limit or store is None:
            return False, 0, refused
        try:
            candidates = eviction_order(store.entries(), tag=self.tag)
        except Exception as exc:
            log.warning("cannot list the store's entries (%s); not keeping", exc)
            return False, 0, refused
        victims, freed = [], 0
        for v, e in candidates:
            if self.used - freed + needed <= self.limit or v >= value:
                break
            if spare(e.fingerprint):
                continue
            victims.append(e)
            freed += int(e.bytes)
        if self.used - freed + needed > self.limit:
            return False, 0, refused
        evicted = 0
        for e in victims:
            try:
                store.delete(e.fingerprint)
            except Exception as exc:
                log.warning("could not evict %s: %s", e.fingerprint, exc)
                self.used -= evicted
                return False, evicted, refused
            evicted += int(e.bytes)
            log.info(
                "evicted %s (%d bytes): the %s runs' entries stay within their share",
                e.fingerprint,
                e.bytes,
                self.tag,
            )
        self.used -= evicted
        return True, evicted, ""
