"""The report: workbook structure and formats, safety of log text, PNG and HTML outputs, row limits."""

from __future__ import annotations

import asyncio
import re
import struct
import time
from datetime import date, datetime
from decimal import Decimal
from html.parser import HTMLParser

import openpyxl
import pandas as pd
import plotly.graph_objects as go
import pytest

from calo_assets import checks, metrics
from calo_assets.money import format_money
from calo_assets.report import figures as figures_module
from calo_assets.report import images as images_module
from calo_assets.report import publish as publish_module
from calo_assets.report.data import load
from calo_assets.report.figures import TRACE_TYPES, build_figures
from calo_assets.report.images import ChartImages, find_browser
from calo_assets.report.plotlyjs import BASIC_BUNDLE, bundle_version, plotly_bundle
from calo_assets.report.publish import CHART_FOLDER, HTML_PAGE, WORKBOOK, csv_safe
from calo_assets.report.workbook import ReportBook, build_workbook, write_table_sheet
from calo_assets_tests.report_cases import (
    FIRST_DAY,
    LAST_DAY,
    LONG_ACTION,
    LOOK_BACK_DAY,
    expected_figures,
    materialized,
    report_of,
    table,
)

SHEETS = [
    "Overview",
    "Summary",
    "Daily",
    "Transactions",
    "Balance Discrepancies",
    "Discrepancy Cases",
    "User Exposure",
    "Exposure by Currency",
    "Exposure Trend",
    "User Errors",
    "Ledger Breaks",
    "Overdrafts",
    "Anomalies",
    "By Action",
    "Top Users",
    "Runtime Health",
    "Runtime Versions",
    "Errors by Type",
    "Data Quality",
    "Checks",
    "User Detail",
    "Column Definitions",
]
EMAIL_OR_PHONE = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|\+9[0-9]{9,}")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(sample_run, tmp_path_factory):
    """The sample's report, with the finance tables its assets will write (``report_cases.report_of``)."""
    result, warehouse = sample_run
    assert result.success
    copy, folder = report_of(warehouse, tmp_path_factory.mktemp("sample-report"))
    return folder, openpyxl.load_workbook(folder / WORKBOOK), copy


def test_sheets_tables_and_frozen_headers(report):
    _, book, _ = report
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
    _, book, _ = report
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
    _, book, _ = report
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
    folder, book, _ = report
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
    folder, _, _ = report
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
            "exposure_trend",
        ]
    )
    for path in images:
        assert png_size(path) == (1000, 520) and path.stat().st_size > 10_000
    page = (folder / HTML_PAGE).read_text()
    assert page.count('class="plotly-graph-div"') == 9
    assert (
        "<script src=" not in page.replace('<script src="data:', "") and "plotly.js" in page.lower()
    )
    assert "KPIs per currency" in page


def test_csv_files_keep_the_warehouse_columns(report):
    folder, _, _ = report
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
    assert csv_safe("plain") == "plain" and csv_safe(Decimal("-1.50")) == "-1.5"


def test_sheets_beyond_the_row_limit_continue_with_a_note(tmp_path):
    book = ReportBook(tmp_path / "rows.xlsx")
    sheets = write_table_sheet(book, "Rows", pd.DataFrame({"n": range(7)}), max_rows=3)
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
    folder, _, _ = report
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
    assert [path.read_bytes() == (tmp_path / path.name).read_bytes() for path in fast] == [True] * 9


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
    drawing = ChartImages(find_browser() or "chromium", BASIC_BUNDLE, 100, 100, open_timeout=0.2)
    drawing.render({tmp_path / "never.png": go.Figure()})
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not start within 0\.2 s, 2 times"):
        drawing.wait()
    assert len(starts) == 2 and time.monotonic() - began < 5
    assert not (tmp_path / "never.png").exists()


# --- issue 12: the report's defects, on a small hand-made export (calo_assets_tests/report_cases.py) ---


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    warehouse = materialized(tmp_path_factory.getbasetemp())
    folder = warehouse.root.parent / "reports"
    return warehouse, folder, openpyxl.load_workbook(folder / WORKBOOK)


