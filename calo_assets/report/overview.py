"""The Overview: what finance asks first, on one landscape page (and at the top of the HTML page).

Exposure per currency now and 7 and 30 days before, its trend, open cases by age, what needs action,
and the largest gaps per currency with their share of the currency's total. Figures come from
``metrics`` (``ReportData.figures`` and ``.overview``), rows from ``report/data.py``; the tables here
are built once and shown by the workbook and the HTML page alike.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from xlsxwriter.worksheet import Worksheet

from calo_assets import metrics
from calo_assets.ledger import finance
from calo_assets.report.data import (
    FAILED_SYNC,
    FAILING_CHECK,
    NEW_CASE,
    NO_LOGS,
    SUSPECT_GAP,
    TOP_GAPS,
    ReportData,
)
from calo_assets.report.excel import _HEADER, ReportBook, print_setup, write_block
from calo_assets.report.native_charts import chart
from calo_assets.report.summary import period_text

OVERVIEW = "Overview"
EXPOSURE_TREND = "Exposure Trend"
# (figure, column title) of the exposure table; the money columns are the first six
EXPOSURE_COLUMNS = (
    ("revenue_at_risk", "revenue at risk"),
    ("revenue_at_risk_7_days_before", "7 days before"),
    ("revenue_at_risk_30_days_before", "30 days before"),
    ("owed_to_users", "owed to users"),
    ("owed_to_users_7_days_before", "7 days before"),
    ("owed_to_users_30_days_before", "30 days before"),
    ("users_over_credited", "users at risk"),
    ("users_under_credited", "users owed"),
)
MONEY_TITLES = (
    "revenue at risk",
    "owed to users",
    "7 days before",
    "30 days before",
    "amount",
    "gap",
)
# Kinds of action with the figure that counts them all and where the rest is listed
MORE_OF = {
    NEW_CASE: ("cases_opened_last_7_days", "Discrepancy Cases"),
    SUSPECT_GAP: ("suspect_gaps", "Discrepancy Cases"),
    FAILED_SYNC: ("transactions_failed", "Transactions"),
    NO_LOGS: ("days_without_logs", "Daily"),
}
USER_PREFIX = 8  # characters of a user id shown on the Overview (the link leads to the whole id)
LEFT_WIDTH, RIGHT_COLUMN = 9, 10  # columns of the left blocks; first column of the right block
TREND_CHART = {"width": 370, "height": 320}


def _figures(data: ReportData) -> list[metrics.Figure]:
    return [*data.figures, *data.overview]


def _value(figures: list[metrics.Figure], name: str, currency: str | None) -> object:
    try:
        return metrics.find(figures, name, currency).value
    except KeyError:
        return None


def exposure_table(data: ReportData) -> pd.DataFrame:
    """Per currency: revenue at risk and owed to users at the end and 7 and 30 days before, users."""
    table = metrics.by_currency(_figures(data), [name for name, _ in EXPOSURE_COLUMNS])
    table.columns = ["currency", *(title for _, title in EXPOSURE_COLUMNS)]
    return table


def age_table(data: ReportData) -> pd.DataFrame:
    """Open cases per age bucket (days since first logged), in total and per currency."""
    figures = _figures(data)
    currencies = metrics.currencies(data.overview)
    rows = []
    for _, bucket in finance.AGE_BUCKETS:
        name = f"open_cases_aged_{bucket.replace('-', '_').replace(' ', '_')}"
        rows.append(
            [f"open, {bucket} days", *(_value(figures, name, c) for c in [None, *currencies])]
        )
    rows.append(
        [
            "probably resolved, any age",
            *(_value(figures, "probably_resolved_cases", c) for c in [None, *currencies]),
        ]
    )
    titles = ["cases", *map(metrics.currency_title, [None, *currencies])]
    return pd.DataFrame(rows, columns=titles)


def needs_action(data: ReportData) -> pd.DataFrame:
    """What needs doing: a few rows of each kind, a line saying how many more and where, then the
    failing checks."""
    listed = data["needs_action"]
    figures = _figures(data)
    rows: list[list[object]] = []
    for what, (name, sheet) in MORE_OF.items():
        mine = listed[listed["what"] == what]
        rows += mine[["what", "user_id", "currency", "amount", "day", "detail"]].values.tolist()
        more = int(_value(figures, name, None) or 0) - len(mine)
        if more > 0:
            rows.append([what, None, None, None, None, f"and {more:,} more: see {sheet}"])
    rows += [
        [FAILING_CHECK, None, None, None, None, f"{check.label}: {check.summary}"]
        for check in data.checks
        if not check.passed
    ]
    return pd.DataFrame(rows, columns=["what", "user", "currency", "amount", "day", "detail"])


def top_gaps(data: ReportData) -> pd.DataFrame:
    """The largest gaps not resolved, per currency, with their share of the currency's revenue at
    risk (positive gaps) or amount owed (negative ones)."""
    gaps = data["top_gaps"]
    return pd.DataFrame(
        {
            "currency": gaps["currency"],
            "rank": gaps["rank"],
            "user": gaps["user_id"],
            "gap": gaps["latest_gap"],
            "share": gaps["share_of_total"],
            "status": gaps["status"],
            "age (days)": gaps["age_days"],
            "flags": gaps["flags"],
        }
    )


def write_overview(book: ReportBook, data: ReportData, links: dict[str, str]) -> None:
    """The Overview sheet, first in the workbook; user ids link to ``links`` (User Detail)."""
    sheet = book.add_sheet(OVERVIEW)
    sheet.write_string(0, 0, "Balance sync: overview", book.big_title)
    sheet.write_string(
        1,
        0,
        f"Period: {period_text(data)}. Exposure as known at the end of {data.last:%Y-%m-%d}; "
        "money per currency, never added across currencies.",
    )
    user_link = _user_link(links)
    row = _titled(book, sheet, 3, 0, "Exposure per currency: now and before", exposure_table(data))
    row = _titled(book, sheet, row + 1, 0, "Open cases by age", age_table(data))
    row = _titled(
        book,
        sheet,
        row + 1,
        0,
        "Needs action",
        needs_action(data),
        links={"user": user_link},
        money=("amount",),
    )
    right = _titled(
        book,
        sheet,
        3,
        RIGHT_COLUMN,
        f"The {TOP_GAPS} largest gaps per currency (not resolved) and their share of its total",
        top_gaps(data),
        links={"user": user_link},
        money=("gap",),
        percent=("share",),
    )
    charts_row = max(row, right) + 1
    end = _trend_charts(book, sheet, data, charts_row)
    sheet.set_column(0, 0, 30)
    sheet.set_column(1, LEFT_WIDTH - 1, 14)
    for column, width in enumerate((9, 5, 10, 13, 7, 16, 9, 58), start=RIGHT_COLUMN):
        sheet.set_column(column, column, width)
    print_setup(sheet, end, RIGHT_COLUMN + 7, title_rows=False)
    sheet.fit_to_pages(1, 1)


def _user_link(links: dict[str, str]) -> Callable[[object], str | None]:
    def target(user: object) -> str | None:
        return links.get(user) if isinstance(user, str) else None

    return target


def _titled(
    book: ReportBook,
    sheet: Worksheet,
    row: int,
    column: int,
    title: str,
    frame: pd.DataFrame,
    *,
    money: tuple[str, ...] = (),
    percent: tuple[str, ...] = (),
    links: dict[str, Callable[[object], str | None]] | None = None,
) -> int:
    """A bold title, then ``frame`` as a block (user ids shown by their start); the next free row."""
    sheet.write_string(row, column, title, book.bold)
    if not len(frame):
        sheet.write_string(row + 1, column, "nothing", book.note)
        return row + 2
    money = (*money, *(title for title in frame.columns if title in MONEY_TITLES))
    return write_block(
        book,
        sheet,
        row + 1,
        column,
        frame,
        money=money,
        percent=percent,
        links=links,
        link_text=lambda user: str(user)[:USER_PREFIX],
    )


def _trend_charts(book: ReportBook, sheet: Worksheet, data: ReportData, row: int) -> int:
    """One small native line chart per currency (revenue at risk and owed, by day) from the rows of
    the Exposure Trend sheet; returns the last row they cover."""
    trend = data["exposure_trend"]
    columns = list(trend.columns)
    currencies = list(dict.fromkeys(trend["currency"]))
    sheet.write_string(
        row, 0, "Exposure trend per currency (as known at the end of each day)", book.bold
    )
    for index, currency in enumerate(currencies):
        positions = [i for i, value in enumerate(trend["currency"]) if value == currency]
        first, last = _HEADER + 1 + positions[0], _HEADER + 1 + positions[-1]
        drawn = chart(book, "line", currency, "day (UTC)", f"amount ({currency})", size=TREND_CHART)
        for name in ("revenue_at_risk", "owed_to_users"):
            at = columns.index(name)
            drawn.add_series(
                {
                    "name": [EXPOSURE_TREND, _HEADER, at],
                    "categories": [EXPOSURE_TREND, first, 0, last, 0],
                    "values": [EXPOSURE_TREND, first, at, last, at],
                }
            )
        drawn.set_legend({"position": "bottom"})
        sheet.insert_chart(row + 1, 0, drawn, {"x_offset": index * (TREND_CHART["width"] + 8)})
    return row + 1 + (17 if currencies else 0)
