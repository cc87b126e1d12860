"""Drawing each view on a matplotlib ``Axes`` (matplotlib is imported by the caller).

One function per view, ``draw_x(ax, data)``: the data comes from ``_data`` or an
explanation; nothing here reads a store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from helix_tf.views._data import Calibration, Confusion, Curve

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
            f"{int(count):,}\n{share[i, j]:.1%} of row",
            ha="center",
            va="center",
            color=colour,
            fontsize=9,
        )
    n = len(conf.labels)
    ax.set_xticks(range(n), [_short(v) for v in conf.labels], fontsize=8)
    ax.set_yticks(range(n), [_short(v) for v in conf.labels], fontsize=8)
    at = f" (positive at score ≥ {conf.threshold:g})" if conf.threshold is not None else ""
    ax.set(xlabel=f"predicted{at}", ylabel="actual")


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
    better = "drop" if scoring != "log_loss" else "rise"
    ax.set_xlabel(f"{scoring} {better} when the feature is shuffled (mean ± sd)")
    ax.grid(alpha=0.3, axis="x")


def draw_weights(ax: Any, linear: Mapping[str, Any]) -> None:
    """The largest positive and negative weights of the linear part, by feature=value."""
    pos = linear.get("positive", [])
    neg = linear.get("negative", [])
    items = [*pos, *reversed(neg)]
    labels = [_mpl(_short(f if f == v else f"{f}={v}", 34)) for f, v, _ in items]
    values = [w for _, _, w in items]
    ys = range(len(items))
    ax.barh(ys, values, color=[_GREEN if w > 0 else _RED for w in values])
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_xlabel("weight (added to the logit per unit of the feature)")
    ax.grid(alpha=0.3, axis="x")


def _short(text: str, width: int = 22) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _mpl(text: str) -> str:
    return str(text).replace("$", r"\$")  # matplotlib reads $...$ as math
