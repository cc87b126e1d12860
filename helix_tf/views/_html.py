"""The views as an HTML fragment: one titled figure (inline PNG) per view, in a grid."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from helix_tf.views import Evidence, draw, views_for

#: Styles the report adds for the views' grid.
CSS = """.views{display:flex;flex-wrap:wrap;gap:12px}.views figure{margin:0;background:#fff;
border:1px solid #e2e2e2;border-radius:6px;padding:8px;max-width:100%}
.views figure.wide{flex-basis:100%}.views figcaption{font-size:12.5px;color:#555}
.views figure h3{font-size:14px;margin:0 0 4px}"""


def render_views(ev: Evidence) -> str:
    """Every view of ``ev`` that has something to show, then notes on what is missing."""
    figures = []
    for view in views_for(ev.task):
        data = view.data(ev)
        if data is None:
            continue
        fig = draw(view, data, title=False)  # the HTML heading names it
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        wide = ' class="wide"' if view.size[0] > 8 else ""
        width = f' style="width:{fig.bbox.width:.0f}px"'  # the caption wraps to the chart
        figures.append(
            f'<figure{wide}{width} data-view="{_e(view.key)}"><h3>{_e(view.title)}</h3>'
            f'<img alt="{_e(view.title)}" src="data:image/png;base64,{png}" '
            'style="max-width:100%">'
            f"<figcaption>{_e(_caption(view.caption, data))}</figcaption></figure>"
        )
    notes = "".join(f'<p class="muted">{_e(n)}.</p>' for n in ev.notes)
    return f'<div class="views">{"".join(figures)}</div>{notes}'


def _caption(caption: Any, data: Any) -> str:
    try:
        return str(caption(data))
    except (KeyError, TypeError, ValueError):
        return ""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
