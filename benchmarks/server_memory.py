"""The warm server's memory when idle, and its growth over many served runs.

Run ``python -m benchmarks.server_memory --runs 200 [--scale 1] [--json out.json]``.

The server as a user gets it (``--start auto``, the default): a private server folder
(``HELIX_TF_SERVER_DIR`` in a temporary folder), and the first ``helix-tf run`` of the
census config (exact, into an empty store) starts the server itself, by forking from
that run after its imports. ``--start hand`` starts ``helix-tf server`` by hand first
instead. Then ``--runs - 1`` more runs are served, each a fresh client process, cycling
through ``--mix`` (default ``eval,plan,train``): an evaluation-only run (everything
loaded), a ``helix-tf plan``, and a learning-rate edit (the server's trainer trains,
keeping and recycling its models).

Memory counts every process the server keeps between runs: the server, its trainer
and its spare (the next run's process, forked ahead), found as the server's process
tree in ``/proc``. Each is read as RSS and as PSS (proportional set size: pages shared
between the forks counted once in the total, where a sum of RSS counts them once per
process; split into the processes' data and mapped files, whose share also depends
on unrelated processes mapping the same libraries). Run as root, each reading also
counts the tree's distinct physical pages (``pagemap``), data and files, which no
other process moves. Readings: *idle* (the server ready, after the first run, no run served
yet), *warm* (after the first cycle of the mix: the trainer has built a model) and
every ``--every`` runs. Growth (no leak: < 10%) is the last reading against the warm
one, for the data's PSS, the distinct pages, the total RSS and each role's RSS; the total
PSS's growth is reported but not judged (:data:`NOT_JUDGED`); growth against idle is
reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._server import auto_server, warm_server

ROOT = Path(__file__).resolve().parents[1]
CLIENT = [sys.executable, "-c", "from helix_tf.cli import console_main; console_main()"]
MIXES = ("eval", "plan", "train")
#: Growth above this fraction of the warm reading is a leak (issue 9).
GROWTH_LIMIT = 0.10


def _helix(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*CLIENT, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"helix-tf {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def children(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The pids of ``pid``'s whole process tree below it (Linux ``/proc``)."""
    parent: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid …": comm may hold spaces and parentheses.
        parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        below = sorted(p for p, pp in parent.items() if pp in frontier)
        found += below
        frontier = below
    return found


#: ``smaps_rollup`` fields read, and their keys here. PSS splits into the process' data
#: (anonymous pages: shared only with the forks of the same server) and mapped files
#: (libraries: their share also depends on unrelated processes mapping the same files).
FIELDS = {
    "Rss": "rss_bytes",
    "Pss": "pss_bytes",
    "Pss_Anon": "pss_anon_bytes",
    "Pss_File": "pss_file_bytes",
}


def memory(pid: int, proc: Path = Path("/proc")) -> dict[str, int]:
    """:data:`FIELDS` of one process, in bytes (``smaps_rollup``; 0 when gone or absent)."""
    try:
        text = (proc / str(pid) / "smaps_rollup").read_text()
    except OSError:
        text = ""
    kb = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS and rest.strip().endswith("kB"):
            kb[key] = int(rest.split()[0])
    return {name: kb.get(key, 0) * 1024 for key, name in FIELDS.items()}


#: A ``/proc/<pid>/pagemap`` entry's bits: present, file page (or shared anonymous), frame.
_PRESENT, _FILE_PAGE, _FRAME = 1 << 63, 1 << 61, (1 << 55) - 1


