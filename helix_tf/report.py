"""``helix-tf report``: one self-contained HTML page that answers "what did my change do?".

The page (DESIGN.md §11) shows: (1) the DAG of the latest version in topological
layers, each node coloured by its state (compute, load, prune) with its time, in the
latest run that computed something (an unchanged rerun only loads and prunes); (2) the
model's views (:mod:`helix_tf.views`, by the label's task: ROC and precision-recall
curves, calibration and confusion matrix; a K×K confusion matrix; predicted vs actual
and residuals; then metrics per slice, permutation importance, linear weights), read
from the predictions and explanation the latest run stored, never recomputed; (3) the
cumulative run time, and each run's wall time split into computing, loading, writing
and the rest; (4) every metric's history (approximate runs hollow, with intervals;
versions labelled and on hover); (5) a table of the last runs and what changed between
the latest two versions. Everything but (2) comes from the metadata database alone.

The DAG is inline SVG; the charts are PNG images inlined as base64 (matplotlib is
imported only while rendering). The page loads nothing from anywhere.

Examples
--------
>>> from helix_tf.reuse.metadata import MetadataStore
>>> with MetadataStore("sqlite://") as store:
...     page = render_report("census", store)
>>> "No runs of census" in page
True
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helix_tf._atomic import atomic_write
from helix_tf._report_dag import (
    STATE_COLOURS,
    dag_legend,
    dag_nodes,
    dag_svg,
    html_escape,
    seconds_text,
)
from helix_tf.errors import ConfigError, ExecutionError
from helix_tf.roles import NodeState, Role, state_counts
from helix_tf.views._html import CSS as VIEWS_CSS

if TYPE_CHECKING:
    from helix_tf.reuse.metadata import MetadataStore, RunRecord, VersionRecord

__all__ = [
    "STATE_COLOURS",
    "default_report_path",
    "render_report",
    "write_config_report",
    "write_report",
]

_TIME_COLOURS = {
    "computing": STATE_COLOURS[NodeState.COMPUTE],
    "loading": STATE_COLOURS[NodeState.LOAD],
    "writing": "#6f9fd8",
    "other (launch, planning)": "#e3e3e3",
}
_LABEL = {"xytext": (6, 5), "textcoords": "offset points", "fontsize": 8, "color": "#555"}

_CSS = """body{font:14px/1.45 system-ui,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:16px 24px 40px}h1{font-size:22px;margin:8px 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}.muted{color:#666}
.card{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:12px;overflow-x:auto}
table{border-collapse:collapse;font-size:13px;background:#fff}th{background:#f2f2f2}
th,td{border-bottom:1px solid #e6e6e6;padding:4px 10px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.failed td{color:#a33}
.legend span{display:inline-block;margin-right:14px}ul.changes li{margin:3px 0}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:4px}
code{background:#f0f0f0;padding:0 3px;border-radius:3px}"""


def render_report(
    workflow: str,
    metadata: MetadataStore,
    *,
    compiled_dag: Mapping[str, Any] | None = None,
    limit: int = 50,
    store_url: str | None = None,
    user: str | None = None,
) -> str:
    """The report of ``workflow``: one HTML page that loads nothing from anywhere.

    Parameters
    ----------
    workflow
        The workflow's name (``CompiledWorkflow.name``).
    metadata
        The metadata database its runs were recorded in.
    compiled_dag
        A ``CompiledWorkflow.to_dict()`` to draw instead of the latest run's version,
        coloured by the latest run's states (nodes it lacks are drawn white).
    limit
        How many of the most recent runs the charts and the table cover.
    store_url
        The artifact store to read the latest run's predictions and explanation
        from (default: the store that run recorded); ``""`` leaves the model views out.
        Which views depend on the label's task (:data:`helix_tf.views.PREDICTION_VIEWS`).
    user
        Only that person's runs and versions (team mode: one's own history); None:
        everyone's.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, but got limit={limit}")
    from helix_tf.history import recorded_runs, recorded_versions

    # Every run, the agent's too (marked by its tag), oldest first.
    runs = list(reversed(recorded_runs(metadata, workflow, agent=True, limit=limit, user=user)))
    versions = recorded_versions(metadata, workflow, user=user)
    coloured, colour_note = _run_to_colour(runs)
    dag, dag_note = _dag_to_draw(coloured, versions, compiled_dag)
    parts = [
        f"<h1>helix_tf report: {html_escape(workflow)}</h1>",
        _summary(workflow, runs, versions),
    ]
    title = f"DAG of v{coloured.version}" if coloured is not None else "DAG"
    parts.append(f"<h2>{title}: what its run computed, loaded and pruned</h2>")
    for note in (colour_note, dag_note):
        if note:
            parts.append(f'<p class="muted">{html_escape(note)}</p>')
    if dag is not None:
        states = {n.name: n for n in coloured.nodes} if coloured is not None else {}
        parts.append(dag_legend() + f'<div class="card">{dag_svg(dag, states)}</div>')
    viewed = next((r for r in reversed(runs) if r.status == "ok"), None)  # latest that ran
    if viewed is not None:
        url = viewed.store_url if store_url is None else store_url
        parts.append(_model_views(viewed, versions, url))
    if runs:
        parts.append("<h2>Run time</h2>" + f'<div class="card">{_timing_chart(runs)}</div>')
        if any(r.metrics for r in runs):
            parts.append(
                "<h2>Metric history</h2>" + f'<div class="card">{_metric_chart(runs)}</div>'
            )
        parts.append(f"<h2>Last {len(runs)} run{'s' if len(runs) != 1 else ''}</h2>")
        parts.append(_runs_table(runs))
    parts.append(_changes(versions))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>helix_tf report: {html_escape(workflow)}</title><style>{_CSS}{VIEWS_CSS}</style></head>"
        f"<body><main>{''.join(parts)}"
        f'<p class="muted">Generated {html_escape(stamp)} from {html_escape(metadata.url)}.</p></main></body></html>\n'
    )


def write_config_report(
    config: str | os.PathLike[str],
    path: str | os.PathLike[str] | None = None,
    *,
    limit: int = 50,
    user: str | None = None,
    params: Sequence[str] | Mapping[str, Any] = (),
    data_dir: str | None = None,
    store: str | None = None,
    metadata: str | None = None,
) -> str:
    """Write the report of ``config``'s workflow (``helix-tf report``); where it went.

    ``path`` defaults to ``reports/<workflow>.html`` in the store. The DAG drawn is the
    config as it is now, coloured by the latest run (while the config does not load: the
    latest run's version, the workflow found as ``history`` finds it). Raises
    :class:`~helix_tf.errors.StoreError` when no run has written the store. ``user``:
    only that person's runs and versions (team mode; None: everyone's).
    """
    from helix_tf._session import open_session

    try:
        session = open_session(
            config, params=params, data_dir=data_dir, store=store, metadata=metadata, existing=True
        )
    except ConfigError as broken:
        return _write_recorded_report(config, path, broken, limit, user, store, metadata)
    try:
        html = render_report(
            session.compiled.name,
            session.metadata,
            compiled_dag=session.compiled.to_dict(),
            limit=limit,
            user=user,
        )
        target = (
            path
            if path is not None
            else default_report_path(session.store_url, session.compiled.name)
        )
    finally:
        session.close()
    return write_report(target, html)


def _write_recorded_report(
    config: str | os.PathLike[str],
    path: str | os.PathLike[str] | None,
    broken: ConfigError,
    limit: int,
    user: str | None,
    store: str | None,
    metadata: str | None,
) -> str:
    """The report while the config does not load: what runs recorded, the DAG of the
    latest run's version (the workflow is found as ``history`` finds it)."""
    from helix_tf._session import default_home, open_recorded
    from helix_tf.history import recorded_workflow

    with open_recorded(config, store=store, metadata=metadata) as md:
        name = recorded_workflow(config, md, broken)
        html = render_report(name, md, limit=limit, user=user)
    store_url = store or str(default_home(Path(config).resolve()))
    target = path if path is not None else default_report_path(store_url, name)
    return write_report(target, html)


def default_report_path(store_url: str, workflow: str) -> str:
    """Where a report goes when no path is given: ``reports/<workflow>.html`` in the store."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workflow) or "workflow"
    return f"{store_url.rstrip('/')}/reports/{safe}.html"


def write_report(path: str | os.PathLike[str], html: str) -> str:
    """Write ``html`` to ``path`` (UTF-8), atomically; parent folders are created. Returns
    where it went: ``~`` expanded (``--html=~/r.html``, which a shell leaves as typed, was
    written into a folder named ``~`` under the working directory).

    ``path`` may be a URL of a remote store (``gs://...``), written through fsspec.
    """
    try:
        if "://" in str(path) and not str(path).startswith("file://"):
            import fsspec

            with fsspec.open(str(path), "w", encoding="utf-8") as f:
                f.write(html)
            return str(path)
        target = Path(str(path).removeprefix("file://")).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, html)  # whole or not at all, and no partial file left behind
        return str(target)
    except OSError as exc:  # a folder that cannot be made, a full disk, a file in the way
        raise ExecutionError(
            f"cannot write the report to {str(path)!r} ({exc.strerror or exc}"
            f"{': ' + str(exc.filename) if exc.filename else ''}); pass --html FILE in a "
            "folder you can write"
        ) from exc


# -- summary -------------------------------------------------------------------------------


def _summary(workflow: str, runs: Sequence[RunRecord], versions: Sequence[VersionRecord]) -> str:
    if not runs:
        return f'<p class="muted">No runs of {html_escape(workflow)} are recorded yet.</p>'
    last = runs[-1]
    counts = state_counts(n.state for n in last.nodes)
    text = (
        f"{len(versions)} version{'s' if len(versions) != 1 else ''}; latest run "
        f"<b>#{last.id}</b> (v{last.version}{', approximate' if last.approx else ''}, "
        f"{html_escape(last.status)}) at {html_escape(_when(last.started))}: {counts[NodeState.COMPUTE]} computed, "
        f"{counts[NodeState.LOAD]} loaded, {counts[NodeState.PRUNE]} pruned in {seconds_text(last.wall_seconds)}"
    )
    if len(runs) > 1:
        prev = runs[-2]
        text += f" (run #{prev.id}: {seconds_text(prev.wall_seconds)})"
        deltas = [
            f"{html_escape(k)} {_num(prev.metrics[k])} → {_num(v)}"
            for k, v in sorted(last.metrics.items())
            if k in prev.metrics
        ]
        if deltas:
            text += ". Metrics since run #" + str(prev.id) + ": " + ", ".join(deltas)
    return f"<p>{text}.</p>"


def _run_to_colour(runs: Sequence[RunRecord]) -> tuple[RunRecord | None, str]:
    """The run whose states the DAG shows: the latest, unless it only reused results.

    An unchanged rerun loads its outputs and prunes the rest, which says nothing about
    the version's plan; the DAG then shows the last run of the same version that
    computed something, and says so.
    """
    if not runs:
        return None, ""
    latest = runs[-1]
    if any(n.state == NodeState.COMPUTE for n in latest.nodes):
        return latest, ""
    for run in reversed(runs[:-1]):
        same = run.version == latest.version and run.approx == latest.approx
        if same and run.status == "ok" and any(n.state == NodeState.COMPUTE for n in run.nodes):
            counts = state_counts(n.state for n in latest.nodes)
            return run, (
                f"The latest run #{latest.id} reused every result ({counts[NodeState.LOAD]} loaded, "
                f"{counts[NodeState.PRUNE]} pruned); the colours show run #{run.id}, the last run "
                f"that computed v{run.version}."
            )
    return latest, ""


def _model_views(run: RunRecord, versions: Sequence[VersionRecord], store_url: str) -> str:
    """Curves, calibration, confusion, slices, importance and weights of ``run``."""
    head = f"<h2>The model: run #{run.id} (v{run.version})</h2>"
    if not store_url:
        return head + '<p class="muted">No artifact store is known for this run.</p>'
    from helix_tf.views import gather
    from helix_tf.views._html import render_views

    dag = next((v.dag for v in versions if v.number == run.version), {})
    task, classes = _label_of(dag)
    evidence = gather(
        ((n.name, n.kind, n.fingerprint) for n in run.nodes),
        store_url=store_url,
        metrics=run.metrics,
        classes=classes,
        task=task,
    )
    return head + render_views(evidence)


def _label_of(dag: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...] | None]:
    """The label's task and class names from a version's examples node.

    Binary: negative first (``("not >50K", ">50K")``); multiclass: the declared
    classes (None when learned: the stored predictions name them).
    """
    from helix_tf.components.features._label import LABELS

    tasks = {label.__name__: label.TASK for label in LABELS}
    for node in dag_nodes(dag).values():
        if node.get("role") != Role.EXAMPLES:
            continue
        label = (node.get("extra") or {}).get("label") or node.get("params") or {}
        task = tasks.get(str(node.get("op")))
        if label.get("positive") is not None:
            positive = str(label["positive"])
            return task or "binary", (f"not {positive}", positive)
        classes = label.get("classes")
        return task, tuple(str(c) for c in classes) if classes else None
    return None, None


# -- the DAG -------------------------------------------------------------------------------


def _dag_to_draw(
    latest: RunRecord | None,
    versions: Sequence[VersionRecord],
    compiled_dag: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any] | None, str]:
    if compiled_dag is not None:
        digests = {v.digest: v.number for v in versions}
        number = digests.get(str(compiled_dag.get("digest")))
        if number is None:
            return compiled_dag, "The compiled DAG has not run yet; colours are the latest run's."
        if latest is not None and number != latest.version:
            return compiled_dag, f"The compiled DAG is v{number}; colours are the latest run's."
        return compiled_dag, ""
    if latest is None:
        return None, ""
    for v in versions:
        if v.number == latest.version:
            return v.dag, ""
    nodes = [{"name": n.name, "kind": n.kind, "inputs": []} for n in latest.nodes]
    return {"nodes": nodes}, f"Version {latest.version} is not recorded; edges are unknown."


# -- charts --------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from helix_tf._optional import agg_figure

    return agg_figure(width, height, purpose="helix-tf report draws its charts")


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _timing_chart(runs: Sequence[RunRecord]) -> str:
    ids = [r.id for r in runs]
    walls = [r.wall_seconds or 0.0 for r in runs]
    parts = {name: [] for name in _TIME_COLOURS}
    for r, wall in zip(runs, walls, strict=True):
        computing = sum(n.compute_seconds for n in r.nodes if n.state == NodeState.COMPUTE)
        loading = sum(n.load_seconds for n in r.nodes if n.state == NodeState.LOAD)
        writing = sum(n.write_seconds for n in r.nodes)
        for key, value in zip(parts, (computing, loading, writing), strict=False):
            parts[key].append(value)
        parts["other (launch, planning)"].append(max(wall - computing - loading - writing, 0.0))
    fig = _figure(11.4, 3.6)
    left, right = fig.subplots(1, 2)
    total = 0.0
    cumulative = [total := total + w for w in walls]
    left.plot(ids, cumulative, marker="o", color="#3b6ea8")
    for r, c in zip(runs, cumulative, strict=True):
        if r.approx:
            left.plot([r.id], [c], marker="o", mfc="white", color="#3b6ea8")
    left.set(title="Cumulative run time", xlabel="run", ylabel="seconds", ylim=(0, None))
    bottom = [0.0] * len(runs)
    for key, values in parts.items():
        right.bar(ids, values, bottom=bottom, color=_TIME_COLOURS[key], label=key, edgecolor="#666")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.set(title="Wall time per run, by what it was spent on", xlabel="run", ylabel="seconds")
    right.set_ylim(0, max(bottom) * 1.08 or 1.0)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    for ax in (left, right):
        _run_ticks(ax, ids)
        ax.grid(alpha=0.3)
    return (
        f'<img alt="cumulative run time and wall time per run" src="data:image/png;base64,'
        f'{_png(fig)}" style="max-width:100%">'
        '<p class="muted">Hollow points: approximate runs. Bars add up to the wall time.</p>'
    )


def _run_ticks(ax: Any, ids: Sequence[int]) -> None:
    step = max(1, math.ceil(len(ids) / 12))
    ax.set_xticks(list(ids)[::step])
    ax.set_xticklabels([f"#{i}" for i in list(ids)[::step]], fontsize=8)


def _metric_chart(runs: Sequence[RunRecord]) -> str:
    names = sorted({k for r in runs for k in r.metrics})[:12]
    cols = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / cols)
    fig = _figure(11.4 if cols == 2 else 7, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    ids = [r.id for r in runs]
    hover: list[tuple[Any, float, float, str]] = []
    for ax, name in zip(axes, names, strict=False):
        points = [r for r in runs if name in r.metrics and math.isfinite(r.metrics[name])]
        exact = [r for r in points if not r.approx]
        ax.plot([r.id for r in exact], [r.metrics[name] for r in exact], "o-", color="#3b6ea8")
        for r in (r for r in points if r.approx):
            low, high = r.intervals.get(name, (r.metrics[name], r.metrics[name]))
            v = r.metrics[name]
            yerr = [[max(v - low, 0.0)], [max(high - v, 0.0)]]
            ax.errorbar([r.id], [v], yerr=yerr, fmt="o", mfc="white", color="#c0392b", capsize=3)
        previous = None
        for r in points:
            if r.version != previous:
                ax.annotate(f"v{r.version}", (r.id, r.metrics[name]), **_LABEL)
            previous = r.version
            text = f"run #{r.id}, v{r.version}{' (approximate)' if r.approx else ''}: {name}"
            hover.append((ax, r.id, r.metrics[name], f"{text} = {_num(r.metrics[name])}"))
        ax.set_title(_mpl(name), fontsize=11)
        values = [v for r in points for v in (r.metrics[name], *r.intervals.get(name, ()))]
        if values:  # a change in the 4th decimal must not look like a cliff
            lo, hi = min(values), max(values)
            pad = max((hi - lo) * 0.25, 0.01 * max(abs(lo), abs(hi)), 1e-6)
            ax.set(ylim=(lo - pad, hi + pad))
        ax.margins(x=0.08)
        _run_ticks(ax, ids)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.canvas.draw()  # fixes the layout, so the hover areas match the saved image
    height = fig.bbox.height
    areas = []
    for ax, x, y, text in hover:
        px, py = ax.transData.transform((x, y))
        areas.append(
            f'<area shape="circle" coords="{px:.0f},{height - py:.0f},7" '
            f'title="{html_escape(text)}" alt="{html_escape(text)}">'
        )
    more = len({k for r in runs for k in r.metrics}) - len(names)
    return (
        f'<img alt="metric history" usemap="#helix-metrics" src="data:image/png;base64,'
        f'{_png(fig)}"><map name="helix-metrics">{"".join(areas)}</map>'
        '<p class="muted">Filled: exact runs; hollow red with interval: approximate runs. '
        "Labels mark where the version changes; hover a point for its run and version."
        f"{f' {more} more metrics are in the table.' if more > 0 else ''}</p>"
    )


# -- tables --------------------------------------------------------------------------------


def _runs_table(runs: Sequence[RunRecord]) -> str:
    head = (
        "<th>run</th><th>version</th><th>status</th><th>when</th><th>wall s</th>"
        "<th>computed</th><th>loaded</th><th>pruned</th><th>metrics</th>"
    )
    rows = []
    for r in reversed(runs):  # newest first
        counts = state_counts(n.state for n in r.nodes)
        metrics = ", ".join(_metric_text(r, k) for k in sorted(r.metrics))
        rows.append(
            f'<tr class="{html_escape(r.status)}"><td>#{r.id}</td>'
            f"<td>v{r.version}{' ≈ approx' if r.approx else ''}</td><td>{html_escape(r.status)}</td>"
            f"<td>{html_escape(_when(r.started))}</td>"
            f'<td class="num">{"" if r.wall_seconds is None else f"{r.wall_seconds:.2f}"}</td>'
            + "".join(f'<td class="num">{counts[s]}</td>' for s in STATE_COLOURS)
            + f"<td>{metrics}</td></tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _metric_text(run: RunRecord, name: str) -> str:
    text = f"{html_escape(name)} {'≈' if run.approx else ''}{_num(run.metrics[name])}"
    if run.approx and name in run.intervals:
        low, high = run.intervals[name]
        text += f" [{_num(low)}, {_num(high)}]"
    return text


def _changes(versions: Sequence[VersionRecord]) -> str:
    if len(versions) < 2:
        return ""
    from helix_tf.history import diff_records

    new = versions[-1]
    old = next((v for v in versions if v.number == new.parent), versions[-2])
    before, after = dag_nodes(old.dag), dag_nodes(new.dag)
    found = diff_records(
        dataclasses.replace(old, dag={"nodes": list(before.values())}),
        dataclasses.replace(new, dag={"nodes": list(after.values())}),
    )
    kinds = {name: spec.get("kind") for name, spec in (*before.items(), *after.items())}
    items = []
    for c in found.differences:
        kind = f" ({kinds[c.name]})" if kinds.get(c.name) else ""
        why = f": {html_escape('; '.join(c.details))}" if c.change == "changed" else ""
        items.append(
            f"<li><b>{c.change}</b> <code>{html_escape(c.name)}</code>{html_escape(kind)}{why}</li>"
        )
    same = [c.name for c in found.changes if c.change == "unchanged"]
    if same:
        shown = ", ".join(same[:12]) + (f" and {len(same) - 12} more" if len(same) > 12 else "")
        items.append(f"<li><b>unchanged</b> ({len(same)}): {html_escape(shown)}</li>")
    if not items:
        items.append("<li>no node differs</li>")
    return (
        f"<h2>What changed from v{old.number} to v{new.number}</h2>"
        f'<ul class="changes">{"".join(items)}</ul>'
    )


# -- formatting ----------------------------------------------------------------------------


def _mpl(text: str) -> str:
    return text.replace("$", r"\$")  # matplotlib reads $...$ as math


def _num(value: float) -> str:
    if value is None or math.isnan(value):
        return "nan"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
