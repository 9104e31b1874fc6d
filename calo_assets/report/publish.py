"""Write the whole report: workbook, chart images, one interactive HTML page and CSV files.

PNGs are exported by kaleido in one batch with one browser (``plotly.io.write_images``). Kaleido needs
a Chromium-family browser; without one, the workbook, the HTML page and the CSVs are still written and
the result says that the PNGs were skipped and why.
"""

from __future__ import annotations

import html
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import plotly.io as pio

from calo_assets.money import format_money
from calo_assets.report.data import ReportData, load
from calo_assets.report.figures import HEIGHT, WIDTH, build_figures
from calo_assets.report.workbook import build_workbook
from calo_assets.warehouse import Warehouse

WORKBOOK = "balance_sync_analytics_report.xlsx"
HTML_PAGE = "balance_sync_report.html"
CHART_FOLDER = "charts"
CSV_FOLDER = "csv"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CSV_TABLES = {
    "transactions": "transactions",
    "balance_discrepancies": "discrepancies",
    "user_exposure": "exposure",
    "ledger_breaks": "ledger_breaks",
    "overdrafts": "overdrafts",
    "anomalies": "anomalies",
    "user_errors": "user_errors",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


def find_browser() -> str | None:
    """A Chromium-family browser for kaleido: ``BROWSER_PATH`` or one on the PATH."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def publish(
    warehouse: Warehouse, output: Path, first: date, last: date, images: bool = True
) -> Published:
    """Build every output of the report for ``first..last`` into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    data = load(warehouse, first, last)
    figures = build_figures(data)
    skipped = _images_skipped(images)
    paths = [output / CHART_FOLDER / f"{name}.png" for name in figures]
    with ThreadPoolExecutor(max_workers=1) as background:
        # The browser renders the PNGs while this thread writes the workbook: the two overlap.
        rendering = (
            None if skipped else background.submit(_write_images, list(figures.values()), paths)
        )
        temporary = output / f".{WORKBOOK}.tmp"
        contents = build_workbook(data, temporary)
        temporary.replace(output / WORKBOOK)
        result = Published(
            workbook=output / WORKBOOK,
            html_page=output / HTML_PAGE,
            csv_files=write_csv_files(data, output / CSV_FOLDER),
            sheets=contents["sheets"],
            charts=contents["charts"],
            kpis=kpi_table(data),
            images_skipped=skipped,
        )
        _write_atomically(output / HTML_PAGE, html_page(data, figures, result.kpis))
        if rendering is not None:
            rendering.result()
            result.images = paths
    return result


def _images_skipped(wanted: bool) -> str | None:
    """Why the PNGs cannot be made, or None when they can (and kaleido is told which browser)."""
    if not wanted:
        return "chart images turned off"
    browser = find_browser()
    if browser is None:
        return "no Chromium-family browser found for kaleido (install Debian's chromium, or set BROWSER_PATH)"
    os.environ.setdefault("BROWSER_PATH", browser)
    return None


def _write_images(figures: list, paths: list[Path]) -> None:
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    pio.write_images(figures, paths, format="png", width=WIDTH, height=HEIGHT)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def csv_safe(value: object) -> object:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv_files(data: ReportData, folder: Path) -> list[Path]:
    """The main tables as CSV, with the warehouse's column names; money written exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame_name in CSV_TABLES.items():
        frame = data[frame_name] if frame_name in data.frames else pd.DataFrame()
        safe = frame.map(csv_safe) if not frame.empty else frame
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


def html_page(data: ReportData, figures: dict, kpis: pd.DataFrame) -> str:
    """One self-contained page: plotly.js inlined once, then every chart."""
    charts = []
    for index, figure in enumerate(figures.values()):
        charts.append(
            figure.to_html(
                full_html=False,
                include_plotlyjs="inline" if index == 0 else False,
                config={"displaylogo": False},
            )
        )
    quality = data["data_quality"].iloc[0]
    table = kpis.to_html(index=False, border=0, classes="kpis", escape=True)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Balance sync report {data.first} to {data.last}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} table.kpis{{border-collapse:collapse}}
table.kpis td,table.kpis th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}
table.kpis th{{background:#1f4e78;color:#fff}} .note{{color:#555}}</style></head><body>
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
