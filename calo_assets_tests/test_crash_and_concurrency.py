"""A run killed while writing a day leaves the previous version whole; runs at the same time on the
same warehouse finish without lock errors and write the same tables as runs one after the other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.warehouse import Warehouse

DAILY = (
    "log_events",
    "quarantine",
    "ingest_manifest",
    "invocations",
    "transactions",
    "balance_discrepancies",
)

KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    from calo_assets import warehouse

    write = warehouse.pq.write_table

    def write_then_hang(table, where, **options):
        write(table, where, **options)  # the new version is on disk under its temporary name...
        print("written", flush=True)
        time.sleep(120)  # ...and the process dies here, before the rename

    warehouse.pq.write_table = write_then_hang
    warehouse.Warehouse(sys.argv[1]).write_table("scratch", pa.table({"user_id": ["new"]}))
    """
)


def test_a_run_killed_while_writing_leaves_the_previous_version(tmp_path):
    store = Warehouse(tmp_path)
    store.write_table("scratch", pa.table({"user_id": ["previous"]}))
    before = store.table_file("scratch").read_bytes()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "written"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert store.table_file("scratch").read_bytes() == before  # the old version, whole
    assert pq.read_table(store.table_file("scratch")).column("user_id").to_pylist() == ["previous"]
    # The new version was complete under its temporary name; readers never see it.
    assert len(list(store.table_file("scratch").parent.glob(".*.tmp"))) == 1
    assert store.read_all("scratch").column("user_id").to_pylist() == ["previous"]
    store.write_table("scratch", pa.table({"user_id": ["rerun"]}))  # a re-run replaces it
    assert store.read_all("scratch").column("user_id").to_pylist() == ["rerun"]


def calo_report(warehouse, reports, first: str, last: str) -> subprocess.Popen:
    env = {**os.environ, "CALO_WAREHOUSE_DIR": str(warehouse)}
    command = [
        str(Path(sys.executable).parent / "calo-report"),
        str(SAMPLE_LOG_DIR),
        str(reports),
        "--first-day",
        first,
        "--last-day",
        last,
        "--quiet",
        "--no-chart-images",
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_runs_at_once_write_what_two_runs_in_turn_write(tmp_path):
    together, in_turn = tmp_path / "together", tmp_path / "in_turn"
    windows = [("2024-03-01", "2024-03-04"), ("2024-03-05", "2024-03-08")]
    runs = [
        calo_report(together, tmp_path / f"r{index}", *window)
        for index, window in enumerate(windows)
    ]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        assert "lock" not in err.lower(), err[-3000:]
    for index, window in enumerate(windows):
        run = calo_report(in_turn, tmp_path / f"s{index}", *window)
        assert run.communicate(timeout=600) and run.returncode == 0
    concurrent, sequential = Warehouse(together), Warehouse(in_turn)
    for table in DAILY:
        assert (
            concurrent.days(table)
            == sequential.days(table)
            == [f"2024-03-0{day}" for day in range(1, 9)]
        )
        for day in concurrent.days(table):
            same = (
                concurrent.day_file(table, day).read_bytes()
                == sequential.day_file(table, day).read_bytes()
            )
            assert same, (table, day, concurrent.read_day(table, day).num_rows)


def dagster_materialize(warehouse, home, partition_range: str) -> subprocess.Popen:
    """`dagster asset materialize` for the daily assets, as a user runs it (one process for the run)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CALO_WAREHOUSE_DIR": str(warehouse),
        "CALO_LOG_DIR": str(SAMPLE_LOG_DIR),
        "DAGSTER_HOME": str(home),
    }
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "calo_assets.definitions",
        "--select",
        "group:logs or group:sync",
        "--partition-range",
        partition_range,
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_dagster_runs_at_once_match_a_single_run(tmp_path):
    shared, single = tmp_path / "shared", tmp_path / "single"
    runs = [
        dagster_materialize(shared, tmp_path / "home-a", "2024-03-01...2024-03-04"),
        dagster_materialize(shared, tmp_path / "home-b", "2024-03-05...2024-03-08"),
    ]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output[-3000:]
        assert "database is locked" not in output
    alone = dagster_materialize(single, tmp_path / "home-c", "2024-03-01...2024-03-08")
    output, _ = alone.communicate(timeout=600)
    assert alone.returncode == 0, output[-3000:]
    concurrent, sequential = Warehouse(shared), Warehouse(single)
    for table in DAILY:
        assert concurrent.days(table) == sequential.days(table)
        for day in sequential.days(table):
            assert (
                concurrent.day_file(table, day).read_bytes()
                == sequential.day_file(table, day).read_bytes()
            )


HOLD_DATABASE = textwrap.dedent(
    """
    import sys, time
    import duckdb

    connection = duckdb.connect(sys.argv[1])  # read-write: DuckDB locks the file for other processes
    print("holding", flush=True)
    time.sleep(120)
    """
)


def test_the_summary_reads_while_another_process_holds_the_database(sample_run):
    from calo_assets.cli import report_figures, summary
    from calo_assets.warehouse import DUCKDB_FILE

    _, warehouse = sample_run
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_DATABASE, str(warehouse.root / DUCKDB_FILE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        text = summary(warehouse, report_figures(warehouse, "2024-03-01", "2024-03-08"))
    finally:
        holder.kill()
        holder.wait()
    (transactions,) = [line for line in text.splitlines() if "transactions (balance syncs)" in line]
    assert transactions.split()[3] == "626"  # the total column
