"""A served run's CPU seconds and page faults, with and without the spare's pre-faulting.

Run ``python -m benchmarks.served_cpu --pairs 3``.

Load inflates wall seconds on a shared machine; CPU seconds and page-fault counts it
barely moves. This runs iterations ``0 … i-1`` of a sequence into a store (a
subprocess, no server), then in this process imports what the warm server preloads
(:func:`helix_tf.warm.preload`) and, like the server's spare, forks one child per
measured run: each runs iteration ``i`` (:func:`helix_tf.cli.run_cli`, output to
``/dev/null``) on a fresh copy of the store, after the spare's
:func:`helix_tf.server._spare._prefault` (``prefault``) or without it (``none``),
alternated none, prefault, prefault, none. Printed per run: CPU seconds (user + sys)
and minor page faults of the command and of :func:`helix_tf.api.run` within it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.iterative import SEQUENCES_DIR, find_data_dir


def _usage() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_minflt


def _measured(argv: list[str], prefault: bool) -> dict[str, Any]:
    """In a fork of this (preloaded) process: one run's CPU seconds and page faults."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the measured child
        os.close(read)
        from helix_tf import api, cli
        from helix_tf.server import _spare

        inner: dict[str, float] = {}
        run = api.run

        def timed(*args: Any, **kwargs: Any) -> Any:
            c0, f0 = _usage()
            try:
                return run(*args, **kwargs)
            finally:
                c1, f1 = _usage()
                inner.update(api_cpu=round(c1 - c0, 4), api_faults=f1 - f0)

        api.run = timed  # type: ignore[assignment]
        if prefault:
            _ours, theirs = socket.socketpair()  # no request comes: it touches all
            _spare._prefault(theirs)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        c0, f0 = _usage()
        code = cli.run_cli(argv)
        c1, f1 = _usage()
        out = {"cpu": round(c1 - c0, 4), "faults": f1 - f0, "exit": code, **inner}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return {"side": "prefault" if prefault else "none", **json.loads(text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", default="census10")
    parser.add_argument("--iteration", type=int, default=1)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    data_dir = find_data_dir(args.data_dir)
    folder = SEQUENCES_DIR / args.sequence
    common = ["-p", f"scale={args.scale}"]
    common += ["--data-dir", str(data_dir)] if data_dir is not None else []
    with tempfile.TemporaryDirectory(prefix="helix-served-cpu-") as tmp:
        base = Path(tmp) / "base"
        env = {**os.environ, "HELIX_TF_SERVER": "off"}
        for i in range(args.iteration):
            cmd = [sys.executable, "-m", "helix_tf", "run", str(folder / f"it{i:02d}.py")]
            subprocess.run(
                [*cmd, "--json", "--store", str(base), *common],
                env=env,
                check=True,
                capture_output=True,
            )
        from helix_tf.warm import preload

        preload()
        store = Path(tmp) / "store"
        config = str(folder / f"it{args.iteration:02d}.py")
        for prefault in [False, True, True, False] * args.pairs:
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(base, store)
            row = _measured(["run", config, "--store", str(store), *common], prefault)
            print(json.dumps({**row, "load_average": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
