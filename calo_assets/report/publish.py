"""Write the whole report: workbook, chart images, one interactive HTML page and CSV files.

The PNGs are drawn by kaleido in a headless Chromium-family browser started first, in a background
thread (``images.ChartImages``), so its start-up overlaps with the queries and the workbook. Without a
browser the workbook, the HTML page and the CSVs are still written and the result says that the PNGs
were skipped and why.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from calo_assets.money import format_money
from calo_assets.report.data import ReportData, load
from calo_assets.report.figures import HEIGHT, TRACE_TYPES, WIDTH, build_figures
from calo_assets.report.images import ChartImages, find_browser
from calo_assets.report.plotlyjs import plotly_bundle
from calo_assets.report.workbook import FORMULA_START, build_workbook
from calo_assets.warehouse import Warehouse

WORKBOOK = "balance_sync_analytics_report.xlsx"
HTML_PAGE = "balance_sync_report.html"
CHART_FOLDER = "charts"
CSV_FOLDER = "csv"
CSV_TABLES = {
    "transactions": "transactions",
    "balance_discrepancies": "discrepancies",
    "user_exposure": "exposure",
    "ledger_breaks": "ledger_breaks",
    "overdrafts": "overdrafts",
    "anomalies": "anomalies",
    "user_errors": "user_errors",
}


@dataclass
class Published:
    """Where the files are and what they hold."""

    workbook: Path
    html_page: Path
    csv_files: list[Path]
    images: list[Path] = field(default_factory=list)
    images_skipped: str | None = None
    sheets: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    kpis: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: dict[str, float] = field(default_factory=dict)  # wall-clock time of each stage
    # What went wrong without stopping the report (e.g. the chart browser's start-up retried).
    warnings: list[str] = field(default_factory=list)


def publish(
    warehouse: Warehouse, output: Path, first: date, last: date, images: bool = True
) -> Published:
    """Build every output of the report for ``first..last`` into ``output``."""
    began = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    bundle = plotly_bundle(TRACE_TYPES)
    browser, skipped = _browser(images)
    drawing = ChartImages(browser, bundle, WIDTH, HEIGHT) if browser else None
    stages = _Stages()
    try:
        with stages("queries"):
            data = load(warehouse, first, last)
        with stages("figures"):
            figures = build_figures(data)
        if drawing is not None:
            drawing.render(
                {output / CHART_FOLDER / f"{name}.png": fig for name, fig in figures.items()}
            )
        with stages("workbook"):
            temporary = output / f".{WORKBOOK}.tmp"
            contents = build_workbook(data, temporary)
            temporary.replace(output / WORKBOOK)
        with stages("csv"):
            csv_files = write_csv_files(data, output / CSV_FOLDER)
        with stages("html"):
            kpis = kpi_table(data)
            _write_atomically(output / HTML_PAGE, html_page(data, figures, kpis, bundle))
        with stages("waiting for the PNGs"):
            written = drawing.wait() if drawing is not None else []
    except BaseException:
        if drawing is not None:
            drawing.cancel()
        raise
    if drawing is not None:
        stages.seconds |= {
            "browser start-up": drawing.opened_after,
            "PNGs done": drawing.finished_after,
        }
    stages.seconds["total"] = time.perf_counter() - began
    return Published(
        workbook=output / WORKBOOK,
        html_page=output / HTML_PAGE,
        csv_files=csv_files,
        images=written,
        images_skipped=skipped,
        sheets=contents["sheets"],
        charts=contents["charts"],
        kpis=kpis,
        seconds=stages.seconds,
        warnings=list(drawing.warnings) if drawing is not None else [],
    )


class _Stages:
    """Wall-clock seconds of each stage of the publication, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - began


def _browser(wanted: bool) -> tuple[str | None, str | None]:
    """The browser for the PNGs, or None and why they cannot be made."""
    if not wanted:
        return None, "chart images turned off"
    browser = find_browser()
    if browser is None:
        return None, (
            "no Chromium-family browser found for kaleido (install Debian's chromium, or set BROWSER_PATH)"
        )
    return browser, None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def csv_safe(value: object) -> object:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``csv_safe`` on every cell, touching only the text columns."""
    safe = frame.copy(deep=False)
    for column in frame.columns:
        if frame[column].dtype == object:
            safe[column] = [csv_safe(value) for value in frame[column].tolist()]
    return safe


def write_csv_files(data: ReportData, folder: Path) -> list[Path]:
    """The main tables as CSV, with the warehouse's column names; money written exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame_name in CSV_TABLES.items():
        frame = data[frame_name] if frame_name in data.frames else pd.DataFrame()
        safe = csv_safe_frame(frame)
        path = folder / f"{name}.csv"
        temporary = path.with_name(path.name + ".tmp")
        safe.to_csv(temporary, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        temporary.replace(path)
        paths.append(path)
    return paths


def kpi_table(data: ReportData) -> pd.DataFrame:
    """The KPIs per currency, as display text (money rounded to the minor unit)."""
    kpis = data["kpis"].merge(data.exposure_totals, on="currency", how="outer")
    rows = []
    for row in kpis.to_dict("records"):
        currency = row["currency"]
        rows.append(
            {
                "currency": currency,
                "credited": format_money(row["credited"], currency),
                "debited": format_money(row["debited"], currency),
                "transactions": int(row["transactions"] or 0),
                "discrepancy users": int(row["discrepancy_users"] or 0),
                "revenue at risk": format_money(row["revenue_at_risk"] or Decimal(0), currency),
                "owed to users": format_money(row["owed_to_users"] or Decimal(0), currency),
                "rejected overdrafts": int(row["rejected_overdrafts"] or 0),
                "anomalies": int(row["anomalies"] or 0),
                "runtime errors": int(row["runtime_errors"] or 0),
            }
        )
    return pd.DataFrame(rows)


def html_page(
    data: ReportData, figures: dict[str, go.Figure], kpis: pd.DataFrame, plotly_js: Path
) -> str:
    """One self-contained page: the ``plotly_js`` bundle inlined once, then every chart."""
    charts = [
        # A fixed element id per chart: plotly's default is random, and the same data must give
        # the same page byte for byte.
        figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            config={"displaylogo": False},
            div_id=f"chart-{name}",
        )
        for name, figure in figures.items()
    ]
    library = plotly_js.read_text(encoding="utf-8")
    quality = data["data_quality"].iloc[0]
    table = kpis.to_html(index=False, border=0, classes="kpis", escape=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Balance sync report {data.first} to {data.last}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table.kpis{{border-collapse:collapse}}
table.kpis td,table.kpis th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}
table.kpis th{{background:#1f4e78;color:#fff}} .note{{color:#555}}</style>
<script>window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script>{library}</script></head><body>
<h1>Balance sync report</h1>
<p class="note">Period {data.first} to {data.last} (UTC days). Figures are per currency and never added across
currencies. Exposure is the latest gap per user: positive = revenue at risk, negative = owed to the user.</p>
<h2>KPIs per currency</h2>{table}
<p class="note">Data quality: {int(quality["streams"] or 0):,} log streams, {int(quality["records_read"] or 0):,} records read,
{int(quality["records_quarantined"] or 0):,} records and {int(quality["files_quarantined"] or 0):,} files quarantined.</p>
{"".join(f"<section>{chart}</section>" for chart in charts)}
<p class="note">Generated by calo_assets. Personal data is masked. {html.escape(str(len(charts)))} charts.</p>
</body></html>
"""
