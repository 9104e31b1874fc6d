"""Native, editable Excel charts beside the tables they draw from.

Axis titles name the category axis and the value axis with its unit. XlsxWriter's ``set_x_axis`` is
the horizontal axis as drawn: for a horizontal bar chart that is the value axis, so ``chart`` maps
the category and value titles to the right axis for every chart type.
"""

from __future__ import annotations

import pandas as pd
from xlsxwriter.chart import Chart
from xlsxwriter.worksheet import Worksheet

from calo_assets.report.data import ReportData
from calo_assets.report.excel import _HEADER, ReportBook, print_setup

CHART_SIZE = {"width": 832, "height": 416}  # 22 x 11 cm at 96 dpi
SMALL_CHART_SIZE = {"width": 416, "height": 302}  # 11 x 8 cm
CHART_ROWS = 24  # rows between two charts stacked beside a table
CHART_COLUMNS = 14  # default-width columns (64 px) a chart beside a table covers
DAY_AXIS = "day (UTC)"


def chart(
    book: ReportBook,
    kind: str,
    title: str,
    category_title: str,
    value_title: str,
    *,
    stacked: bool = False,
    size: dict[str, int] = CHART_SIZE,
) -> Chart:
    """A column, bar (horizontal) or line chart with its axis titles; stacked bars overlap fully."""
    chart = book.book.add_chart({"type": kind, **({"subtype": "stacked"} if stacked else {})})
    chart.set_title({"name": title})
    category = {"name": category_title} if category_title else {}
    if category_title == DAY_AXIS:  # dates as dates (Excel links to the cells' format, not all do)
        category |= {"date_axis": True, "num_format": "yyyy-mm-dd", "num_font": {"rotation": -45}}
    value = {"name": value_title} if value_title else {}
    horizontal, vertical = (value, category) if kind == "bar" else (category, value)
    chart.set_x_axis(horizontal)
    chart.set_y_axis(vertical)
    chart.set_size(size)
    return chart


def series(
    chart: Chart,
    sheet: Worksheet,
    frame: pd.DataFrame,
    columns: list[str],
    categories: str,
    rows: range | None = None,
) -> Chart:
    """Add ``columns`` of the table on ``sheet`` as series named by their header, ``categories`` as x."""
    name = sheet.get_name()
    first = _HEADER + 1 + (rows.start if rows else 0)
    last = _HEADER + (rows.stop if rows else len(frame))
    category = list(frame.columns).index(categories)
    for column in columns:
        index = list(frame.columns).index(column)
        chart.add_series(
            {
                "name": [name, _HEADER, index],
                "values": [name, first, index, last, index],
                "categories": [name, first, category, last, category],
            }
        )
    return chart


def add_charts(book: ReportBook, data: ReportData, sheets: dict[str, Worksheet]) -> list[str]:
    """Native charts beside their tables (a chart of an empty table is left out); the print area of
    a sheet with charts takes them in. Returns "sheet: title" of each chart."""
    daily, by_action, runtime = data["daily"], data["by_action"], data["runtime_daily"]
    top, totals = data["top_users"], data["exposure_by_currency"]
    placed: dict[str, tuple[pd.DataFrame, list[tuple[str, Chart]]]] = {}

    def add(sheet_name: str, frame: pd.DataFrame, title: str, drawn: Chart) -> None:
        placed.setdefault(sheet_name, (frame, []))[1].append((title, drawn))

    if len(daily):
        for title, kind, value_title, columns, stacked in (
            ("Transactions per day", "column", "transactions (count)", ["credits", "debits"], True),
            ("Discrepancy events per day", "column", "events (count)", ["discrepancies"], False),
            ("Anomalies per day", "line", "anomalies (count)", ["anomalies"], False),
        ):
            drawn = chart(book, kind, title, DAY_AXIS, value_title, stacked=stacked)
            add("Daily", daily, title, series(drawn, sheets["Daily"], daily, columns, "day"))
    if len(by_action):
        for title, value_title, columns in (
            ("Transactions by action", "transactions (count)", ["credits", "debits"]),
            ("Errors by action", "errors (count)", ["discrepancies", "processing_errors"]),
        ):
            drawn = chart(book, "bar", title, "action", value_title, stacked=True)
            add(
                "By Action",
                by_action,
                title,
                series(drawn, sheets["By Action"], by_action, columns, "action"),
            )
    if len(runtime):
        for title, kind, value_title, columns in (
            ("Failed invocations per day", "column", "invocations (count)", ["failed_invocations"]),
            (
                "Invocation durations",
                "line",
                "duration (ms)",
                ["duration_p50_ms", "duration_p95_ms"],
            ),
        ):
            drawn = chart(book, kind, title, DAY_AXIS, value_title)
            add(
                "Runtime Health",
                runtime,
                title,
                series(drawn, sheets["Runtime Health"], runtime, columns, "day"),
            )
    for currency in sorted(top["currency"].dropna().unique()):
        positions = [index for index, value in enumerate(top["currency"]) if value == currency]
        title = f"Top users by applied volume ({currency})"
        drawn = chart(book, "bar", title, "user", f"volume ({currency})")
        rows = range(positions[0], positions[-1] + 1)
        add(
            "Top Users",
            top,
            title,
            series(drawn, sheets["Top Users"], top, ["volume"], "user_id", rows),
        )
    name = sheets["Exposure by Currency"].get_name()
    for index, currency in enumerate(totals["currency"]):
        title = f"Exposure ({currency})"
        drawn = chart(book, "column", title, "", f"amount ({currency})", size=SMALL_CHART_SIZE)
        row = _HEADER + 1 + index
        drawn.add_series(
            {
                "name": currency,
                "values": [name, row, 1, row, 2],
                "categories": [name, _HEADER, 1, _HEADER, 2],
            }
        )
        drawn.set_legend({"none": True})
        add("Exposure by Currency", totals, title, drawn)
    names = []
    for sheet_name, (frame, charts) in placed.items():
        sheet = sheets[sheet_name]
        for index, (title, drawn) in enumerate(charts):
            sheet.insert_chart(_HEADER + index * CHART_ROWS, len(frame.columns) + 1, drawn)
            names.append(f"{sheet_name}: {title}")
        last_row = max(_HEADER + len(frame), _HEADER + len(charts) * CHART_ROWS)
        print_setup(sheet, last_row, len(frame.columns) + CHART_COLUMNS, title_rows=True)
    return names
