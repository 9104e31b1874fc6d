"""``calo-report``: clear errors for bad arguments, and a summary after a run."""

from __future__ import annotations

import pytest

from calo_assets import cli
from calo_assets.config import SAMPLE_LOG_DIR


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
    assert out.startswith("Period: 2024-03-02 to 2024-03-03 (UTC)")
    assert "balance discrepancies" in out and f"Tables: {warehouse}" in out
    assert "Exposure by currency (latest gap per user, whole history):" in out
    assert "revenue at risk" in out
