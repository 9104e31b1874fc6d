"""The report: workbook structure and formats, safety of log text, PNG and HTML outputs, row limits."""

from __future__ import annotations

import re
import struct
from datetime import datetime
from decimal import Decimal

import openpyxl
import pandas as pd
import pytest
from openpyxl import Workbook

from calo_assets.report import publish as publish_module
from calo_assets.report import workbook as workbook_module
from calo_assets.report.publish import CHART_FOLDER, HTML_PAGE, WORKBOOK, csv_safe
from calo_assets.report.workbook import write_table_sheet

SHEETS = [
    "Summary",
    "Daily",
    "Transactions",
    "Balance Discrepancies",
    "User Exposure",
    "Exposure by Currency",
    "User Errors",
    "Ledger Breaks",
    "Overdrafts",
    "Anomalies",
    "By Action",
    "Top Users",
    "Runtime Health",
    "Errors by Type",
    "Data Quality",
    "Checks",
    "Column Definitions",
]
EMAIL_OR_PHONE = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\+9[0-9]{9,}")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(sample_run):
    result, warehouse = sample_run
    assert result.success
    folder = warehouse.root.parent / "reports"
    return folder, openpyxl.load_workbook(folder / WORKBOOK)


def test_sheets_tables_and_frozen_headers(report):
    _, book = report
    assert book.sheetnames == SHEETS
    for name in ("Transactions", "Balance Discrepancies", "User Exposure", "Daily", "Anomalies"):
        sheet = book[name]
        assert list(sheet.tables) == [name.replace(" ", "_")]
        assert sheet.freeze_panes == "A4"
        assert sheet.tables[name.replace(" ", "_")].ref.startswith("A3:")


def test_money_to_the_minor_unit_and_times_in_utc(report):
    _, book = report
    sheet = book["Transactions"]
    header = [cell.value for cell in sheet[3]]
    assert header[:3] == ["transaction_id", "day", "occurred_at (UTC)"]
    currency, amount = header.index("currency") + 1, header.index("amount") + 1
    formats = {
        (sheet.cell(row, currency).value, sheet.cell(row, amount).number_format)
        for row in range(4, sheet.max_row + 1)
    }
    assert formats == {
        ("BHD", "#,##0.000"),
        ("KWD", "#,##0.000"),
        ("SAR", "#,##0.00"),
        ("AED", "#,##0.00"),
        ("QAR", "#,##0.00"),
    }
    assert (
        isinstance(sheet.cell(4, 3).value, datetime)
        and sheet.cell(4, 3).number_format == "yyyy-mm-dd hh:mm:ss"
    )


def test_native_charts_point_at_their_data(report):
    _, book = report
    daily = book["Daily"]
    assert len(daily._charts) == 3
    first = daily._charts[0]
    assert [series.val.numRef.f for series in first.series] == [
        f"'Daily'!$B$4:$B${daily.max_row}",
        f"'Daily'!$C$4:$C${daily.max_row}",
    ]
    assert [series.tx.strRef.f for series in first.series] == ["'Daily'!B3", "'Daily'!C3"]
    categories = first.series[0].cat
    assert (categories.numRef or categories.strRef).f == f"'Daily'!$A$4:$A${daily.max_row}"
    assert len(book["By Action"]._charts) == 2 and len(book["Runtime Health"]._charts) == 2
    assert (
        len(book["Top Users"]._charts) == len(book["Exposure by Currency"]._charts) == 5
    )  # one per currency


def test_no_formula_and_no_personal_data_in_any_output(report):
    folder, book = report
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row)
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".html"):
            assert EMAIL_OR_PHONE.search(without_plotly_library(path.read_bytes())) is None, path


def without_plotly_library(data: bytes) -> bytes:
    """The page without the inlined plotly.js (its licence comments hold the authors' e-mail addresses)."""
    return re.sub(rb"<script>/\*\*.*?</script>", b"", data, count=1, flags=re.S)


def test_chart_images_and_html_page(report):
    folder, _ = report
    images = sorted((folder / CHART_FOLDER).glob("*.png"))
    assert [path.stem for path in images] == sorted(
        [
            "transactions_per_day",
            "transactions_by_action",
            "top_users_by_volume",
            "discrepancies_per_day",
            "exposure_by_currency",
            "anomalies_over_time",
            "errors_by_action",
            "runtime_health",
        ]
    )
    for path in images:
        assert png_size(path) == (1000, 520) and path.stat().st_size > 10_000
    page = (folder / HTML_PAGE).read_text()
    assert page.count('class="plotly-graph-div"') == 8
    assert (
        "<script src=" not in page.replace('<script src="data:', "") and "plotly.js" in page.lower()
    )
    assert "KPIs per currency" in page


def test_csv_files_keep_the_warehouse_columns(report):
    folder, _ = report
    frame = pd.read_csv(folder / "csv" / "transactions.csv", dtype=str)
    assert list(frame.columns)[:5] == [
        "transaction_id",
        "day",
        "occurred_at",
        "user_id",
        "currency",
    ]
    assert len(frame) == 626


ADVERSARIAL = [
    '=HYPERLINK("http://x","click")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "\tTAB",
    "\x07bell",
    "plain",
]


def test_log_text_is_written_as_text_never_as_a_formula(tmp_path):
    book = Workbook()
    write_table_sheet(book, "Text", pd.DataFrame({"message": ADVERSARIAL}))
    book.save(tmp_path / "t.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "t.xlsx")["Text"]
    cells = [sheet.cell(row, 1) for row in range(4, 4 + len(ADVERSARIAL))]
    assert [cell.data_type for cell in cells] == ["s"] * len(ADVERSARIAL)
    assert [cell.value for cell in cells] == [*ADVERSARIAL[:5], "\ufffdbell", "plain"]
    assert [csv_safe(text) for text in ADVERSARIAL[:4]] == ["'" + text for text in ADVERSARIAL[:4]]
    assert csv_safe("plain") == "plain" and csv_safe(Decimal("-1")) == Decimal("-1")


def test_sheets_beyond_the_row_limit_continue_with_a_note(monkeypatch):
    monkeypatch.setattr(workbook_module, "MAX_DATA_ROWS", 3)
    book = Workbook()
    sheets = write_table_sheet(book, "Rows", pd.DataFrame({"n": range(7)}))
    assert [sheet.title for sheet in sheets] == ["Rows", "Rows (2)", "Rows (3)"]
    assert (
        sheets[0]["A2"].value
        == "Rows 1 to 3 of 7: Excel holds at most 3 per sheet; continued on 'Rows (2)'."
    )
    assert [sheets[2].cell(4, 1).value] == [6]


def test_without_a_browser_the_rest_is_still_written(sample_run, tmp_path, monkeypatch):
    _, warehouse = sample_run
    monkeypatch.setattr(publish_module, "find_browser", lambda: None)
    result = publish_module.publish(
        warehouse, tmp_path, datetime(2024, 3, 1).date(), datetime(2024, 3, 2).date()
    )
    assert result.images == [] and "no Chromium-family browser" in result.images_skipped
    assert (tmp_path / WORKBOOK).exists() and (tmp_path / HTML_PAGE).exists()