def summary_grid(sheet) -> dict[tuple[str, str], object]:
    """The Summary's figure grid: value by (figure label, column header)."""
    rows = list(sheet.iter_rows(values_only=True))
    start = next(index for index, row in enumerate(rows) if row[0] == "figure")
    header, grid = rows[start], {}
    for row in rows[start + 1 :]:
        if row[0] is None:
            break
        grid |= {
            (row[0], title): value
            for title, value in zip(header[1:], row[1:], strict=True)
            if title
        }
    return grid


def table_rows(sheet) -> list[dict[str, object]]:
    """The rows of the Excel table under the header on row 3, by header."""
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    return [
        dict(zip(rows[0], row, strict=True))
        for row in rows[1:]
        if any(value is not None for value in row)
    ]


def test_rejections_are_the_rows_of_their_table_per_currency_with_an_unknown_bucket(handmade):
    warehouse, folder, book = handmade
    rejections = table(warehouse, "negative_balance_rejections")
    by_currency = rejections["currency"].fillna("unknown currency").value_counts().to_dict()
    assert by_currency == {"SAR": 1, "unknown currency": 1}
    grid = summary_grid(book["Summary"])
    label = "negative-balance rejections (logged refusals)"
    assert grid[(label, "total")] == len(rejections)
    assert {currency: grid[(label, currency)] for currency in by_currency} == by_currency
    rejected = table(warehouse, "transactions").query("outcome == 'rejected'")
    assert grid[("transactions with outcome rejected (negative balance)", "total")] == len(rejected)
    assert len(rejected) == 1
    page = (folder / HTML_PAGE).read_text()
    assert label in page and "unknown currency" in page


def test_the_period_ends_on_the_last_day_with_a_record_not_the_look_back_day(handmade):
    warehouse, folder, book = handmade
    days = table(warehouse, "log_events")["day"].astype(str)
    assert (days.min(), days.max()) == (FIRST_DAY, LAST_DAY)
    assert book["Summary"]["A2"].value.startswith(f"Period: {FIRST_DAY} to {LAST_DAY} ")
    page = (folder / HTML_PAGE).read_text()
    assert f"Period {FIRST_DAY} to {LAST_DAY} " in page and LOOK_BACK_DAY not in page


def test_the_daily_sheet_has_every_day_and_every_processing_error(handmade):
    warehouse, _, book = handmade
    rows = table_rows(book["Daily"])
    days = [row["day"].date().isoformat() for row in rows]
    calendar = pd.date_range(FIRST_DAY, LAST_DAY, freq="D").strftime("%Y-%m-%d").tolist()
    assert days == calendar  # 20 days, of which 15 without any log

    def per_day(frame: pd.DataFrame) -> list[int]:
        counts = frame["day"].astype(str).value_counts()
        return [int(counts.get(day, 0)) for day in days]

    errors, invocations = table(warehouse, "processing_errors"), table(warehouse, "invocations")
    assert [row["processing_errors"] for row in rows] == per_day(errors)
    failed = invocations[invocations["status"] != "success"]
    assert [row["failed_invocations"] for row in rows] == per_day(failed)
    assert [row["transactions"] for row in rows] == per_day(table(warehouse, "transactions"))
    outage = rows[days.index("2024-01-06")]  # no transaction that day, yet errors and a failure
    assert (outage["transactions"], outage["processing_errors"], outage["failed_invocations"]) == (
        0,
        2,
        1,
    )
    label = "processing errors (all, linked to a transaction or not)"
    assert summary_grid(book["Summary"])[(label, "total")] == len(errors) == 3


