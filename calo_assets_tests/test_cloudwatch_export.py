"""The daily run exports its own day from CloudWatch Logs (moto's standalone server as AWS).

A log group is filled through PutLogEvents with the records of part of the real export, moved in time to
the last two weeks (CloudWatch, and moto, refuse events older than 14 days), and written as a local
export too. Daily Dagster runs export their slices through CreateExportTask, wait for them, reuse them
the next day and ingest them from S3: every table is the one the local export gives, figure for figure.

What moto does differently from CloudWatch, and how the comparison takes it (nothing else differs):

- its export lines carry the time to the second (``%S.000Z``): timestamps are compared to the second;
  and since transactions of the same second then come in another order, the anomaly model (which
  samples rows by position) is compared with a local export of the same events to the second;
- it writes a ``000000.gz`` for every stream of the group in every export, empty when the stream has
  no event in the range: the reader quarantines each as "empty file" (nothing lost, visible);
  those rows are set aside;
- the pieces of a stream are files of several slices (``day=…/000000.gz``), so ``file``, ``line`` and
  ``bytes_read`` name other files: compared per stream and day (records read), not per file;
- its tasks complete at once (no PENDING/RUNNING), never fail, and ``LimitExceeded`` never happens:
  those paths are tested with moto's own client wrapped to answer as CloudWatch would.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from calo_assets.cloudwatch_export import (
    MARKER,
    ExportConfig,
    ExportError,
    ensure_slices,
    slice_range,
    slices_for_days,
)
from calo_assets.defs.cloudwatch import (
    cloudwatch_export_day,
    settled_cloudwatch_slices,
    with_cloudwatch_export,
)
from calo_assets.defs.ledger import anomaly_scores, whole_history_tables
from calo_assets.defs.logs import cloudwatch_export, ingest_logs
from calo_assets.defs.resources import CloudWatchLogGroup, LogSource, resources_for
from calo_assets.defs.sync import sync_tables
from calo_assets.logs.export import discover
from calo_assets.logs.source import S3Prefix
from calo_assets.warehouse import Warehouse
from calo_assets_tests import aws_double
from calo_assets_tests.aws_double import (
    client,
    fill_log_group,
    log_events_of,
)
from calo_assets_tests.conftest import REAL_LOGS, every_step

moto_url, aws = aws_double.moto_url, aws_double.aws  # the AWS double's fixtures

LOG_GROUP = "/aws/lambda/syncBalanceSQS"
FOLDER_DAYS = ("2024-01-19", "2024-01-20", "2024-01-21", "2024-01-22", "2024-01-23", "2024-01-24")
# Moved so that the first folder day is 9 days ago: every event within PutLogEvents' 14 days, every
# slice ended more than 12 hours ago (settled).
SHIFT = (datetime.now(UTC).date() - timedelta(days=9)) - date.fromisoformat(FOLDER_DAYS[0])
RUN_DAYS = [(date.fromisoformat(day) + SHIFT).isoformat() for day in FOLDER_DAYS[2:5]]
EXPORT_ID = "7e3f6a0c-cafe-4bad-9c1e-000000000001"


def shifted(day: str) -> str:
    return (date.fromisoformat(day) + SHIFT).isoformat()


def stamp(milliseconds: int, to_the_second: bool = False) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    fraction = 0 if to_the_second else milliseconds % 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{fraction:03d}Z"


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """The events of each stream of ``FOLDER_DAYS``, moved by ``SHIFT``, by Lambda stream name
    (``YYYY/MM/DD/[$LATEST]id``), and the same events written as a local export (and as one with
    times to the second, as moto exports them)."""
    found = discover(REAL_LOGS)
    files: dict[str, list[Path]] = {}
    for part in found.parts:
        if part.day in FOLDER_DAYS:
            files.setdefault(part.stream, []).append(part.path)  # the copy read, once
    offset = SHIFT.days * 86_400_000
    root = tmp_path_factory.mktemp("shifted") / "logs"
    seconds_root = root.parent / "logs-to-the-second"
    by_name = {}
    for stream, paths in sorted(files.items()):
        events = [(ms + offset, message) for ms, message in log_events_of(paths)]
        day = shifted(stream[:10])
        by_name[f"{day.replace('-', '/')}/{stream[11:]}"] = events
        for base, to_the_second in ((root, False), (seconds_root, True)):
            folder = base / EXPORT_ID / f"{day}{stream[10:]}"
            folder.mkdir(parents=True)
            text = "".join(f"{stamp(ms, to_the_second)} {message}\n" for ms, message in events)
            (folder / "000000.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    return by_name, root, seconds_root


def daily_assets():
    """What a daily run materializes up to the finance tables (the report is not compared)."""
    return [cloudwatch_export_day, ingest_logs, sync_tables, anomaly_scores, whole_history_tables]


def daily_run(
    url: str, warehouse_dir: Path, day: str, instance, **cloudwatch
) -> dg.ExecuteInProcessResult:
    resources = resources_for(url, warehouse_dir, warehouse_dir.parent / "reports", workers=2)
    resources["cloudwatch"] = CloudWatchLogGroup(
        log_group=LOG_GROUP, poll_seconds=0.1, timeout_seconds=30, **cloudwatch
    )
    return dg.materialize(
        daily_assets(),
        resources=resources,
        tags={"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": day},
        instance=instance,
        raise_on_error=False,
    )


def normalized(warehouse: Warehouse) -> dict[str, list[str]]:
    """Every table's rows, compared as moto allows (see the module's docstring), sorted."""
    tables: dict[str, list[str]] = {}
    manifest: Counter[tuple] = Counter()
    for path in sorted(warehouse.root.rglob("*.parquet")):
        name = path.relative_to(warehouse.root).parts[0]
        for row in pq.read_table(path).to_pylist():
            if name == "ingest_manifest":
                manifest[row["day"], row["stream"]] += row["records_read"]
                continue
            if name == "quarantine" and row["reason"].startswith("empty file"):
                continue
            for column in ("file", "line", "bytes_read"):
                row.pop(column, None)
            for column, value in row.items():
                if isinstance(value, datetime):
                    row[column] = value.replace(microsecond=0)
            tables.setdefault(name, []).append(repr(sorted(row.items())))
    tables["ingest_manifest"] = [repr(item) for item in manifest.items() if item[1]]
    return {name: sorted(rows) for name, rows in tables.items()}


def test_daily_runs_export_their_slices_and_give_the_tables_of_the_local_export(
    aws, streams, tmp_path
):
    by_name, local_root, seconds_root = streams
    client("s3").create_bucket(Bucket="calo-exports")
    events = fill_log_group(LOG_GROUP, by_name)
    url = "s3://calo-exports/cloudwatch"
    instance = dg.DagsterInstance.ephemeral()
    results = [daily_run(url, tmp_path / "s3", day, instance) for day in RUN_DAYS]
    assert all(result.success for result in results)

    # Each run exported the slices it reads, reusing those of the day before.
    exported = [
        result.asset_materializations_for_node("cloudwatch_export")[0].metadata
        for result in results
    ]
    assert [(m["slices exported"].value, m["slices reused"].value) for m in exported] == [
        (2, 0),
        (1, 1),
        (1, 1),
    ]
    assert all(m["provisional slices"].value == [] for m in exported)
    s3 = client("s3")
    markers = [
        key["Key"]
        for key in s3.list_objects_v2(Bucket="calo-exports", Prefix="cloudwatch/")["Contents"]
        if key["Key"].endswith(MARKER)
    ]
    assert markers == [f"cloudwatch/day={day}/{MARKER}" for day in slices_for_days(RUN_DAYS)]

    local = every_step(local_root, tmp_path / "local", RUN_DAYS, workers=2)
    expected, got = normalized(local), normalized(Warehouse(tmp_path / "s3"))
    assert sorted(got) == sorted(expected)
    assert {name for name in expected if got[name] != expected[name]} == {"anomaly_scores"}
    to_the_second = normalized(every_step(seconds_root, tmp_path / "seconds", RUN_DAYS, workers=2))
    assert got["anomaly_scores"] == to_the_second["anomaly_scores"]
    assert {name for name in expected if to_the_second[name] != expected[name]} == {
        "anomaly_scores"
    }
    assert len(expected["log_events"]) > 1000 and len(expected["transactions"]) > 100
    assert sum(len(found) for found in by_name.values()) == events

    # Re-running the days exports nothing again.
    created = []
    logs = client("logs")

    class Counting:
        def __getattr__(self, name):
            return getattr(logs, name)

        def create_export_task(self, **arguments):
            created.append(arguments)
            return logs.create_export_task(**arguments)

    config = ExportConfig(LOG_GROUP, S3Prefix.parse(url), poll_seconds=0.1, timeout_seconds=5)
    again = ensure_slices(config, RUN_DAYS, logs=Counting(), progress=lambda _: None)
    assert created == [] and all(result.reused and result.settled for result in again)


class Scripted:
    """moto's CloudWatch Logs client, answering DescribeExportTasks (or CreateExportTask) as told."""

    def __init__(self, statuses=(), create_errors=()):
        self.logs = client("logs")
        self.statuses, self.create_errors = list(statuses), list(create_errors)
        self.created, self.described = 0, 0

    def create_export_task(self, **arguments):
        if self.create_errors:
            raise self.create_errors.pop(0)
        self.created += 1
        return self.logs.create_export_task(**arguments)

    def describe_export_tasks(self, **arguments):
        self.described += 1
        answer = self.logs.describe_export_tasks(**arguments)
        if self.statuses:
            code = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            answer["exportTasks"][0]["status"] = {"code": code, "message": f"task is {code}"}
        return answer


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def one_event_group(name: str, day: str) -> None:
    start, _ = slice_range(day)
    fill_log_group(
        name,
        {
            f"{day.replace('-', '/')}/[$LATEST]0123456789abcdef": [
                (start + 60_000, "START RequestId: r Version: $LATEST")
            ]
        },
    )


