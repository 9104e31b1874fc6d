"""The Summary sheet: the period, every headline figure in total and per currency, the checks, and a
link to every sheet. Figures come from ``calo_assets.metrics`` as they are; nothing is computed here."""

from __future__ import annotations

from collections.abc import Iterator

from calo_assets import metrics
from calo_assets.report.columns import SHEET_PURPOSES
from calo_assets.report.data import ReportData
from calo_assets.report.excel import ReportBook, print_setup

SUMMARY = "Summary"
NOT_IN_GRID = (*metrics.PERIOD_FIGURES, *metrics.CHECK_FIGURES)
READING_NOTES = (
    "Each sheet starts with what it shows; 'Column Definitions' explains every column.",
    "Money is exact as logged and shown to the currency's minor unit (BHD, KWD: 3 decimals; others: 2).",
    "Volumes are gross: the logged amount, VAT included. Money is never added across currencies.",
    "A positive gap (subscription balance above payment balance) is revenue at risk; a negative gap is owed to the user.",
    "Exposure uses the latest gap per user: the same gap is logged again at every sync and is never summed.",
    "Times are UTC. Personal data (names, e-mails, phone numbers) is masked.",
)


def period_text(data: ReportData) -> str:
    """The period line, the same on every surface."""
    return (
        f"{data.first:%Y-%m-%d} to {data.last:%Y-%m-%d} (UTC days holding at least one log record)"
    )


def grid(figures: list[metrics.Figure]) -> Iterator[tuple[str, list[metrics.Figure | None]]]:
    """Rows of the figure grid: (label, [total, then one cell per currency]); None where a figure has
    no such cell (money has no total; some figures are not per currency)."""
    currencies = metrics.currencies(figures)
    names = dict.fromkeys(figure.name for figure in figures if figure.name not in NOT_IN_GRID)
    cells = {(figure.name, figure.currency): figure for figure in figures}
    for name in names:
        row = [cells.get((name, currency)) for currency in (None, *currencies)]
        yield metrics.label(name), row


def write_summary(book: ReportBook, data: ReportData, sheet_names: list[str]) -> None:
    """The Summary sheet, first in the workbook."""
    sheet = book.add_sheet(SUMMARY)
    sheet.write_string(0, 0, "Balance sync analytics report", book.big_title)
    sheet.write_string(
        1,
        0,
        f"Period: {period_text(data)}. Figures per currency: currencies are never added together.",
    )
    currencies = metrics.currencies(data.figures)
    row = 3
    for column, title in enumerate(["figure", *map(metrics.currency_title, [None, *currencies])]):
        sheet.write_string(row, column, title, book.header)
    for text, cells in grid(data.figures):
        row += 1
        sheet.write_string(row, 0, text)
        for column, figure in enumerate(cells, start=1):
            if figure is not None:
                money = figure.unit == metrics.MONEY
                number_format = book.money_for(figure.currency) if money else book.count
                sheet.write_number(row, column, float(figure.value), number_format)  # type: ignore[arg-type]
    row += 2
    failed = metrics.find(data.figures, "checks_failed").value
    passed = metrics.find(data.figures, "checks_passed").value
    sheet.write_string(row, 0, "Data checks", book.bold)
    sheet.write_string(
        row + 1, 0, f"{passed} passed, {failed} failed", book.failed if failed else None
    )
    sheet.write_url(row + 1, 1, "internal:'Checks'!A1", book.link, string="see Checks")
    row += 3
    sheet.write_string(row, 0, "Sheets", book.bold)
    for name in sheet_names:
        row += 1
        sheet.write_url(row, 0, f"internal:'{name}'!A1", book.link, string=name)
        sheet.write_string(row, 1, SHEET_PURPOSES.get(name, ""))
    row += 2
    sheet.write_string(row, 0, "How to read this workbook", book.bold)
    for line in READING_NOTES:
        row += 1
        sheet.write_string(row, 0, line)
    sheet.set_column(0, 0, 58)
    sheet.set_column(1, len(currencies) + 1, 16)
    print_setup(sheet, row, len(currencies) + 1, title_rows=False)
    sheet.fit_to_pages(1, 1)
