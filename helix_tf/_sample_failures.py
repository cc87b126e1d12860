"""Samples at the source known to fail a data check (QA pass 20).

An approximate run that draws its sample at the source and fails a check the whole
training split may pass (:class:`~helix_tf.errors.SampledDataError`: a test label the
sample lacks, a class it lost, a vocabulary that kept no token) runs again with the
sample drawn at training (:func:`helix_tf._running.run_once`). Its next approximate run
drew the sample at the source again wherever the policy had not kept the exact examples
(``--materialize none``, a full store, an eviction), failed the same way and paid for
the attempt once more, every time.

The failure follows from the failing node's fingerprint (the sample's seed and fraction,
the data's content, every operator up to the node): what a fingerprint computed is
computed again, so a failure is remembered as a result is. :func:`remember` keeps the
node's fingerprint in ``sampled-failures.json`` in the store's local folder (beside the
content-hash memo); :func:`known_failure` finds one among a compilation's nodes, and the
session draws the sample at training at once (``_session.open_loaded``). An edit of
anything the node depends on (the data, the sample, a feature) is another fingerprint,
tried at the source again; one after the node (the learner) is not. Losing the file
costs one attempt, never a result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from helix_tf._atomic import atomic_write

__all__ = ["FILE", "KEPT", "failures", "known_failure", "remember"]

log = logging.getLogger(__name__)

#: The memo's file name in the store's local folder.
FILE = "sampled-failures.json"
#: The most failures kept per workflow (the newest).
KEPT = 64


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or damaged: nothing known
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(w): {str(f): str(t) for f, t in found.items()}
        for w, found in data.items()
        if isinstance(found, dict)
    }


def failures(home: Path, workflow: str) -> dict[str, str]:
    """The samples at the source of ``workflow`` that failed before: what each failing
    node's check found, by the node's fingerprint (empty when none is known)."""
    return _read(home / FILE).get(workflow, {})


def known_failure(found: dict[str, str], fingerprints: Iterable[str]) -> str | None:
    """What a sample at the source failed on at one of ``fingerprints`` (``found``: from
    :func:`failures`), or None."""
    return next((found[f] for f in fingerprints if f in found), None)


def remember(home: Path, workflow: str, fingerprint: str, found: str) -> None:
    """Keep that a sample at the source failed at the node of ``fingerprint`` (``found``:
    what the check found). A file that cannot be written is logged, never an error."""
    path = home / FILE
    data = _read(path)
    entries = data.setdefault(workflow, {})
    entries.pop(fingerprint, None)
    entries[fingerprint] = found  # the newest last
    data[workflow] = dict(list(entries.items())[-KEPT:])
    try:
        home.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(data, sort_keys=False))
    except OSError as exc:
        log.warning("could not save %s: %s", path, exc)