def test_a_task_that_fails_or_never_ends_is_a_clear_error_and_a_rerun_recovers(aws):
    client("s3").create_bucket(Bucket="calo-tasks")
    day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    one_event_group("/aws/lambda/tasks", day)
    config = ExportConfig(
        "/aws/lambda/tasks", S3Prefix.parse("s3://calo-tasks/x"), poll_seconds=5, timeout_seconds=60
    )
    said: list[str] = []
    s3 = client("s3")
    slice_day = slices_for_days([day])[0]  # the first slice the day reads: where it stops

    def marker():
        import json

        key = f"x/day={slice_day}/{MARKER}"
        return json.loads(s3.get_object(Bucket="calo-tasks", Key=key)["Body"].read())

    # FAILED: a clear error naming the task, the slice and CloudWatch's message.
    clock = Clock()
    failing = Scripted(statuses=["RUNNING", "FAILED"])
    with pytest.raises(ExportError, match=r"ended FAILED: task is FAILED\. Nothing of it is read"):
        ensure_slices(
            config, [day], said.append, said.append, logs=failing, clock=clock, sleep=clock.sleep
        )
    assert marker()["status"] == "FAILED"

    # Never ends: bounded by the timeout, with progress while waiting; the task is remembered.
    clock = Clock()
    stuck = Scripted(statuses=["RUNNING"])
    said.clear()
    with pytest.raises(ExportError, match=r"did not finish within 60 s \(status RUNNING\)"):
        ensure_slices(
            config, [day], said.append, said.append, logs=stuck, clock=clock, sleep=clock.sleep
        )
    assert 55 <= clock.now <= 65 and any("RUNNING (" in line for line in said)
    waiting_for = marker()["task_id"]
    assert marker()["status"] == "PENDING"

    # The next run waits for that task instead of exporting again, and it completes.
    rerun = Scripted()
    [result] = [
        r
        for r in ensure_slices(config, [day], logs=rerun, progress=said.append)
        if r.day == slice_day
    ]
    # one task created: for the other slice the day reads, none for this one
    assert (rerun.created, result.task_id, result.status) == (1, waiting_for, "COMPLETED")
    assert any("waiting for it instead of exporting again" in line for line in said)