def distinct_pages(pids: Sequence[int], proc: Path = Path("/proc")) -> dict[str, int] | None:
    """``{"anon_bytes", "file_bytes"}``: the physical pages any of ``pids`` maps, each once.

    What the tree holds in memory whatever else runs on the machine (a PSS total also
    depends on unrelated processes mapping the same library files). Read from
    ``pagemap``'s page frame numbers, which only root sees (``None`` otherwise): a page
    of a mapped file counts as file, any other as the processes' data.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    frames: dict[str, set[int]] = {"anon_bytes": set(), "file_bytes": set()}
    for pid in pids:
        try:
            maps = (proc / str(pid) / "maps").read_text().splitlines()
            pagemap = (proc / str(pid) / "pagemap").open("rb")
        except OSError:
            continue  # gone meanwhile
        with pagemap:
            for line in maps:
                fields = line.split()
                start, end = (int(x, 16) // page for x in fields[0].split("-"))
                mapped_file = len(fields) > 5 and fields[5].startswith("/")
                try:
                    pagemap.seek(start * 8)
                    entries = pagemap.read((end - start) * 8)
                except OSError:  # [vsyscall]: outside what pagemap reads
                    continue
                for (entry,) in struct.iter_unpack("<Q", entries[: len(entries) // 8 * 8]):
                    if entry & _PRESENT:
                        kind = "file_bytes" if mapped_file and entry & _FILE_PAGE else "anon_bytes"
                        frames[kind].add(entry & _FRAME)
    if any(0 in found for found in frames.values()):
        return None  # frame numbers hidden: not root
    return {kind: len(found) * page for kind, found in frames.items()}


def reading(status: Mapping[str, Any], runs: int, proc: Path = Path("/proc")) -> dict[str, Any]:
    """Memory of the server's process tree after ``runs`` runs, by role.

    ``status`` is ``helix-tf server status --json``: it names the server's pid and its
    trainer's and its spare's; any other process below the server counts as ``other``.
    """
    server = int(status["pid"])
    named = {
        server: "server",
        int((status.get("trainer") or {}).get("pid") or 0): "trainer",
        int(status.get("spare_pid") or 0): "spare",
    }
    roles: dict[str, dict[str, int]] = {}
    tree = [server, *children(server, proc)]
    for pid in tree:
        role = named.get(pid, "other")
        mem = memory(pid, proc)
        into = roles.setdefault(role, {"processes": 0, **dict.fromkeys(mem, 0)})
        into["processes"] += 1
        for key, value in mem.items():
            into[key] += value
    return {
        "runs": runs,
        "roles": roles,
        **{f"total_{key}": sum(r[key] for r in roles.values()) for key in FIELDS.values()},
        "distinct": distinct_pages(tree, proc),
        "trainers": (status.get("trainer") or {}).get("trainers"),
    }


#: Growth figures that are not the tree's own: the PSS of mapped library files rises when
#: unrelated processes that shared them end (another session's TensorFlow process), and
#: falls when more start. Reported, not judged: the data's PSS, the distinct pages and
#: each role's RSS are what the tree holds.
NOT_JUDGED = ("total_pss",)


def growth(first: Mapping[str, Any], last: Mapping[str, Any]) -> dict[str, float | None]:
    """Fractional growth from ``first`` to ``last``: total PSS (and its data part) and RSS,
    the distinct pages (``None`` where they were not read), and each role's RSS."""

    def frac(a: int, b: int) -> float | None:
        return round(b / a - 1, 4) if a else None

    out: dict[str, float | None] = {
        "total_pss": frac(first["total_pss_bytes"], last["total_pss_bytes"]),
        "total_pss_anon": frac(first["total_pss_anon_bytes"], last["total_pss_anon_bytes"]),
        "total_rss": frac(first["total_rss_bytes"], last["total_rss_bytes"]),
        "distinct": frac(*(sum((r.get("distinct") or {}).values()) for r in (first, last))),
    }
    for role in sorted(set(first["roles"]) | set(last["roles"])):
        a = first["roles"].get(role, {}).get("rss_bytes", 0)
        b = last["roles"].get(role, {}).get("rss_bytes", 0)
        out[f"{role}_rss"] = frac(a, b)
    return out


def within_limit(growths: Mapping[str, float | None]) -> bool:
    """Whether no growth the tree owns reaches :data:`GROWTH_LIMIT` (:data:`NOT_JUDGED`)."""
    return all(v is None or v < GROWTH_LIMIT for k, v in growths.items() if k not in NOT_JUDGED)


