"""The Dagster shell: materializations, metadata, checks, re-runs and empty days, on the shipped sample."""

from __future__ import annotations

import csv
import shutil

import dagster as dg
import duckdb
import pytest

from calo_assets import checks
from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.definitions import defs
from calo_assets.defs.ledger import anomaly_scores, whole_history_tables
from calo_assets.defs.logs import ingest_logs
from calo_assets.defs.resources import resources_for
from calo_assets.defs.sync import sync_tables
from calo_assets.ledger.anomalies import DEFAULT_CONTAMINATION
from calo_assets.money import plain_decimal
from calo_assets.pipeline import HISTORY_TABLES, INGEST_TABLES
from calo_assets.tables.sync import SYNC_TABLES
from calo_assets.warehouse import DUCKDB_FILE, Warehouse
from calo_assets_tests.conftest import (
    ALL_ASSETS,
    SAMPLE_FIRST_DAY,
    SAMPLE_LAST_DAY,
    break_history_table,
    materialize_range,
)
from calo_assets_tests.logtext import records_by_day

DAILY_TABLES = (*INGEST_TABLES, *SYNC_TABLES, "anomaly_scores")
SAMPLE_DAYS = 8


def test_definitions_load_with_groups_and_partitions():
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert (
        groups
        == {
            **dict.fromkeys([*INGEST_TABLES, "cloudwatch_export"], "logs"),
            **dict.fromkeys(SYNC_TABLES, "sync"),
            "anomaly_scores": "ledger",
            **{name: table.group for name, table in HISTORY_TABLES.items()},
            "balance_sync_report": "report",
            "discrepancy_alert": "finance",  # alerts on new cases (README: Logs in S3, the daily CloudWatch export, and alerts)
        }
    )
    assert (
        graph.get(dg.AssetKey("transactions")).partitions_def.start.strftime("%Y-%m-%d")
        == "2023-12-01"
    )


def test_a_range_run_writes_every_day_of_every_table(sample_run):
    result, warehouse = sample_run
    assert result.success
    materialized = {
        (event.asset_key.to_user_string(), event.partition)
        for event in result.get_asset_materialization_events()
    }
    assert (
        len(materialized) == len(DAILY_TABLES) * SAMPLE_DAYS + len(HISTORY_TABLES) + 2
    )  # + the report and the alert
    for table in DAILY_TABLES:
        assert (
            warehouse.days(table)[0] == SAMPLE_FIRST_DAY
            and warehouse.days(table)[-1] == SAMPLE_LAST_DAY
        )
    with duckdb.connect(str(warehouse.root / DUCKDB_FILE), read_only=True) as connection:
        views = {
            row[0]
            for row in connection.execute(
                "select view_name from duckdb_views() where not internal"
            ).fetchall()
        }
        assert views == {*DAILY_TABLES, *HISTORY_TABLES}
        assert connection.execute("select count(*) from transactions").fetchall() == [(626,)]


def test_a_range_run_plans_each_day_of_a_daily_asset_and_an_unpartitioned_asset_once(tmp_path):
    """Dagster stores a planned materialization per asset and day of a range run; an asset over the
    whole history is planned once (not once per day: see ``whole_history_tables``)."""
    instance = dg.DagsterInstance.ephemeral()
    first, last = "2024-03-02", "2024-03-03"
    result = materialize_range(SAMPLE_LOG_DIR, tmp_path / "warehouse", first, last, None, instance)
    assert result.success
    planned = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    )
    per_asset: dict[str, list[str | None]] = {}
    for record in planned:
        event = record.event_log_entry.dagster_event
        per_asset.setdefault(event.asset_key.to_user_string(), []).append(event.partition)
    unpartitioned = [*HISTORY_TABLES, "balance_sync_report", "discrepancy_alert"]
    assert {name: sorted(days) for name, days in per_asset.items() if name in DAILY_TABLES} == {
        name: [first, last] for name in DAILY_TABLES
    }
    assert {name: days for name, days in per_asset.items() if name not in DAILY_TABLES} == {
        name: [None] for name in unpartitioned
    }


