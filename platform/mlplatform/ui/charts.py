"""Charts as plotly figures, built in Python and handed to the page as JSON (plotly.js draws them).

Figures are plain data: the template embeds them with Jinja's ``tojson`` (which escapes ``<``, ``>`` and ``&``),
so a metric name can never close the script element it travels in.  The browser gets plotly.js from the installed
plotly package (``/static/plotly-<version>.min.js``), matching the figures' schema version.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlplatform.ui.views import VersionRow

CHAMPION_COLOUR = "#b7791f"
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#4a5568")
LAYOUT: dict[str, Any] = {
    "margin": {"l": 50, "r": 20, "t": 70, "b": 60},
    "height": 320,
    "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "#fafafa",
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def _figure(figure: Any) -> dict[str, Any]:
    """A validated plotly figure as plain JSON data."""
    data: dict[str, Any] = json.loads(figure.to_json())
    return data


def metrics_by_version(rows: list[VersionRow], metrics: list[str], champion: str | None) -> dict[str, Any]:
    """Each quality metric across versions, oldest first; the champion is marked."""
    import plotly.graph_objects as go

    ordered = sorted(rows, key=lambda row: int(row.version))
    versions = [f"v{row.version}" for row in ordered]
    figure = go.Figure()
    for index, metric in enumerate(metrics):
        figure.add_trace(
            go.Scatter(
                x=versions,
                y=[row.metrics.get(metric) for row in ordered],
                name=metric,
                mode="lines+markers",
                line={"color": PALETTE[index % len(PALETTE)]},
            )
        )
    if champion is not None:
        figure.add_vline(x=f"v{champion}", line={"color": CHAMPION_COLOUR, "dash": "dot", "width": 2})
        figure.add_annotation(
            x=f"v{champion}", y=0.02, yref="paper", text="champion", showarrow=False, font={"color": CHAMPION_COLOUR}
        )
    figure.update_layout(**LAYOUT, title={"text": "Holdout metrics by version", "x": 0}, xaxis={"type": "category"})
    return _figure(figure)


def comparison(a: VersionRow, b: VersionRow, metrics: list[str]) -> dict[str, Any]:
    """Two versions' quality metrics as grouped bars (a first, as in the table)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for index, row in enumerate((a, b)):
        label = f"v{row.version}" + (f" ({', '.join(row.aliases)})" if row.aliases else "")
        figure.add_trace(
            go.Bar(
                x=metrics,
                y=[row.metrics.get(metric) for metric in metrics],
                name=label,
                marker={"color": PALETTE[index]},
                text=[_short(row.metrics.get(metric)) for metric in metrics],
                textposition="outside",
            )
        )
    figure.update_layout(
        **LAYOUT,
        barmode="group",
        title={"text": f"v{a.version} vs v{b.version}: holdout metrics", "x": 0},
        yaxis={"range": [0, 1.1]},
    )
    return _figure(figure)


def _short(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def plotly_version() -> str:
    import plotly

    version: str = plotly.__version__
    return version


@cache
def plotly_js_gzip() -> bytes:
    """The plotly.js bundle shipped in the installed plotly package, gzipped once (3.6 MB -> about 1 MB)."""
    from plotly.offline import get_plotlyjs

    return gzip.compress(get_plotlyjs().encode(), compresslevel=6, mtime=0)


@cache
def plotly_js() -> bytes:
    return gzip.decompress(plotly_js_gzip())