def _wait_for_server(env: dict[str, str], timeout_s: float = 300) -> dict[str, Any]:
    """The status of the server the first run started, once it is ready and idle."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(
            [*CLIENT, "server", "status", "--json"], env=env, capture_output=True, text=True
        )
        if done.returncode == 0:
            status = json.loads(done.stdout)
            idle = status.get("rss_bytes") and not status.get("active")
            # The spare is forked once the run has ended: read it too (a few seconds at most).
            if idle and (status.get("spare_pid") or time.monotonic() > deadline - timeout_s + 10):
                return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"no helix-tf server became ready:\n{done.stderr[-2000:]}")
        time.sleep(1.0)


@contextlib.contextmanager
def _server(start: str) -> Iterator[dict[str, str]]:
    with auto_server() if start == "auto" else warm_server() as env:
        yield env


def _mb(n: int) -> float:
    return round(n / 2**20, 1)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.server_memory")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument(
        "--start",
        choices=("auto", "hand"),
        default="auto",
        help="auto: the first run starts the server, as a user's does; hand: helix-tf server",
    )
    ap.add_argument(
        "--mix",
        default=",".join(MIXES),
        help="served runs cycle through these: eval (evaluation-only run), plan, train "
        "(a learning-rate edit: the trainer trains)",
    )
    ap.add_argument("--train", action="store_true", help="same as --mix train")
    args = ap.parse_args(argv)
    mix = ["train"] if args.train else [m.strip() for m in args.mix.split(",") if m.strip()]
    if not mix or set(mix) - set(MIXES):
        ap.error(f"--mix takes a comma-separated list of {', '.join(MIXES)}, got {args.mix!r}")
    config = str(ROOT / "configs" / "census.py")
    load = [os.getloadavg()]
    with (
        tempfile.TemporaryDirectory(prefix="helix-server-memory-") as tmp,
        _server(args.start) as env,
    ):
        store = ["--store", str(Path(tmp) / "store"), "-p", f"scale={args.scale}"]
        t0 = time.perf_counter()
        _helix(env, "run", config, *store)  # with --start auto: starts the server
        readings = [reading(_wait_for_server(env), 0)]
        walls: dict[str, list[float]] = {m: [] for m in mix}
        for i in range(1, args.runs):
            kind = mix[(i - 1) % len(mix)]
            t = time.perf_counter()
            if kind == "train":  # a new learning rate each time: trained, never loaded
                _helix(env, "run", config, *store, "-p", f"learner.learning_rate={0.01 + i * 1e-4}")
            else:
                _helix(env, "run" if kind == "eval" else "plan", config, *store)
            walls[kind].append(time.perf_counter() - t)
            if i == len(mix) or i % args.every == 0 or i == args.runs - 1:
                readings.append(reading(_wait_for_server(env), i))
                load.append(os.getloadavg())
        idle = readings[0]
        warm = next((r for r in readings if r["runs"] >= len(mix)), readings[-1])
        last = readings[-1]
        report = {
            "runs": args.runs,
            "served_runs": args.runs - 1,
            "scale": args.scale,
            "start": args.start,
            "mix": mix,
            "load_avg_first_last": [load[0], load[-1]],
            "idle_total_pss_mb": _mb(idle["total_pss_bytes"]),
            "idle_total_rss_mb": _mb(idle["total_rss_bytes"]),
            # The tree's physical pages, each once: data and mapped files (root only).
            "idle_distinct_mb": {k[:4]: _mb(v) for k, v in (idle["distinct"] or {}).items()},
            "last_distinct_mb": {k[:4]: _mb(v) for k, v in (last["distinct"] or {}).items()},
            "idle_pss_anon_file_mb": [
                _mb(idle["total_pss_anon_bytes"]),
                _mb(idle["total_pss_file_bytes"]),
            ],
            "idle_by_role_rss_mb": {k: _mb(v["rss_bytes"]) for k, v in idle["roles"].items()},
            "warm_total_pss_mb": _mb(warm["total_pss_bytes"]),
            "last_total_pss_mb": _mb(last["total_pss_bytes"]),
            "last_by_role_rss_mb": {k: _mb(v["rss_bytes"]) for k, v in last["roles"].items()},
            "growth_from_warm": growth(warm, last),
            "growth_from_idle": growth(idle, last),
            "growth_limit": GROWTH_LIMIT,
            "median_served_wall_s": {
                k: round(sorted(v)[len(v) // 2], 3) for k, v in walls.items() if v
            },
            "total_s": round(time.perf_counter() - t0, 1),
            "readings": readings,
        }
    g = report["growth_from_warm"]
    ok = within_limit(g)
    print(
        f"warm server's process tree ({args.start} start): idle "
        f"{report['idle_total_pss_mb']} MB PSS (data + files: {report['idle_pss_anon_file_mb']}; "
        f"{report['idle_by_role_rss_mb']} MB RSS; distinct pages {report['idle_distinct_mb']}); "
        "after "
        f"{args.runs - 1} served runs ({'/'.join(mix)}) {report['last_total_pss_mb']} MB PSS "
        f"({report['last_by_role_rss_mb']} MB RSS); growth from the warm reading "
        + ", ".join(f"{k} {v:+.1%}" for k, v in g.items() if v is not None)
        + f" ({'< 10%: met' if ok else '>= 10%: missed'}); median served wall "
        f"{report['median_served_wall_s']} s; load {load[0][0]:.1f} -> {load[-1][0]:.1f}"
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
