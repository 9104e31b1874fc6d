"""The report: workbook structure and formats, safety of log text, PNG and HTML outputs, row limits."""

from __future__ import annotations

import asyncio
import re
import struct
import time
from datetime import datetime
from decimal import Decimal

import openpyxl
import pandas as pd
import plotly.graph_objects as go
import pytest

from calo_assets.report import figures as figures_module
from calo_assets.report import images as images_module
from calo_assets.report import publish as publish_module
from calo_assets.report import workbook as workbook_module
from calo_assets.report.data import load
from calo_assets.report.figures import TRACE_TYPES, build_figures
from calo_assets.report.images import ChartImages, find_browser
from calo_assets.report.plotlyjs import BASIC_BUNDLE, bundle_version, plotly_bundle
from calo_assets.report.publish import CHART_FOLDER, HTML_PAGE, WORKBOOK, csv_safe
from calo_assets.report.workbook import ReportBook, build_workbook, write_table_sheet

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
    # 626 transactions of 17 columns under the header on row 3
    assert book["Transactions"].tables["Transactions"].ref == "A3:Q629"
    assert book["Transactions"].tables["Transactions"].tableStyleInfo.name == "TableStyleMedium2"


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
    assert daily.max_row == 3 + 8  # the sample's 8 days
    assert [series.val.numRef.f for series in first.series] == [
        "Daily!$B$4:$B$11",
        "Daily!$C$4:$C$11",
    ]
    assert [series.tx.strRef.f for series in first.series] == ["Daily!$B$3", "Daily!$C$3"]
    categories = first.series[0].cat
    assert (categories.numRef or categories.strRef).f == "Daily!$A$4:$A$11"
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
    book = ReportBook(tmp_path / "t.xlsx")
    mixed = ["=1+1", 7, None]  # a column of text and numbers goes cell by cell
    write_table_sheet(
        book, "Text", pd.DataFrame({"message": ADVERSARIAL, "mixed": mixed * 2 + [""]})
    )
    book.close()
    sheet = openpyxl.load_workbook(tmp_path / "t.xlsx")["Text"]
    cells = [sheet.cell(row, 1) for row in range(4, 4 + len(ADVERSARIAL))]
    assert [cell.data_type for cell in cells] == ["s"] * len(ADVERSARIAL)
    assert [cell.value for cell in cells] == [*ADVERSARIAL[:5], "\ufffdbell", "plain"]
    assert [cell.quotePrefix for cell in cells] == [True] * 5 + [False] * 2
    mixed_cells = [sheet.cell(row, 2) for row in range(4, 7)]
    assert [(cell.value, cell.data_type) for cell in mixed_cells] == [
        ("=1+1", "s"),
        (7, "n"),
        (None, "n"),
    ]
    assert [csv_safe(text) for text in ADVERSARIAL[:4]] == ["'" + text for text in ADVERSARIAL[:4]]
    assert csv_safe("plain") == "plain" and csv_safe(Decimal("-1")) == Decimal("-1")


def test_sheets_beyond_the_row_limit_continue_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setattr(workbook_module, "MAX_DATA_ROWS", 3)
    book = ReportBook(tmp_path / "rows.xlsx")
    sheets = write_table_sheet(book, "Rows", pd.DataFrame({"n": range(7)}))
    assert [sheet.get_name() for sheet in sheets] == ["Rows", "Rows (2)", "Rows (3)"]
    book.close()
    written = openpyxl.load_workbook(tmp_path / "rows.xlsx")
    assert written.sheetnames == ["Rows", "Rows (2)", "Rows (3)"]
    assert (
        written["Rows"]["A2"].value
        == "Rows 1 to 3 of 7: Excel holds at most 3 per sheet; continued on 'Rows (2)'."
    )
    assert written["Rows (3)"]["A2"].value == "Rows 7 to 7 of 7: Excel holds at most 3 per sheet."
    assert [[cell.value for cell in row] for row in written["Rows (2)"].iter_rows(min_row=3)] == [
        ["n"],
        [3],
        [4],
        [5],
    ]
    assert dict(written["Rows (2)"].tables.items()) == {"Rows__2_": "A3:A6"}
    assert [written["Rows (3)"].cell(4, 1).value] == [6]


