"""State one node's code writes and another node's code reads (QA pass 14).

A UDF writing into a module (``STATE["scale"] = ...``, ``global MEAN``,
``SCALER.fit(batch)``) hands a value to a UDF of another node that reads that state in
the same process. The reader's fingerprint holds the state as the config's import left
it, not what the writer puts there, and a writer loaded from the store runs no code at
all: an edit of the writer reused the reader's stale result. A write of compile-time
values refuses both nodes (recomputed every run, as a fresh run computes them); a write
from the rows is a compile error (no run can reproduce what the reader computes). The
message names the write.

Left alone: a write whose value only compile-time values decide, when the reader's own
code makes the same write (a lazy load both call: ``global _VOCAB; if _VOCAB is None:
_VOCAB = load(PATH)``): whichever runs first writes what the other would. A write from the
rows that the reader's own code makes too (a memo cache in a helper both call:
``_CACHE[key] = f(key)``) is refused, not an error: a memo writes what the reader would;
an accumulator both add to would not, which no static look tells apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from helix_tf.compiler.hashing import PROCESS_SETTINGS, CodeFingerprint

__all__ = ["SharedState", "shared_state"]

_WHY = (
    "what the reader computes depends on the writer having run before it in the same "
    "process (a result loaded from the store runs no code), which no fingerprint shows, "
    "so neither is reused; hand the value on through the workflow instead (an input of "
    "the reading node, or a DatasetUdf that fits it)"
)
_SETTING = (
    "a process-wide setting changed while the writer runs holds for every node after it in "
    "the same process (a result loaded from the store runs no code), which no fingerprint "
    "shows, so neither is reused; set it at the config's top level (it then joins every "
    "fingerprint) or only around the code that needs it (pd.option_context, np.errstate)"
)
_ROWS = (
    "what the reader computes depends on which of the writer's batches ran before it (the "
    "order the engine runs them in, which nodes a run loads from the store), so no run can "
    "be reproduced; hand the value on through the workflow instead (an input of the "
    "reading node, or a DatasetUdf that fits it on the rows)"
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SharedState:
    """What :func:`shared_state` found: refusals by node name, and problems (a compile
    error: state another node reads, written from the rows)."""

    refusals: dict[str, list[str]]
    problems: list[str]


def shared_state(codes: Mapping[str, Sequence[CodeFingerprint]]) -> SharedState:
    """Nodes whose code writes state another node's code reads (or writes).

    A write of compile-time values (``STATE["scale"] = 2.0``) makes both nodes' results
    not reusable (recomputed every run). A write from the rows (``STATE["m"] =
    batch.mean()``, ``SCALER.fit(batch)``) is a problem: what the reader computes depends
    on which of the writer's batches ran before it, which follows the order the engine
    runs them in and which nodes a run loads (measured: diamonds, a reader of a per-batch
    mean computed in a run that loaded the source gave another RMSE than a fresh run), so
    no run can be reproduced.

    ``codes``: the code fingerprints of each node's user code (:func:`code_fingerprint`
    of its UDFs and operator classes), all from one compilation (the keys they share are
    ids of this process).
    """
    writes: dict[str, dict[str, tuple[bool, frozenset[str]]]] = {}
    touched: dict[str, set[str]] = {}
    for node, fps in codes.items():
        sites = writes.setdefault(node, {})
        seen = touched.setdefault(node, set())
        if fps:  # every node's code computes under the process' settings
            seen.add(PROCESS_SETTINGS)
        for fp in fps:  # what a node reads (a write alone reads nothing)
            seen.update(fp.state_reads)
            for shown, derived, written in fp.state_writes:
                sites[shown] = (derived, frozenset(written))
    out: dict[str, list[str]] = {}
    problems: list[str] = []
    for writer, sites in writes.items():
        for shown, (derived, changed) in sites.items():
            for reader, seen in touched.items():
                if reader == writer or not changed & seen:
                    continue
                same = shown in writes[reader]  # the reader's code makes this write too
                if not derived and same:
                    continue  # the same write of compile-time values: a lazy load
                said = f"node {reader!r} reads state that node {writer!r} writes when it runs"
                if derived and not same:
                    problem = f"{said}, from its rows: {shown}; {_ROWS}"
                    if problem not in problems:
                        problems.append(problem)
                    continue
                why = _SETTING if PROCESS_SETTINGS in changed else _WHY
                text = f"{said}: {shown}; {why}"
                for node in (writer, reader):
                    if text not in out.setdefault(node, []):
                        out[node].append(text)
    return SharedState(refusals=out, problems=problems)
