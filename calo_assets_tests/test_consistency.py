"""One definition per figure: on the real export, each headline figure is the same in the workbook,
the HTML page, the summary printed by ``calo-report``, and pandas over the warehouse's raw rows."""

from __future__ import annotations

import contextlib
import html
import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest

from calo_assets import checks, cli, metrics
from calo_assets.money import format_money
from calo_assets.report.publish import HTML_PAGE, WORKBOOK
from calo_assets.warehouse import Warehouse
from calo_assets_tests.conftest import REAL_LOGS
from calo_assets_tests.logtext import records_by_day
from calo_assets_tests.report_cases import expected_figures
from calo_assets_tests.test_assets import partition_metadata
from calo_assets_tests.test_report import _Tables, summary_grid

UNKNOWN_COLUMN = "unknown currency"


def printed_grid(text: str) -> dict[tuple[str, str], str]:
    """The figure grid printed by ``calo-report``: text by (label, column title). Columns are
    right-aligned under their titles, so a cell ends where its title ends."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.strip().startswith("total"))
    header = lines[start]
    titles, ends, position = [], [], 0
    for title in header.split():
        position = header.index(title, position) + len(title)
        titles.append(title)
        ends.append(position)
    # "unknown currency" is two words: one column
    if "unknown" in titles:
        index = titles.index("unknown")
        titles[index : index + 2] = [UNKNOWN_COLUMN]
        ends[index : index + 2] = [ends[index + 1]]
    label_end = header.index(titles[0]) - 1
    grid = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  "):  # "Data checks: ..." ends the grid
            break
        label = line[:label_end].strip()
        begin = label_end
        for title, end in zip(titles, ends, strict=True):
            grid[(label, title)] = line[begin:end].strip()
            begin = end
    return grid


@pytest.fixture(scope="module")
def one_shot(real_logs, tmp_path_factory):
    """``calo-report`` on the whole real export, as a user runs it: its output and files."""
    root = tmp_path_factory.mktemp("consistency")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CALO_WAREHOUSE_DIR", str(root / "warehouse"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main([str(real_logs), str(root / "report"), "--quiet", "--no-chart-images"])
    monkeypatch.undo()
    assert code == 0, buffer.getvalue()[-2000:]
    return Warehouse(root / "warehouse"), root / "report", buffer.getvalue()


def test_each_headline_figure_is_the_same_on_every_surface(one_shot):
    warehouse, report, printed = one_shot
    expected = expected_figures(warehouse)
    book = summary_grid(openpyxl.load_workbook(report / WORKBOOK, read_only=True)["Summary"])
    parser = _Tables()
    parser.feed((report / HTML_PAGE).read_text())
    header, *rows = next(table for table in parser.tables if table[0][0] == "figure")
    page = {(row[0], title): text for row in rows for title, text in zip(header, row, strict=True)}
    summary = printed_grid(printed)
    labels = {label for label, _ in book}
    compared = 0
    for (name, currency), value in expected.items():
        if name.startswith("period_"):
            continue
        label = metrics.label(name)
        assert label in labels, name
        column = {None: "total", "unknown": UNKNOWN_COLUMN}.get(currency, currency)
        if (label, column) not in book:
            continue  # e.g. money has no total
        shown = (
            format_money(Decimal(value), currency)
            if isinstance(value, Decimal)
            else f"{int(value):,}"
        )
        assert book[(label, column)] == float(value), (name, currency)
        assert page[(label, column)] == shown, (name, currency)
        assert summary[(label, column)] == shown, (name, currency)
        compared += 1
    assert compared > 100
    first, last = expected[("period_first", None)], expected[("period_last", None)]
    assert isinstance(first, date)
    assert f"Period: {first} to {last}" in printed
    assert f"{first:%Y-%m-%d} to {last:%Y-%m-%d}" in (report / HTML_PAGE).read_text()


def test_the_checks_are_the_same_on_every_surface(one_shot):
    """One evaluation of ``calo_assets.checks``: the Checks sheet, the HTML page and the printed
    summary list the same checks with the same results and evidence."""
    _, report, printed = one_shot
    sheet = openpyxl.load_workbook(report / WORKBOOK, read_only=True)["Checks"]
    lines = [list(row) for row in sheet.iter_rows(values_only=True) if any(row)]
    start = next(index for index, row in enumerate(lines) if row[0] == "check")
    assert lines[start][:3] == ["check", "passed", "detail"]
    rows = lines[start + 1 :]
    in_book = {row[0]: (bool(row[1]), row[2]) for row in rows}
    assert len(in_book) == len(checks.REPORT_CHECKS)
    failed = {label: detail for label, (passed, detail) in in_book.items() if not passed}
    page = (report / HTML_PAGE).read_text()
    assert f"{len(in_book) - len(failed)} passed, {len(failed)} failed" in printed
    assert f"Data checks: {len(in_book) - len(failed)} passed, {len(failed)} failed." in page
    for label, detail in failed.items():
        assert f"  warning: {label}: {detail}" in printed  # every failure here is a warning
        assert html.escape(f"{label}: {detail}") in page
    # On the real export: the legacy rows that break the arithmetic, the 179 continuity breaks,
    # the days above the discrepancy bound and the days without logs (README, "Checks").
    assert sorted(failed) == sorted(
        checks.CHECKS[name].label
        for name in ("discrepancy_rate", "arithmetic_rule", "continuity_rule", "every_day_has_logs")
    )


def test_dagster_partitions_and_checks_show_the_report_figures(real_run):
    """The real export through Dagster: each partition's figures add up to the report's, and each
    check's results per day agree with the report's check over the period."""
    result, warehouse = real_run
    expected = expected_figures(warehouse)
    metadata = partition_metadata(result)
    days = warehouse.days("transactions")
    for name in ("transactions", "applied_credits", "transactions_rejected"):
        assert sum(metadata["transactions", day][name] for day in days) == expected[(name, None)]
    for currency in ("BHD", "SAR"):
        total = sum(
            Decimal(
                metadata["transactions", day]
                .get("volume_credited by currency", {})
                .get(currency, 0)
            )
            for day in days
        )
        assert total == expected[("volume_credited", currency)], currency
    read = {
        day: metadata["ingest_manifest", day]["records_read"]
        for day in warehouse.days("ingest_manifest")
    }
    counted = records_by_day(REAL_LOGS.rglob("*.gz"))  # from the bytes of the export's files
    assert read == {day: counted[day] for day in read}
    assert sum(read.values()) == expected[("records_read", None)]
    statuses = warehouse.read_all("discrepancy_cases")["status"].to_pylist()
    cases = metadata["discrepancy_cases", None]
    assert (cases["open_cases"], cases["probably_resolved_cases"]) == (
        statuses.count("open"),
        statuses.count("probably_resolved"),
    )
    kinds = warehouse.read_all("overdrafts")["kind"].to_pylist()
    overdrafts = metadata["overdrafts", None]
    assert (overdrafts["negative_balance_rejections"], overdrafts["overdrafts_applied"]) == (
        kinds.count("attempted"),
        kinds.count("applied"),
    )
    published = warehouse.read_all("log_events")["kind"].to_pylist().count("sync_published")
    assert metadata["sync_outcomes", None]["published_events"] == published > 0
    by_check: dict[str, bool] = {}
    for evaluation in result.get_asset_check_evaluations():
        by_check[evaluation.check_name] = (
            by_check.get(evaluation.check_name, True) and evaluation.passed
        )
    first, last = expected[("period_first", None)], expected[("period_last", None)]
    with warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        in_report = {check.name: check.passed for check in metrics.checks(connection, first, last)}
    assert in_report == {name: by_check[name] for name in checks.REPORT_CHECKS}