def test_another_export_in_the_account_is_waited_for(aws):
    from botocore.exceptions import ClientError

    client("s3").create_bucket(Bucket="calo-busy")
    day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    one_event_group("/aws/lambda/busy", day)
    busy = ClientError(
        {"Error": {"Code": "LimitExceededException", "Message": "Resource limit exceeded."}},
        "CreateExportTask",
    )
    config = ExportConfig(
        "/aws/lambda/busy", S3Prefix.parse("s3://calo-busy/x"), poll_seconds=10, timeout_seconds=25
    )
    clock, said = Clock(), []
    logs = Scripted(create_errors=[busy, busy])
    results = ensure_slices(
        config, [day], said.append, said.append, logs=logs, clock=clock, sleep=clock.sleep
    )
    assert all(result.status == "COMPLETED" for result in results)
    assert sum("another export task is running" in line for line in said) == 2
    clock, logs = Clock(), Scripted(create_errors=[busy] * 10)
    with pytest.raises(ExportError, match="another export task kept running for 25 s"):
        ensure_slices(
            ExportConfig(
                "/aws/lambda/busy",
                S3Prefix.parse("s3://calo-busy/y"),
                poll_seconds=10,
                timeout_seconds=25,
            ),
            [day],
            said.append,
            said.append,
            logs=logs,
            clock=clock,
            sleep=clock.sleep,
        )


