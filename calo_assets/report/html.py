"""The HTML page: one self-contained file, plotly.js inlined once: the Overview, the figures, every chart."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from calo_assets import metrics
from calo_assets.money import format_money
from calo_assets.report.data import ReportData
from calo_assets.report.overview import (
    EXPOSURE_COLUMNS,
    age_table,
    exposure_table,
    needs_action,
    top_gaps,
)
from calo_assets.report.summary import grid, period_text


def kpi_table(figures: list[metrics.Figure]) -> pd.DataFrame:
    """The Summary's figure grid as display text: one row per figure, its total, then per currency."""
    titles = ["figure", *map(metrics.currency_title, [None, *metrics.currencies(figures)])]
    rows = [
        [label, *("" if figure is None else figure.text for figure in cells)]
        for label, cells in grid(figures)
    ]
    return pd.DataFrame(rows, columns=titles)


def _chart(name: str, figure: go.Figure) -> str:
    # A fixed element id per chart: plotly's default is random, and the same data must give the
    # same page byte for byte.
    return figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False},
        div_id=f"chart-{name}",
    )


def _table(frame: pd.DataFrame, money: tuple[str, ...] = (), percent: tuple[str, ...] = ()) -> str:
    """``frame`` as an HTML table of display text: money to the row's currency, counts with separators."""
    shown = frame.astype(object).where(frame.notna(), "")
    currencies = frame["currency"].tolist() if "currency" in frame.columns else [None] * len(frame)
    for index, column in enumerate(frame.columns):
        values = frame.iloc[:, index].tolist()
        if column in money:
            text = [
                "" if value is None or value != value else format_money(value, currency)
                for value, currency in zip(values, currencies, strict=True)
            ]
        elif column in percent:
            text = ["" if value != value else f"{value:.1%}" for value in values]
        else:
            text = [
                f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
                for value in shown.iloc[:, index].tolist()
            ]
        shown.iloc[:, index] = text
    # Numbers (money, shares, counts) right-aligned on one line; text left-aligned.
    numeric = [
        column in money
        or column in percent
        or (pd.api.types.is_numeric_dtype(frame[column]) and frame[column].dtype != bool)
        for column in frame.columns
    ]
    head = "".join(
        f'<th class="{"num" if is_number else "text"}">{html.escape(str(column))}</th>'
        for column, is_number in zip(frame.columns, numeric, strict=True)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="{_cell_class(str(cell), is_number)}">{html.escape(str(cell))}</td>'
            for cell, is_number in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in shown.itertuples(index=False)
    )
    return f'<table class="kpis"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _cell_class(text: str, is_number: bool) -> str:
    """``num`` (right, one line), ``word`` (an id or a day: left, one line) or ``text`` (left)."""
    if is_number:
        return "num"
    return "text" if " " in text else "text word"


def overview_section(data: ReportData, trend: go.Figure | None) -> str:
    """The Overview, as on its sheet: exposure now and before, its trend, cases by age, what needs
    action, the largest gaps."""
    money = tuple(title for _, title in EXPOSURE_COLUMNS[:6])
    gaps = top_gaps(data)
    gaps["user"] = [str(user) for user in gaps["user"]]
    return f"""<h2>Overview</h2>
<p class="note">Exposure as known at the end of {data.last:%Y-%m-%d}, per currency.</p>
{_table(exposure_table(data), money)}
{_chart("exposure_trend", trend) if trend is not None else ""}
<h3>Open cases by age</h3>{_table(age_table(data))}
<h3>Needs action</h3>{_table(needs_action(data), ("amount",))}
<h3>The largest gaps per currency (not resolved) and their share of its total</h3>
{_table(gaps, ("gap",), ("share",))}"""


def html_page(
    data: ReportData, figures: dict[str, go.Figure], kpis: pd.DataFrame, plotly_js: Path
) -> str:
    """One self-contained page: the ``plotly_js`` bundle inlined once, then every chart."""
    charts = [_chart(name, figure) for name, figure in figures.items() if name != "exposure_trend"]
    library = plotly_js.read_text(encoding="utf-8")
    table = kpis.to_html(index=False, border=0, classes="kpis", escape=True)
    failed = [check for check in data.checks if not check.passed]
    checks = "".join(
        f"<li>{html.escape(check.label)}: {html.escape(check.summary)}</li>" for check in failed
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Balance sync report {data.first} to {data.last}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table.kpis{{border-collapse:collapse}}
table.kpis td,table.kpis th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}
table.kpis td:first-child{{text-align:left}} table.kpis .text{{text-align:left}}
table.kpis .num,table.kpis .word{{white-space:nowrap}} table.kpis td.text{{max-width:40em}}
table.kpis th{{background:#1f4e78;color:#fff}} .note{{color:#555}} .failed{{color:#9c0006}}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script>{library}</script></head><body>
<h1>Balance sync report</h1>
{overview_section(data, figures.get("exposure_trend"))}
<p class="note">Period {html.escape(period_text(data))}. Figures are per currency and never added across
currencies; volumes are gross (VAT included). Exposure is the latest gap per user: positive = revenue at
risk, negative = owed to the user.</p>
<h2>KPIs per currency</h2>{table}
<p class="{"failed" if failed else "note"}">Data checks: {len(data.checks) - len(failed)} passed, {len(failed)} failed.</p>
{f"<ul class='failed'>{checks}</ul>" if failed else ""}
{"".join(f"<section>{chart}</section>" for chart in charts)}
<p class="note">Generated by calo_assets. Personal data is masked. {len(figures)} charts.</p>
</body></html>
"""