def test_the_same_data_gives_the_same_workbook_byte_for_byte(sample_run, tmp_path):
    _, warehouse = sample_run
    data = load(warehouse, datetime(2024, 3, 1).date(), datetime(2024, 3, 8).date())
    build_workbook(data, tmp_path / "a.xlsx")
    build_workbook(load(warehouse, data.first, data.last), tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


def test_charts_use_the_basic_plotly_bundle_and_only_its_trace_types(report, monkeypatch):
    folder, _ = report
    assert plotly_bundle(TRACE_TYPES) == BASIC_BUNDLE
    assert plotly_bundle({"heatmap"}) != BASIC_BUNDLE
    page = (folder / HTML_PAGE).read_text()
    assert f"plotly.js (basic - minified) v{bundle_version(BASIC_BUNDLE)}" in page
    assert page.count("* plotly.js") == 1  # inlined once

    def heatmap(_):
        return go.Figure(go.Heatmap(z=[[1]]))

    monkeypatch.setattr(figures_module, "CHARTS", {"heatmap": heatmap})
    with pytest.raises(ValueError, match=r"chart heatmap uses trace types \['heatmap'\]"):
        build_figures(None)  # type: ignore[arg-type]


def test_pngs_without_kaleidos_reload_are_the_same_as_with_it(sample_run, tmp_path):
    """``ChartImages`` skips kaleido's page reload between two figures; the images do not change."""
    import kaleido

    _, warehouse = sample_run
    figures = build_figures(
        load(warehouse, datetime(2024, 3, 1).date(), datetime(2024, 3, 8).date())
    )
    browser = find_browser()
    assert browser is not None, "these tests need chromium (make setup installs it)"
    drawing = ChartImages(browser, BASIC_BUNDLE, figures_module.WIDTH, figures_module.HEIGHT)
    drawing.render({tmp_path / "fast" / f"{name}.png": figure for name, figure in figures.items()})
    fast = drawing.wait()
    page = kaleido.PageGenerator(plotly=str(BASIC_BUNDLE), mathjax=False)
    kaleido.write_fig_from_object_sync(
        [
            {
                "fig": figure,
                "path": tmp_path / f"{name}.png",
                "opts": {
                    "format": "png",
                    "width": figures_module.WIDTH,
                    "height": figures_module.HEIGHT,
                },
            }
            for name, figure in figures.items()
        ],
        kopts={"path": browser, "page_generator": page},
        cancel_on_error=True,
    )
    assert [path.name for path in fast] == [f"{name}.png" for name in figures]
    assert [path.read_bytes() == (tmp_path / path.name).read_bytes() for path in fast] == [True] * 8


def test_without_a_browser_the_rest_is_still_written(sample_run, tmp_path, monkeypatch):
    _, warehouse = sample_run
    monkeypatch.setattr(publish_module, "find_browser", lambda: None)
    result = publish_module.publish(
        warehouse, tmp_path, datetime(2024, 3, 1).date(), datetime(2024, 3, 2).date()
    )
    assert result.images == [] and "no Chromium-family browser" in result.images_skipped
    assert (tmp_path / WORKBOOK).exists() and (tmp_path / HTML_PAGE).exists()


def test_a_browser_that_does_not_start_in_time_is_abandoned(monkeypatch, tmp_path):
    starts = []

    async def hang(self) -> None:
        starts.append(self)
        await asyncio.sleep(3600)

    monkeypatch.setattr(images_module._OneTab, "open", hang)
    monkeypatch.setattr(images_module, "OPEN_TIMEOUT", 0.2)
    drawing = ChartImages(find_browser() or "chromium", BASIC_BUNDLE, 100, 100)
    drawing.render({tmp_path / "never.png": go.Figure()})
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not start within 0\.2 s, 2 times"):
        drawing.wait()
    assert len(starts) == 2 and time.monotonic() - began < 5
    assert not (tmp_path / "never.png").exists()
