"""Anomaly scores per day, and the reconciliation tables over the whole history, with their checks.

The history tables are declared once, in ``pipeline.HISTORY_TABLES`` (name and inputs) and
``_HISTORY`` below (description, check); their assets are built from that registry.
"""

from collections.abc import Callable, Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets import checks, pipeline
from calo_assets.checks import CheckOutcome
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


def _ledger_breaks(table: pa.Table) -> tuple[dict, list[CheckOutcome]]:
    return {"breaks by rule": dg.MetadataValue.json(value_counts(table, "rule"))}, [
        checks.arithmetic_rule(table)
    ]


def _overdrafts(table: pa.Table) -> tuple[dict, list[CheckOutcome]]:
    return {"by kind": dg.MetadataValue.json(value_counts(table, "kind"))}, []


def _sync_outcomes(table: pa.Table) -> tuple[dict, list[CheckOutcome]]:
    columns = ("transactions", "applied", "skipped", "rejected", "failed", "unknown")
    totals = {name: pc.sum(table[name]).as_py() or 0 for name in (*columns, "published_events")}
    return {"totals": dg.MetadataValue.json(totals)}, [
        checks.every_transaction_accounted_for(table)
    ]


def _nothing_more(table: pa.Table) -> tuple[dict, list[CheckOutcome]]:
    return {}, []


# What a history table's metadata adds beside its rows and preview, and the checks it runs.
_DESCRIBED: dict[str, Callable[[pa.Table], tuple[dict, list[CheckOutcome]]]] = {
    "ledger_breaks": _ledger_breaks,
    "overdrafts": _overdrafts,
    "sync_outcomes": _sync_outcomes,
}
_CHECKS = {
    "ledger_breaks": ("arithmetic_rule",),
    "sync_outcomes": ("every_transaction_accounted_for",),
}


def _history_asset(name: str) -> dg.AssetsDefinition:
    table_def = pipeline.HISTORY_TABLES[name]
    describe = _DESCRIBED.get(name, _nothing_more)

    @dg.asset(
        name=name,
        group_name=table_def.group,
        deps=list(table_def.inputs),
        metadata=schema_metadata(name),
        kinds={"duckdb", "parquet"},
        owners=OWNERS,
        code_version=CODE_VERSION,
        description=table_def.description,
        check_specs=[check_spec(check) for check in _CHECKS.get(name, ())],
    )
    def history_asset(warehouse: WarehouseResource) -> Iterator:
        table = pipeline.build_history(warehouse.store, name)
        extra, outcomes = describe(table)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.num_rows,
                "preview": preview_value(table),
                **extra,
            }
        )
        for outcome in outcomes:
            yield check_result(outcome)

    return history_asset


HISTORY_ASSETS = [_history_asset(name) for name in pipeline.HISTORY_TABLES]
