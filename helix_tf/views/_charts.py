"""Drawing each view on a matplotlib ``Axes`` (matplotlib is imported by the caller).

One function per view, ``draw_x(ax, data)``: the data comes from ``_data`` or an
explanation; nothing here reads a store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from helix_tf.views._data import Calibration, Confusion, Curve, Regression

_BLUE, _RED, _GREEN, _GREY = "#3b6ea8", "#c0392b", "#3c9a5f", "#999999"


def draw_curve(ax: Any, curve: Curve, *, name: str) -> None:
    label = f"{name} {curve.auc:.4f}" if math.isfinite(curve.auc) else name
    ax.plot(curve.x, curve.y, color=_BLUE, lw=1.8, label=label, drawstyle="default")
    if curve.chance is None:  # ROC: the diagonal of a random scorer
        ax.plot([0, 1], [0, 1], ls="--", color=_GREY, lw=1, label="chance")
    else:
        ax.axhline(curve.chance, ls="--", color=_GREY, lw=1, label=f"chance {curve.chance:.3f}")
    ax.set(xlabel=curve.x_label, ylabel=curve.y_label, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right" if curve.chance is None else "upper right", fontsize=8)
    ax.grid(alpha=0.3)


def draw_roc(ax: Any, curve: Curve) -> None:
    draw_curve(ax, curve, name="AUC")


def draw_pr(ax: Any, curve: Curve) -> None:
    draw_curve(ax, curve, name="average precision")


def draw_calibration(ax: Any, cal: Calibration) -> None:
    filled = cal.rows > 0
    ax.plot([0, 1], [0, 1], ls="--", color=_GREY, lw=1, label="perfectly calibrated")
    ax.plot(
        cal.predicted[filled],
        cal.observed[filled],
        "o-",
        color=_BLUE,
        label=f"model (ECE {cal.ece:.3f})",
    )
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    share = ax.twinx()  # how many rows each bin holds, faintly behind
    centres = (cal.edges[:-1] + cal.edges[1:]) / 2
    share.bar(centres, cal.rows, width=np.diff(cal.edges) * 0.9, color=_GREY, alpha=0.18)
    share.set_ylabel("rows per bin", color="#777", fontsize=8)
    share.tick_params(labelsize=7, colors="#777")
    ax.set_zorder(share.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)


def draw_confusion(ax: Any, conf: Confusion) -> None:
    cells = np.asarray(conf.cells, dtype=np.float64)
    share = cells / np.maximum(cells.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cells):
        colour = "white" if share[i, j] > 0.6 else "#222"
        ax.text(
            j,
            i,
            f"{int(count):,}\n{share[i, j]:.1%} of row" if len(cells) <= 3 else f"{int(count):,}",
            ha="center",
            va="center",
            color=colour,
            fontsize=9 if len(cells) <= 5 else 7,
        )
    n = len(conf.labels)
    turn = {"rotation": 40, "ha": "right"} if n > 2 else {}
    ax.set_xticks(range(n), [_mpl(_short(v)) for v in conf.labels], fontsize=8, **turn)
    ax.set_yticks(range(n), [_mpl(_short(v)) for v in conf.labels], fontsize=8)
    at = f" (positive at score ≥ {conf.threshold:g})" if conf.threshold is not None else ""
    ax.set(xlabel=f"predicted{at}", ylabel="actual")


def draw_predicted_vs_actual(ax: Any, reg: Regression) -> None:
    """Predictions against labels (a seeded sample of the rows) and the diagonal."""
    y, s = reg.y_true, reg.y_pred
    ax.scatter(y[reg.shown], s[reg.shown], s=4, alpha=0.35, color=_BLUE, linewidths=0)
    if len(y):
        lo, hi = float(min(y.min(), s.min())), float(max(y.max(), s.max()))
        ax.plot([lo, hi], [lo, hi], color=_RED, lw=1, label="prediction = label")
        ax.legend(loc="upper left", fontsize=8)
    if reg.log_axes:
        ax.set(xscale="log", yscale="log")
    ax.set(xlabel="label", ylabel="prediction")
    ax.grid(alpha=0.3)


def draw_residuals(ax: Any, reg: Regression) -> None:
    """A histogram of ``label - prediction``, over its central 99% (outliers would squeeze it)."""
    residual = reg.residual
    span = tuple(np.quantile(residual, [0.005, 0.995])) if len(residual) else (0.0, 1.0)
    if span[0] == span[1]:
        span = (span[0] - 0.5, span[1] + 0.5)
    ax.hist(residual, bins=60, range=span, color="#6f9fd8", edgecolor="#4a76a8", linewidth=0.3)
    ax.axvline(0, color=_RED, lw=1)
    ax.set(xlabel="residual (label - prediction), central 99%", ylabel="rows")
    ax.grid(alpha=0.3, axis="y")


def draw_slices(ax: Any, groups: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
    """Grouped horizontal bars: per column and value, one bar per metric."""
    rows: list[tuple[str, dict[str, float]]] = []
    metrics: list[str] = []
    for column, per_metric in groups.items():
        values = sorted({v for m in per_metric.values() for v in m}, key=lambda v: (v != "all", v))
        for v in values:
            rows.append((f"{column}={v}", {m: per_metric[m].get(v, math.nan) for m in per_metric}))
        metrics += [m for m in per_metric if m not in metrics]
    height = 0.8 / max(len(metrics), 1)
    colours = [_BLUE, "#e08e2b", _GREEN, _RED, "#8e6bbf", "#5fa8b5"]
    for k, metric in enumerate(metrics):
        ys = [i + k * height for i in range(len(rows))]
        xs = [r[1].get(metric, math.nan) for r in rows]
        bars = ax.barh(ys, xs, height=height, color=colours[k % len(colours)], label=_mpl(metric))
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_yticks(
        [i + height * (len(metrics) - 1) / 2 for i in range(len(rows))],
        [_short(_mpl(r[0]), 32) for r in rows],
        fontsize=8,
    )
    ax.invert_yaxis()
    finite = [x for r in rows for x in r[1].values() if math.isfinite(x)]
    ax.set_xlim(min(0.0, min(finite, default=0.0)), max(finite, default=1.0) * 1.15 or 1.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, axis="x")


def draw_importance(ax: Any, explanation: Mapping[str, Any], *, top: int = 20) -> None:
    scoring = explanation["scoring"][0]
    items = list(explanation["features"].items())[:top]
    names = [_mpl(_short(f, 28)) for f, _ in items]
    means = [v[scoring] for _, v in items]
    stds = [v.get(f"{scoring}_std", 0.0) for _, v in items]
    colours = [_BLUE if m >= 0 else _RED for m in means]
    ys = range(len(items))
    ax.barh(ys, means, xerr=stds, color=colours, ecolor="#555", capsize=2)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#555", lw=0.8)
    # Old explanations carry no direction: their scorings were AUC (higher) or log loss.
    direction = explanation.get("direction", {}).get(scoring, -1 if scoring == "log_loss" else 1)
    better = "drop" if direction > 0 else "rise"
    ax.set_xlabel(f"{scoring} {better} when the feature is shuffled (mean ± sd)")
    ax.grid(alpha=0.3, axis="x")


def draw_weights(ax: Any, linear: Mapping[str, Any]) -> None:
    """The largest positive and negative weights of the linear part, by feature=value."""
    pos = linear.get("positive", [])
    neg = linear.get("negative", [])
    items = [*pos, *reversed(neg)]
    labels = [_mpl(_short(_weight_label(f, v), 34)) for f, v, _ in items]
    values = [w for _, _, w in items]
    ys = range(len(items))
    ax.barh(ys, values, color=[_GREEN if w > 0 else _RED for w in values])
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#555", lw=0.8)
    task = linear.get("task", "binary")
    what = {"regression": "prediction", "multiclass": "class's logit"}.get(task, "logit")
    if linear.get("transform"):
        what = f"{linear['transform']} of the prediction"
    ax.set_xlabel(f"weight (added to the {what} per unit of the feature)")
    ax.grid(alpha=0.3, axis="x")


def _weight_label(feature: str, value: str) -> str:
    """``feature=value``; a numeric feature's weight is named by the feature alone
    (``age``, or ``age → class`` for one class of a multiclass model)."""
    numeric = value == feature or value.startswith(f"{feature} → ")
    return value if numeric else f"{feature}={value}"


def _short(text: str, width: int = 22) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _mpl(text: str) -> str:
    return str(text).replace("$", r"\$")  # matplotlib reads $...$ as math
