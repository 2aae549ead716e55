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
    from mlplatform.store.drift import DriftCheck
    from mlplatform.store.rollouts import RolloutEvaluation
    from mlplatform.ui.views import VersionRow

CHAMPION_COLOUR = "#b7791f"
DRIFT_COLOUR, CALM_COLOUR, NO_DATA_COLOUR, THRESHOLD_COLOUR = "#c53030", "#2f855a", "#a0aec0", "#975a16"
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


def _check_label(check: DriftCheck) -> str:
    return f"#{check.id} {check.window_end:%m-%d %H:%M}"


def drift_over_time(checks: list[DriftCheck]) -> dict[str, Any]:
    """Dataset drift share per check (oldest first) against its threshold.

    ``insufficient_data`` checks have no share: they are a gap in the line and grey markers along the top, labelled
    as such, so a quiet window never reads as "no drift".
    """
    import plotly.graph_objects as go

    ordered = sorted(checks, key=lambda check: check.id or 0)
    analysed = [check for check in ordered if check.drift_share is not None]
    no_data = [check for check in ordered if check.status == "insufficient_data"]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[check.window_end for check in analysed],
            y=[check.drift_share for check in analysed],
            name="drift share",
            mode="lines+markers",
            line={"color": PALETTE[0]},
            marker={"size": 9, "color": [DRIFT_COLOUR if check.dataset_drift else CALM_COLOUR for check in analysed]},
            text=[f"check #{check.id}: {check.status}, {check.rows} rows" for check in analysed],
            hovertemplate="%{text}<br>drift share %{y:.2f}<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[check.window_end for check in ordered],
            y=[check.drift_share_threshold for check in ordered],
            name="threshold",
            mode="lines",
            line={"color": THRESHOLD_COLOUR, "dash": "dash", "shape": "hv"},
            hovertemplate="threshold %{y:.2f}<extra></extra>",
        )
    )
    if no_data:
        figure.add_trace(
            go.Scatter(
                x=[check.window_end for check in no_data],
                y=[1.05] * len(no_data),
                name="insufficient data (no verdict)",
                mode="markers",
                marker={"symbol": "x-thin-open", "size": 11, "color": NO_DATA_COLOUR, "line": {"width": 2}},
                text=[f"check #{c.id}: insufficient data, {c.rows} of {c.min_rows} rows" for c in no_data],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_layout(
        **LAYOUT,
        title={"text": "Dataset drift share per check", "x": 0},
        yaxis={"range": [0, 1.1], "title": {"text": "share of drifted inputs"}},
    )
    return _figure(figure)


def drift_by_feature(checks: list[DriftCheck], limit: int) -> dict[str, Any]:
    """Per-feature verdicts of the latest ``limit`` checks: feature x check, red = drifted, score as text.

    Colour is the verdict, not the score: a score is a p-value for one method and a distance for another, so only
    the verdict (score against that method's threshold) compares across features.  Checks without data are grey.
    """
    import plotly.graph_objects as go

    latest = sorted(checks, key=lambda check: check.id or 0)[-limit:]
    features = sorted({feature.feature for check in latest for feature in check.features})
    columns = [_check_label(check) + ("<br>no data" if check.status == "insufficient_data" else "") for check in latest]
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for name in features:
        z_row, text_row = [], []
        for check in latest:
            found = next((feature for feature in check.features if feature.feature == name), None)
            if check.status == "insufficient_data" or found is None or found.drifted is None:
                z_row.append(0.5 if check.status == "insufficient_data" else None)
                text_row.append("n/a")
                continue
            z_row.append(1.0 if found.drifted else 0.0)
            score = "" if found.score is None else f"{found.score:.3g}"
            text_row.append(score)
        z.append(z_row)
        text.append(text_row)
    figure = go.Figure(
        go.Heatmap(
            x=columns,
            y=features,
            z=z,
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=1,
            colorscale=[[0, CALM_COLOUR], [0.5, NO_DATA_COLOUR], [1, DRIFT_COLOUR]],
            showscale=False,
            xgap=2,
            ygap=2,
            hovertemplate="%{y} in %{x}: score %{text}<extra></extra>",
        )
    )
    layout = {**LAYOUT, "height": max(220, 90 + 26 * len(features))}
    figure.update_layout(
        **layout,
        title={"text": "Drift per feature (red: drifted; text: the method's score)", "x": 0},
        xaxis={"type": "category"},
        yaxis={"autorange": "reversed"},
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


def rollout_difference(evaluations: list[RolloutEvaluation], min_effect: float, metric: str) -> dict[str, Any]:
    """The test's estimate of (champion's loss - candidate's) with its always-valid band at each evaluation: above
    zero the candidate is better; the band may be watched at every point without inflating the error rate."""
    import plotly.graph_objects as go

    tested = [item for item in evaluations if item.estimate is not None]
    times = [item.evaluated_at.isoformat() for item in tested]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(x=times, y=[item.upper for item in tested], mode="lines", line={"width": 0}, showlegend=False)
    )
    figure.add_trace(
        go.Scatter(
            x=times,
            y=[item.lower for item in tested],
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(43,108,176,0.2)",
            name="always-valid band",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=times,
            y=[item.estimate for item in tested],
            mode="lines+markers",
            name="estimate",
            line={"color": PALETTE[0]},
            # the band also as bars: one evaluation has no area to fill
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(item.upper or 0.0) - (item.estimate or 0.0) for item in tested],
                "arrayminus": [(item.estimate or 0.0) - (item.lower or 0.0) for item in tested],
            },
        )
    )
    figure.add_hline(y=0, line={"color": "#4a5568", "width": 1})
    figure.add_hline(y=min_effect, line={"color": CHAMPION_COLOUR, "dash": "dot"}, annotation_text="minimum effect")
    title = f"{metric}: champion - candidate (above 0: the candidate is better)"
    figure.update_layout(**LAYOUT, title={"text": title, "x": 0}, yaxis={"title": metric})
    return _figure(figure)


def rollout_arms(evaluations: list[RolloutEvaluation], metric: str) -> dict[str, Any]:
    """Each arm's mean loss with its always-valid band over the rollout."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for index, arm in enumerate(("champion", "candidate")):
        points = [
            (item.evaluated_at.isoformat(), view)
            for item in evaluations
            for view in item.detail.get("arms", [])
            if view.get("arm") == arm and view.get("mean_loss") is not None
        ]
        means = [view["mean_loss"] for _, view in points]
        figure.add_trace(
            go.Scatter(
                x=[time for time, _ in points],
                y=means,
                mode="lines+markers",
                name=f"{arm} v{points[0][1]['version']}" if points else arm,
                line={"color": PALETTE[index]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [(view["upper"] or mean) - mean for (_, view), mean in zip(points, means, strict=True)],
                    "arrayminus": [
                        mean - (view["lower"] or mean) for (_, view), mean in zip(points, means, strict=True)
                    ],
                },
            )
        )
    figure.update_layout(**LAYOUT, title={"text": f"Mean {metric} per arm (lower is better)", "x": 0})
    return _figure(figure)