def test_a_slice_exported_too_early_is_provisional_and_replaced_once_settled(aws):
    client("s3").create_bucket(Bucket="calo-settle")
    day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    one_event_group("/aws/lambda/settle", day)
    config = ExportConfig(
        "/aws/lambda/settle", S3Prefix.parse("s3://calo-settle/x"), poll_seconds=0.1
    )
    _, end_ms = slice_range(day)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    warned: list[str] = []
    [early] = ensure_slices(
        config, [day], lambda _: None, warned.append, now=lambda: end + timedelta(hours=1)
    )[-1:]
    assert (early.settled, early.reused) == (False, False)
    assert any("provisional" in line for line in warned)
    # The sensor asks for a run of the day once CloudWatch has had its 12 hours (passed here).
    sensor_context = dg.build_sensor_context(
        resources={
            "cloudwatch": CloudWatchLogGroup(log_group="/aws/lambda/settle"),
            "log_source": LogSource(location="s3://calo-settle/x"),
        }
    )
    [request] = settled_cloudwatch_slices(sensor_context)
    assert (request.partition_key, request.run_key) == (day, f"settled:{day}:{early.task_id}")

    [again] = ensure_slices(
        config, [day], lambda _: None, warned.append, now=lambda: end + timedelta(hours=2)
    )[-1:]
    assert (again.reused, again.task_id) == (True, early.task_id)  # not exported twice before then

    [settled] = ensure_slices(
        config, [day], lambda _: None, warned.append, now=lambda: end + timedelta(hours=13)
    )[-1:]
    assert (settled.settled, settled.reused, settled.superseded) == (True, False, early.attempt)
    keys = [
        item["Key"]
        for item in client("s3").list_objects_v2(Bucket="calo-settle", Prefix=f"x/day={day}/")[
            "Contents"
        ]
    ]
    assert keys and not any(early.attempt in key for key in keys)  # the provisional one removed
    assert any(settled.attempt in key for key in keys)
    assert isinstance(settled_cloudwatch_slices(sensor_context), dg.SkipReason)


def test_a_missing_bucket_or_log_group_and_a_local_log_dir_are_clear_errors(aws, tmp_path):
    day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    one_event_group("/aws/lambda/present", day)
    client("s3").create_bucket(Bucket="calo-present")
    with pytest.raises(ExportError, match=r"bucket not found \(NoSuchBucket\)"):
        ensure_slices(
            ExportConfig("/aws/lambda/present", S3Prefix.parse("s3://calo-no-such-bucket/x")),
            [day],
        )
    with pytest.raises(ExportError, match="log group '/aws/lambda/absent' does not exist"):
        ensure_slices(
            ExportConfig("/aws/lambda/absent", S3Prefix.parse("s3://calo-present/x")), [day]
        )
    with pytest.raises(ValueError, match="CALO_LOG_DIR must be the s3://bucket/prefix"):
        CloudWatchLogGroup(log_group="g").export_config(tmp_path)
    result = daily_run(str(tmp_path), tmp_path / "wh", day, dg.DagsterInstance.ephemeral())
    assert not result.success
    assert not list(tmp_path.rglob("*.parquet"))


def test_the_export_asset_is_in_the_daily_job_only_when_a_log_group_is_set():
    assert with_cloudwatch_export(cloudwatch_export) is cloudwatch_export  # not set in the tests
    script = (
        "import dagster as dg\n"
        "from calo_assets.definitions import defs\n"
        "graph = defs.resolve_asset_graph()\n"
        "node = graph.get(dg.AssetKey('cloudwatch_export'))\n"
        "job = defs.resolve_job_def('daily_refresh')\n"
        "print(node.is_materializable, node.partitions_def is not None,\n"
        "      graph.get(dg.AssetKey('log_events')).parent_keys == {dg.AssetKey('cloudwatch_export')},\n"
        "      'cloudwatch_export' in job.graph.node_dict)\n"
    )
    environment = {
        **os.environ,
        "CALO_CLOUDWATCH_LOG_GROUP": LOG_GROUP,
        "CALO_LOG_DIR": "s3://calo-exports/cloudwatch",
    }
    answer = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
    )
    assert answer.stdout.split() == ["True", "True", "True", "True"]


def test_slices_cover_each_event_once_and_a_day_reads_its_look_back():
    first, end = slice_range("2024-03-05")
    assert stamp(first) == "2024-03-05T00:15:00.000Z" and end - first == 86_400_000
    assert slice_range("2024-03-06")[0] == end
    assert slices_for_days(["2024-03-05", "2024-03-06"]) == [
        "2024-03-04",
        "2024-03-05",
        "2024-03-06",
    ]
