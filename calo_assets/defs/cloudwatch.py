"""The daily run exports its own day from CloudWatch Logs (when ``CALO_CLOUDWATCH_LOG_GROUP`` is set).

The asset takes the key of the log export (``cloudwatch_export``) that ``ingest_logs`` depends on, so
every daily run (the job, the schedule, a backfill) exports the slices its days read before ingesting
them; without a log group the export is an external asset, given (``defs.logs.cloudwatch_export``).
The rules (slices, reuse, waiting) are in ``calo_assets.cloudwatch_export``.
"""

import os

import dagster as dg

from calo_assets.cloudwatch_export import ExportError, ensure_slices, summary
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


def markdown_rows(rows: list[dict], columns: list[str]) -> str:
    """A few rows as a Markdown table (metadata)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(name, "")) for name in columns) + " |")
    return "\n".join(lines)


def with_cloudwatch_export(given: dg.AssetSpec) -> dg.AssetSpec | dg.AssetsDefinition:
    """The export asset when ``CALO_CLOUDWATCH_LOG_GROUP`` is set, else the given export."""
    return cloudwatch_export_day if os.environ.get(LOG_GROUP_VARIABLE, "").strip() else given
