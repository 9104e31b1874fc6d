"""The report's charts as plotly figures, one function each; money is never mixed across currencies."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from calo_assets.report.data import ReportData

WIDTH, HEIGHT = 1000, 520
TRACE_TYPES = frozenset({"bar", "scatter"})  # every trace type the charts below use
CREDIT_COLOUR, DEBIT_COLOUR, ALERT_COLOUR, NEUTRAL_COLOUR = (
    "#2a9d8f",
    "#e76f51",
    "#d62828",
    "#457b9d",
)


def _layout(figure: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        width=WIDTH,
        height=HEIGHT,
        legend={"orientation": "h", "y": -0.18},
        margin={"l": 70, "r": 30, "t": 70, "b": 90},
    )
    figure.update_xaxes(title_text=x_title)
    figure.update_yaxes(title_text=y_title)
    return figure


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
    currencies = sorted(top["currency"].dropna().unique()) or ["-"]
    figure = make_subplots(
        rows=1, cols=len(currencies), subplot_titles=currencies, horizontal_spacing=0.08
    )
    _layout(figure, "Top 10 users by applied volume, per currency", "", "user (id prefix)")
    for column, currency in enumerate(currencies, start=1):
        rows = top[top["currency"] == currency].iloc[::-1]
        figure.add_trace(
            go.Bar(
                y=rows["user_id"].str[:8],
                x=rows["volume"].astype(float),
                orientation="h",
                name=currency,
                marker_color=NEUTRAL_COLOUR,
                showlegend=False,
            ),
            row=1,
            col=column,
        )
        figure.update_xaxes(title_text=f"applied amount ({currency})", row=1, col=column)
    return figure


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
    currencies = list(totals["currency"]) or ["-"]
    figure = make_subplots(
        rows=1, cols=len(currencies), subplot_titles=currencies, horizontal_spacing=0.09
    )
    _layout(figure, "Exposure by currency (latest gap per user)", "", "")
    for column, row in enumerate(totals.itertuples(index=False), start=1):
        figure.add_trace(
            go.Bar(
                x=["revenue at risk", "owed to users"],
                y=[float(row.revenue_at_risk), float(row.owed_to_users)],
                marker_color=[ALERT_COLOUR, NEUTRAL_COLOUR],
                showlegend=False,
                name=row.currency,
            ),
            row=1,
            col=column,
        )
        figure.update_yaxes(title_text=f"amount ({row.currency})", row=1, col=column)
    return figure


def exposure_trend(data: ReportData) -> go.Figure:
    """Revenue at risk and amount owed as known at the end of each day, one panel per currency."""
    trend = data["exposure_trend"]
    currencies = list(dict.fromkeys(trend["currency"])) or ["-"]
    figure = make_subplots(
        rows=1, cols=len(currencies), subplot_titles=currencies, horizontal_spacing=0.07
    )
    _layout(figure, "Exposure per currency, as known at the end of each day", "", "")
    for column, currency in enumerate(currencies, start=1):
        rows = trend[trend["currency"] == currency]
        for name, label, colour in (
            ("revenue_at_risk", "revenue at risk", ALERT_COLOUR),
            ("owed_to_users", "owed to users", NEUTRAL_COLOUR),
        ):
            figure.add_trace(
                go.Scatter(
                    x=rows["day"],
                    y=rows[name].astype(float),
                    mode="lines",
                    name=label,
                    line_color=colour,
                    showlegend=column == 1,
                ),
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text="day (UTC)", row=1, col=column)
        figure.update_yaxes(title_text=f"amount ({currency})", row=1, col=column)
    return figure


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
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Bar(
            x=runtime["day"],
            y=runtime["failed_invocations"],
            name="failed invocations",
            marker_color=ALERT_COLOUR,
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=runtime["day"],
            y=runtime["duration_p50_ms"],
            name="median duration",
            line_color=NEUTRAL_COLOUR,
        ),
        secondary_y=True,
    )
    figure.add_trace(
        go.Scatter(
            x=runtime["day"],
            y=runtime["duration_p95_ms"],
            name="95th percentile duration",
            line_color="#8d99ae",
        ),
        secondary_y=True,
    )
    _layout(figure, "Runtime health: failed invocations and durations", "day (UTC)", "")
    figure.update_yaxes(title_text="failed invocations (count)", secondary_y=False)
    figure.update_yaxes(title_text="duration (ms)", secondary_y=True)
    return figure


CHARTS: dict[str, Callable[[ReportData], go.Figure]] = {
    "exposure_trend": exposure_trend,
    "transactions_per_day": transactions_per_day,
    "transactions_by_action": transactions_by_action,
    "top_users_by_volume": top_users_by_volume,
    "discrepancies_per_day": discrepancies_per_day,
    "exposure_by_currency": exposure_by_currency,
    "anomalies_over_time": anomalies_over_time,
    "errors_by_action": errors_by_action,
    "runtime_health": runtime_health,
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