def test_the_report_judges_the_checks_against_the_warehouse_resources_bound(tmp_path):
    """A discrepancy bound set on the warehouse resource fails the Dagster check and the report's
    Checks alike (the report used the default bound before)."""
    first, last = "2024-03-02", "2024-03-03"
    warehouse_dir = tmp_path / "warehouse"
    result = materialize_range(
        SAMPLE_LOG_DIR, warehouse_dir, first, last, None, None, max_discrepancy_rate=0.0
    )
    failed_in_dagster = {
        evaluation.check_name
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.check_name in checks.REPORT_CHECKS
    }
    assert "discrepancy_rate" in failed_in_dagster
    figures = csv.DictReader((warehouse_dir.parent / "reports" / "csv" / "figures.csv").open())
    failed_in_report = next(row for row in figures if row["name"] == "checks_failed")["value"]
    assert int(failed_in_report) == len(failed_in_dagster)


def test_the_history_tables_built_are_materialized_when_another_fails(
    sample_run, tmp_path, monkeypatch
):
    _, warehouse = sample_run
    shutil.copytree(warehouse.root, tmp_path / "warehouse")

    break_history_table(monkeypatch, "runtime_versions")
    result = dg.materialize(
        [whole_history_tables],
        resources=resources_for(SAMPLE_LOG_DIR, tmp_path / "warehouse", tmp_path / "reports"),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    materialized = {
        event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
    }
    assert materialized == set(HISTORY_TABLES) - {"runtime_versions"}
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert "runtime_versions: RuntimeError: boom" in failure.step_failure_data.error.message


def partition_metadata(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str | None], dict]:
    """Per (asset, partition): the metadata of that partition's materialization in the run."""
    return {
        (event.asset_key.to_user_string(), event.partition): {
            key: value.value
            for key, value in event.step_materialization_data.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
    }


def test_each_partition_shows_its_own_figures(sample_run):
    result, warehouse = sample_run
    metadata = partition_metadata(result)
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    run_text = f"{SAMPLE_FIRST_DAY} to {SAMPLE_LAST_DAY} ({SAMPLE_DAYS} days), 626 rows in all"
    for day in warehouse.days("transactions"):
        table = warehouse.read_day("transactions", day)
        figures = metadata["transactions", day]
        assert figures["dagster/row_count"] == table.num_rows  # the day's own, a number
        assert figures["this run"].startswith(run_text)  # the range, as text: never plotted
        preview = figures["preview"]
        assert [column.name for column in preview.schema.columns] == table.column_names
        assert [record.data["transaction_id"] for record in preview.records] == table[
            "transaction_id"
        ].to_pylist()[:5]
        assert {key: figures[key] for key in expected_transaction_figures(table)} == (
            expected_transaction_figures(table)
        )
        for name in DAILY_TABLES:
            assert (
                metadata[name, day]["dagster/row_count"] == warehouse.read_day(name, day).num_rows
            )
    log_events = metadata["log_events", "2024-03-04"]
    assert log_events["junk files ignored"] == 3 and log_events["duplicate copies skipped"] == 1
    assert sum(log_events["records by kind"].values()) == log_events["dagster/row_count"]
    assert metadata["anomaly_scores", "2024-03-04"]["contamination"] == DEFAULT_CONTAMINATION


def test_checks_record_one_result_per_day_in_its_partition(sample_run):
    result, warehouse = sample_run
    evaluations = [
        (c.check_name, c.partition, c.passed) for c in result.get_asset_check_evaluations()
    ]
    days = warehouse.days("log_events")
    daily = ("nothing_lost", "every_transaction_has_an_outcome", "currencies_known")
    for name in (*daily, "discrepancy_rate"):
        assert sorted(day for check, day, _ in evaluations if check == name) == days, name
    whole = {(check, passed) for check, day, passed in evaluations if day is None}
    assert whole == {
        ("transaction_ids_unique", True),
        ("anomaly_share", True),
        ("arithmetic_rule", False),  # the sample holds one legacy transaction that does not add up
        ("continuity_rule", False),  # as the report's Checks sheet says (test_report)
        ("every_transaction_accounted_for", True),
        ("every_day_has_logs", True),  # the sample has logs every day
        ("latest_day_present", False),  # the sample is from 2024: the warehouse is not fresh
    }
    assert all(passed for check, day, passed in evaluations if day is not None)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.partition is None}
    assert checks["arithmetic_rule"].severity == dg.AssetCheckSeverity.WARN
    assert checks["arithmetic_rule"].metadata["breaks"].value == 1
    nothing_lost = {
        c.partition: c.metadata["records read"].value
        for c in result.get_asset_check_evaluations()
        if c.check_name == "nothing_lost"
    }
    # Records read, day by day, as counted here from the bytes of the sample's gzip files (the
    # plain copy beside one of them is not counted twice), on both surfaces that show the figure.
    counted = records_by_day(SAMPLE_LOG_DIR.rglob("*.gz"))
    assert sum(counted.values()) == 3578 and counted["2024-03-04"] == 521
    expected = {day: counted[day] for day in days}
    assert nothing_lost == expected
    metadata = partition_metadata(result)
    assert {day: metadata["ingest_manifest", day]["records_read"] for day in days} == expected


