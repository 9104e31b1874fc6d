"""The log export (an external asset) and the ingest: each log day read into typed events."""

from collections.abc import Iterator

import dagster as dg

from calo_assets import pipeline
from calo_assets.defs.metadata import materialize_days, schema_metadata, table_days_figures
from calo_assets.defs.partitions import CODE_VERSION, OWNERS, daily_partitions, single_run
from calo_assets.defs.resources import LogSource, WarehouseResource
from calo_assets.logs.export import LOOKBACK_DAYS

CLOUDWATCH_EXPORT = "cloudwatch_export"

cloudwatch_export = dg.AssetSpec(
    CLOUDWATCH_EXPORT,
    description="The balance-sync Lambda's CloudWatch log export (CALO_LOG_DIR): one folder per log "
    f"stream, named after the day it started. Day D reads the folders of D-{LOOKBACK_DAYS} and D.",
    group_name="logs",
    kinds={"file"},
    owners=OWNERS,
)

_DESCRIPTIONS = {
    "log_events": "Every record of the day, typed by message family (unknown families kept as generic events).",
    "quarantine": "What could not be read or parsed, with the reason and a short excerpt.",
    "ingest_manifest": "Per stream file and day: records read and bytes decompressed.",
}


@dg.multi_asset(
    name="ingest_logs",
    specs=[
        dg.AssetSpec(
            name,
            description=_DESCRIPTIONS[name],
            group_name="logs",
            deps=[CLOUDWATCH_EXPORT],
            metadata=schema_metadata(name),
            kinds={"parquet", "duckdb"},
            owners=OWNERS,
            code_version=CODE_VERSION,
        )
        for name in pipeline.INGEST_TABLES
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    # The three tables come from one read of the stream files: they are materialized together
    # (select all three, e.g. --select 'log_events,quarantine,ingest_manifest').
    can_subset=False,
)
def ingest_logs(
    context: dg.AssetExecutionContext, log_source: LogSource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Read the stream files of the run's days once into typed events, quarantine and manifest."""
    days = list(context.partition_keys)
    store = warehouse.store
    try:
        ingested = pipeline.ingest(
            log_source.path, store, days, log_source.ingest_options, context.log.info
        )
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    found = ingested.discovery
    per_table = table_days_figures(store, list(pipeline.INGEST_TABLES), days)
    for day, kinds in ingested.kinds_by_day.items():
        per_table["log_events"][day]["records by kind"] = dg.MetadataValue.json(
            dict(sorted(kinds.items()))
        )
    run_figures = {
        "stream files read": ingested.files,
        "duplicate copies skipped": len(found.duplicates),
        "junk files ignored": len(found.junk),
        "files refused": len(found.refused),
    }
    for name, per_day in per_table.items():
        yield materialize_days(
            context, name, per_day, run_figures if name == "log_events" else None
        )
