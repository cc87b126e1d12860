"""Terminal rendering for the CLI: progress lines and result tables (rich).

Only the CLI renders; library code logs. Everything here takes data
(``RunResult``, engine events) and produces rich renderables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from helix_tf.events import (
    EpochFinished,
    NodeFinished,
    Planned,
    PreprocessingStarted,
    ProgressEvent,
    RetrainingStarted,
    SampleMoved,
    TrainingStarted,
)
from helix_tf.roles import NodeState, state_counts
from helix_tf.views._data import confusion_cells

if TYPE_CHECKING:
    from helix_tf.history import HistoryEntry, VersionDiff
    from helix_tf.results import PlanResult, RunResult

__all__ = [
    "INTERVAL_LABEL",
    "STATE_STYLE",
    "ProgressPrinter",
    "changes_text",
    "confusion_table",
    "diff_lines",
    "history_table",
    "metrics_table",
    "nodes_table",
    "plan_summary",
    "plan_table",
    "retrained_table",
    "run_renderables",
    "run_summary",
]

STATE_STYLE = {NodeState.COMPUTE: "yellow", NodeState.LOAD: "green", NodeState.PRUNE: "dim"}


def _human_bytes(n: int | None) -> str:
    from helix_tf.reuse.planner import human_bytes

    return "" if n is None else human_bytes(n)


def _rows(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


class ProgressPrinter:
    """Renders a run's progress events (:mod:`helix_tf.events`) as one line per step,
    with the time elapsed since the printer was made."""

    def __init__(self, err: Console, enabled: bool) -> None:
        self.err = err
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled:
            return
        line = self.line(event, time.perf_counter() - self.t0)
        if line is not None:  # node names and values as written, never console markup
            self.err.print(line, highlight=False, markup=False)

    @staticmethod
    def line(event: ProgressEvent, elapsed: float) -> str | None:
        """The line printed for ``event`` after ``elapsed`` seconds (None: none)."""
        at = f"[{elapsed:6.1f}s]"
        if isinstance(event, Planned):
            counts = event.counts()
            return (
                f"plan: {counts['compute']} compute, {counts['load']} load, {counts['prune']} prune"
            )
        if isinstance(event, PreprocessingStarted):
            where = (
                "in this process (no Beam pipeline)"
                if event.runner == "in-process"
                else f"in one Beam pipeline ({event.runner})"
            )
            return f"{at} preprocessing {len(event.nodes)} node(s) {where} …"
        if isinstance(event, TrainingStarted):
            return f"{at} training {event.node} on {event.rows:,} rows …"
        if isinstance(event, RetrainingStarted):
            dropped = "; ".join(f"{ex}: {', '.join(fs)}" for ex, fs in event.drop.items())
            return f"{at} retraining without zero-weight features ({dropped}) …"
        if isinstance(event, SampleMoved):
            return (
                f"{at} the sample drawn at the source failed a check the whole training split "
                f"may pass ({' '.join(event.reason.split())}): again, with the sample drawn at "
                "training from "
                "every row …"
            )
        if isinstance(event, EpochFinished):
            eta = event.eta
            return (
                f"{at}   {event.node}: epoch {event.epoch}/{event.epochs}"
                f" loss {event.loss:.4f}" + (f", ETA {eta:.0f}s" if eta is not None else "")
            )
        if isinstance(event, NodeFinished):
            rows, other = event.rows, event.other_seconds or 0.0
            return (
                f"{at} {event.node}: {event.state} {event.seconds:.2f}s"
                + (f" (incl. {other:.2f}s importing TensorFlow)" if other >= 0.01 else "")
                + (f", {rows:,} rows" if rows is not None else "")
            )
        return None


#: What an approximate run's interval covers (CLI, ``--json``, history).
INTERVAL_LABEL = "95% interval (evaluation only)"


def number(value: float | None, spec: str = ".4f") -> str:
    """A metric value (or, with ``spec="+.4f"``, a difference) for a table or a line.

    Every number the CLI shows goes through here: ``None`` is blank, a NaN (an AUC on
    a slice with one class, a difference to one) is ``n/a`` (never ``+nan``), and
    infinities are ``inf``/``-inf`` (``+inf`` for a difference).

    >>> number(0.5), number(0.25, "+.4f"), number(float("nan"), "+.4f"), number(None)
    ('0.5000', '+0.2500', 'n/a', '')
    """
    if value is None:
        return ""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return ("+" if "+" in spec and value > 0 else "") + ("inf" if value > 0 else "-inf")
    return format(value, spec)


def _delta(value: float | None) -> str:
    return number(value, "+.4f")


def metrics_table(result: Any) -> Table:
    """Every metric; with a comparison, its change from the previous version and the best."""
    approx = result.approx
    comparison = getattr(result, "comparison", None)
    table = Table(title="metrics" + (" (≈ approximate)" if approx else ""), title_justify="left")
    table.add_column("metric", overflow="fold")  # full names, wrapped, never cut
    table.add_column("value", justify="right")
    if result.intervals:
        table.add_column(INTERVAL_LABEL, justify="right")
        table.caption = (
            "the interval covers the evaluation sample only (bootstrap over the test rows), "
            "not the variance of training on a sample: the exact value can lie outside it"
        )
        table.caption_justify = "left"
    changes = {m.name: m for m in comparison.metrics} if comparison is not None else {}
    if comparison is not None and comparison.previous_version is not None:
        table.add_column(f"vs v{comparison.previous_version}", justify="right")
    if any(m.best is not None for m in changes.values()):
        table.add_column("best earlier (version)", justify="right")
        table.add_column("vs best", justify="right")
    in_grid = {f"confusion/{t}/{p}" for t, p in confusion_cells(result.metrics)}
    for name, value in sorted(result.metrics.items()):
        if name in in_grid:  # shown as a matrix by confusion_table
            continue
        shown = f"{'≈' if approx else ''}{number(value)}"
        row = [escape(name), shown]
        if result.intervals:
            interval = result.intervals.get(name)
            row.append(f"[{number(interval[0])}, {number(interval[1])}]" if interval else "")
        m = changes.get(name)
        if comparison is not None and comparison.previous_version is not None:
            row.append(_delta(m.delta_previous) if m is not None else "")
        if any(c.best is not None for c in changes.values()):
            if m is not None and m.best is not None:
                row.append(f"{number(m.best)} (v{m.best_version}, run {m.best_run})")
                row.append(_delta(m.delta_best) + (" new best" if m.is_new_best else ""))
            else:
                row.extend(["", ""])
        table.add_row(*row)
    return table


def confusion_table(result: Any) -> Table | None:
    """A multiclass run's confusion matrix as a grid (None when the run has none)."""
    cells = confusion_cells(result.metrics)
    if not cells:
        return None
    names = sorted({c for pair in cells for c in pair})
    approx = "≈" if result.approx else ""
    table = Table(
        title="confusion matrix (rows: true class, columns: predicted)" + (" ≈" if approx else ""),
        title_justify="left",
    )
    table.add_column("true \\ predicted")
    for name in names:
        table.add_column(escape(name), justify="right")
    for t in names:
        row = [escape(t)]
        for p in names:
            value = cells.get((t, p), 0.0)
            text = f"{approx}{value:,.0f}"
            interval = (result.intervals or {}).get(f"confusion/{t}/{p}")
            if interval:
                text += f" [{interval[0]:,.0f}, {interval[1]:,.0f}]"
            row.append(f"[bold]{text}[/bold]" if t == p else text)
        table.add_row(*row)
    return table


