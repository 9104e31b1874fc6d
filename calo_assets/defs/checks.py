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

from collections.abc import Iterator

import dagster as dg

from calo_assets import metrics
from calo_assets.checks import CHECKS, WHOLE_HISTORY, CheckOutcome, days_not_passed
from calo_assets.defs.metadata import LatestMaterializations, check_evaluations, check_result
from calo_assets.defs.partitions import daily_partitions
from calo_assets.defs.resources import WarehouseResource
from calo_assets.warehouse import Warehouse

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
    "history_checks": (
        "arithmetic_rule",
        "continuity_rule",
        "every_transaction_accounted_for",
        "every_day_has_logs",
    ),
}


def _partitioned(context: dg.AssetCheckExecutionContext) -> bool:
    return context.has_partition_key or context.has_partition_key_range


def check_days(context: dg.AssetCheckExecutionContext, store: Warehouse, table: str) -> list[str]:
    """The days a daily check looks at: the run's partitions, else every day of its table."""
    return list(context.partition_keys) if _partitioned(context) else store.days(table)


def check_group(group: str, names: tuple[str, ...]) -> dg.AssetChecksDefinition:
    """The checks ``names`` in one step; any subset of them can be executed."""
    specs = [
        dg.AssetCheckSpec(
            name,
            asset=CHECKS[name].table,
            description=CHECKS[name].description,
            partitions_def=daily_partitions if CHECKS[name].daily else None,
        )
        for name in names
    ]

    @dg.multi_asset_check(name=group, specs=specs, can_subset=True)
    def the_checks(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckEvaluation | dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        settings = warehouse.check_settings
        store = warehouse.store
        latest = LatestMaterializations(context.instance)
        with store.connect(empty_tables=metrics.INPUTS) as connection:
            for check in (CHECKS[name] for name in names if name in selected):
                if not check.daily:
                    yield check_result(check.evaluate(connection, *WHOLE_HISTORY, settings))
                    continue
                days = check_days(context, store, check.table)
                per_day = check.evaluate_days(connection, days, settings)
                failed = days_not_passed(per_day)
                context.log.info(
                    f"{check.name}: {len(days)} day(s) of {check.table} checked, {len(failed)} failed"
                )
                outcomes: dict[str | None, CheckOutcome] = dict(per_day)
                if not _partitioned(context):
                    # Run without a partition ("Execute" in the UI): the run's own result, over
                    # the days it checked, beside each day's result in its partition.
                    outcomes[None] = check.over_days(per_day)
                yield from check_evaluations(outcomes, latest)

    return the_checks


ASSET_CHECKS = [check_group(group, names) for group, names in _GROUPS.items()]
