"""The DAG of ``helix-tf report``: nodes in topological layers, coloured by state (SVG)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from helix_tf.roles import NodeState

if TYPE_CHECKING:
    from helix_tf.reuse.metadata import NodeRecord

__all__ = ["STATE_COLOURS", "dag_legend", "dag_nodes", "dag_svg", "html_escape", "seconds_text"]

#: Fill colour of a node box by its state in the latest run.
STATE_COLOURS = {
    NodeState.COMPUTE: "#f0ad2e",
    NodeState.LOAD: "#5cb85c",
    NodeState.PRUNE: "#c4c8cc",
}
_NOT_RUN = "#ffffff"
_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN = 150, 54, 50, 14, 16


def html_escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def seconds_text(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value * 1000:.0f} ms" if value < 0.1 else f"{value:.2f} s"


def dag_legend() -> str:
    """The colours of the node states, as a line of swatches."""
    items = [*STATE_COLOURS.items(), ("not in the latest run", _NOT_RUN)]
    spans = [
        f'<span><i class="swatch" style="background:{c}"></i>{html_escape(s)}</span>'
        for s, c in items
    ]
    return f'<p class="legend">{"".join(spans)}<span>thick border: an output</span></p>'


def dag_nodes(dag: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    nodes = dag.get("nodes", ())
    if isinstance(nodes, Mapping):
        return {str(k): {**v, "name": str(k)} for k, v in nodes.items()}
    return {str(n["name"]): n for n in nodes if isinstance(n, Mapping) and "name" in n}


def _layers(nodes: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Topological generations; within a layer, ordered by the mean position of the inputs."""
    inputs = {k: [i for i in (n.get("inputs") or []) if i in nodes] for k, n in nodes.items()}
    depth: dict[str, int] = {}

    def visit(name: str, seen: frozenset[str]) -> int:
        if name not in depth:
            ins = [i for i in inputs[name] if i not in seen]  # a cycle is cut, not followed
            depth[name] = 1 + max((visit(i, seen | {name}) for i in ins), default=-1)
        return depth[name]

    for name in nodes:
        visit(name, frozenset())
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in nodes:
        layers[depth[name]].append(name)
    position: dict[str, float] = {}
    for layer in layers:
        keyed = [
            (sum(position[i] for i in inputs[n]) / len(inputs[n]) if inputs[n] else 0.0, k, n)
            for k, n in enumerate(layer)
        ]
        layer[:] = [n for _, _, n in sorted(keyed)]
        position.update({n: float(k) for k, n in enumerate(layer)})
    return layers


def dag_svg(dag: Mapping[str, Any], states: Mapping[str, NodeRecord]) -> str:
    """``dag`` as inline SVG, each node coloured by its record in ``states``."""
    nodes = dag_nodes(dag)
    layers = _layers(nodes)
    tallest = max((len(layer) for layer in layers), default=1)
    height = 2 * _MARGIN + 24 + tallest * (_BOX_H + _GAP_Y)
    width = 2 * _MARGIN + len(layers) * (_BOX_W + _GAP_X) - _GAP_X
    xy: dict[str, tuple[float, float]] = {}
    for col, layer in enumerate(layers):
        top = _MARGIN + 24 + (tallest - len(layer)) * (_BOX_H + _GAP_Y) / 2
        for row, name in enumerate(layer):
            xy[name] = (_MARGIN + col * (_BOX_W + _GAP_X), top + row * (_BOX_H + _GAP_Y))
    depth = {n: col for col, layer in enumerate(layers) for n in layer}
    out = [
        f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        'role="img" aria-label="workflow DAG" style="max-width:100%;height:auto;'
        'font-family:system-ui,sans-serif">',
        '<defs><marker id="helix-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for name, node in nodes.items():  # edges first, boxes on top
        x2, y2 = xy[name]
        for src in [i for i in node.get("inputs") or [] if i in xy]:
            x1, y1 = xy[src]
            x1, y1, y2c = x1 + _BOX_W, y1 + _BOX_H / 2, y2 + _BOX_H / 2
            bend = (x2 - x1) * 0.5
            # An edge over a layer, level with its ends, would cross that layer's box: arc it.
            level = depth[name] - depth[src] > 1 and abs(y1 - y2c) < _BOX_H
            lift = _BOX_H * 1.1 + 6 * depth[src] if level else 0.0
            out.append(
                f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1 - lift:.1f} '
                f'{x2 - bend:.1f},{y2c - lift:.1f} {x2 - 1:.1f},{y2c:.1f}" fill="none" '
                'stroke="#777" stroke-width="1.2" marker-end="url(#helix-arrow)"/>'
            )
    outputs = set(dag.get("outputs") or [])
    for name, node in nodes.items():
        x, y = xy[name]
        record = states.get(name)
        state = record.state if record is not None else ""
        kind = str(node.get("kind") or (record.kind if record else "") or "")
        label = name if len(name) <= 24 else name[:23] + "…"
        fit, dash, phrase = "", "" if record else ' stroke-dasharray="4 3"', _state_phrase(record)
        if len(label) > 17:  # squeeze a long name into its box
            fit = f' textLength="{_BOX_W - 16}" lengthAdjust="spacingAndGlyphs"'
        tip = [f"{name} ({kind})", phrase]
        if record is not None:
            tip += [f"rows {record.rows}" if record.rows is not None else "", record.reason]
        tip.append(f"fingerprint {str(node.get('fingerprint') or '')[:12]}")
        out.append(
            f"<g><title>{html_escape(chr(10).join(t for t in tip if t))}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{STATE_COLOURS.get(state, _NOT_RUN)}" stroke="#444" '
            f'stroke-width="{2.6 if name in outputs else 1}"{dash}/>'
            f'<text x="{x + 8:.1f}" y="{y + 17:.1f}" font-size="12.5" font-weight="600"{fit}>'
            f"{html_escape(label)}</text>"
            f'<text x="{x + 8:.1f}" y="{y + 32:.1f}" font-size="11" fill="#333">{html_escape(kind)}</text>'
            f'<text x="{x + 8:.1f}" y="{y + 46:.1f}" font-size="11" fill="#333">'
            f"{html_escape(phrase)}</text></g>"
        )
    return "".join(out) + "</svg>"


def _state_phrase(record: NodeRecord | None) -> str:
    if record is None or record.state not in STATE_COLOURS:
        return "not run" if record is None else record.state
    seconds = {NodeState.COMPUTE: record.compute_seconds, NodeState.LOAD: record.load_seconds}
    verb = {NodeState.COMPUTE: "computed", NodeState.LOAD: "loaded", NodeState.PRUNE: "pruned"}[
        record.state
    ]
    return f"{verb} {seconds_text(seconds[record.state])}" if record.state in seconds else verb