def changes_text(result: Any) -> str:
    """What changed in the workflow since the version the run is compared with."""
    comparison = getattr(result, "comparison", None)
    if comparison is None:
        return ""
    if comparison.previous_version is None:  # the first version, or its rerun
        if comparison.approx:
            return (
                f"v{comparison.version}: no approximate run of another version to compare "
                "with yet (approximate runs are compared with approximate runs)"
            )
        return f"v{comparison.version}: no run of another version to compare with yet"
    head = f"v{comparison.version} (run {comparison.run_id}) against v{comparison.previous_version} (run {comparison.previous_run})"
    if not comparison.changes:
        return f"{head}: no change in operators or parameters (data or implementation)"
    return head + ", what changed:\n" + "\n".join(f"  {line}" for line in comparison.changes)


def retrained_table(result: Any) -> Table:
    """Metrics of the model trained with every feature vs. without the zero-weight ones."""
    info = result.retrained
    dropped = "; ".join(
        f"{ex}: " + ", ".join(f"{f} ({n:,} weights)" for f, n in fs.items())
        for ex, fs in info["dropped"].items()
    )
    table = Table(
        title=f"retrained without zero-weight features — dropped {escape(dropped)}",
        title_justify="left",
    )
    for col in ("metric", f"all features (run {info['full_run_id']})", "without", "difference"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, diff in info["difference"].items():
        table.add_row(
            escape(name),
            number(info["full_metrics"][name]),
            number(result.metrics[name]),
            number(diff, "+.4f"),
        )
    return table


def nodes_table(result: Any) -> Table:
    table = Table(title="nodes", title_justify="left")
    for col, just in (
        ("node", "left"),
        ("kind", "left"),
        ("state", "left"),
        ("time", "right"),
        ("rows", "right"),
        ("bytes", "right"),
        ("stored", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for n in result.nodes:
        style = STATE_STYLE.get(n.state, "")
        table.add_row(
            escape(n.name),
            n.kind,
            f"[{style}]{n.state}[/]",
            f"{n.seconds:.2f}s",
            _rows(n.rows),
            _human_bytes(n.bytes),
            "yes" if n.materialized else "",
        )
    return table


def run_renderables(result: RunResult) -> list[tuple[Any, bool]]:
    """What ``helix-tf run`` prints after a run, in order; ``True`` marks plain text
    (printed without markup or highlighting)."""
    out: list[tuple[Any, bool]] = [(nodes_table(result), False), (metrics_table(result), False)]
    grid = confusion_table(result)
    if grid is not None:
        out.append((grid, False))
    changed = changes_text(result)
    if changed:
        out.append((changed, True))
    if result.retrained is not None:
        out.append((retrained_table(result), False))
    return out


def run_summary(result: RunResult) -> str:
    """The last line of ``helix-tf run``: version, computed/loaded/pruned, wall time."""
    counts = state_counts(n.state for n in result.nodes)
    return (
        f"{result.workflow} v{result.version}: {counts[NodeState.COMPUTE]} computed, "
        f"{counts[NodeState.LOAD]} loaded, {counts[NodeState.PRUNE]} pruned in "
        f"{result.wall_seconds:.2f}s"
        + (
            f" (after {result.retrained['full_wall_seconds']:.2f}s for the run with every feature)"
            if result.retrained is not None
            else ""
        )
    )


def plan_table(result: PlanResult) -> Table:
    """``helix-tf plan``: one row a node, with its state, estimated costs and reason."""
    table = Table(
        title=f"plan for {result.workflow}" + (" (≈ approximate)" if result.approx else ""),
        title_justify="left",
    )
    for col in ("node", "kind", "state", "compute", "load", "reason"):
        table.add_column(col, overflow="fold")  # reasons wrap; values are never cut
    for d in result.nodes:
        style = STATE_STYLE.get(d.state, "")
        table.add_row(
            escape(d.name),
            d.kind,
            f"[{style}]{d.state}[/]",
            f"{d.compute_cost:.2f}s",
            "" if d.load_cost is None else f"{d.load_cost:.2f}s",
            escape(d.reason),  # a reason quotes values: "-[/data/a.csv] +[...]"
        )
    return table


def plan_summary(result: PlanResult) -> str:
    """The last line of ``helix-tf plan``: how many nodes of each state, estimated time."""
    counts = state_counts(d.state for d in result.nodes)
    return (
        f"plan: {counts[NodeState.COMPUTE]} compute, {counts[NodeState.LOAD]} load, "
        f"{counts[NodeState.PRUNE]} prune; estimated {result.estimated_seconds:.2f}s"
    )


def history_table(entries: Sequence[HistoryEntry], selection: Sequence[str] | None) -> Table:
    """``helix-tf history``: one row a run, newest first (``history.history_entries``)."""
    from helix_tf.history import select_metrics

    table = Table(
        title="history (newest first; run = one execution, version = one distinct workflow)",
        title_justify="left",
    )
    # Who ran what: shown when the runs name more than one person or host (a team's
    # shared database); a person's own history keeps its columns.
    who = len({(e.run.user, e.run.host) for e in entries}) > 1
    columns = ["run", "version", "what changed", "metrics", "time", "computed/loaded/pruned"]
    for col in [*columns, "who"] if who else columns:
        table.add_column(col, overflow="fold")
    for e in entries:
        r = e.run
        keys = select_metrics(sorted(r.metrics), selection)
        shown = {k: r.metrics[k] for k in keys}
        cells = set() if selection else {f"confusion/{t}/{p}" for t, p in confusion_cells(shown)}
        approx = "≈" if r.approx else ""
        metrics = "\n".join(
            f"{escape(k)} {approx}{number(r.metrics[k])}" for k in keys if k not in cells
        )
        if cells:  # a multiclass confusion matrix: K² counts, shown by `run`, not here
            metrics += f"\n({len(cells)} confusion counts: --metrics 'confusion/*')"
        if e.changed_from is not None:
            changed = f"since v{e.changed_from}:\n" + "\n".join(
                escape(c) for c in e.changes or ("data or implementation",)
            )
        else:
            changed = ""
        status = "" if r.status == "ok" else f" {r.status}"
        table.add_row(
            str(r.id),
            f"v{r.version}" + (" ≈" if r.approx else "") + status,
            changed,
            metrics,
            f"{r.wall_seconds or 0:.2f}s",
            "/".join(map(str, e.state_counts().values())),
            *([escape(f"{r.user or '?'}@{r.host or '?'}")] if who else []),
        )
    return table


#: The colour of each kind of node change in ``helix-tf diff``.
CHANGE_STYLE = {"added": "green", "removed": "red", "changed": "yellow", "unchanged": "dim"}


def diff_lines(found: VersionDiff, *, show_all: bool = False) -> list[str]:
    """``helix-tf diff``: a head line, then one (rich markup) line a node that differs."""
    lines = [escape(f"{found.old.workflow}: v{found.old.number} → v{found.new.number}")]
    for c in found.changes if show_all else found.differences:
        detail = "; ".join(c.details)
        lines.append(
            f"  [{CHANGE_STYLE[c.change]}]{c.change:9}[/] {escape(c.name)}"
            + (f": {escape(detail)}" if detail else "")
        )
    if len(lines) == 1:
        lines.append("  no differences")
    return lines