def test_errors_without_a_transaction_are_not_put_on_legacy_transactions(handmade):
    warehouse, _, book = handmade
    rows = {row["action"]: row for row in table_rows(book["By Action"])}
    errors = table(warehouse, "processing_errors")
    assert rows["(not linked to a transaction)"]["processing_errors"] == 2
    assert rows["(not linked to a transaction)"]["transactions"] == 0
    assert rows["(legacy, no action)"]["processing_errors"] == 0
    assert rows["(legacy, no action)"]["transactions"] == 1
    assert rows["DELIVERY_DEDUCTION"]["processing_errors"] == 1
    assert sum(row["processing_errors"] for row in rows.values()) == len(errors)
    discrepancies = table(warehouse, "balance_discrepancies")
    assert sum(row["discrepancies"] for row in rows.values()) == len(discrepancies)
    data = load(warehouse, date.fromisoformat(FIRST_DAY), date.fromisoformat(LOOK_BACK_DAY))
    bars = build_figures(data)["errors_by_action"].data
    assert "(not linked to a transaction)" in list(bars[0].y)


def axis_title(axis) -> str:
    return "".join(run.t for paragraph in axis.title.tx.rich.p for run in paragraph.r or [])


def test_horizontal_bar_charts_title_the_category_and_the_value_axis(handmade, report):
    for book in (handmade[2], report[1]):
        bars = [
            chart
            for sheet in book.worksheets
            for chart in sheet._charts
            if chart.tagname == "barChart" and chart.type == "bar"
        ]
        currencies = {row[0] for row in book["Top Users"].iter_rows(min_row=4, values_only=True)}
        assert len(bars) == 2 + len(currencies - {None})
        for chart in bars:  # openpyxl: x_axis is the category axis (vertical in a bar chart)
            assert axis_title(chart.x_axis) in ("action", "user")
            assert re.match(
                r"(transactions|errors) \(count\)|volume \([A-Z]{3}\)", axis_title(chart.y_axis)
            )


def test_every_plotly_chart_titles_its_value_axes_with_their_unit(handmade):
    warehouse, _, _ = handmade
    data = load(warehouse, date.fromisoformat(FIRST_DAY), date.fromisoformat(LOOK_BACK_DAY))
    for name, figure in build_figures(data).items():
        layout = figure.layout
        for trace in figure.data:
            x_axis = layout["xaxis" + (trace.xaxis or "x")[1:]]
            y_axis = layout["yaxis" + (trace.yaxis or "y")[1:]]
            values, categories = (x_axis, y_axis) if trace.orientation == "h" else (y_axis, x_axis)
            assert re.search(r"\((count|ms|[A-Z]{3})\)$", values.title.text or ""), name
            assert categories.title.text or name == "exposure_by_currency", name


def test_csv_money_is_plain_decimal_text(handmade):
    warehouse, folder, _ = handmade
    written = pd.read_csv(folder / "csv" / "transactions.csv", dtype=str, keep_default_na=False)
    exact = table(warehouse, "transactions").set_index("transaction_id")
    for column in ("amount", "vat", "old_balance", "new_balance", "payment_balance"):
        for transaction_id, text in zip(written["transaction_id"], written[column], strict=True):
            value = exact.loc[transaction_id, column]
            if value is None:
                assert text == ""
                continue
            assert re.fullmatch(r"-?\d+(\.\d*[1-9])?", text), (column, text)
            assert Decimal(text) == value
    row = written.set_index("transaction_id").loc["T1"]
    assert (row["amount"], row["vat"], row["new_balance"]) == ("5", "1", "91")
    exposure = pd.read_csv(folder / "csv" / "user_exposure.csv", dtype=str)
    assert sorted(exposure["latest_gap"]) == ["-10", "-3", "10", "100"]


def test_user_errors_have_one_row_per_user_and_currency(handmade):
    warehouse, _, book = handmade
    rows = [row for row in table_rows(book["User Errors"]) if row["user_id"] == "u9"]
    exposure = table(warehouse, "user_exposure").query("user_id == 'u9'")
    expected = {row.currency: float(row.latest_gap) for row in exposure.itertuples()}
    assert expected == {"BHD": 10.0, "SAR": -10.0}
    assert {row["currency"]: row["latest_gap"] for row in rows} == expected
    assert [row["discrepancies"] for row in rows] == [1, 1]


