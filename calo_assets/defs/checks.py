"""The asset checks: each core check (``calo_assets.checks``) as its own Dagster check.

Each check reads the written warehouse files, so it runs after its table in a run that materializes
it, and can also run alone ("Execute" in the UI, a run selecting only the check).

The checks of a family (the log tables, the sync tables, ...) run in one step, since a step costs
a process; any of them can still be executed alone.

- A daily check (``partitions_def`` = the daily partitions) records one result per day it checked,
  in that day's partition: the run's day or days, or, when the run has no partition (a check run
  alone from the UI), every day of its table in the warehouse, plus the run's own result over them.
- A check over the whole table (``transaction_ids_unique``, ``anomaly_share``, the history tables'
  checks, ``latest_day_present``) is not partitioned and records one result.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from calo_assets import checks
from calo_assets.checks import CHECKS, CheckOutcome
from calo_assets.defs.metadata import check_evaluation, check_result
from calo_assets.defs.partitions import daily_partitions
from calo_assets.defs.resources import WarehouseResource
from calo_assets.ledger.anomalies import DEFAULT_CONTAMINATION
from calo_assets.warehouse import Warehouse

DayCheck = Callable[[WarehouseResource, str, dg.AssetCheckExecutionContext], CheckOutcome]
TableCheck = Callable[[WarehouseResource, dg.AssetCheckExecutionContext], CheckOutcome]


def check_days(context: dg.AssetCheckExecutionContext, store: Warehouse, table: str) -> list[str]:
    """The days a daily check looks at: the run's partitions, else every day of ``table``."""
    if context.has_partition_key or context.has_partition_key_range:
        return list(context.partition_keys)
    return store.days(table)


def _nothing_lost(warehouse: WarehouseResource, day: str, _) -> CheckOutcome:
    return checks.nothing_lost(warehouse.store, [day])


def _sync_check(name: str) -> DayCheck:
    def evaluate(warehouse: WarehouseResource, day: str, _) -> CheckOutcome:
        (outcome,) = checks.sync_checks(
            warehouse.store, [day], {name}, warehouse.max_discrepancy_rate
        )
        return outcome

    return evaluate


def _transaction_ids_unique(warehouse: WarehouseResource, _) -> CheckOutcome:
    days = warehouse.store.days("transactions") or ["1970-01-01"]  # the query reads every day
    (outcome,) = checks.sync_checks(warehouse.store, days, {"transaction_ids_unique"})
    return outcome


def _anomaly_share(
    warehouse: WarehouseResource, context: dg.AssetCheckExecutionContext
) -> CheckOutcome:
    return checks.anomaly_share_of_warehouse(
        warehouse.store, lambda day: _contamination(context, day) if day else DEFAULT_CONTAMINATION
    )


def _contamination(context: dg.AssetCheckExecutionContext, day: str) -> float:
    """The contamination of the day's latest anomaly scores (run config), from their metadata."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("anomaly_scores"), asset_partitions=[day]),
        limit=1,
    ).records
    if records:
        materialization = records[0].asset_materialization
        value = materialization.metadata.get("contamination") if materialization else None
        if value is not None:
            return float(value.value)
    return DEFAULT_CONTAMINATION


def _history(name: str, table: str) -> TableCheck:
    def evaluate(warehouse: WarehouseResource, _) -> CheckOutcome:
        return getattr(checks, name)(warehouse.store.read_all(table))

    return evaluate


def _latest_day_present(warehouse: WarehouseResource, _) -> CheckOutcome:
    """Warn when yesterday (UTC) is missing from the warehouse."""
    latest_complete = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    days = warehouse.store.days("log_events")
    return CheckOutcome(
        "latest_day_present",
        "log_events",
        latest_complete in days,
        "WARN",
        {
            "latest complete day": latest_complete,
            "latest day in the warehouse": days[-1] if days else "none",
        },
    )


# Every check: a daily one (evaluated per day) or one over its whole table.
DAILY_CHECKS: dict[str, DayCheck] = {
    "nothing_lost": _nothing_lost,
    **{
        name: _sync_check(name)
        for name in ("every_transaction_has_an_outcome", "currencies_known", "discrepancy_rate")
    },
}
TABLE_CHECKS: dict[str, TableCheck] = {
    "anomaly_share": _anomaly_share,
    "latest_day_present": _latest_day_present,
    "transaction_ids_unique": _transaction_ids_unique,
    # The checks of the history tables, as the pipeline runs them (checks.HISTORY_CHECKS).
    **{
        check.__name__: _history(check.__name__, table)
        for table, history_checks in checks.HISTORY_CHECKS.items()
        for check in history_checks
    },
}
DESCRIPTIONS = {
    **CHECKS,
    "latest_day_present": (
        "log_events",
        "The daily tables are fresh: the latest complete UTC day (yesterday) has been materialized.",
    ),
}
# The checks of one family run in one step (a step costs a process); each can still run alone.
_GROUPS = {
    "log_checks": ("nothing_lost", "latest_day_present"),
    "sync_checks": (
        "transaction_ids_unique",
        "every_transaction_has_an_outcome",
        "currencies_known",
        "discrepancy_rate",
    ),
    "anomaly_checks": ("anomaly_share",),
    "history_checks": tuple(
        check.__name__
        for history_checks in checks.HISTORY_CHECKS.values()
        for check in history_checks
    ),
}


def check_group(group: str, names: tuple[str, ...]) -> dg.AssetChecksDefinition:
    """The checks ``names`` in one step; any subset of them can be executed."""
    specs = []
    for name in names:
        table, description = DESCRIPTIONS[name]
        partitions = daily_partitions if name in DAILY_CHECKS else None
        specs.append(
            dg.AssetCheckSpec(name, asset=table, description=description, partitions_def=partitions)
        )

    @dg.multi_asset_check(name=group, specs=specs, can_subset=True)
    def the_checks(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckEvaluation | dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        for name in (name for name in names if name in selected):
            if name in TABLE_CHECKS:
                yield check_result(TABLE_CHECKS[name](warehouse, context))
                continue
            table = DESCRIPTIONS[name][0]
            days = check_days(context, warehouse.store, table)
            failed, severity = [], "WARN"
            for day in days:
                outcome = DAILY_CHECKS[name](warehouse, day, context)
                if not outcome.passed:
                    failed.append(day)
                severity = outcome.severity
                yield check_evaluation(outcome, day, context.instance)
            context.log.info(f"{name}: {len(days)} day(s) of {table} checked, {len(failed)} failed")
            if not (context.has_partition_key or context.has_partition_key_range):
                # Run without a partition ("Execute" in the UI): the run's own result, over the
                # days it checked, beside each day's result in its partition.
                summary = CheckOutcome(
                    name,
                    table,
                    not failed,
                    severity,
                    {"days checked": len(days), "days that did not pass": failed[:20]},
                )
                yield check_evaluation(summary, None, context.instance)

    return the_checks


ASSET_CHECKS = [check_group(group, names) for group, names in _GROUPS.items()]
