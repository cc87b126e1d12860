"""Census preprocessing read as one shard per split vs in byte-range/copy shards (issue 14).

Two ``helix-tf run benchmarks/configs/census_preprocess.py -p scale=N --materialize all``
processes on the local runner, one with ``HELIX_TF_SHARD_BYTES`` so large that every
split is one shard (the reader before sharding), one with the default (64 MiB). The
stored examples (every column of both splits, in row order) and the node rows and
fingerprints must be equal; wall seconds of both are reported.

Reproduce::

    .venv/bin/python -m benchmarks.dist_shards --scale 100 [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from benchmarks._proc import emit_report, machine_facts, run_helix_json
from benchmarks.dist_preprocess import CONFIG, _examples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=100)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="helix-shards-bench-"))
    base = {**os.environ, "HELIX_TF_SERVER": "off", "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [str(CONFIG), "-p", f"scale={a.scale}", "--materialize", "all"]
    runs = {}
    try:
        for name, size in (("one_shard", str(1 << 50)), ("sharded", "")):
            env = {**base, "HELIX_TF_SHARD_BYTES": size}
            runs[name] = run_helix_json(args, store=work / name, env=env)
        (one_m, one), (sh_m, sh) = runs["one_shard"], runs["sharded"]
        facts = [{n["name"]: (n["rows"], n["fingerprint"]) for n in r["nodes"]} for r in (one, sh)]
        assert facts[0] == facts[1], "rows or fingerprints differ"
        ex = facts[0]["examples"][1]
        same = _examples(work / "one_shard", ex) == _examples(work / "sharded", ex)
        assert same, "the stored examples differ"
        out = {
            "scale": a.scale,
            "rows": facts[0]["examples"][0],
            "examples_equal": same,
            "one_shard_wall_s": round(one_m.wall_s, 2),
            "sharded_wall_s": round(sh_m.wall_s, 2),
            **machine_facts(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit_report(out, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