def test_applied_volume_is_the_gross_amount_and_says_so(handmade):
    warehouse, folder, book = handmade
    transactions = table(warehouse, "transactions")
    applied = transactions.query("outcome == 'applied' and type == 'DEBIT' and currency == 'BHD'")
    gross, net = sum(applied["amount"]), sum(applied["amount"] - applied["vat"])
    assert (gross, net) == (Decimal(24), Decimal(23))
    label = "volume debited: applied debits, gross (VAT included)"
    assert summary_grid(book["Summary"])[(label, "BHD")] == float(gross)
    assert label in (folder / HTML_PAGE).read_text()


def test_every_sheet_is_set_up_to_print_and_linked_from_the_summary(handmade, report):
    for book in (handmade[2], report[1]):
        for sheet in book.worksheets:
            setup = sheet.page_setup
            assert setup.orientation == "landscape", sheet.title
            assert sheet.sheet_properties.pageSetUpPr.fitToPage, sheet.title
            pages_tall = 1 if sheet.title in ("Overview", "Summary") else 0  # 0: as many as needed
            assert (setup.fitToWidth or 1, setup.fitToHeight or 1) == (1, pages_tall or 1), (
                sheet.title
            )
            assert pages_tall or setup.fitToHeight == 0, sheet.title
            assert sheet.print_area, sheet.title
            if sheet.title not in ("Overview", "Summary", "User Detail"):  # not one table
                assert sheet.print_title_rows == "$3:$3", sheet.title
        links = {
            cell.hyperlink.location.split("!")[0].strip("'")
            for row in book["Summary"].iter_rows()
            for cell in row
            if cell.hyperlink is not None and cell.hyperlink.location
        }
        assert links == set(book.sheetnames) - {"Summary"}


def test_columns_fit_their_values_and_counts_have_thousands_separators(handmade):
    _, _, book = handmade
    sheet = book["By Action"]
    assert sheet.column_dimensions["A"].width >= len(LONG_ACTION)
    header = [cell.value for cell in sheet[3]]
    transactions = header.index("transactions") + 1
    assert {sheet.cell(row, transactions).number_format for row in range(4, sheet.max_row + 1)} == {
        "#,##0"
    }
    daily = book["Daily"]
    assert (
        daily.cell(4, [cell.value for cell in daily[3]].index("transactions") + 1).number_format
        == "#,##0"
    )


def test_failed_checks_are_highlighted(handmade):
    _, _, book = handmade
    sheet = book["Checks"]
    header = [cell.value for cell in sheet[3]]
    column = chr(ord("A") + header.index("passed"))
    rules = [
        (str(ranges.sqref), rule)
        for ranges in sheet.conditional_formatting
        for rule in ranges.rules
    ]
    assert any(
        f"${column}4=FALSE" in rule.formula[0] and rule.dxf.fill is not None for _, rule in rules
    ), rules


# --- issue 12 point 3: the Overview ---

TOLERANCE = Decimal("0.0005")
OVERVIEW_ONLY = {metric.name for metric in metrics.OVERVIEW_METRICS}


def overview_block(sheet, title: str) -> list[list[object]]:
    """The rows (header first) of the block under the bold ``title`` on the Overview."""
    for row in sheet.iter_rows():
        for cell in row:
            if cell.value == title:
                block, line = [], cell.row + 1
                while sheet.cell(line, cell.column).value is not None:
                    width = len(block[0]) if block else 0
                    cells = [sheet.cell(line, cell.column + offset) for offset in range(20)]
                    values = [c.value for c in cells]
                    if not block:
                        width = next((i for i, v in enumerate(values) if v is None), len(values))
                    block.append(values[:width])
                    line += 1
                return block
    raise AssertionError(f"no block {title!r}")


def latest_gaps(warehouse, through: str) -> pd.DataFrame:
    """The latest gap of each user and currency logged up to the end of ``through`` (raw rows)."""
    gaps = table(warehouse, "balance_discrepancies")
    gaps = gaps[gaps["day"].astype(str) <= through]
    return (
        gaps.sort_values(["occurred_at", "stream", "line"])
        .groupby(["user_id", "currency"], as_index=False)
        .agg(gap=("gap", "last"), first_day=("day", "first"), last_seen=("occurred_at", "last"))
    )


