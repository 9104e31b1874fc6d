"""The sync tables of each day, built from its typed events (their checks: ``defs/checks.py``)."""

from collections.abc import Iterator

import dagster as dg

from calo_assets import pipeline
from calo_assets.defs.metadata import materialize_table_days, schema_metadata
from calo_assets.defs.partitions import CODE_VERSION, OWNERS, daily_partitions, single_run
from calo_assets.defs.resources import LogSource, WarehouseResource
from calo_assets.tables.sync import SYNC_TABLES

_DESCRIPTIONS = {
    "invocations": "One row per Lambda request: timing, memory, cold start, status.",
    "transactions": "Balance syncs with exact amounts, direction (inferred for legacy rows) and outcome.",
    "balance_discrepancies": "'Not in sync' errors: both balances, the gap, the transaction and currency.",
    "negative_balance_rejections": "Transactions the service refused because the balance would go negative.",
    "processing_errors": "Every ERROR other than a balance discrepancy, with the transaction it hit.",
}


@dg.multi_asset(
    name="sync_tables",
    specs=[
        dg.AssetSpec(
            name,
            description=_DESCRIPTIONS[name],
            group_name="sync",
            deps=["log_events"],
            skippable=True,
            metadata=schema_metadata(name),
            kinds={"parquet", "duckdb"},
            owners=OWNERS,
            code_version=CODE_VERSION,
        )
        for name in SYNC_TABLES
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    can_subset=True,
)
def sync_tables(
    context: dg.AssetExecutionContext, log_source: LogSource, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """Invocations, transactions, discrepancies, rejections and errors of each day of the run (in
    as many processes as the logs are read in)."""
    days = list(context.partition_keys)
    store = warehouse.store
    selected = [name for name in SYNC_TABLES if dg.AssetKey(name) in context.selected_asset_keys]
    try:
        pipeline.build_sync(
            store, days, selected, context.log.info, workers=log_source.ingest_options.workers
        )
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    yield from materialize_table_days(context, store, selected, days)
