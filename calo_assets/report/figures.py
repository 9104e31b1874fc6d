"""The report's charts as plotly figures, one function each; money is never mixed across currencies."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from calo_assets.report.data import ReportData

WIDTH, HEIGHT = 1000, 520
TEMPLATE = pio.templates[
    "plotly_white"
]  # the object: naming it makes plotly look it up and check it
TRACE_TYPES = frozenset({"bar", "scatter"})  # every trace type the charts below use
CREDIT_COLOUR, DEBIT_COLOUR, ALERT_COLOUR, NEUTRAL_COLOUR = (
    "#2a9d8f",
    "#e76f51",
    "#d62828",
    "#457b9d",
)


def _layout(figure: go.Figure, title: str, x_title: str | None, y_title: str | None) -> go.Figure:
    """The common layout; axis titles for every axis unless None (panels title their own)."""
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template=TEMPLATE,
        width=WIDTH,
        height=HEIGHT,
        legend={"orientation": "h", "y": -0.18},
        margin={"l": 70, "r": 30, "t": 70, "b": 90},
    )
    if x_title is not None:
        figure.update_xaxes(title_text=x_title)
    if y_title is not None:
        figure.update_yaxes(title_text=y_title)
    return figure


def _panels(
    title: str,
    panels: list[tuple[str, list[go.Bar | go.Scatter], dict[str, object], dict[str, object]]],
    spacing: float,
) -> go.Figure:
    """Side-by-side panels, one per (title, traces, x axis, y axis), laid out as make_subplots would,
    but in one step (make_subplots and its per-panel updates cost more than drawing the charts)."""
    width = (1 - spacing * (len(panels) - 1)) / max(len(panels), 1)
    layout: dict[str, object] = {}
    annotations, traces = [], []
    for index, (name, panel_traces, x_axis, y_axis) in enumerate(panels):
        suffix, start = ("" if index == 0 else str(index + 1)), index * (width + spacing)
        layout[f"xaxis{suffix}"] = {
            "domain": [start, start + width],
            "anchor": f"y{suffix}",
            **x_axis,
        }
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", **y_axis}
        annotations.append(
            {
                "text": name,
                "x": start + width / 2,
                "y": 1.0,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 16},
            }
        )
        for trace in panel_traces:
            trace.update(xaxis=f"x{suffix}", yaxis=f"y{suffix}")
            traces.append(trace)
    figure = go.Figure(traces, layout={**layout, "annotations": annotations})
    return _layout(figure, title, None, None)


def transactions_per_day(data: ReportData) -> go.Figure:
    daily = data["daily"]
    figure = go.Figure(
        [
            go.Bar(x=daily["day"], y=daily["credits"], name="credits", marker_color=CREDIT_COLOUR),
            go.Bar(x=daily["day"], y=daily["debits"], name="debits", marker_color=DEBIT_COLOUR),
        ]
    )
    figure.update_layout(barmode="stack")
    return _layout(
        figure, "Transactions per day: credits and debits", "day (UTC)", "transactions (count)"
    )


def _stacked_by_action(actions: pd.DataFrame, series: dict[str, tuple[str, str]]) -> go.Figure:
    """Horizontal stacked bars, one bar per action, one colour per column in ``series``."""
    figure = go.Figure(
        [
            go.Bar(
                y=actions["action"],
                x=actions[column],
                name=label,
                orientation="h",
                marker_color=colour,
            )
            for column, (label, colour) in series.items()
        ]
    )
    figure.update_layout(barmode="stack")
    return figure


def transactions_by_action(data: ReportData) -> go.Figure:
    actions = data["by_action"].head(15).iloc[::-1]
    figure = _stacked_by_action(
        actions, {"credits": ("credits", CREDIT_COLOUR), "debits": ("debits", DEBIT_COLOUR)}
    )
    return _layout(figure, "Transactions by action (top 15)", "transactions (count)", "action")


def top_users_by_volume(data: ReportData) -> go.Figure:
    top = data["top_users"]
    panels = []
    for currency in sorted(top["currency"].dropna().unique()) or ["-"]:
        rows = top[top["currency"] == currency].iloc[::-1]
        bars = go.Bar(
            y=rows["user_id"].str[:8],
            x=rows["volume"].astype(float),
            orientation="h",
            name=currency,
            marker_color=NEUTRAL_COLOUR,
            showlegend=False,
        )
        x_axis = {"title": {"text": f"applied amount ({currency})"}}
        panels.append((currency, [bars], x_axis, {"title": {"text": "user (id prefix)"}}))
    return _panels("Top 10 users by applied volume, per currency", panels, 0.08)


def discrepancies_per_day(data: ReportData) -> go.Figure:
    daily = data["daily"]
    figure = go.Figure(
        go.Bar(
            x=daily["day"],
            y=daily["discrepancies"],
            name="discrepancy events",
            marker_color=ALERT_COLOUR,
        )
    )
    return _layout(
        figure, "Balance discrepancy events per day", "day (UTC)", "discrepancy events (count)"
    )


def exposure_by_currency(data: ReportData) -> go.Figure:
    totals = data["exposure_by_currency"]
    panels = []
    for row in totals.itertuples(index=False):
        bars = go.Bar(
            x=["revenue at risk", "owed to users"],
            y=[float(row.revenue_at_risk), float(row.owed_to_users)],
            marker_color=[ALERT_COLOUR, NEUTRAL_COLOUR],
            showlegend=False,
            name=row.currency,
        )
        panels.append((row.currency, [bars], {}, {"title": {"text": f"amount ({row.currency})"}}))
    return _panels(
        "Exposure by currency (latest gap per user)", panels or [("-", [], {}, {})], 0.09
    )


def exposure_trend(data: ReportData) -> go.Figure:
    """Revenue at risk and amount owed as known at the end of each day, one panel per currency."""
    trend = data["exposure_trend"]
    panels = []
    for index, currency in enumerate(dict.fromkeys(trend["currency"])):
        rows = trend[trend["currency"] == currency]
        lines = [
            go.Scatter(
                x=rows["day"],
                y=rows[name].astype(float),
                mode="lines",
                name=label,
                line_color=colour,
                showlegend=index == 0,
            )
            for name, label, colour in (
                ("revenue_at_risk", "revenue at risk", ALERT_COLOUR),
                ("owed_to_users", "owed to users", NEUTRAL_COLOUR),
            )
        ]
        x_axis, y_axis = (
            {"title": {"text": "day (UTC)"}},
            {"title": {"text": f"amount ({currency})"}},
        )
        panels.append((currency, lines, x_axis, y_axis))
    return _panels(
        "Exposure per currency, as known at the end of each day",
        panels or [("-", [], {}, {})],
        0.07,
    )


def anomalies_over_time(data: ReportData) -> go.Figure:
    daily = data["daily"]
    figure = go.Figure(
        go.Scatter(
            x=daily["day"],
            y=daily["anomalies"],
            mode="lines+markers",
            name="anomalies",
            line_color=ALERT_COLOUR,
        )
    )
    return _layout(
        figure, "Transactions flagged as anomalous per day", "day (UTC)", "anomalies (count)"
    )


def errors_by_action(data: ReportData) -> go.Figure:
    actions = data["by_action"].assign(
        errors=lambda frame: frame["discrepancies"] + frame["processing_errors"]
    )
    actions = (
        actions[actions["errors"] > 0]
        .sort_values(["errors", "action"], ascending=[False, True], kind="stable")
        .head(15)
        .iloc[::-1]
    )
    figure = _stacked_by_action(
        actions,
        {
            "discrepancies": ("balance discrepancies", ALERT_COLOUR),
            "processing_errors": ("processing errors", NEUTRAL_COLOUR),
        },
    )
    return _layout(figure, "Errors by action (top 15)", "errors (count)", "action")


def runtime_health(data: ReportData) -> go.Figure:
    runtime = data["runtime_daily"]
    figure = go.Figure(
        [
            go.Bar(
                x=runtime["day"],
                y=runtime["failed_invocations"],
                name="failed invocations",
                marker_color=ALERT_COLOUR,
            ),
            go.Scatter(
                x=runtime["day"],
                y=runtime["duration_p50_ms"],
                name="median duration",
                line_color=NEUTRAL_COLOUR,
                yaxis="y2",
            ),
            go.Scatter(
                x=runtime["day"],
                y=runtime["duration_p95_ms"],
                name="95th percentile duration",
                line_color="#8d99ae",
                yaxis="y2",
            ),
        ],
        layout={
            "xaxis": {"domain": [0, 0.94]},  # room for the right-hand axis
            "yaxis2": {"overlaying": "y", "side": "right", "anchor": "x"},
        },
    )
    _layout(figure, "Runtime health: failed invocations and durations", "day (UTC)", None)
    figure.update_layout(
        yaxis={"title": {"text": "failed invocations (count)"}},
        yaxis2={"title": {"text": "duration (ms)"}},
    )
    return figure


CHARTS: dict[str, Callable[[ReportData], go.Figure]] = {
    "transactions_per_day": transactions_per_day,
    "transactions_by_action": transactions_by_action,
    "top_users_by_volume": top_users_by_volume,
    "discrepancies_per_day": discrepancies_per_day,
    "exposure_by_currency": exposure_by_currency,
    "anomalies_over_time": anomalies_over_time,
    "errors_by_action": errors_by_action,
    "runtime_health": runtime_health,
    "exposure_trend": exposure_trend,  # on the Overview (last: the first chart is the preview)
}


def build_figures(data: ReportData) -> dict[str, go.Figure]:
    """Every chart of the report, by file stem; a trace type not in ``TRACE_TYPES`` is an error.

    The browser that draws the PNGs is started before the figures exist, with a plotly.js bundle
    chosen for ``TRACE_TYPES``, so that set must be complete.
    """
    figures = {name: make(data) for name, make in CHARTS.items()}
    for name, figure in figures.items():
        unknown = {trace.type for trace in figure.data} - TRACE_TYPES
        if unknown:
            raise ValueError(
                f"chart {name} uses trace types {sorted(unknown)}: add them to TRACE_TYPES"
            )
    return figures
