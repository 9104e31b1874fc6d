"""Anomaly scores per day, and the reconciliation tables over the whole history, with their checks.

The history tables are declared once, in ``pipeline.HISTORY_TABLES`` (name and inputs) and
``_HISTORY`` below (description, check); their assets are built from that registry.
"""

from collections.abc import Callable, Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets import checks, pipeline
from calo_assets.defs.metadata import (
    check_result,
    check_spec,
    materialize_days,
    preview_value,
    schema_metadata,
    value_counts,
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
    check_specs=[check_spec("anomaly_share")],
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
    try:
        table = pipeline.score_anomalies(
            warehouse.store,
            list(context.partition_keys),
            settings,
            log_source.ingest_options.workers,
            context.log.info,
        )
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    flagged = pc.sum(table["is_anomaly"]).as_py() or 0
    per_day = {day: {"dagster/row_count": 0, "anomalies": 0} for day in context.partition_keys}
    for row in (
        table.group_by("day")
        .aggregate([("is_anomaly", "count"), ("is_anomaly", "sum")])
        .to_pylist()
    ):
        figures = per_day[row["day"].isoformat()]
        figures["dagster/row_count"] = row["is_anomaly_count"]
        figures["anomalies"] = row["is_anomaly_sum"] or 0
    top = table.filter(table["is_anomaly"]).sort_by([("score", "descending")]).slice(0, 10)
    yield materialize_days(
        context,
        "anomaly_scores",
        per_day,
        table,
        {"top anomalies": preview_value(top, 10)},
    )
    yield check_result(checks.anomaly_share(table.num_rows, flagged, settings.contamination))


def _sync_outcome_totals(table: pa.Table) -> dict[str, int]:
    columns = ("transactions", "applied", "skipped", "rejected", "failed", "unknown")
    return {name: pc.sum(table[name]).as_py() or 0 for name in (*columns, "published_events")}


# What a history table's metadata shows beside its rows and preview.
_DESCRIBED: dict[str, Callable[[pa.Table], dict]] = {
    "ledger_breaks": lambda table: {"breaks by rule": value_counts(table, "rule")},
    "overdrafts": lambda table: {"by kind": value_counts(table, "kind")},
    "sync_outcomes": lambda table: {"totals": _sync_outcome_totals(table)},
    "discrepancy_cases": lambda table: {"cases by status": value_counts(table, "status")},
}


def _history_asset(name: str) -> dg.AssetsDefinition:
    table_def = pipeline.HISTORY_TABLES[name]
    describe = _DESCRIBED.get(name, lambda _: {})
    history_checks = checks.HISTORY_CHECKS.get(name, ())

    @dg.asset(
        name=name,
        group_name=table_def.group,
        deps=list(table_def.inputs),
        metadata=schema_metadata(name),
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        code_version=CODE_VERSION,
        description=table_def.description,
        check_specs=[check_spec(check.__name__) for check in history_checks],
    )
    def history_asset(warehouse: WarehouseResource) -> Iterator:
        table = pipeline.build_history(warehouse.store, name)
        extra = {key: dg.MetadataValue.json(value) for key, value in describe(table).items()}
        yield dg.MaterializeResult(
            metadata={"dagster/row_count": table.num_rows, "preview": preview_value(table), **extra}
        )
        for check in history_checks:
            yield check_result(check(table))

    return history_asset


HISTORY_ASSETS = [_history_asset(name) for name in pipeline.HISTORY_TABLES]