def test_rerunning_a_day_replaces_it(sample_run, tmp_path):
    _, warehouse = sample_run
    before = {table: warehouse.day_file(table, "2024-03-04").read_bytes() for table in DAILY_TABLES}
    rerun = materialize_range(SAMPLE_LOG_DIR, warehouse.root, "2024-03-04", "2024-03-04")
    assert rerun.success
    after = {table: warehouse.day_file(table, "2024-03-04").read_bytes() for table in DAILY_TABLES}
    assert after == before  # same input, same bytes, nothing appended
    leftovers = list(warehouse.root.rglob("*.tmp"))
    assert leftovers == []


def test_a_day_without_logs_materializes_empty_tables(tmp_path):
    result = materialize_range(SAMPLE_LOG_DIR, tmp_path / "warehouse", "2024-02-01", "2024-02-01")
    assert result.success
    warehouse = Warehouse(tmp_path / "warehouse")
    assert {
        table: warehouse.read_day(table, "2024-02-01").num_rows for table in DAILY_TABLES
    } == dict.fromkeys(DAILY_TABLES, 0)


def test_a_single_sync_table_can_be_materialized_alone(sample_run, tmp_path):
    _, warehouse = sample_run
    result = dg.materialize(
        [ingest_logs, sync_tables],
        selection=["transactions"],
        partition_key="2024-03-02",
        resources=resources_for(SAMPLE_LOG_DIR, warehouse.root, tmp_path),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert [
        event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
    ] == ["transactions"]


def test_a_missing_log_folder_fails_with_a_clear_message(tmp_path):
    with pytest.raises(dg.Failure, match="does not exist"):
        materialize_range(tmp_path / "nowhere", tmp_path / "warehouse", "2024-03-01", "2024-03-01")


def test_anomaly_scores_are_identical_when_materialized_again(sample_run):
    _, warehouse = sample_run
    before = warehouse.day_file("anomaly_scores", "2024-03-06").read_bytes()
    again = materialize_range(
        SAMPLE_LOG_DIR, warehouse.root, "2024-03-06", "2024-03-06", assets=[anomaly_scores]
    )
    assert again.success
    assert warehouse.day_file("anomaly_scores", "2024-03-06").read_bytes() == before


def test_no_personal_data_reaches_the_warehouse(sample_run):
    _, warehouse = sample_run
    from calo_assets.synth.generator import FIRST_NAMES

    with duckdb.connect(str(warehouse.root / DUCKDB_FILE), read_only=True) as connection:
        text = " ".join(
            str(value)
            for (value,) in connection.execute(
                "select coalesce(message, '') || coalesce(payload, '') || coalesce(trailing_text, '') from log_events"
                " union all select metadata from transactions where metadata is not null"
            ).fetchall()
        )
    assert "@example.com" not in text and "+973" not in text
    assert [name for name in FIRST_NAMES if name in text] == []
    assert "receiverName" in text and "***" in text


def test_every_table_asset_declares_its_columns():
    from calo_assets.definitions import defs
    from calo_assets.tables.schema import SCHEMAS

    graph = defs.resolve_asset_graph()
    for table, schema in SCHEMAS.items():
        declared = graph.get(dg.AssetKey(table)).metadata["dagster/column_schema"]
        assert [column.name for column in declared.columns] == schema.names, table


def test_every_column_of_every_table_is_described_once_for_dagster_and_the_report():
    from calo_assets.report.columns import SHEET_TABLES, column_meaning
    from calo_assets.tables.schema import COLUMN_DESCRIPTIONS, SCHEMAS, TABLE_COLUMN_DESCRIPTIONS

    graph = defs.resolve_asset_graph()
    tables = [*INGEST_TABLES, *SYNC_TABLES, "anomaly_scores", *HISTORY_TABLES]
    assert sorted(tables) == sorted(SCHEMAS)
    # The texts written (by name, unless the table gives the name a meaning of its own), each naming
    # a column that exists: no text is left over for a column renamed or removed.
    assert set(COLUMN_DESCRIPTIONS) <= {name for table in tables for name in SCHEMAS[table].names}
    for table, own in TABLE_COLUMN_DESCRIPTIONS.items():
        assert set(own) <= set(SCHEMAS[table].names), table
        assert all(text != COLUMN_DESCRIPTIONS.get(name) for name, text in own.items()), table
    shown: dict[str, dict[str, str]] = {}
    for table in tables:
        declared = graph.get(dg.AssetKey(table)).metadata["dagster/column_schema"]
        shown[table] = {column.name: column.description for column in declared.columns}
        # Every column of the table, and nothing else, with the text written for it.
        assert set(shown[table]) == set(SCHEMAS[table].names), table
        own = TABLE_COLUMN_DESCRIPTIONS.get(table, {})
        for name, text in shown[table].items():
            assert text and text.strip(), (table, name)
            assert text == own.get(name, COLUMN_DESCRIPTIONS.get(name)), (table, name)
    # A name with a meaning of its own in one table keeps the common text in the others.
    assert shown["quarantine"]["day"] == (
        "UTC day it is quarantined under (the record's day, or its stream folder's day)."
    )
    assert shown["transactions"]["day"] == (
        "UTC day of the Lambda invocation that logged the row (the day of its START line)."
    )
    assert shown["error_types"]["last_seen"] == "Last time the error was logged (UTC)."
    assert shown["user_exposure"]["last_seen"] == "Last time a discrepancy was logged for the user."
    # A sheet showing a table's columns describes them as Dagster does; the report's own columns
    # have the report's texts.
    for sheet, table in SHEET_TABLES.items():
        for name in SCHEMAS[table].names:
            assert column_meaning(sheet, name) == shown[table][name], (sheet, name)
    assert column_meaning("Data Quality", "day") == shown["quarantine"]["day"]
    assert column_meaning("Errors by Type", "last_seen") == "Last time the error was logged (UTC)."
    assert column_meaning("Daily", "day") == "UTC day."


def test_a_day_in_many_row_groups_is_written_and_described_as_if_built_at_once(tmp_path):
    from calo_assets.defs.metadata import _cell
    from calo_assets.tables.schema import to_rows
    from calo_assets.tables.sync import build_sync_tables
    from calo_assets_tests.logtext import StreamText

    day = "2024-01-05"
    streams = [StreamText(day, start=f"{10 + index}:00:00") for index in range(3)]
    first, second, third = streams
    first.start("r1").message("r1").sync("r1", "T1").end("r1")  # settled by a redelivery
    first.start("r2").discrepancy("r2", "U2", "7", "3").end("r2")  # U2's currency comes later
    first.start("r3").message("r3").sync("r3", "T2", old="3", new="-2").end("r3")
    second.start("r4").message("r4").sync("r4", "T1").published("r4").end("r4")
    second.start("r5").message("r5").rejection("r5", "u1", "T2", "3").end("r5")
    for index in range(6):
        request = f"q{index}"
        third.start(request).message(request)
        third.sync(request, f"U{index}", user="U2", currency="KWD").published(request).end(request)
    for index, stream in enumerate(streams):
        stream.write(tmp_path / "logs", f"{day}-[$LATEST]{index}")
    result = materialize_range(
        tmp_path / "logs",
        tmp_path / "warehouse",
        day,
        day,
        assets=[ingest_logs, sync_tables],
        limits={"batch_files": 1},  # a row group of log_events per stream file
        row_group_rows=2,
    )
    warehouse = Warehouse(tmp_path / "warehouse")
    assert warehouse.day_row_groups("log_events", day) == 3
    assert warehouse.day_row_groups("transactions", day) > 1
    built = build_sync_tables(to_rows(warehouse.read_day("log_events", day)))
    for name, table in built.items():
        assert warehouse.read_day(name, day).equals(table), name
    transactions = built["transactions"].to_pylist()
    assert [(row["outcome"], row["times_logged"]) for row in transactions[:2]] == [
        ("applied", 2),
        ("rejected", 1),
    ]
    assert built["balance_discrepancies"]["currency"].to_pylist() == ["KWD"]
    metadata = {asset: figures for (asset, _), figures in partition_metadata(result).items()}
    for name, table in built.items():
        assert metadata[name]["dagster/row_count"] == table.num_rows
        preview = metadata[name]["preview"]
        assert [list(record.data.values()) for record in preview.records] == [
            [_cell(value) for value in row.values()] for row in table.slice(0, 5).to_pylist()
        ]
    figures = metadata["transactions"]
    assert {key: figures[key] for key in expected_transaction_figures(built["transactions"])} == (
        expected_transaction_figures(built["transactions"])
    )
    invocations = built["invocations"].to_pylist()
    assert metadata["invocations"]["failed_invocations"] == sum(
        row["status"] != "success" for row in invocations
    )


def expected_transaction_figures(table) -> dict:
    """A day's transaction figures, from its rows (what ``metrics`` defines, computed here again)."""
    rows = table.to_pylist()
    applied = [row for row in rows if row["outcome"] == "applied"]
    currencies = sorted({row["currency"] or "unknown" for row in rows})
    figures = {
        "transactions": len(rows),
        "transactions_rejected": sum(row["outcome"] == "rejected" for row in rows),
        "applied_credits": sum(row["type"] == "CREDIT" for row in applied),
        "applied_debits": sum(row["type"] == "DEBIT" for row in applied),
    }
    for kind, name in (("CREDIT", "volume_credited"), ("DEBIT", "volume_debited")):
        figures[f"{name} by currency"] = {
            currency: plain_decimal(
                sum(
                    row["amount"]
                    for row in applied
                    if row["type"] == kind and (row["currency"] or "unknown") == currency
                )
            )
            for currency in currencies
        }
    return figures


@pytest.mark.parametrize("partition", ["2024-03-04", None], ids=["one partition", "no partition"])
def test_each_check_runs_alone(sample_run, tmp_path, partition):
    """What "Execute" on a check does: a run of that check only, on the written tables. With a
    partition, a daily check checks that day; without one (the UI's Execute), every day of its
    table, each result in its own partition. Checks over a whole table record one result."""
    _, warehouse = sample_run
    graph = defs.resolve_asset_graph()
    resources = resources_for(SAMPLE_LOG_DIR, warehouse.root, tmp_path)
    before = {table: warehouse.day_file(table, "2024-03-04").read_bytes() for table in DAILY_TABLES}
    for key in sorted(graph.asset_check_keys, key=str):
        daily_table = graph.get(key.asset_key).partitions_def is not None
        result = dg.materialize(
            ALL_ASSETS,
            selection=dg.AssetSelection.checks(key),
            # as the UI and the GraphQL API launch it: the partition as a run tag
            tags={"dagster/partition": partition} if partition and daily_table else None,
            resources=resources,
            instance=dg.DagsterInstance.ephemeral(),
        )
        assert result.success, key
        assert result.get_asset_materialization_events() == []  # nothing rebuilt
        found = [(c.asset_check_key, c.partition) for c in result.get_asset_check_evaluations()]
        if graph.get(key).partitions_def is None:
            expected = [(key, None)]
        else:
            if partition:
                expected = [(key, partition)]
            else:  # every day in its own partition, then the run's own result over them
                days = warehouse.days(key.asset_key.to_user_string())
                expected = [*((key, day) for day in days), (key, None)]
        assert found == expected, key
    after = {table: warehouse.day_file(table, "2024-03-04").read_bytes() for table in DAILY_TABLES}
    assert after == before


def test_a_stalled_chart_browser_is_a_warning_in_the_log_and_the_metadata(
    sample_run, tmp_path, monkeypatch
):
    """The first start-up of the chart browser hangs and is abandoned; the second one draws the
    charts. The run succeeds, and says so: a warning in the event log and in the metadata."""
    import asyncio
    import logging

    from calo_assets.defs.report import balance_sync_report
    from calo_assets.defs.resources import ChartBrowserResource
    from calo_assets.report import images

    _, warehouse = sample_run
    opened = images._OneTab.open
    starts = []

    async def first_hangs(self) -> None:
        starts.append(self)
        if len(starts) == 1:
            await asyncio.sleep(3600)
        await opened(self)

    monkeypatch.setattr(images._OneTab, "open", first_hangs)
    instance = dg.DagsterInstance.ephemeral()
    resources = resources_for(SAMPLE_LOG_DIR, warehouse.root, tmp_path / "reports")
    resources["chart_browser"] = ChartBrowserResource(start_timeout_seconds=2.0)
    result = dg.materialize([balance_sync_report], resources=resources, instance=instance)
    assert result.success and len(starts) == 2
    (event,) = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    (warning,) = metadata["warnings"].value
    assert warning.startswith("chart browser start-up attempt 1 of 2 failed after 2.0 s")
    assert metadata["chart images"].value > 0 and metadata["chart images skipped"].value == "no"
    warnings = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == logging.WARNING
    ]
    assert any("chart browser start-up attempt 1 of 2 failed" in text for text in warnings)
    assert metadata["period"].value == f"{SAMPLE_FIRST_DAY} to {SAMPLE_LAST_DAY} (UTC days)"
    assert "every day in the warehouse" in metadata["period chosen by"].value
    assert metadata["workbook"].value == str(
        tmp_path / "reports" / "balance_sync_analytics_report.xlsx"
    )


