"""``calo-report``: clear errors for bad arguments, and a summary after a run."""

from __future__ import annotations

import pytest

from calo_assets import cli
from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.warehouse import VIEWS_NOTE
from calo_assets_tests.conftest import break_history_table


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("CALO_WAREHOUSE_DIR", str(tmp_path / "warehouse"))
    return tmp_path / "warehouse"


def test_missing_input_folder(tmp_path, warehouse, capsys):
    assert cli.main([str(tmp_path / "nowhere")]) == cli.EXIT_BAD_INPUT
    assert "input folder not found" in capsys.readouterr().err


def test_folder_without_log_streams(tmp_path, warehouse, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main([str(tmp_path / "empty")]) == cli.EXIT_BAD_INPUT
    assert "no CloudWatch log streams" in capsys.readouterr().err


def test_unwritable_output(tmp_path, warehouse, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main([str(SAMPLE_LOG_DIR), str(blocker / "reports")]) == cli.EXIT_BAD_INPUT
    assert "cannot create" in capsys.readouterr().err


def test_days_out_of_order(tmp_path, warehouse, capsys):
    arguments = [
        str(SAMPLE_LOG_DIR),
        str(tmp_path / "out"),
        "--first-day",
        "2024-03-05",
        "--last-day",
        "2024-03-01",
    ]
    assert cli.main(arguments) == cli.EXIT_BAD_INPUT
    assert "is after" in capsys.readouterr().err


def test_a_run_prints_the_summary(tmp_path, warehouse, capsys):
    arguments = [
        str(SAMPLE_LOG_DIR),
        str(tmp_path / "out"),
        "--first-day",
        "2024-03-02",
        "--last-day",
        "2024-03-03",
        "--quiet",
    ]
    assert cli.main(arguments) == 0
    out = capsys.readouterr().out
    assert out.startswith("Period: 2024-03-02 to 2024-03-03 (UTC days holding")
    assert "balance discrepancy events" in out and f"Tables: {warehouse}" in out
    assert "revenue at risk: latest gaps > 0, at the end of the period" in out


def test_the_summary_is_the_reports_figures_when_it_covers_the_same_days(
    tmp_path, warehouse, capsys, monkeypatch
):
    arguments = [str(SAMPLE_LOG_DIR), str(tmp_path / "out"), "--first-day", "2024-03-02"]
    arguments += ["--last-day", "2024-03-03", "--quiet"]
    assert cli.main(arguments) == 0
    first = capsys.readouterr().out
    windows = []
    computed = cli.metrics.report_figures
    monkeypatch.setattr(
        cli.metrics,
        "report_figures",
        lambda connection, *window: windows.append(window) or computed(connection, *window),
    )
    assert cli.main(arguments) == 0  # the report covers the same days: its figures are printed
    assert capsys.readouterr().out == first and len(windows) == 1
    # A run of fewer days than the warehouse holds: the report covers them all, the summary not.
    assert cli.main([*arguments[:-3], "--last-day", "2024-03-02", "--quiet"]) == 0
    assert "Period: 2024-03-02 to 2024-03-02" in capsys.readouterr().out and len(windows) == 3


def _files(folder) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        # The DuckDB database and what sits beside it: views, not tables.
        if path.is_file() and path.suffix not in {".duckdb", ".lock"} and path.name != VIEWS_NOTE
    }


def test_one_shot_and_dagster_runs_write_byte_identical_files(tmp_path, monkeypatch):
    """The pipeline in one process and the same steps as one Dagster run: the same bytes."""
    written = {}
    for path in ("direct", "dagster"):
        monkeypatch.setenv("CALO_WAREHOUSE_DIR", str(tmp_path / path / "warehouse"))
        extra = ["--dagster"] if path == "dagster" else []
        arguments = [str(SAMPLE_LOG_DIR), str(tmp_path / path / "report"), "--quiet", *extra]
        assert cli.main(arguments) == 0
        written[path] = (
            _files(tmp_path / path / "warehouse"),
            _files(tmp_path / path / "report"),
        )
    (direct_tables, direct_report), (dagster_tables, dagster_report) = written.values()
    assert len(direct_tables) == 9 * 8 + 11  # 9 daily tables x 8 days, 11 history tables
    assert direct_tables == dagster_tables
    assert sorted(direct_report) == sorted(dagster_report)
    assert direct_report == dagster_report


def test_the_one_shot_path_imports_neither_dagster_nor_scikit_learn(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from calo_assets import cli\n"
        f"code = cli.main([{str(SAMPLE_LOG_DIR)!r}, {str(tmp_path / 'out')!r}, '--quiet',"
        " '--no-chart-images', '--first-day', '2024-03-02', '--last-day', '2024-03-02'])\n"
        "assert code == 0, code\n"
        "assert 'dagster' not in sys.modules, 'dagster was imported'\n"
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'\n"
    )
    environment = {"CALO_WAREHOUSE_DIR": str(tmp_path / "warehouse"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_history_table_that_fails_stops_the_one_shot_run_with_its_error(
    tmp_path, warehouse, capsys, monkeypatch
):
    break_history_table(monkeypatch, "calendar")
    arguments = [str(SAMPLE_LOG_DIR), str(tmp_path / "out"), "--quiet"]
    assert cli.main(arguments) == cli.EXIT_RUN_FAILED
    error = capsys.readouterr().err
    assert "calo-report: error: history tables not built: calendar: RuntimeError: boom" in error
    assert not (tmp_path / "out" / "balance_sync_analytics_report.xlsx").exists()
