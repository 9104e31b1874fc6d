"""Anomaly scores per day, and the reconciliation tables over the whole history (checks: ``checks.py``).

The history tables are declared once, in ``pipeline.HISTORY_TABLES`` (builder, inputs, description,
group); their multi-asset is built from that registry (an asset per table, built in one step). Their
figures come from ``metrics.HISTORY_METRICS``; the breaks per rule are their checks'.
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets import metrics, pipeline
from calo_assets.defs.metadata import (
    figure_metadata,
    materialize_days,
    preview_value,
    schema_metadata,
    table_days_figures,
)
from calo_assets.defs.partitions import CODE_VERSION, OWNERS, daily_partitions, single_run
from calo_assets.defs.resources import LogSource, WarehouseResource
from calo_assets.ledger.anomalies import (
    DEFAULT_CONTAMINATION,
    DEFAULT_WINDOW_DAYS,
    AnomalySettings,
)


class AnomalyConfig(dg.Config):
    """IsolationForest settings: trailing window in days (ending at the scored day), expected share."""

    window_days: int = DEFAULT_WINDOW_DAYS
    contamination: float = DEFAULT_CONTAMINATION


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="ledger",
    metadata=schema_metadata("anomaly_scores"),
    kinds={"scikitlearn", "parquet"},
    owners=OWNERS,
    code_version=CODE_VERSION,
    deps=["transactions"],
    description="IsolationForest score of each transaction of the day, fitted on the transactions of "
    "a trailing window of days ending at it; flagged ones say which features made them unusual.",
)
def anomaly_scores(
    context: dg.AssetExecutionContext,
    config: AnomalyConfig,
    log_source: LogSource,
    warehouse: WarehouseResource,
):
    """Score each day of the run with a model fitted on the window of days ending at it."""
    settings = AnomalySettings(window_days=config.window_days, contamination=config.contamination)
    days = list(context.partition_keys)
    try:
        table = pipeline.score_anomalies(
            warehouse.store,
            days,
            settings,
            log_source.ingest_options.workers,
            context.log.info,
        )
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    per_day = table_days_figures(warehouse.store, ["anomaly_scores"], days)["anomaly_scores"]
    for day, figures in per_day.items():
        day_value = pa.scalar(date.fromisoformat(day), type=table.schema.field("day").type)
        scored = table.filter(pc.equal(table["day"], day_value))
        top = scored.filter(scored["is_anomaly"]).sort_by([("score", "descending")])
        figures["top anomalies"] = preview_value(top, 10)
        figures["contamination"] = settings.contamination
    return materialize_days(context, "anomaly_scores", per_day)


# Its name sorts after every other step's on purpose: Dagster 1.13 takes a run's partitions from the
# last asset step by name (RunDomain.construct_run_with_snapshots), and when that step is daily it
# stores a planned materialization of each of the run's days for every unpartitioned asset too
# (2,772 planned events instead of 1,147 for the real export). test_assets checks the count.
@dg.multi_asset(
    name="whole_history_tables",
    specs=[
        dg.AssetSpec(
            name,
            description=table.description,
            group_name=table.group,
            deps=list(table.inputs),
            skippable=True,
            metadata=schema_metadata(name),
            kinds={"duckdb", "parquet"},
            owners=OWNERS,
            code_version=CODE_VERSION,
        )
        for name, table in pipeline.HISTORY_TABLES.items()
    ],
    can_subset=True,
    # Not partitioned: one build over the whole history, also after a range of days.
    backfill_policy=single_run,
)
def whole_history_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """The selected tables over the whole history, in one step: they share one connection holding
    their daily inputs in memory, as in ``calo-report``'s one-shot path."""
    keys = context.selected_asset_keys
    selected = [name for name in pipeline.HISTORY_TABLES if dg.AssetKey(name) in keys]
    try:
        built, failure = pipeline.build_history(warehouse.store, selected), None
    except pipeline.HistoryError as exc:  # the tables built are materialized, then the step fails
        built, failure = exc.built, exc
    figures = {}
    if wanted := [name for name in built if name in metrics.HISTORY_METRICS]:
        with warehouse.store.connect(empty_tables=metrics.INPUTS) as connection:
            figures = metrics.history_figures(connection, wanted)
    for name, table in built.items():
        yield dg.MaterializeResult(
            asset_key=name,
            metadata={
                "dagster/row_count": table.num_rows,
                "preview": preview_value(table),
                **figure_metadata(figures.get(name, [])),
            },
        )
    if failure is not None:
        raise dg.Failure(str(failure))