def test_the_chart_browser_starts_with_the_report_and_is_closed_when_the_run_ends(
    sample_run, tmp_path, monkeypatch
):
    """The chart browser starts in the report's step (not with the run: it would take the cores
    from the steps before), draws the report's charts, and is closed at the end of the run; with
    CALO_CHART_IMAGES=false no browser is started."""
    import time

    from calo_assets.defs import resources as resources_module
    from calo_assets.defs.report import balance_sync_report
    from calo_assets.report.figures import CHARTS
    from calo_assets.report.publish import ChartBrowser

    _, warehouse = sample_run
    started, closed = [], []
    real_start, real_cancel = resources_module.start_charts, ChartBrowser.cancel

    def start(*args):
        started.append(time.time())
        return real_start(*args)

    def cancel(self):
        closed.append(self)
        real_cancel(self)

    monkeypatch.setattr(resources_module, "start_charts", start)
    monkeypatch.setattr(ChartBrowser, "cancel", cancel)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ALL_ASSETS,
        selection="key:user_summary or key:balance_sync_report",
        resources=resources_for(SAMPLE_LOG_DIR, warehouse.root, tmp_path / "reports"),
        instance=instance,
    )
    assert result.success
    report_step = {
        entry.step_key: entry.timestamp
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)
    }["balance_sync_report"]
    assert len(started) == 1 and started[0] > report_step
    assert len(closed) == 1 and closed[0].drawing is not None
    report = result.asset_materializations_for_node("balance_sync_report")[0].metadata
    assert report["chart images"].value == len(CHARTS)

    monkeypatch.setenv("CALO_CHART_IMAGES", "false")
    result = dg.materialize(
        [balance_sync_report],
        resources=resources_for(SAMPLE_LOG_DIR, warehouse.root, tmp_path / "off"),
        instance=instance,
    )
    report = result.asset_materializations_for_node("balance_sync_report")[0].metadata
    assert closed[-1].drawing is None and closed[-1].skipped == "chart images turned off"
    assert report["chart images"].value == 0
    assert report["chart images skipped"].value == "chart images turned off"


