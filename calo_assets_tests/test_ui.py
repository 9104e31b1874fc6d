"""Dagster driven as a user drives it: dagster-webserver and dagster-daemon as processes (SQLite
instance, the repository's workspace.yaml), everything through the webserver's GraphQL API, with the
queries and mutations the UI sends.

1. A backfill of three sample days launched as the UI's launch dialog does (launchPartitionBackfill);
   the daemon runs it. Exactly those days are materialized, each partition's metadata read back
   (latest materialization per partition, as the Plots tab does) equals that day's Parquet file, and
   each daily check has a result in each of the three partitions.
2. Each check executed alone, as the UI's "Execute" button launches it (a run of the check only, no
   partition), and each daily check for one partition (the partition as a run tag).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calo_assets.checks import CHECKS
from calo_assets.config import PROJECT_ROOT, SAMPLE_LOG_DIR
from calo_assets.warehouse import Warehouse
from calo_assets_tests.logtext import records_by_day
from calo_assets_tests.test_deployment import BIN, Processes, free_port, graphql, wait_for

DAYS = ["2024-03-02", "2024-03-03", "2024-03-04"]
DAILY_TABLES = (
    "log_events",
    "quarantine",
    "ingest_manifest",
    "invocations",
    "transactions",
    "balance_discrepancies",
    "negative_balance_rejections",
    "processing_errors",
    "anomaly_scores",
)
REPOSITORY = {"repositoryLocationName": "calo_assets", "repositoryName": "__repository__"}
pytestmark = pytest.mark.slow  # processes and 16 runs: 2 to 3 minutes here

ASSET_NODES = """{ assetNodes { assetKey { path } isExecutable isPartitioned
  partitionKeysByDimension { partitionKeys }
  assetChecksOrError { ... on AssetChecks { checks { name canExecuteIndividually jobNames
    partitionDefinition { description } } } } } }"""

LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message } ... on InvalidSubsetError { message } } }"""

BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status runs { runId status tags { key value } } } } }"""

PARTITION_METADATA = """query($key: AssetKeyInput!, $partitions: [String!]) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    latestMaterializationByPartition(partitions: $partitions) { partition runId
      metadataEntries { label __typename
        ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue }
        ... on TextMetadataEntry { text } ... on PathMetadataEntry { path }
        ... on JsonMetadataEntry { jsonString }
        ... on TableMetadataEntry { table { records schema { columns { name } } } } } } } } }"""

CHECK_EXECUTIONS = """query($key: AssetKeyInput!, $name: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $name, partition: $partition, limit: 20) {
    runId status partition evaluation { partition success
      metadataEntries { label ... on IntMetadataEntry { intValue } } } } }"""

CHECK_PARTITIONS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  ... on AssetNode { assetCheckOrError(checkName: "nothing_lost") { ... on AssetCheck {
    partitionStatuses { ... on AssetCheckTimePartitionStatuses {
      ranges { startKey endKey status } } } } } } } }"""

