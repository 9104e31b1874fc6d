"""The User Detail sheet: one block per user named on the Overview (its cases, gap history, latest
transactions, rejections and anomalies), which the Overview's user ids link to."""

from __future__ import annotations

import pandas as pd
from xlsxwriter.worksheet import Worksheet

from calo_assets.report.data import DETAIL_TRANSACTIONS, ReportData, overview_users
from calo_assets.report.excel import ReportBook, print_setup, write_block

USER_DETAIL = "User Detail"
# (frame, title, money columns), in the order of a block
SECTIONS = (
    ("detail_cases", "Discrepancy cases (whole history)", ("latest_gap",)),
    (
        "detail_gaps",
        "Gap history: each gap value, from when it was first to last logged",
        ("gap", "subscription_balance", "payment_balance"),
    ),
    (
        "detail_transactions",
        f"Transactions: the latest {DETAIL_TRANSACTIONS} of the period",
        ("amount", "vat", "old_balance", "new_balance"),
    ),
    (
        "detail_rejections",
        "Negative-balance rejections",
        ("current_balance", "amount", "attempted_new_balance"),
    ),
    ("detail_anomalies", "Transactions flagged as anomalous", ()),
)
COLUMNS = 12  # the widest section (transactions, without the user id)


def _sections(data: ReportData) -> dict[str, list[tuple[str, pd.DataFrame, tuple[str, ...]]]]:
    """Each listed user's sections (title, rows, money columns), in order, computed once per report."""
    if "user_detail" not in data.cache:
        by_user, empty = {}, {}
        for name, _, _ in SECTIONS:
            rows = data[name].drop(columns="user_id")
            by_user[name] = dict(iter(rows.groupby(data[name]["user_id"], sort=False)))
            empty[name] = rows.iloc[0:0]
        data.cache["user_detail"] = {
            user: [
                (title, by_user[name].get(user, empty[name]), money)
                for name, title, money in SECTIONS
            ]
            for user in overview_users(data)
        }
    return data.cache["user_detail"]


def _height(rows: pd.DataFrame) -> int:
    """Rows a section takes: its title, then its header and rows (or a line saying none), a blank."""
    return 1 + (1 + len(rows) if len(rows) else 1) + 1


def anchors(data: ReportData) -> dict[str, int]:
    """The 0-based row where each listed user's block starts (for links from the Overview)."""
    row, found = 2, {}
    for user, sections in _sections(data).items():
        found[user] = row
        row += 1 + sum(_height(rows) for _, rows, _ in sections) + 1
    return found


def link(data: ReportData) -> dict[str, str]:
    """An internal hyperlink to each listed user's block."""
    return {user: f"internal:'{USER_DETAIL}'!A{row + 1}" for user, row in anchors(data).items()}


def write_user_detail(book: ReportBook, data: ReportData) -> None:
    """One block per listed user, where ``anchors`` says."""
    sheet = book.add_sheet(USER_DETAIL)
    sheet.write_string(
        0, 0, "User Detail: the users named on the Overview, one block each.", book.title
    )
    sheet.write_url(0, 8, "internal:'Overview'!A1", book.link, string="back to the Overview")
    end = 2
    for user, start in anchors(data).items():
        end = _write_user(book, sheet, data, user, start)
    sheet.set_column(0, COLUMNS, 20)  # ids and long text come last in a section: they run on
    print_setup(sheet, end, COLUMNS, title_rows=False)


def _write_user(book: ReportBook, sheet: Worksheet, data: ReportData, user: str, row: int) -> int:
    """The block of ``user`` from ``row``; returns the row after it."""
    sheet.write_string(row, 0, f"User {user}", book.big_title)
    row += 1
    for title, rows, money in _sections(data)[user]:
        sheet.write_string(row, 0, title, book.bold)
        if len(rows):
            row = write_block(book, sheet, row + 1, 0, rows, money=money)
        else:
            sheet.write_string(row + 1, 0, "none in the period", book.note)
            row += 2
        row += 1
    return row + 1