def test_metadata_shows_money_as_plain_decimals_and_paths_as_paths(sample_run):
    """No exponent (1.2E+2) and no run of trailing zeros (2034.780000000000000000) in any metadata
    of a run (materializations of every partition, check results); file locations as path values."""
    import re

    result, _ = sample_run
    exponent = re.compile(r"-?\d+(\.\d+)?[eE][+-]?\d+")  # a whole token: not inside an id
    long_zeros = re.compile(r"-?\d+\.\d*0{6,}")
    texts = []
    paths = []

    def collect(label, value):
        if isinstance(value, dg.TableMetadataValue):
            texts.extend(f"{label}: {cell}" for r in value.records for cell in r.data.values())
        elif isinstance(value, dg.PathMetadataValue):
            paths.append(label)
        elif isinstance(value, dg.MetadataValue):
            texts.append(f"{label}: {value.value}")

    for event in result.get_asset_materialization_events():
        for label, value in event.step_materialization_data.materialization.metadata.items():
            collect(label, value)
    for evaluation in result.get_asset_check_evaluations():
        for label, value in evaluation.metadata.items():
            collect(label, value)
    assert len(texts) > 1000
    bad = [
        text
        for text in texts
        for token in re.split(r"[\s\"',:{}\[\]()|]+", text)
        if exponent.fullmatch(token) or long_zeros.fullmatch(token)
    ]
    assert bad == []
    assert sorted(paths) == ["csv folder", "html page", "workbook"]
    assert not [text for text in texts if "/reports/" in text or "/warehouse/" in text]