def exposure_of(latest: pd.DataFrame) -> dict[str, tuple[float, float]]:
    return {
        currency: (
            float(sum(gap for gap in rows["gap"] if gap > TOLERANCE)),
            float(-sum(gap for gap in rows["gap"] if gap < -TOLERANCE)),
        )
        for currency, rows in latest.groupby("currency")
    }


def test_the_overview_comes_first_and_fits_one_landscape_page(handmade, report):
    for book in (handmade[2], report[1]):
        assert book.sheetnames[0] == "Overview"
        sheet = book["Overview"]
        setup = sheet.page_setup
        assert setup.orientation == "landscape" and sheet.sheet_properties.pageSetUpPr.fitToPage
        assert (setup.fitToWidth or 1, setup.fitToHeight or 1) == (1, 1) and sheet.print_area


def test_the_overview_shows_exposure_now_and_7_and_30_days_before(handmade):
    warehouse, _, book = handmade
    header, *rows = overview_block(book["Overview"], "Exposure per currency: now and before")
    assert header[:4] == ["currency", "revenue at risk", "7 days before", "30 days before"]
    now = exposure_of(latest_gaps(warehouse, LAST_DAY))
    week_before = exposure_of(latest_gaps(warehouse, "2024-01-01"))
    assert now == {"BHD": (10.0, 3.0), "SAR": (100.0, 10.0)}
    for currency, risk, risk_7, risk_30, owed, owed_7, owed_30, *_ in rows:
        assert (risk, owed) == now[currency]
        assert (risk_7, owed_7) == week_before.get(currency, (0.0, 0.0))
        assert (risk_30, owed_30) == (None, None)  # before the first day: unknown, left blank
    assert [row[0] for row in rows] == ["BHD", "SAR"]


def last_day_of(warehouse) -> str:
    """The last day holding a log record."""
    manifest = table(warehouse, "ingest_manifest")
    return str(manifest[manifest["records_read"] > 0]["day"].max())


def cases_of(warehouse) -> pd.DataFrame:
    """Cases from the raw rows: open when the latest gap is not zero and no applied sync of the user
    in that currency followed its last log; age from the first log to the end of the period."""
    end = last_day_of(warehouse)
    latest = latest_gaps(warehouse, end)
    transactions = table(warehouse, "transactions").query("outcome == 'applied'")
    later = [
        len(
            transactions[
                (transactions["user_id"] == case.user_id)
                & (transactions["currency"] == case.currency)
                & (transactions["occurred_at"] > case.last_seen)
            ]
        )
        for case in latest.itertuples()
    ]
    latest["status"] = [
        "resolved" if abs(gap) <= TOLERANCE else "probably_resolved" if after else "open"
        for gap, after in zip(latest["gap"], later, strict=True)
    ]
    latest["age"] = [(date.fromisoformat(end) - day).days for day in latest["first_day"]]
    return latest


def test_the_overview_counts_open_cases_by_age(handmade):
    warehouse, _, book = handmade
    header, *rows = overview_block(book["Overview"], "Open cases by age")
    cases = cases_of(warehouse)
    open_cases = cases[cases["status"] == "open"]
    buckets = {"0-7": (0, 7), "8-30": (8, 30), "31-90": (31, 90), "over 90": (91, 10**6)}
    expected = {
        f"open, {name} days": int(open_cases["age"].between(low, high).sum())
        for name, (low, high) in buckets.items()
    }
    assert {row[0]: row[header.index("total")] for row in rows[:4]} == expected
    assert expected == {
        "open, 0-7 days": 3,
        "open, 8-30 days": 1,
        "open, 31-90 days": 0,
        "open, over 90 days": 0,
    }


