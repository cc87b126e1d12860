"""``helix-tf store gc | verify | du``: look after an artifact store.

Registered on the main command group by :mod:`helix_tf.cli`. Each command takes the
store as ``--store URL``, or as the ``.helix/`` folder next to a CONFIG (the default of
``helix-tf run``). ``gc`` and ``du`` read the metadata database too, found as every
command finds it (:mod:`helix_tf.settings`: ``--metadata``, ``HELIX_TF_METADATA``,
``helix_tf.toml`` above CONFIG or the current folder, else the store's own SQLite file).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from helix_tf.cli_common import consoles, fail
from helix_tf.errors import HelixError
from helix_tf.json_output import json_text, print_json

__all__ = ["store"]


def _consoles() -> tuple[Console, Console]:
    return consoles(click.get_current_context())


def _store_url(config: str | None, store: str | None) -> str:
    if store:
        return store
    if config:
        return str(Path(config).resolve().parent / ".helix")
    raise click.UsageError("name the store: --store URL, or a CONFIG whose .helix/ it is")


def _open(config: str | None, store: str | None, verbose: int, *, writing: bool) -> Any:
    """The store of ``--store`` or CONFIG; ``writing=False``: a command that only reads
    it (a store on a read-only mount is read too)."""
    logging.getLogger("helix_tf").setLevel(logging.INFO if verbose else logging.WARNING)
    from helix_tf.errors import StoreError
    from helix_tf.reuse.store import ArtifactStore, holds_a_store

    url = _store_url(config, store)
    if "://" not in url and not holds_a_store(url):
        raise StoreError(
            f"no artifact store at {url} (it has no helix_store.json); pass the --store a "
            "run used, or the CONFIG whose .helix/ it is"
        )
    return ArtifactStore(url, writing=writing)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def _guarded(err: Console, action: Callable[[], Any]) -> Any:
    """``action()``; a HelixError is printed as one line and exits with status 1."""
    try:
        return action()
    except HelixError as exc:
        fail(err, exc)


_options = [
    click.argument("config", required=False, type=click.Path(dir_okay=False)),
    click.option("--store", default=None, help="Artifact store URL (default: CONFIG's .helix/)."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    click.option(
        "-v", "--verbose", count=True, help="More logging (gc, verify --repair: what is removed)."
    ),
]


_metadata_option = click.option(
    "--metadata",
    default=None,
    help="Metadata database URL (default: HELIX_TF_METADATA, else helix_tf.toml above CONFIG "
    "or the current folder, else sqlite in a local store).",
)


def _with_options(fn: Any) -> Any:
    for deco in reversed(_options):
        fn = deco(fn)
    return fn


@click.group()
def store() -> None:
    """Look after an artifact store: reclaim leftovers, verify entries, show what uses space."""


@store.command()
@_with_options
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds: leftovers no live or dead run owns are removed once this old.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@_metadata_option
def gc(
    config: str | None,
    store: str | None,
    as_json: bool,
    verbose: int,
    older_than: float,
    dry_run: bool,
    metadata: str | None,
) -> None:
    """Reclaim what killed or failed runs left in the store (never a live run's files).

    Staging folders, data folders no manifest names, temporary and unusable manifests
    and dead runs' scratch folders go at once when the run that wrote them is gone,
    otherwise once older than --older-than. Committed entries are kept. The dead runs
    recorded in the metadata database are marked killed there.
    """
    out, err = _consoles()
    artifacts = _guarded(err, lambda: _open(config, store, verbose, writing=not dry_run))
    if not dry_run:
        _guarded(err, lambda: _refuse_damaged_metadata(artifacts, config, metadata, older_than))
    report = _guarded(err, lambda: artifacts.collect(older_than=older_than, dry_run=dry_run))
    killed = (
        [] if dry_run else _guarded(err, lambda: _mark_killed(report, artifacts, config, metadata))
    )
    if as_json:
        print_json(
            out,
            json_text(
                {
                    "removed": report.removed,
                    "bytes": report.bytes,
                    "paths": report.paths,
                    "dead_runs": [d.id for d in report.dead_runs],
                    "dead_run_owners": [
                        {"id": d.id, "user": d.user, "host": d.host, "pid": d.pid}
                        for d in report.dead_runs
                    ],
                    "marked_killed": killed,
                    "dry_run": dry_run,
                }
            ),
        )
        return
    verb = "would remove" if dry_run else "removed"
    for path in report.paths:
        out.print(f"{verb} {escape(str(path))}", highlight=False)
    for dead in report.dead_runs:  # on a shared store: whose run it was, and where
        run_id = dead.run.get("run_id")
        marked = f"; run {run_id} marked killed" if run_id in killed else ""
        out.print(
            f"dead run {dead.id}: {escape(dead.user)}@{escape(dead.host)} pid {dead.pid}{marked}",
            highlight=False,
        )
    out.print(
        f"{verb} {report.removed} leftover(s), {_size(report.bytes)}; "
        f"{len(report.dead_runs)} dead run(s)",
        highlight=False,
    )


@store.command()
@_with_options
@click.option(
    "--repair",
    is_flag=True,
    help="Remove failing entries, reclaim leftovers, and move a damaged metadata database "
    "aside (kept, renamed).",
)
@_metadata_option
def verify(
    config: str | None,
    store: str | None,
    as_json: bool,
    verbose: int,
    repair: bool,
    metadata: str | None,
) -> None:
    """Check every entry's files against its manifest (sizes and sha256), and that the
    metadata database reads (every page of a SQLite file).

    The store is clean when no entry and not the database fails; it then exits with
    status 0, else 1 (run again with --repair: it removes a failing entry, which the next
    run recomputes, and moves a damaged SQLite database aside, so the next run starts a
    fresh history). Leftovers of dead runs are counted, not damage (nothing reads them):
    `store gc` or --repair reclaims them. The text, --json (``clean``, ``clean_now``)
    and the exit status say the same.
    """
    out, err = _consoles()
    artifacts = _guarded(err, lambda: _open(config, store, verbose, writing=repair))
    database = _guarded(err, lambda: _check_metadata(artifacts, config, metadata, repair))
    report = _guarded(err, lambda: artifacts.verify(repair=repair))
    clean = not report.bad and database.damage is None
    # --repair removed what it found: the store is clean after it.
    clean_now = (not report.bad or repair) and database.clean_now
    if as_json:
        print_json(
            out,
            json_text(
                {
                    "ok": len(report.ok),
                    "bad": [{"fingerprint": fp, "problem": p} for fp, p in report.bad],
                    "leftovers": report.leftovers.removed,
                    "leftover_bytes": report.leftovers.bytes,
                    "newer": report.newer,
                    "metadata": database.to_dict(),
                    "clean": clean,
                    "repaired": repair,
                    "clean_now": clean_now,
                }
            ),
        )
    else:
        for fp, problem in report.bad:
            out.print(f"[red]bad[/] {escape(fp)}: {escape(problem)}", highlight=False)
        for line in database.lines():
            out.print(escape(line), highlight=False)
        if report.newer:
            out.print(
                f"note: {len(report.newer)} entr(ies) written by a newer helix_tf were not "
                "checked (and are kept): upgrade helix_tf to check them",
                highlight=False,
            )
        leftovers = report.leftovers
        if repair:
            summary = f"removed {len(report.bad)} bad entr(ies), {leftovers.removed} leftover(s)"
        else:
            summary = (
                f"{len(report.bad)} bad, {leftovers.removed} leftover(s) of dead runs "
                f"({_size(leftovers.bytes)}; `helix-tf store gc` reclaims them)"
            )
        # What --repair found is gone: say so, not "NOT clean" about a clean store.
        state = "clean" if clean else "was NOT clean, clean now" if clean_now else "NOT clean"
        out.print(f"{len(report.ok)} entries verified, {summary}: {state}", highlight=False)
    if not clean_now:
        raise SystemExit(1)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _DatabaseCheck:
    """What ``store verify`` found of the metadata database, and what --repair did."""

    url: str | None
    #: What is damaged (--repair moves the file aside).
    damage: str | None = None
    #: Why it could not be checked (a newer schema, a server that does not answer): not
    #: damage, left alone.
    unchecked: str | None = None
    #: Where --repair moved the damaged file (None: not moved).
    moved_to: str | None = None
    #: Why --repair could not move it.
    not_repaired: str | None = None

    @property
    def clean_now(self) -> bool:
        return self.damage is None or self.moved_to is not None

    def lines(self) -> list[str]:
        if self.unchecked is not None:
            return [f"note: the metadata database was not checked: {self.unchecked}"]
        if self.damage is None:
            return []
        if self.moved_to is not None:
            return [
                f"bad metadata database: {self.damage}",
                f"moved it aside to {self.moved_to} (kept; the next run starts a fresh "
                "history, the stored artifacts are reused)",
            ]
        fix = self.not_repaired or "run again with --repair to move it aside (kept)"
        return [f"bad metadata database: {self.damage}", fix]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_metadata(
    artifacts: Any, config: str | None, metadata: str | None, repair: bool
) -> _DatabaseCheck:
    """Check the store's metadata database; with ``repair``, move a damaged one aside."""
    from helix_tf.errors import StoreError
    from helix_tf.reuse.metadata import check_database, set_aside

    url, _ = _metadata_url(artifacts, config, metadata)
    if url is None:
        return _DatabaseCheck(url=None)
    found = check_database(url)
    if not found.damaged:
        return _DatabaseCheck(url=url, unchecked=found.problem)
    if not repair:
        return _DatabaseCheck(url=url, damage=found.problem)
    live = [f"{i.user}@{i.host} pid {i.pid}" for i in artifacts.run_leases.all() if i.alive]
    if live:  # it still writes into the file: moved now, its records would go with it
        return _DatabaseCheck(
            url=url,
            damage=found.problem,
            not_repaired=f"not moved aside: runs are live on this store ({', '.join(live)}); "
            "run `--repair` again when they have ended",
        )
    try:
        moved = set_aside(url)
    except StoreError as exc:
        return _DatabaseCheck(url=url, damage=found.problem, not_repaired=str(exc))
    return _DatabaseCheck(url=url, damage=found.problem, moved_to=str(moved))


@store.command()
@_with_options
@_metadata_option
def du(
    config: str | None, store: str | None, as_json: bool, verbose: int, metadata: str | None
) -> None:
    """What uses the store's space: entries by workflow node and version, and leftovers."""
    out, err = _consoles()
    artifacts = _guarded(err, lambda: _open(config, store, verbose, writing=False))
    entries, names, leftovers = _guarded(
        err,
        lambda: (
            artifacts.entries(),
            _node_names(artifacts, config, metadata),
            artifacts.collect(dry_run=True, older_than=0.0),
        ),
    )
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for m in entries:
        owners = names.get(m.fingerprint) or [("?", 0, f"(unnamed {m.kind})")]
        workflow, _, node = owners[-1]
        row = rows.setdefault(
            (workflow, node),
            {"workflow": workflow, "node": node, "entries": 0, "bytes": 0, "versions": set()},
        )
        row["entries"] += 1
        row["bytes"] += m.bytes
        row["versions"].update(v for w, v, n in owners if (w, n) == (workflow, node) and v)
    ordered = sorted(rows.values(), key=lambda r: (-r["bytes"], r["workflow"], r["node"]))
    total = sum(m.bytes for m in entries)
    from helix_tf.reuse.tagged import entry_tag

    tagged: dict[str, int] = {}  # entries of tagged runs (the agent's): evicted first
    for m in entries:
        tag = entry_tag(m)
        if tag is not None:
            tagged[tag] = tagged.get(tag, 0) + m.bytes
    if as_json:
        print_json(
            out,
            json_text(
                {
                    "nodes": [{**r, "versions": sorted(r["versions"])} for r in ordered],
                    "entries_bytes": total,
                    "tagged_bytes": tagged,
                    "leftover_bytes": leftovers.bytes,
                    "leftovers": leftovers.removed,
                }
            ),
        )
        return
    table = Table(title=f"store {escape(artifacts.url)}", title_justify="left")
    for col in ("workflow", "node", "versions", "entries", "size"):
        table.add_column(col, justify="right" if col in ("entries", "size") else "left")
    for r in ordered:
        versions = ",".join(f"v{v}" for v in sorted(r["versions"])) or "-"
        table.add_row(
            escape(r["workflow"]), escape(r["node"]), versions, str(r["entries"]), _size(r["bytes"])
        )
    out.print(table)
    mine = "".join(
        f" ({_size(n)} made by {tag} runs, evicted first)" for tag, n in sorted(tagged.items())
    )
    out.print(
        f"{len(entries)} entries, {_size(total)}{mine}; leftovers not yet reclaimed: "
        f"{leftovers.removed} ({_size(leftovers.bytes)})",
        highlight=False,
    )


def _node_names(
    artifacts: Any, config: str | None, metadata: str | None
) -> dict[str, list[tuple[str, int, str]]]:
    """Fingerprint → (workflow, version, node) from the metadata database, if there is one.

    A database that cannot be read (damaged, a newer schema) names nothing: the sizes
    are the store's own, so ``du`` goes on, the entries unnamed, and says why.
    """
    from helix_tf._session import open_metadata_to_read
    from helix_tf.errors import StoreError

    url, setting = _metadata_url(artifacts, config, metadata)
    if url is None:
        return {}
    try:
        with open_metadata_to_read(url, setting) as md:
            return md.node_names()
    except StoreError as exc:
        _consoles()[1].print(
            f"[yellow]note:[/] entries are not named by workflow node: {escape(str(exc))}",
            highlight=False,
        )
        return {}


def _refuse_damaged_metadata(
    artifacts: Any, config: str | None, metadata: str | None, older_than: float
) -> None:
    """Refuse ``gc`` before it removes anything when the dead runs it would mark killed
    are recorded in a metadata database that is damaged (their leases are the only record
    of which runs they were; removing them first and failing after lost that)."""
    from helix_tf.errors import StoreError
    from helix_tf.reuse.metadata import check_database

    url, _ = _metadata_url(artifacts, config, metadata)
    found = check_database(url) if url is not None else None
    if found is None or found.problem is None:
        return
    preview = artifacts.collect(older_than=older_than, dry_run=True)
    runs = sorted(int(d.run["run_id"]) for d in preview.dead_runs if d.run.get("run_id"))
    if not runs:
        return  # nothing to record there: the leftovers can go
    fix = (
        f"Run `helix-tf store verify {_where(artifacts, config)} --repair` (it moves the "
        "damaged database aside, kept; history starts afresh and the stored artifacts are "
        "reused)"
        if found.damaged
        else "Fix that first"
    )
    raise StoreError(
        f"{found.problem}. Nothing was removed: gc marks the dead runs "
        f"{', '.join(map(str, runs))} killed in that database, and cannot while it "
        f"{'is damaged' if found.damaged else 'is unusable'}. {fix}, then "
        "`helix-tf store gc` again"
    )


def _where(artifacts: Any, config: str | None) -> str:
    """How a command names this store again: CONFIG, else ``--store URL``."""
    return config if config else f"--store {artifacts.url}"


def _mark_killed(
    report: Any, artifacts: Any, config: str | None, metadata: str | None
) -> list[int]:
    """Mark the dead runs recorded in the metadata database killed there; their ids."""
    if not any(d.run.get("run_id") is not None for d in report.dead_runs):
        return []
    from helix_tf._session import open_metadata

    url, setting = _metadata_url(artifacts, config, metadata)
    if url is None:
        return []
    with open_metadata(url, setting) as md:
        killed = report.killed_runs(md.url)
        md.mark_killed(killed)
    return killed


def _metadata_url(artifacts: Any, config: str | None, given: str | None) -> tuple[str | None, Any]:
    """The metadata database's URL and its setting: ``--metadata``, ``HELIX_TF_METADATA``,
    ``helix_tf.toml`` above CONFIG (else the current folder), else the local store's
    SQLite file when it exists (None: no database to read)."""
    from helix_tf.settings import metadata_setting

    setting = metadata_setting(given, config or Path.cwd())
    if setting.value is not None:
        return setting.value, setting
    if artifacts is None or not artifacts.is_local:
        return None, setting
    from helix_tf.reuse.metadata import sqlite_url

    path = Path(artifacts.root) / "metadata.db"
    return (sqlite_url(path) if path.exists() else None), setting
