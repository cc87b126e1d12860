"""Report views for multiclass and regression runs (issue 15).

- **Confusion matrix** (multiclass): a heat map of the latest run's
  ``confusion/<true>/<predicted>`` metrics, coloured by the share of each true class,
  with the counts written in the cells. From the metadata database alone.
- **Predicted vs actual** and **residuals** (regression): a scatter of predictions
  against labels (on log axes when the values span more than two decades) with the
  diagonal, and a histogram of ``label - prediction``. These read the latest run's
  stored predictions (:func:`load_regression_predictions`); without a store entry
  the section says so.

:func:`task_sections` is the hook :func:`helix_tf.report.render_report` calls; charts
use the report's matplotlib helpers (imported when drawing).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from helix_tf.reuse.metadata import RunRecord

__all__ = ["confusion_cells", "declared_classes", "load_regression_predictions", "task_sections"]

#: At most this many points are drawn in a scatter (a seeded sample of the rows).
MAX_POINTS = 5000


def confusion_cells(metrics: Mapping[str, float]) -> dict[tuple[str, str], float]:
    """``{(true, predicted): count}`` from multiclass confusion keys (overall, not sliced)."""
    cells = {}
    for key, value in metrics.items():
        if not key.startswith("confusion/") or "[" in key:
            continue
        parts = key.split("/")
        if len(parts) == 3:  # binary cells are confusion/tp: one part only
            cells[(parts[1], parts[2])] = value
    return cells


def declared_classes(dag: Mapping[str, Any] | None) -> list[str] | None:
    """The classes a multiclass label declares in a version's DAG (None: learned or absent)."""
    nodes = (dag or {}).get("nodes", ())
    for node in nodes.values() if isinstance(nodes, Mapping) else nodes:
        params = node.get("params") or {} if isinstance(node, Mapping) else {}
        if node.get("role") == "examples" and params.get("classes"):
            return [str(c) for c in params["classes"]]
    return None


def task_sections(
    run: RunRecord | None,
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    *,
    classes: Sequence[str] | None = None,
) -> list[str]:
    """HTML sections (``<h2>`` + card) for the latest run's task; empty for binary runs.

    ``predictions`` maps a predict node to its (labels, predictions) of a regression;
    ``classes`` orders the confusion matrix (default: the classes in sorted order).
    """
    if run is None:
        return []
    parts = []
    cells = confusion_cells(run.metrics)
    if cells:
        parts.append(
            "<h2>Confusion matrix of the latest run</h2>"
            f'<div class="card">{_confusion_chart(cells, classes)}</div>'
        )
    for name, (y, s) in sorted((predictions or {}).items()):
        parts.append(
            f"<h2>Predicted vs actual: {_esc(name)}</h2>"
            f'<div class="card">{_regression_chart(y, s)}</div>'
        )
    return parts


def load_regression_predictions(
    run: RunRecord | None, store: Any
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The stored (labels, predictions) of the run's regression predict nodes, by node name.

    Nodes whose predictions are not in ``store`` (an :class:`ArtifactStore`) are left out.
    """
    if run is None or store is None:
        return {}
    import pyarrow.parquet as pq

    from helix_tf.types import LABEL, SCORE

    out = {}
    for node in run.nodes:
        if node.kind != "predict":
            continue
        manifest = store.lookup(node.fingerprint)
        label = (manifest.meta.get("label") or {}) if manifest is not None else {}
        if label.get("task") != "regression":
            continue
        local = store.open_local(manifest)
        folder = os.path.join(local or "", manifest.meta.get("split", "test"))
        if local is None or not os.path.isdir(folder):
            continue
        table = pq.read_table(folder, columns=[LABEL, SCORE])
        out[node.name] = (
            table.column(LABEL).to_numpy().astype(np.float64),
            table.column(SCORE).to_numpy().astype(np.float64),
        )
    return out


def _confusion_chart(cells: Mapping[tuple[str, str], float], classes: Sequence[str] | None) -> str:
    from helix_tf.report import _figure, _mpl, _png

    seen = {c for pair in cells for c in pair}
    names = [c for c in (classes or ()) if c in seen] + sorted(seen - set(classes or ()))
    k = len(names)
    counts = np.array([[cells.get((t, p), 0.0) for p in names] for t in names])
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 1.6 + 0.75 * k
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{counts[i, j]:,.0f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.6 else "#222",
            )
    ax.set_xticks(range(k), [_mpl(n) for n in names], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(k), [_mpl(n) for n in names], fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class")
    fig.colorbar(image, ax=ax, label="share of the true class", shrink=0.8)
    right = float(np.trace(counts)) / max(float(counts.sum()), 1.0)
    return (
        f'<img alt="confusion matrix" src="data:image/png;base64,{_png(fig)}">'
        f'<p class="muted">Rows: true class; columns: predicted class; accuracy '
        f"{right:.4f} over {counts.sum():,.0f} rows.</p>"
    )


def _regression_chart(y: np.ndarray, s: np.ndarray) -> str:
    from helix_tf.report import _figure, _png

    shown = np.arange(len(y))
    if len(y) > MAX_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(len(y), MAX_POINTS, replace=False))
    fig = _figure(10, 4)
    left, right = fig.subplots(1, 2)
    lo = float(min(y.min(), s.min())) if len(y) else 0.0
    hi = float(max(y.max(), s.max())) if len(y) else 1.0
    log_axes = lo > 0 and hi / lo > 100
    left.scatter(y[shown], s[shown], s=4, alpha=0.35, color="#3b6ea8", linewidths=0)
    left.plot([lo, hi], [lo, hi], color="#c0392b", linewidth=1, label="prediction = label")
    if log_axes:
        left.set(xscale="log", yscale="log")
    left.set(title="Predicted vs actual", xlabel="label", ylabel="prediction")
    left.legend(loc="upper left", fontsize=8)
    residual = y - s
    # The central 99% of the residuals: a few outliers would squeeze the rest into one bar.
    span = tuple(np.quantile(residual, [0.005, 0.995])) if len(y) else (0.0, 1.0)
    right.hist(residual, bins=60, range=span, color="#6f9fd8", edgecolor="#4a76a8", linewidth=0.3)
    right.axvline(0, color="#c0392b", linewidth=1)
    right.set(title="Residuals (label - prediction), central 99%", xlabel="residual", ylabel="rows")
    rmse = math.sqrt(float(np.mean(residual**2))) if len(y) else math.nan
    note = f" ({len(shown):,} of {len(y):,} rows drawn)" if len(shown) < len(y) else ""
    return (
        f'<img alt="predicted vs actual" src="data:image/png;base64,{_png(fig)}">'
        f'<p class="muted">{len(y):,} rows of the test split{note}; RMSE {rmse:,.4g}, '
        f"median residual {float(np.median(residual)) if len(y) else math.nan:,.4g}.</p>"
    )


def _esc(text: str) -> str:
    import html

    return html.escape(str(text), quote=True)