def test_the_overview_lists_what_needs_action(handmade):
    warehouse, _, book = handmade
    header, *rows = overview_block(book["Overview"], "Needs action")
    assert header == ["what", "user", "currency", "amount", "day", "detail"]
    kinds: dict[str, list[list[object]]] = {}
    for row in rows:
        kinds.setdefault(row[0], []).append(row)
    cases = cases_of(warehouse)
    new = cases[(cases["status"] != "resolved") & (cases["first_day"].astype(str) > "2024-01-01")]
    assert sorted(str(row[1]) for row in kinds["case opened in the last 7 days"]) == sorted(
        user[:8] for user in new["user_id"]
    )
    suspect = kinds["suspect gap"]
    assert [(row[1], row[3]) for row in suspect] == [("u3", 100)]
    assert "mirrors rejected sync T3" in suspect[0][5]
    failed = table(warehouse, "transactions").query("outcome == 'failed'")
    assert [row[1] for row in kinds["failed sync"]] == list(failed["user_id"]) == ["u2"]
    logged = set(table(warehouse, "ingest_manifest").query("records_read > 0")["day"].astype(str))
    calendar = pd.date_range(FIRST_DAY, LAST_DAY, freq="D").strftime("%Y-%m-%d")
    missing = [day for day in calendar if day not in logged]
    no_logs = kinds["day without logs"]
    assert len(missing) == 16 and len(no_logs) == 11  # ten days, then how many more
    assert [row[4].date().isoformat() for row in no_logs[:10]] == sorted(missing)[::-1][:10]
    assert no_logs[10][5] == "and 6 more: see Daily"
    # Failing checks: days without logs, and days logging more discrepancies than half their syncs.
    per_day = pd.concat(
        [
            table(warehouse, "transactions").groupby("day").size().rename("syncs"),
            table(warehouse, "balance_discrepancies").groupby("day").size().rename("gaps"),
        ],
        axis=1,
    ).dropna(subset=["syncs"])
    above = per_day[per_day["gaps"].fillna(0) / per_day["syncs"] > 0.5]
    assert len(above) > 0 and missing
    assert [row[5].split(":")[0] for row in kinds["failing check"]] == [
        checks.CHECKS[name].label for name in ("discrepancy_rate", "every_day_has_logs")
    ]
    assert kinds["failing check"][0][5].endswith(f": {len(above)} of {len(per_day)}")


def largest_gaps(warehouse) -> dict[str, list[tuple[str, float, float]]]:
    """Per currency, the ten largest gaps not resolved: (user, gap, share of the same-sign total)."""
    cases = cases_of(warehouse)
    cases = cases[cases["status"] != "resolved"].copy()
    cases["size"] = cases["gap"].abs()
    cases["sign"] = cases["gap"] > 0
    totals = cases.groupby(["currency", "sign"])["size"].transform("sum")
    cases["share"] = cases["size"] / totals
    result = {}
    for currency, rows in cases.groupby("currency"):
        rows = rows.sort_values(["size", "user_id"], ascending=[False, True], kind="stable").head(
            10
        )
        result[currency] = [
            (row.user_id, float(row.gap), round(float(row.share), 9)) for row in rows.itertuples()
        ]
    return result


@pytest.mark.parametrize("which", ["handmade", "sample"])
def test_the_overview_shows_the_largest_gaps_and_their_share(which, handmade, report):
    book = handmade[2] if which == "handmade" else report[1]
    warehouse = handmade[0] if which == "handmade" else report[2]
    header, *rows = overview_block(
        book["Overview"],
        "The 10 largest gaps per currency (not resolved) and their share of its total",
    )
    assert header[:5] == ["currency", "rank", "user", "gap", "share"]
    found: dict[str, list[tuple[str, float, float]]] = {}
    for row in rows:
        found.setdefault(row[0], []).append((row[2], row[3], round(row[4], 9)))
    expected = {
        currency: [(user[:8], gap, share) for user, gap, share in gaps]
        for currency, gaps in largest_gaps(warehouse).items()
    }
    assert found == expected


