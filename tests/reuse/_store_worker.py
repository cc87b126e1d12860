"""A separate process that stages and commits one artifact (for test_store.py).

Usage::

    python _store_worker.py URL FINGERPRINT [--files N] [--size BYTES] [--delay S]
        [--slow-commit S] [--ready PATH --go PATH] [--cache-dir DIR]
        [--lease [--pin FP ...] [--scratch-root DIR]] [--hold S] [--no-commit]

Writes ``N`` files of ``BYTES`` bytes (content depends only on the fingerprint, as a
deterministic operator's would), sleeping ``S`` seconds between chunks. With
``--ready``/``--go`` it creates the ready file after staging and waits for the go
file before committing, so tests can line up concurrent commits. ``--slow-commit``
sleeps around each step of the commit so a SIGKILL can land between them. ``--lease``
registers the worker as a live run (pinning ``--pin`` fingerprints, with a scratch
folder under ``--scratch-root``), as ``helix-tf run`` does; ``--hold`` sleeps that long
before committing (``--no-commit``: and then exits without committing). Prints one
JSON line: ``{"outcome": "won" | "lost", "token": ..., "log": [store log messages]}``
(a loser also says which committed token it then found and opened: ``"seen"``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from typing import Any

from helix_tf.reuse.store import ArtifactStore
from helix_tf.reuse.store._commit import Committer
from helix_tf.reuse.store._fs import StoreFiles


def content(fingerprint: str, index: int, size: int) -> bytes:
    """Deterministic bytes for file ``index`` of an artifact."""
    seed = hashlib.sha256(f"{fingerprint}/{index}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _slow(cls: type, names: list[str], seconds: float) -> None:
    for name in names:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            time.sleep(seconds)
            result = _original(self, *args, **kwargs)
            time.sleep(seconds)
            return result

        setattr(cls, name, wrapper)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("fingerprint")
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--slow-commit", type=float, default=0.0)
    parser.add_argument("--ready")
    parser.add_argument("--go")
    parser.add_argument("--cache-dir")
    parser.add_argument("--lease", action="store_true")
    parser.add_argument("--pin", action="append", default=[])
    parser.add_argument("--scratch-root")
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--no-commit", action="store_true")
    args = parser.parse_args(argv)

    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("helix_tf").addHandler(handler)
    logging.getLogger("helix_tf").setLevel(logging.INFO)

    if args.slow_commit:
        _slow(StoreFiles, ["hash_file", "create_exclusive"], args.slow_commit)
        _slow(Committer, ["move_in"], args.slow_commit)
    store = ArtifactStore(args.url, cache_dir=args.cache_dir)
    if args.lease:
        lease = store.open_lease(args.pin, scratch_root=args.scratch_root)
        if lease.scratch:
            os.makedirs(lease.scratch)
    staging = store.begin(args.fingerprint)
    for i in range(args.files):
        data = content(args.fingerprint, i, args.size)
        with staging.open(f"part-{i:03d}.bin") as f:
            for start in range(0, len(data), 1024):
                f.write(data[start : start + 1024])
                if args.delay:
                    time.sleep(args.delay)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(staging.token)
        while not os.path.exists(args.go):
            time.sleep(0.0005)
    if args.hold:
        sys.stdout.write(json.dumps({"staged": staging.token}) + "\n")
        sys.stdout.flush()
        time.sleep(args.hold)
    if args.no_commit:
        return 0
    manifest = store.commit(staging, kind="blob", rows=args.files)
    outcome: dict[str, Any] = {"outcome": "won" if manifest else "lost", "token": staging.token}
    if manifest is None:  # the loser reuses the winner's entry, as the engine does
        seen = store.lookup(args.fingerprint)
        local = store.open_local(seen) if seen is not None else None
        outcome["seen"] = seen.token if seen is not None and local is not None else None
    outcome["log"] = records
    sys.stdout.write(json.dumps(outcome) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
