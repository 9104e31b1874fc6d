"""The daily run exports its own day from CloudWatch Logs (when ``CALO_CLOUDWATCH_LOG_GROUP`` is set).

The asset takes the key of the log export (``cloudwatch_export``) that ``ingest_logs`` depends on, so
every daily run (the job, the schedule, a backfill) exports the slices its days read before ingesting
them; without a log group the export is an external asset, given (``defs.logs.cloudwatch_export``).
The rules (slices, reuse, waiting) are in ``calo_assets.cloudwatch_export``.
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from calo_assets.cloudwatch_export import (
    ExportError,
    ensure_slices,
    provisional_slices,
    summary,
)
from calo_assets.defs.logs import CLOUDWATCH_EXPORT
from calo_assets.defs.partitions import OWNERS, daily_partitions, single_run
from calo_assets.defs.resources import CloudWatchLogGroup, LogSource
from calo_assets.logs.export import LOOKBACK_DAYS

LOG_GROUP_VARIABLE = "CALO_CLOUDWATCH_LOG_GROUP"


@dg.asset(
    name=CLOUDWATCH_EXPORT,
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="logs",
    kinds={"aws", "s3"},
    owners=OWNERS,
    description="The day's slice of the Lambda's CloudWatch log group (CALO_CLOUDWATCH_LOG_GROUP), "
    "exported by CreateExportTask into CALO_LOG_DIR (s3://…/day=YYYY-MM-DD/), with the slices of "
    f"the {LOOKBACK_DAYS} day(s) before it that the day's ingest reads; a completed export is reused.",
)
def cloudwatch_export_day(
    context: dg.AssetExecutionContext, cloudwatch: CloudWatchLogGroup, log_source: LogSource
) -> dg.MaterializeResult:
    """Export (or reuse) the slices the run's days read, one at a time, waiting a bounded time."""
    try:
        config = cloudwatch.export_config(log_source.path)
        exported = ensure_slices(
            config, context.partition_keys, progress=context.log.info, warn=context.log.warning
        )
    except (ExportError, ValueError) as exc:
        raise dg.Failure(str(exc)) from exc
    rows = summary(exported)
    columns = [
        "day",
        "task_id",
        "status",
        "settled",
        "reused",
        "seconds_waited",
        "objects",
        "bytes",
    ]
    return dg.MaterializeResult(
        metadata={
            "log group": config.log_group,
            "export root": str(config.root),
            "slices": dg.MetadataValue.md(markdown_rows(rows, columns)),
            "slices exported": sum(not row["reused"] for row in rows),
            "slices reused": sum(row["reused"] for row in rows),
            "provisional slices": [row["day"] for row in rows if not row["settled"]],
            "seconds waited": round(sum(row["seconds_waited"] for row in rows), 1),
        }
    )


SETTLE_LOOK_BACK_DAYS = 7  # how far back the sensor looks for provisional slices


@dg.sensor(
    job_name="daily_refresh",
    name="settled_cloudwatch_slices",
    minimum_interval_seconds=1800,
    default_status=dg.DefaultSensorStatus.RUNNING
    if os.environ.get(LOG_GROUP_VARIABLE, "").strip()
    else dg.DefaultSensorStatus.STOPPED,
    description="When a day's CloudWatch slice was exported before CloudWatch had made every event "
    "exportable (less than CALO_CLOUDWATCH_SETTLE_HOURS after its end), requests a daily_refresh "
    "run of that day once that time has passed: the run exports the slice again and recomputes the day.",
)
def settled_cloudwatch_slices(
    context: dg.SensorEvaluationContext, cloudwatch: CloudWatchLogGroup, log_source: LogSource
):
    if not cloudwatch.log_group:
        return dg.SkipReason("CALO_CLOUDWATCH_LOG_GROUP is not set")
    try:
        config = cloudwatch.export_config(log_source.path)
    except ValueError as exc:
        return dg.SkipReason(str(exc))
    today = datetime.now(UTC).date()
    recent = [
        (today - timedelta(days=back)).isoformat() for back in range(1, SETTLE_LOOK_BACK_DAYS + 1)
    ]
    known = set(daily_partitions.get_partition_keys())
    requests = [
        dg.RunRequest(run_key=f"settled:{day}:{task_id}", partition_key=day)
        for day, task_id in provisional_slices(config, recent)
        if day in known
    ]
    return requests or dg.SkipReason("no provisional slice has settled")


def markdown_rows(rows: list[dict], columns: list[str]) -> str:
    """A few rows as a Markdown table (metadata)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(name, "")) for name in columns) + " |")
    return "\n".join(lines)


def with_cloudwatch_export(given: dg.AssetSpec) -> dg.AssetSpec | dg.AssetsDefinition:
    """The export asset when ``CALO_CLOUDWATCH_LOG_GROUP`` is set, else the given export."""
    return cloudwatch_export_day if os.environ.get(LOG_GROUP_VARIABLE, "").strip() else given