def test_user_ids_on_the_overview_link_to_their_block_on_user_detail(handmade, report):
    for book in (handmade[2], report[1]):
        detail = book["User Detail"]
        links = [
            cell
            for row in book["Overview"].iter_rows()
            for cell in row
            if cell.hyperlink is not None
        ]
        assert links
        for cell in links:
            sheet, target = cell.hyperlink.location.split("!")
            assert sheet == "'User Detail'"
            title = detail[target].value
            assert title.startswith(f"User {cell.value}"), (cell.value, title)
    _, _, book = handmade
    detail = book["User Detail"]
    column = [cell.value for cell in detail["A"]]
    start = column.index("User u1")
    history = column.index(
        "Gap history: each gap value, from when it was first to last logged", start
    )
    gaps = [detail.cell(history + 3 + i, 4).value for i in range(3)]
    assert gaps == [4, 10, -3]  # the gap opens, grows, changes sign


def test_the_overview_draws_the_exposure_trend_per_currency(handmade):
    warehouse, folder, book = handmade
    charts = book["Overview"]._charts
    trend = table(warehouse, "exposure_daily")
    assert [chart.title.tx.rich.p[0].r[0].t for chart in charts] == sorted(set(trend["currency"]))
    header = [cell.value for cell in book["Exposure Trend"][3]]
    for chart in charts:
        references = [series.val.numRef.f for series in chart.series]
        column = chr(ord("A") + header.index("revenue_at_risk"))
        assert references[0].startswith(f"'Exposure Trend'!${column}$")
    assert png_size(folder / CHART_FOLDER / "exposure_trend.png") == (1000, 520)
    page = (folder / HTML_PAGE).read_text()
    assert page.index("<h2>Overview</h2>") < page.index("KPIs per currency")
    assert "Needs action" in page and "mirrors rejected sync T3" in page
    # Money and counts right-aligned on one line, ids and days on one line, text left-aligned.
    classes: dict[str, set[str]] = {}
    for name, text in re.findall(r'<td class="([a-z ]+)">([^<]*)</td>', page):
        classes.setdefault(name, set()).add(text)
    assert "mirrors rejected sync T3 (amount)" in classes["text"]
    assert any(re.fullmatch(r"-?[\d,]+\.\d+ [A-Z]{3}", text) for text in classes["num"])
    assert any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) for text in classes["text word"])
    assert not [text for text in classes["num"] if re.search(r"[a-z]", text)]


class _Tables(HTMLParser):
    """The text of every table cell of a page, table by table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_each_figure_is_the_same_in_the_workbook_the_page_and_the_csv_and_the_rows(handmade):
    """Every headline figure: figures.csv, the Summary, the HTML page and pandas over the raw rows."""
    warehouse, folder, book = handmade
    written = pd.read_csv(folder / "csv" / "figures.csv", dtype=str, keep_default_na=False)
    expected = expected_figures(warehouse)
    grid = summary_grid(book["Summary"])
    parser = _Tables()
    parser.feed((folder / HTML_PAGE).read_text())
    header, *rows = next(table for table in parser.tables if table[0][0] == "figure")
    page = {(row[0], title): text for row in rows for title, text in zip(header, row, strict=True)}
    checked = 0
    for row in written.itertuples(index=False):
        currency = row.currency or None
        value = date.fromisoformat(row.value) if row.unit == "day" else Decimal(row.value)
        if (row.name, currency) in expected:
            assert value == expected[(row.name, currency)], row
        if row.name.startswith(("period_", "checks_")) or row.name.endswith("days_before"):
            continue
        if row.name in OVERVIEW_ONLY:
            continue
        column = {None: "total", "unknown": "unknown currency"}.get(currency, currency)
        assert grid[(row.label, column)] == float(value), row
        shown = format_money(value, currency) if row.unit == "money" else f"{int(value):,}"
        assert page[(row.label, column)] == shown, row
        checked += 1
    assert checked > 50 and set(expected) <= {
        (name, currency or None)
        for name, currency in zip(written["name"], written["currency"], strict=True)
    }
