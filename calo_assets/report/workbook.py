"""The Excel workbook: the Overview, the Summary, one real table per sheet, native charts beside the
data, and the User Detail the Overview links to.

The file is the same byte for byte for the same data: the zip members carry a fixed date and the
document's creation date is the day after the reported period. Cells and tables are written by
``report/excel.py``, the Summary by ``report/summary.py``, the charts by ``report/native_charts.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from xlsxwriter.worksheet import Worksheet

from calo_assets.report import user_detail
from calo_assets.report.columns import column_meaning
from calo_assets.report.data import ReportData
from calo_assets.report.excel import (
    FORMULA_START,
    HEADER_ROW,
    ReportBook,
    write_table_sheet,
)
from calo_assets.report.native_charts import add_charts
from calo_assets.report.overview import EXPOSURE_TREND, OVERVIEW, write_overview
from calo_assets.report.summary import write_summary

__all__ = ["FORMULA_START", "ReportBook", "build_workbook", "write_table_sheet"]

MONEY_TX = ["amount", "vat", "old_balance", "new_balance", "payment_balance"]


def sheet_plan(data: ReportData) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """(sheet name, rows, money columns) of every table sheet, in workbook order."""
    return [
        ("Daily", data["daily"], []),
        ("Transactions", data["transactions"], MONEY_TX),
        (
            "Balance Discrepancies",
            data["discrepancies"],
            ["subscription_balance", "payment_balance", "gap"],
        ),
        (
            "Discrepancy Cases",
            data["cases"],
            [
                "latest_gap",
                "latest_subscription_balance",
                "latest_payment_balance",
                "revenue_at_risk",
                "owed_to_user",
                "mirrors_amount",
            ],
        ),
        (
            "User Exposure",
            data["exposure"],
            ["latest_gap", "latest_subscription_balance", "latest_payment_balance"],
        ),
        (
            "Exposure by Currency",
            data["exposure_by_currency"],
            ["revenue_at_risk", "owed_to_users"],
        ),
        (EXPOSURE_TREND, data["exposure_trend"], ["revenue_at_risk", "owed_to_users"]),
        ("User Errors", data["user_errors"], ["latest_gap"]),
        ("Ledger Breaks", data["ledger_breaks"], ["expected", "actual", "difference"]),
        ("Overdrafts", data["overdrafts"], ["balance_before", "amount", "balance_after"]),
        ("Anomalies", data["anomalies"], ["amount", "old_balance", "new_balance"]),
        ("By Action", data["by_action"], []),
        ("Top Users", data["top_users"], ["volume"]),
        ("Runtime Health", data["runtime_daily"], []),
        ("Runtime Versions", data["runtime_versions"], []),
        ("Errors by Type", data["errors_by_type"], []),
        ("Data Quality", data["quarantine"], []),
        ("Checks", data["checks"], []),
    ]


def build_workbook(data: ReportData, path: Path) -> dict[str, Any]:
    """Write the workbook to ``path``; return what it holds (sheets and charts) for metadata."""
    created = dt.datetime.combine(data.last + dt.timedelta(days=1), dt.time(), dt.UTC)
    book = ReportBook(path, created)
    plan = sheet_plan(data)
    write_overview(book, data, user_detail.link(data))
    write_summary(
        book,
        data,
        [OVERVIEW, *(name for name, _, _ in plan), user_detail.USER_DETAIL, "Column Definitions"],
    )
    sheets: dict[str, Worksheet] = {}
    for name, frame, money in plan:
        sheets[name] = write_table_sheet(book, name, frame, money)[0]
    _highlight_failed_checks(book, sheets["Checks"], data["checks"])
    charts = add_charts(book, data, sheets)
    user_detail.write_user_detail(book, data)
    _column_definitions(book, {name: frame for name, frame, _ in plan})
    names = book.sheet_names
    book.close()
    return {"sheets": names, "charts": charts}


def _highlight_failed_checks(book: ReportBook, sheet: Worksheet, checks: pd.DataFrame) -> None:
    """A failed check's row is red."""
    if not len(checks):
        return
    column = chr(ord("A") + list(checks.columns).index("passed"))
    sheet.conditional_format(
        HEADER_ROW,
        0,
        HEADER_ROW + len(checks) - 1,
        len(checks.columns) - 1,
        {"type": "formula", "criteria": f"=${column}{HEADER_ROW + 1}=FALSE", "format": book.failed},
    )


def _column_definitions(book: ReportBook, written: dict[str, pd.DataFrame]) -> None:
    rows = [
        {"sheet": sheet_name, "column": column, "meaning": column_meaning(sheet_name, column)}
        for sheet_name, frame in written.items()
        for column in frame.columns
    ]
    write_table_sheet(book, "Column Definitions", pd.DataFrame(rows))