LAUNCH_RUN = """mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
    ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""

RUN_STATUS = """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"""
LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """dagster-webserver and dagster-daemon on a fresh SQLite instance; stopped at the end."""
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CALO_") and key != "DAGSTER_HOME"
    }
    env |= {
        "DAGSTER_HOME": str(home),
        "CALO_WAREHOUSE_DIR": str(root / "warehouse"),
        "CALO_REPORT_DIR": str(root / "reports"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
    }
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    processes = Processes(root)
    try:  # run from the temporary folder: files they may write stay there
        processes.start(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
            env,
            cwd=root,
        )

        def location_loaded():
            entries = graphql(port, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            return (
                entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            )

        wait_for(location_loaded, 180, "the code location to load", processes)
        # Once the webserver has created the instance's SQLite files: two processes creating them
        # at once can both try to stamp the schema (the daemon then stops on alembic's error).
        processes.start(
            "daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env, cwd=root
        )
        yield port, Warehouse(root / "warehouse"), processes
    finally:
        processes.stop()


def nodes(port: int) -> dict[str, dict]:
    return {
        "/".join(node["assetKey"]["path"]): node
        for node in graphql(port, ASSET_NODES)["assetNodes"]
    }


def wait_for_run(port: int, run_id: str, processes: Processes) -> str:
    def finished():
        status = graphql(port, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    return wait_for(finished, 300, f"run {run_id}", processes)


def entries(metadata: list[dict]) -> dict[str, dict]:
    return {entry["label"]: entry for entry in metadata}


def test_partitions_end_where_the_sample_ends(ui):
    port, _, _ = ui
    keys = nodes(port)["log_events"]["partitionKeysByDimension"][0]["partitionKeys"]
    assert (keys[0], keys[-1], len(keys)) == ("2023-12-01", "2024-03-08", 99)


def test_a_backfill_launched_as_the_ui_does(ui):
    port, warehouse, processes = ui
    executable = [
        {"path": node["assetKey"]["path"]} for node in nodes(port).values() if node["isExecutable"]
    ]
    params = {
        "tags": [{"key": "dagster/from_ui", "value": "true"}],
        "assetSelection": executable,
        "partitionNames": DAYS,
        "fromFailure": False,
    }
    launched = graphql(port, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def done():
        backfill = graphql(port, BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        return backfill if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING") else None

    backfill = wait_for(done, 600, "the backfill", processes)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
    runs = backfill["runs"]
    assert {run["status"] for run in runs} == {"SUCCESS"}
    # The daily assets in one run for the three days (single-run backfill policy), and not one
    # partition more: an anomaly window never pulls later days into the backfill.
    ranges = [
        {tag["key"]: tag["value"] for tag in run["tags"]}.get("dagster/asset_partition_range_start")
        for run in runs
    ]
    assert ranges.count(DAYS[0]) == 1 and len(runs) <= 2, runs
    for table in DAILY_TABLES:
        assert warehouse.days(table) == DAYS, table

    every_day = [f"2024-03-0{day}" for day in range(1, 9)]
    for table in DAILY_TABLES:
        found = graphql(
            port, PARTITION_METADATA, {"key": {"path": [table]}, "partitions": every_day}
        )["assetNodeOrError"]["latestMaterializationByPartition"]
        assert [event["partition"] for event in found if event] == DAYS, table
        for event in filter(None, found):
            metadata = entries(event["metadataEntries"])
            day = event["partition"]
            file = warehouse.read_day(table, day)
            # A number (so the Plots tab draws it), this partition's own rows.
            assert metadata["dagster/row_count"]["__typename"] == "IntMetadataEntry"
            assert metadata["dagster/row_count"]["intValue"] == file.num_rows, (table, day)
            assert metadata["this run"]["__typename"] == "TextMetadataEntry"
            preview = metadata["preview"]["table"]
            assert len(preview["records"]) == min(5, file.num_rows), (table, day)
            assert [column["name"] for column in preview["schema"]["columns"]] == file.column_names
            if table == "transactions":  # the day's figures (calo_assets.metrics), plotted
                rejected = sum(outcome == "rejected" for outcome in file["outcome"].to_pylist())
                assert metadata["transactions_rejected"]["intValue"] == rejected, day
    # The check's Partitions tab: each day passed, as the UI reads it (an evaluation counts only
    # when it names the partition's latest materialization).
    statuses = graphql(port, CHECK_PARTITIONS, {"key": {"path": ["log_events"]}})
    ranges = statuses["assetNodeOrError"]["assetCheckOrError"]["partitionStatuses"]["ranges"]
    assert [(r["startKey"], r["endKey"], r["status"]) for r in ranges] == [
        (DAYS[0], DAYS[-1], "SUCCEEDED")
    ]
    counted = records_by_day(SAMPLE_LOG_DIR.rglob("*.gz"))  # from the bytes of the sample's files
    for day in DAYS:
        (execution,) = graphql(
            port,
            CHECK_EXECUTIONS,
            {"key": {"path": ["log_events"]}, "name": "nothing_lost", "partition": day},
        )["assetCheckExecutions"]
        assert execution["status"] == "SUCCEEDED" and execution["evaluation"]["partition"] == day
        read = entries(execution["evaluation"]["metadataEntries"])["records read"]["intValue"]
        assert read == counted[day], day


def test_each_check_executes_alone_as_the_ui_launches_it(ui):
    port, warehouse, processes = ui
    days = warehouse.days("log_events")
    assert days, "runs after test_a_backfill_launched_as_the_ui_does"
    checks = [
        (asset, check)
        for asset, node in nodes(port).items()
        for check in node["assetChecksOrError"].get("checks", [])
    ]
    from calo_assets.defs.checks import ASSET_CHECKS

    assert len(checks) == sum(len(group.check_keys) for group in ASSET_CHECKS) == len(CHECKS) == 11
    launched = []
    for asset, check in checks:
        assert check["canExecuteIndividually"] == "CAN_EXECUTE", (asset, check["name"])
        partitions = [None] + ([days[-1]] if check["partitionDefinition"] else [])
        for partition in partitions:
            params = {
                "mode": "default",
                "runConfigData": "{}",
                "selector": {
                    **REPOSITORY,
                    "jobName": check["jobNames"][0],
                    "assetSelection": [],
                    "assetCheckSelection": [{"assetKey": {"path": [asset]}, "name": check["name"]}],
                },
                "executionMetadata": {
                    "tags": [{"key": "dagster/partition", "value": partition}] if partition else []
                },
            }
            result = graphql(port, LAUNCH_RUN, {"executionParams": params})[
                "launchPipelineExecution"
            ]
            assert result["__typename"] == "LaunchRunSuccess", (asset, check["name"], result)
            launched.append((asset, check, partition, result["run"]["runId"]))
    for asset, check, partition, run_id in launched:
        assert wait_for_run(port, run_id, processes) == "SUCCESS", (asset, check["name"])
        executions = graphql(
            port, CHECK_EXECUTIONS, {"key": {"path": [asset]}, "name": check["name"]}
        )["assetCheckExecutions"]
        mine = sorted(
            (execution["partition"] or "")
            for execution in executions
            if execution["runId"] == run_id
        )
        if not check["partitionDefinition"]:
            expected = [""]
        elif partition:
            expected = [partition]  # the day asked for, in its partition
        else:
            # Execute with no partition: every day in its own partition, and the run's result
            expected = ["", *warehouse.days(asset)]
        assert mine == expected, (asset, check["name"], partition)
        statuses = {e["status"] for e in executions if e["runId"] == run_id}
        assert statuses <= {"SUCCEEDED", "FAILED"}, statuses  # evaluated, not skipped


def test_the_report_says_what_it_covers(ui):
    port, _, _ = ui
    event = latest_materialization(port, "balance_sync_report")
    metadata = entries(event["metadataEntries"])
    assert metadata["period"]["text"] == f"{DAYS[0]} to {DAYS[-1]} (UTC days)"
    assert "every day in the warehouse" in metadata["period chosen by"]["text"]
    assert metadata["workbook"]["__typename"] == "PathMetadataEntry"
    assert Path(metadata["workbook"]["path"]).name == "balance_sync_analytics_report.xlsx"
    assert metadata["KPIs"]["__typename"] == "TableMetadataEntry"
    assert metadata["warnings"]["__typename"] == "JsonMetadataEntry"


LATEST = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  assetMaterializations(limit: 1) { runId metadataEntries { label __typename
    ... on TextMetadataEntry { text } ... on PathMetadataEntry { path }
    ... on JsonMetadataEntry { jsonString } } } } } }"""


def latest_materialization(port: int, asset: str) -> dict:
    (event,) = graphql(port, LATEST, {"key": {"path": [asset]}})["assetNodeOrError"][
        "assetMaterializations"
    ]
    return event
