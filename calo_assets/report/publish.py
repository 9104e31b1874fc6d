"""Write the whole report: workbook, chart images, one interactive HTML page and CSV files.

The PNGs are drawn by kaleido in a headless Chromium-family browser started first, in a background
thread (``images.ChartImages``), so its start-up overlaps with the queries and the workbook. Without a
browser the workbook, the HTML page and the CSVs are still written and the result says that the PNGs
were skipped and why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from calo_assets.checks import CheckSettings
from calo_assets.report.csv_files import csv_safe, write_csv_files
from calo_assets.report.data import ReportData, load
from calo_assets.report.figures import HEIGHT, TRACE_TYPES, WIDTH, build_figures
from calo_assets.report.html import html_page, kpi_table
from calo_assets.report.images import OPEN_TIMEOUT, ChartImages, find_browser
from calo_assets.report.plotlyjs import plotly_bundle
from calo_assets.report.workbook import build_workbook
from calo_assets.warehouse import Warehouse, write_text_atomically

__all__ = [
    "CHART_FOLDER",
    "CSV_FOLDER",
    "HTML_PAGE",
    "WORKBOOK",
    "ChartBrowser",
    "Published",
    "csv_safe",
    "publish",
    "start_charts",
]

WORKBOOK = "balance_sync_analytics_report.xlsx"
HTML_PAGE = "balance_sync_report.html"
CHART_FOLDER = "charts"
CSV_FOLDER = "csv"


@dataclass
class Published:
    """Where the files are and what they hold."""

    workbook: Path
    html_page: Path
    csv_files: list[Path]
    data: ReportData  # what the files show: the window, its figures and checks, the rows
    images: list[Path] = field(default_factory=list)
    images_skipped: str | None = None
    sheets: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    kpis: pd.DataFrame = field(default_factory=pd.DataFrame)  # the figure grid, as display text
    seconds: dict[str, float] = field(default_factory=dict)  # wall-clock time of each stage
    # What went wrong without stopping the report (e.g. the chart browser's start-up retried).
    warnings: list[str] = field(default_factory=list)


def publish(
    warehouse: Warehouse,
    output: Path,
    first: date,
    last: date,
    images: bool = True,
    check_settings: CheckSettings | None = None,
    browser_timeout: float = OPEN_TIMEOUT,
    connection: duckdb.DuckDBPyConnection | None = None,
    charts: ChartBrowser | None = None,
) -> Published:
    """Build every output of the report for ``first..last`` into ``output`` (the chart browser
    given ``browser_timeout`` seconds to start; the queries on ``connection`` when given).

    ``charts``: the chart browser already started (``start_charts``), instead of one started here;
    ``images`` and ``browser_timeout`` are then what it was started with.
    """
    began = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    bundle = plotly_bundle(TRACE_TYPES)
    charts = charts if charts is not None else start_charts(images, browser_timeout)
    drawing = charts.drawing
    stages = _Stages()
    try:
        with stages("queries"):
            data = load(warehouse, first, last, check_settings, connection)
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
            kpis = kpi_table(data.figures)
            write_text_atomically(output / HTML_PAGE, html_page(data, figures, kpis, bundle))
        with stages("waiting for the PNGs"):
            written = drawing.wait() if drawing is not None else []
    except BaseException:
        charts.cancel()
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
        data=data,
        images=written,
        images_skipped=charts.skipped,
        sheets=contents["sheets"],
        charts=contents["charts"],
        kpis=kpis,
        seconds=stages.seconds,
        warnings=list(drawing.warnings) if drawing is not None else [],
    )


@dataclass(frozen=True)
class ChartBrowser:
    """The browser drawing the report's PNG charts (``start_charts``), or why there is none."""

    drawing: ChartImages | None
    skipped: str | None = None  # why the PNGs are not drawn, when ``drawing`` is None

    def cancel(self) -> None:
        """Close the browser without drawing anything (nothing to do when there is none)."""
        if self.drawing is not None:
            self.drawing.cancel()


def start_charts(images: bool = True, browser_timeout: float = OPEN_TIMEOUT) -> ChartBrowser:
    """The browser for the report's PNG charts, starting in a background thread from now on, or
    why there is none. ``publish`` draws the charts with it, or ``cancel`` it."""
    browser, skipped = _browser(images)
    if browser is None:
        return ChartBrowser(None, skipped)
    return ChartBrowser(
        ChartImages(browser, plotly_bundle(TRACE_TYPES), WIDTH, HEIGHT, browser_timeout)
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
