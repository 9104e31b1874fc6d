"""The Excel workbook: real tables, money to each currency's minor unit, native charts beside the data.

Text from logs is always written as text (``data_type = "s"``, so ``=cmd()`` stays a string) with
characters Excel cannot hold replaced; timestamps are Excel datetimes in UTC; a sheet longer than
Excel's row limit continues on numbered sheets, and the sheet says so.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableStyleInfo
from openpyxl.worksheet.worksheet import Worksheet

from calo_assets.money import minor_unit
from calo_assets.report.columns import COLUMN_MEANINGS, SHEET_PURPOSES
from calo_assets.report.data import ReportData

MAX_DATA_ROWS = 1_048_576 - 3  # Excel's limit, less the title, the blank row and the header
HEADER_ROW = 3
TITLE_FONT = Font(bold=True, size=13)
NOTE_FONT = Font(italic=True, color="9C0006")
HEADER_FILL = PatternFill("solid", fgColor="1F4E78")
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DATE_FORMAT, TIME_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss"


def excel_text(value: str) -> str:
    """Log text made safe for a cell: characters Excel refuses become U+FFFD."""
    return _ILLEGAL.sub("\ufffd", value)


def _money_format(currency: Any) -> str:
    decimals = minor_unit(currency if isinstance(currency, str) else None)
    return "#,##0." + "0" * decimals


def _cell_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, str):
        return excel_text(value)
    return value


def write_table_sheet(
    workbook: Workbook,
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
        sheet = workbook.create_sheet(name[:31])
        sheet["A1"] = f"{title}: {SHEET_PURPOSES.get(title, '')}"
        sheet["A1"].font = TITLE_FONT
        if len(chunks) > 1:
            first, last = index * MAX_DATA_ROWS + 1, index * MAX_DATA_ROWS + len(chunk)
            more = f"; continued on '{title} ({index + 2})'" if index + 1 < len(chunks) else ""
            sheet["A2"] = (
                f"Rows {first:,} to {last:,} of {len(frame):,}: Excel holds at most {MAX_DATA_ROWS:,} per sheet{more}."
            )
            sheet["A2"].font = NOTE_FONT
        _write_rows(sheet, chunk, money, currency_column)
        sheets.append(sheet)
    return sheets


def _header(column: str, frame: pd.DataFrame) -> str:
    series = frame[column]
    is_time = pd.api.types.is_datetime64_any_dtype(series) or (
        len(series)
        and isinstance(series.dropna().iloc[0] if series.notna().any() else None, dt.datetime)
    )
    return f"{column} (UTC)" if is_time and column != "day" else column


def _write_rows(
    sheet: Worksheet, frame: pd.DataFrame, money: set[str], currency_column: str
) -> None:
    columns = list(frame.columns)
    for offset, column in enumerate(columns, start=1):
        cell = sheet.cell(row=HEADER_ROW, column=offset, value=_header(column, frame))
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(vertical="center")
    currencies = (
        frame[currency_column].tolist() if currency_column in frame.columns else [None] * len(frame)
    )
    widths = [len(_header(column, frame)) for column in columns]
    for row_offset, (values, currency) in enumerate(
        zip(frame.itertuples(index=False), currencies, strict=True)
    ):
        row = HEADER_ROW + 1 + row_offset
        for col_offset, (column, raw) in enumerate(zip(columns, values, strict=True)):
            value = _cell_value(raw)
            cell = sheet.cell(row=row, column=col_offset + 1, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # text from logs stays text, even when it starts with "="
                if value.startswith(_FORMULA_START):
                    cell.quotePrefix = True
            elif column in money and isinstance(value, Decimal | float | int):
                cell.number_format = _money_format(currency)
            elif isinstance(value, dt.datetime):
                cell.number_format = TIME_FORMAT
            elif isinstance(value, dt.date):
                cell.number_format = DATE_FORMAT
            if row_offset < 300:
                widths[col_offset] = max(
                    widths[col_offset], len(str(value)) if value is not None else 0
                )
    last_row = HEADER_ROW + len(frame)
    if len(frame):
        reference = f"A{HEADER_ROW}:{get_column_letter(len(columns))}{last_row}"
        table = Table(displayName=re.sub(r"\W", "_", sheet.title), ref=reference)
        table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
        sheet.add_table(table)
    else:
        sheet.cell(row=HEADER_ROW + 1, column=1, value="No rows in this period.").font = NOTE_FONT
    sheet.freeze_panes = sheet.cell(row=HEADER_ROW + 1, column=1)
    for offset, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(offset)].width = min(max(width + 2, 8), 60)


def _bar(
    title: str, x_title: str, y_title: str, *, stacked: bool = False, horizontal: bool = False
) -> BarChart:
    chart = BarChart()
    chart.type = "bar" if horizontal else "col"
    chart.title, chart.x_axis.title, chart.y_axis.title = title, x_title, y_title
    if stacked:
        chart.grouping, chart.overlap = "stacked", 100
    chart.width, chart.height = 22, 11
    return chart


def _line(title: str, x_title: str, y_title: str) -> LineChart:
    chart = LineChart()
    chart.title, chart.x_axis.title, chart.y_axis.title = title, x_title, y_title
    chart.width, chart.height = 22, 11
    return chart


def _series(
    chart,
    sheet: Worksheet,
    frame: pd.DataFrame,
    columns: list[str],
    categories: str,
    rows: range | None = None,
):
    """Add ``columns`` of the table on ``sheet`` as series, with ``categories`` as the x values."""
    if frame.empty:
        return chart
    first = HEADER_ROW + 1 + (rows.start if rows else 0)
    last = HEADER_ROW + (rows.stop if rows else len(frame))
    for column in columns:
        index = list(frame.columns).index(column) + 1
        chart.add_data(
            Reference(
                sheet, min_col=index, min_row=HEADER_ROW if rows is None else first, max_row=last
            ),
            titles_from_data=rows is None,
        )
    category = list(frame.columns).index(categories) + 1
    chart.set_categories(Reference(sheet, min_col=category, min_row=first, max_row=last))
    return chart


def _place(sheet: Worksheet, frame: pd.DataFrame, charts: list) -> None:
    anchor_column = get_column_letter(len(frame.columns) + 2)
    for index, chart in enumerate(charts):
        sheet.add_chart(chart, f"{anchor_column}{HEADER_ROW + index * 24}")


def _summary(workbook: Workbook, data: ReportData, sheet_names: list[str]) -> None:
    sheet = workbook.active
    sheet.title = "Summary"
    sheet["A1"] = "Balance sync analytics report"
    sheet["A1"].font = Font(bold=True, size=16)
    sheet["A2"] = (
        f"Period: {data.first:%Y-%m-%d} to {data.last:%Y-%m-%d} (UTC days). Figures per currency: currencies are never added together."
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
    row = 4
    sheet.cell(row=row, column=1, value="KPI").font = Font(bold=True)
    currencies = [c for c in kpis["currency"].tolist() if isinstance(c, str)]
    for offset, currency in enumerate(currencies, start=2):
        sheet.cell(row=row, column=offset, value=currency).font = Font(bold=True)
    for key, label in labels.items():
        row += 1
        sheet.cell(row=row, column=1, value=label)
        for offset, currency in enumerate(currencies, start=2):
            value = _cell_value(kpis.loc[kpis["currency"] == currency, key].iloc[0])
            cell = sheet.cell(row=row, column=offset, value=value if value is not None else 0)
            if key in ("credited", "debited", "revenue_at_risk", "owed_to_users"):
                cell.number_format = _money_format(currency)
    quality = data["data_quality"].iloc[0]
    row += 2
    sheet.cell(row=row, column=1, value="Data quality").font = Font(bold=True)
    for label, key in (
        ("log streams", "streams"),
        ("records read", "records_read"),
        ("records typed", "records_typed"),
        ("records quarantined", "records_quarantined"),
        ("files quarantined", "files_quarantined"),
    ):
        row += 1
        sheet.cell(row=row, column=1, value=label)
        sheet.cell(row=row, column=2, value=int(quality[key] or 0))
    row += 2
    sheet.cell(row=row, column=1, value="How to read this workbook").font = Font(bold=True)
    for line in (
        "Each sheet starts with what it shows; 'Column Definitions' explains every column.",
        "Money is exact as logged and shown to the currency's minor unit (BHD, KWD: 3 decimals; others: 2).",
        "A positive gap (subscription balance above payment balance) is revenue at risk; a negative gap is owed to the user.",
        "Exposure uses the latest gap per user: the same gap is logged again at every sync and is never summed.",
        "Times are UTC. Personal data (names, e-mails, phone numbers) is masked.",
        "Sheets: " + ", ".join(sheet_names),
    ):
        row += 1
        sheet.cell(row=row, column=1, value=line)
    sheet.column_dimensions["A"].width = 42
    for offset in range(2, 2 + len(currencies)):
        sheet.column_dimensions[get_column_letter(offset)].width = 16


def _column_definitions(
    workbook: Workbook, data: ReportData, written: dict[str, pd.DataFrame]
) -> None:
    rows = []
    for sheet_name, frame in written.items():
        for column in frame.columns:
            rows.append(
                {"sheet": sheet_name, "column": column, "meaning": COLUMN_MEANINGS.get(column, "")}
            )
    write_table_sheet(workbook, "Column Definitions", pd.DataFrame(rows))


def build_workbook(data: ReportData, path: Path) -> dict[str, Any]:
    """Write the workbook to ``path``; return what it holds (sheets and charts) for metadata."""
    workbook = Workbook()
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
    _summary(workbook, data, [name for name, _, _ in plan] + ["Column Definitions"])
    sheets: dict[str, Worksheet] = {}
    written: dict[str, pd.DataFrame] = {}
    for name, frame, money in plan:
        sheets[name] = write_table_sheet(workbook, name, frame, money)[0]
        written[name] = frame
    charts = _charts(data, sheets)
    _column_definitions(workbook, data, written)
    workbook.save(path)
    return {"sheets": workbook.sheetnames, "charts": charts}


def _charts(data: ReportData, sheets: dict[str, Worksheet]) -> list[str]:
    daily, by_action, runtime = data["daily"], data["by_action"], data["runtime_daily"]
    placed: dict[str, list] = {
        "Daily": [
            _series(
                _bar("Transactions per day", "day (UTC)", "transactions", stacked=True),
                sheets["Daily"],
                daily,
                ["credits", "debits"],
                "day",
            ),
            _series(
                _bar("Discrepancy events per day", "day (UTC)", "events"),
                sheets["Daily"],
                daily,
                ["discrepancies"],
                "day",
            ),
            _series(
                _line("Anomalies per day", "day (UTC)", "anomalies"),
                sheets["Daily"],
                daily,
                ["anomalies"],
                "day",
            ),
        ],
        "By Action": [
            _series(
                _bar(
                    "Transactions by action",
                    "action",
                    "transactions",
                    stacked=True,
                    horizontal=True,
                ),
                sheets["By Action"],
                by_action,
                ["credits", "debits"],
                "action",
            ),
            _series(
                _bar("Errors by action", "action", "errors", stacked=True, horizontal=True),
                sheets["By Action"],
                by_action,
                ["discrepancies", "processing_errors"],
                "action",
            ),
        ],
        "Runtime Health": [
            _series(
                _bar("Failed invocations per day", "day (UTC)", "invocations"),
                sheets["Runtime Health"],
                runtime,
                ["failed_invocations"],
                "day",
            ),
            _series(
                _line("Invocation durations", "day (UTC)", "duration (ms)"),
                sheets["Runtime Health"],
                runtime,
                ["median_duration_ms", "p95_duration_ms"],
                "day",
            ),
        ],
        "Top Users": [],
        "Exposure by Currency": [],
    }
    top = data["top_users"]
    for currency in sorted(top["currency"].dropna().unique()):
        positions = [index for index, value in enumerate(top["currency"]) if value == currency]
        rows = range(positions[0], positions[-1] + 1)
        chart = _bar(
            f"Top users by applied volume ({currency})",
            "user",
            f"volume ({currency})",
            horizontal=True,
        )
        placed["Top Users"].append(
            _series(chart, sheets["Top Users"], top, ["volume"], "user_id", rows)
        )
    totals = data.exposure_totals
    sheet = sheets["Exposure by Currency"]
    for index, currency in enumerate(totals["currency"]):
        chart = _bar(f"Exposure ({currency})", "", f"amount ({currency})")
        chart.width, chart.height = 11, 8
        row = HEADER_ROW + 1 + index
        chart.add_data(
            Reference(sheet, min_col=2, max_col=3, min_row=row, max_row=row),
            from_rows=True,
            titles_from_data=False,
        )
        chart.set_categories(
            Reference(sheet, min_col=2, max_col=3, min_row=HEADER_ROW, max_row=HEADER_ROW)
        )
        chart.legend = None
        placed["Exposure by Currency"].append(chart)
    names = []
    for sheet_name, charts in placed.items():
        frame = {
            "Daily": daily,
            "By Action": by_action,
            "Runtime Health": runtime,
            "Top Users": top,
            "Exposure by Currency": totals,
        }[sheet_name]
        _place(sheets[sheet_name], frame, charts)
        names += [f"{sheet_name}: {_title_text(chart)}" for chart in charts]
    return names


def _title_text(chart) -> str:
    try:
        return "".join(run.t for paragraph in chart.title.tx.rich.p for run in (paragraph.r or []))
    except AttributeError:
        return str(chart.title)
