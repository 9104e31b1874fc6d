"""The Excel workbook: real tables, money to each currency's minor unit, native charts beside the data.

Written with XlsxWriter. Text from logs is always written as a string cell (``write_string``, so
``=cmd()`` stays text, shown with a quote prefix) with characters Excel cannot hold replaced;
timestamps are Excel datetimes in UTC; a sheet longer than Excel's row limit continues on numbered
sheets, and the sheet says so. The file is the same byte for byte for the same data: the zip
members carry a fixed date and the document's creation date is the end of the reported period.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from xlsxwriter import Workbook
from xlsxwriter.chart import Chart
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from calo_assets.money import MINOR_UNITS, minor_unit
from calo_assets.report.columns import COLUMN_MEANINGS, SHEET_PURPOSES
from calo_assets.report.data import ReportData

MAX_DATA_ROWS = 1_048_576 - 3  # Excel's limit, less the title, the blank row and the header
HEADER_ROW = 3  # 1-based, as Excel shows it; data starts on the next row
_HEADER = HEADER_ROW - 1  # 0-based, as XlsxWriter counts
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula
DATE_FORMAT, TIME_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss"
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # day 0 of Excel's 1900 date system (after 1900-03-01)
_EXCEL_DATE_EPOCH = dt.date(1899, 12, 30)
_DAY = pd.Timedelta(days=1)
_FIXED_CREATED = dt.datetime(
    2000, 1, 1, tzinfo=dt.UTC
)  # when no date is given: still deterministic
CHART_SIZE = {"width": 832, "height": 416}  # 22 x 11 cm at 96 dpi
SMALL_CHART_SIZE = {"width": 416, "height": 302}  # 11 x 8 cm
CHART_ROWS = 24  # rows between two charts stacked beside a table


def excel_text(value: str) -> str:
    """Log text made safe for a cell: characters Excel refuses become U+FFFD."""
    return _ILLEGAL.sub("\ufffd", value)


class ReportBook:
    """An XlsxWriter workbook with the report's cell formats, created once."""

    def __init__(self, path: Path, created: dt.datetime | None = None) -> None:
        self.book = Workbook(
            str(path),
            {
                "in_memory": True,  # no temporary files, and zip members with a fixed date
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self.book.set_properties(
            {"title": "Balance sync analytics report", "created": created or _FIXED_CREATED}
        )
        add = self.book.add_format
        self.title = add({"bold": True, "font_size": 13})
        self.big_title = add({"bold": True, "font_size": 16})
        self.bold = add({"bold": True})
        self.note = add({"italic": True, "font_color": "#9C0006"})
        self.header = add(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": "#1F4E78", "valign": "vcenter"}
        )
        self.quoted = add({"quote_prefix": True})
        self.time = add({"num_format": TIME_FORMAT})
        self.date = add({"num_format": DATE_FORMAT})
        self.money = {
            decimals: add({"num_format": "#,##0." + "0" * decimals})
            for decimals in {2, *MINOR_UNITS.values()}
        }

    def money_for(self, currency: Any) -> Format:
        """The money format of ``currency``."""
        return self.money[minor_unit(currency if isinstance(currency, str) else None)]

    def add_sheet(self, name: str) -> Worksheet:
        return self.book.add_worksheet(name[:31])

    @property
    def sheet_names(self) -> list[str]:
        return [sheet.get_name() for sheet in self.book.worksheets()]

    def close(self) -> None:
        self.book.close()


def write_table_sheet(
    book: ReportBook,
    title: str,
    frame: pd.DataFrame,
    money_columns: Iterable[str] = (),
    currency_column: str = "currency",
) -> list[Worksheet]:
    """Write ``frame`` as an Excel table on ``title`` (and continuation sheets); return the sheets."""
    money = set(money_columns)
    chunks = [
        frame.iloc[start : start + MAX_DATA_ROWS]
        for start in range(0, max(len(frame), 1), MAX_DATA_ROWS)
    ]
    sheets = []
    for index, chunk in enumerate(chunks):
        name = title if index == 0 else f"{title} ({index + 1})"
        sheet = book.add_sheet(name)
        sheet.write_string(0, 0, f"{title}: {SHEET_PURPOSES.get(title, '')}", book.title)
        if len(chunks) > 1:
            first, last = index * MAX_DATA_ROWS + 1, index * MAX_DATA_ROWS + len(chunk)
            more = f"; continued on '{title} ({index + 2})'" if index + 1 < len(chunks) else ""
            sheet.write_string(
                1,
                0,
                f"Rows {first:,} to {last:,} of {len(frame):,}: Excel holds at most {MAX_DATA_ROWS:,} per sheet{more}.",
                book.note,
            )
        _write_rows(book, sheet, chunk, money, currency_column)
        sheets.append(sheet)
    return sheets


def _is_time(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    present = series.dropna()
    return bool(len(present)) and isinstance(present.iloc[0], dt.datetime)


def _header(column: str, frame: pd.DataFrame) -> str:
    return f"{column} (UTC)" if column != "day" and _is_time(frame[column]) else column


def _excel_times(series: pd.Series) -> list[float | None]:
    """Timestamps as Excel serial days in UTC (what a datetime cell holds); None where missing."""
    times = pd.to_datetime(series, utc=True).dt.tz_convert(None)
    serials = (times - _EXCEL_EPOCH) / _DAY
    return [
        None if missing else value for value, missing in zip(serials, times.isna(), strict=True)
    ]


def _excel_time(value: dt.datetime) -> float:
    """One timestamp as an Excel serial day in UTC (a naive one is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return (pd.Timestamp(value) - _EXCEL_EPOCH) / _DAY


def _write_value(book: ReportBook, sheet: Worksheet, row: int, column: int, value: Any) -> None:
    """One cell, by the value's type: text as text (never a formula), times in UTC, blanks skipped."""
    if isinstance(value, str):
        text = excel_text(value)
        sheet.write_string(
            row, column, text, book.quoted if text.startswith(FORMULA_START) else None
        )
    elif isinstance(value, bool | np.bool_):
        sheet.write_boolean(row, column, bool(value))
    elif isinstance(value, int | np.integer | Decimal):
        sheet.write_number(row, column, float(value))
    elif isinstance(value, float | np.floating):
        if not math.isnan(value):
            sheet.write_number(row, column, float(value))
    elif isinstance(value, dt.datetime):  # pd.Timestamp too; NaT is neither
        if value is not pd.NaT:
            sheet.write_number(row, column, _excel_time(value), book.time)
    elif isinstance(value, dt.date):
        sheet.write_number(row, column, (value - _EXCEL_DATE_EPOCH).days, book.date)
    elif value is not None and value is not pd.NaT and value is not pd.NA:
        sheet.write_string(row, column, excel_text(str(value)))


def _write_column(
    book: ReportBook,
    sheet: Worksheet,
    column: int,
    values: list[Any],
    number_formats: list[Format] | None,
) -> None:
    """One column of cells from row ``_HEADER + 1``; plain text and plain number columns go the short
    way, mixed ones cell by cell. ``number_formats``: the format of each row's number (money)."""
    first = _HEADER + 1
    kinds = set(map(type, values)) - {type(None)}
    if kinds <= {str}:
        # Characters Excel refuses are rare: look for them once in the whole column.
        clean = not _ILLEGAL.search("\n".join(value for value in values if value is not None))
        write_string, quoted = sheet.write_string, book.quoted
        for row, value in enumerate(values, start=first):
            if value is not None:
                text = value if clean else excel_text(value)
                write_string(row, column, text, quoted if text.startswith(FORMULA_START) else None)
    elif kinds == {bool}:
        for row, value in enumerate(values, start=first):
            if value is not None:
                sheet.write_boolean(row, column, value)
    elif kinds == {dt.date}:  # days (a datetime is a date too, but of another type)
        for row, value in enumerate(values, start=first):
            if value is not None:
                sheet.write_number(row, column, (value - _EXCEL_DATE_EPOCH).days, book.date)
    elif kinds <= {Decimal, float, int}:
        write_number = sheet.write_number
        for offset, value in enumerate(values):
            if value is not None and value == value:  # NaN is the one value unequal to itself
                number_format = number_formats[offset] if number_formats else None
                write_number(first + offset, column, float(value), number_format)
    else:
        for offset, value in enumerate(values):
            if number_formats and isinstance(value, Decimal | float | int) and value == value:
                sheet.write_number(first + offset, column, float(value), number_formats[offset])
            else:
                _write_value(book, sheet, first + offset, column, value)


def _write_rows(
    book: ReportBook, sheet: Worksheet, frame: pd.DataFrame, money: set[str], currency_column: str
) -> None:
    columns = list(frame.columns)
    headers = [_header(column, frame) for column in columns]
    money_formats = [
        book.money_for(currency)
        for currency in (
            frame[currency_column].tolist()
            if currency_column in frame.columns
            else [None] * len(frame)
        )
    ]
    widths = [len(header) for header in headers]
    for index, column in enumerate(columns):
        series = frame[column]
        values = series.tolist()
        if column != "day" and _is_time(series):
            for row, serial in enumerate(_excel_times(series), start=_HEADER + 1):
                if serial is not None:
                    sheet.write_number(row, index, serial, book.time)
        else:
            _write_column(book, sheet, index, values, money_formats if column in money else None)
        shown = [len(str(value)) for value in values[:300] if not _missing(value)]
        widths[index] = max(widths[index], *shown) if shown else widths[index]
    if len(frame):
        sheet.add_table(
            _HEADER,
            0,
            _HEADER + len(frame),
            len(columns) - 1,
            {
                "name": re.sub(r"\W", "_", sheet.get_name()),
                "style": "Table Style Medium 2",
                "columns": [{"header": header, "header_format": book.header} for header in headers],
            },
        )
    else:
        for index, header in enumerate(headers):
            sheet.write_string(_HEADER, index, header, book.header)
        sheet.write_string(_HEADER + 1, 0, "No rows in this period.", book.note)
    sheet.freeze_panes(HEADER_ROW, 0)
    for index, width in enumerate(widths):
        sheet.set_column(index, index, min(max(width + 2, 8), 60))


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _summary(book: ReportBook, data: ReportData, sheet_names: list[str]) -> None:
    sheet = book.add_sheet("Summary")
    sheet.write_string(0, 0, "Balance sync analytics report", book.big_title)
    sheet.write_string(
        1,
        0,
        f"Period: {data.first:%Y-%m-%d} to {data.last:%Y-%m-%d} (UTC days). Figures per currency: currencies are never added together.",
    )
    kpis = data["kpis"].merge(
        data.exposure_totals[["currency", "revenue_at_risk", "owed_to_users"]],
        on="currency",
        how="outer",
    )
    labels = {
        "credited": "volume credited (applied)",
        "debited": "volume debited (applied)",
        "transactions": "transactions",
        "discrepancy_users": "users with discrepancies",
        "revenue_at_risk": "revenue at risk (latest gaps > 0)",
        "owed_to_users": "owed to users (latest gaps < 0)",
        "rejected_overdrafts": "rejected overdrafts",
        "anomalies": "anomalies",
        "runtime_errors": "runtime errors on transactions",
    }
    row = 3
    sheet.write_string(row, 0, "KPI", book.bold)
    currencies = [c for c in kpis["currency"].tolist() if isinstance(c, str)]
    for column, currency in enumerate(currencies, start=1):
        sheet.write_string(row, column, currency, book.bold)
    for key, label in labels.items():
        row += 1
        sheet.write_string(row, 0, label)
        for column, currency in enumerate(currencies, start=1):
            value = kpis.loc[kpis["currency"] == currency, key].iloc[0]
            value = 0 if _missing(value) else float(value)
            is_money = key in ("credited", "debited", "revenue_at_risk", "owed_to_users")
            sheet.write_number(row, column, value, book.money_for(currency) if is_money else None)
    quality = data["data_quality"].iloc[0]
    row += 2
    sheet.write_string(row, 0, "Data quality", book.bold)
    for label, key in (
        ("log streams", "streams"),
        ("records read", "records_read"),
        ("records typed", "records_typed"),
        ("records quarantined", "records_quarantined"),
        ("files quarantined", "files_quarantined"),
    ):
        row += 1
        sheet.write_string(row, 0, label)
        sheet.write_number(row, 1, int(quality[key] or 0))
    row += 2
    sheet.write_string(row, 0, "How to read this workbook", book.bold)
    for line in (
        "Each sheet starts with what it shows; 'Column Definitions' explains every column.",
        "Money is exact as logged and shown to the currency's minor unit (BHD, KWD: 3 decimals; others: 2).",
        "A positive gap (subscription balance above payment balance) is revenue at risk; a negative gap is owed to the user.",
        "Exposure uses the latest gap per user: the same gap is logged again at every sync and is never summed.",
        "Times are UTC. Personal data (names, e-mails, phone numbers) is masked.",
        "Sheets: " + ", ".join(sheet_names),
    ):
        row += 1
        sheet.write_string(row, 0, line)
    sheet.set_column(0, 0, 42)
    if currencies:
        sheet.set_column(1, len(currencies), 16)


def _column_definitions(book: ReportBook, written: dict[str, pd.DataFrame]) -> None:
    rows = [
        {"sheet": sheet_name, "column": column, "meaning": COLUMN_MEANINGS.get(column, "")}
        for sheet_name, frame in written.items()
        for column in frame.columns
    ]
    write_table_sheet(book, "Column Definitions", pd.DataFrame(rows))


def build_workbook(data: ReportData, path: Path) -> dict[str, Any]:
    """Write the workbook to ``path``; return what it holds (sheets and charts) for metadata."""
    created = dt.datetime.combine(data.last + dt.timedelta(days=1), dt.time(), dt.UTC)
    book = ReportBook(path, created)
    money_tx = ["amount", "vat", "old_balance", "new_balance", "payment_balance"]
    plan: list[tuple[str, pd.DataFrame, list[str]]] = [
        ("Daily", data["daily"], []),
        ("Transactions", data["transactions"], money_tx),
        (
            "Balance Discrepancies",
            data["discrepancies"],
            ["subscription_balance", "payment_balance", "gap"],
        ),
        (
            "User Exposure",
            data["exposure"],
            ["latest_gap", "latest_subscription_balance", "latest_payment_balance"],
        ),
        ("Exposure by Currency", data.exposure_totals, ["revenue_at_risk", "owed_to_users"]),
        ("User Errors", data["user_errors"], ["latest_gap"]),
        ("Ledger Breaks", data["ledger_breaks"], ["expected", "actual", "difference"]),
        ("Overdrafts", data["overdrafts"], ["balance_before", "amount", "balance_after"]),
        ("Anomalies", data["anomalies"], ["amount", "old_balance", "new_balance"]),
        ("By Action", data["by_action"], []),
        ("Top Users", data["top_users"], ["volume"]),
        ("Runtime Health", data["runtime_daily"], []),
        ("Errors by Type", data["errors_by_type"], []),
        ("Data Quality", data["quarantine"], []),
        ("Checks", data["checks"], []),
    ]
    _summary(book, data, [name for name, _, _ in plan] + ["Column Definitions"])
    sheets: dict[str, Worksheet] = {}
    written: dict[str, pd.DataFrame] = {}
    for name, frame, money in plan:
        sheets[name] = write_table_sheet(book, name, frame, money)[0]
        written[name] = frame
    charts = _charts(book, data, sheets)
    _column_definitions(book, written)
    names = book.sheet_names
    book.close()
    return {"sheets": names, "charts": charts}


def _chart(
    book: ReportBook,
    kind: str,
    title: str,
    x_title: str,
    y_title: str,
    *,
    stacked: bool = False,
    size: dict[str, int] = CHART_SIZE,
) -> Chart:
    """A column, bar (horizontal) or line chart with its titles; stacked bars overlap fully."""
    options = {"type": kind, **({"subtype": "stacked"} if stacked else {})}
    chart = book.book.add_chart(options)
    chart.set_title({"name": title})
    if x_title:
        chart.set_x_axis({"name": x_title})
    if y_title:
        chart.set_y_axis({"name": y_title})
    chart.set_size(size)
    return chart


def _series(
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


def _charts(book: ReportBook, data: ReportData, sheets: dict[str, Worksheet]) -> list[str]:
    """Native charts beside their tables; a chart of an empty table is left out."""
    daily, by_action, runtime = data["daily"], data["by_action"], data["runtime_daily"]
    top, totals = data["top_users"], data.exposure_totals
    placed: dict[str, tuple[pd.DataFrame, list[tuple[str, Chart]]]] = {}

    def add(sheet_name: str, frame: pd.DataFrame, title: str, chart: Chart) -> None:
        placed.setdefault(sheet_name, (frame, []))[1].append((title, chart))

    if len(daily):
        sheet = sheets["Daily"]
        for title, kind, y_title, columns, stacked in (
            ("Transactions per day", "column", "transactions", ["credits", "debits"], True),
            ("Discrepancy events per day", "column", "events", ["discrepancies"], False),
            ("Anomalies per day", "line", "anomalies", ["anomalies"], False),
        ):
            chart = _chart(book, kind, title, "day (UTC)", y_title, stacked=stacked)
            add("Daily", daily, title, _series(chart, sheet, daily, columns, "day"))
    if len(by_action):
        sheet = sheets["By Action"]
        for title, y_title, columns in (
            ("Transactions by action", "transactions", ["credits", "debits"]),
            ("Errors by action", "errors", ["discrepancies", "processing_errors"]),
        ):
            chart = _chart(book, "bar", title, "action", y_title, stacked=True)
            add("By Action", by_action, title, _series(chart, sheet, by_action, columns, "action"))
    if len(runtime):
        sheet = sheets["Runtime Health"]
        for title, kind, y_title, columns in (
            ("Failed invocations per day", "column", "invocations", ["failed_invocations"]),
            (
                "Invocation durations",
                "line",
                "duration (ms)",
                ["median_duration_ms", "p95_duration_ms"],
            ),
        ):
            chart = _chart(book, kind, title, "day (UTC)", y_title)
            add("Runtime Health", runtime, title, _series(chart, sheet, runtime, columns, "day"))
    for currency in sorted(top["currency"].dropna().unique()):
        positions = [index for index, value in enumerate(top["currency"]) if value == currency]
        title = f"Top users by applied volume ({currency})"
        chart = _chart(book, "bar", title, "user", f"volume ({currency})")
        rows = range(positions[0], positions[-1] + 1)
        add(
            "Top Users",
            top,
            title,
            _series(chart, sheets["Top Users"], top, ["volume"], "user_id", rows),
        )
    name = sheets["Exposure by Currency"].get_name()
    for index, currency in enumerate(totals["currency"]):
        title = f"Exposure ({currency})"
        chart = _chart(book, "column", title, "", f"amount ({currency})", size=SMALL_CHART_SIZE)
        row = _HEADER + 1 + index
        chart.add_series(
            {
                "name": currency,
                "values": [name, row, 1, row, 2],
                "categories": [name, _HEADER, 1, _HEADER, 2],
            }
        )
        chart.set_legend({"none": True})
        add("Exposure by Currency", totals, title, chart)
    names = []
    for sheet_name, (frame, charts) in placed.items():
        for index, (title, chart) in enumerate(charts):
            sheets[sheet_name].insert_chart(
                _HEADER + index * CHART_ROWS, len(frame.columns) + 1, chart
            )
            names.append(f"{sheet_name}: {title}")
    return names
