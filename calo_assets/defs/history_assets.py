"""Anomaly scores per day, and the reconciliation tables over the whole history, with their checks."""

import math
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.defs.metadata import (
    markdown_table,
    schema_metadata,
    table_metadata,
    value_counts,
)
from calo_assets.defs.partitions import daily_partitions, single_run
from calo_assets.defs.resources import CaloResource
from calo_assets.ledger import reconcile
from calo_assets.ledger.anomalies import (
    DEFAULT_CONTAMINATION,
    DEFAULT_WINDOW_DAYS,
    INPUT_COLUMNS,
    AnomalySettings,
    score_days,
    transactions_frame,
)
from calo_assets.tables.schema import SCHEMAS
from calo_assets.warehouse import Warehouse

PREVIEW_BREAKS = 5


class AnomalyConfig(dg.Config):
    """IsolationForest settings: trailing window in days (ending at the scored day), expected share."""

    window_days: int = DEFAULT_WINDOW_DAYS
    contamination: float = DEFAULT_CONTAMINATION


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="ledger",
    metadata=schema_metadata("anomaly_scores"),
    deps=[
        dg.AssetDep(
            "transactions",
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-(DEFAULT_WINDOW_DAYS - 1), end_offset=0
            ),
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "anomaly_share",
            asset="anomaly_scores",
            description="The share of transactions flagged is close to the configured contamination.",
        )
    ],
    description="IsolationForest score of each transaction of the day, fitted on a trailing window; "
    "flagged ones say which features made them unusual.",
)
def anomaly_scores(context: dg.AssetExecutionContext, config: AnomalyConfig, calo: CaloResource):
    """Score each day of the run with a model fitted on the window of days ending at it."""
    if not 0 < config.contamination <= 0.5 or config.window_days < 1:
        raise dg.Failure("contamination must be in (0, 0.5] and window_days at least 1")
    settings = AnomalySettings(window_days=config.window_days, contamination=config.contamination)
    days = [date.fromisoformat(day) for day in context.partition_keys]
    warehouse = calo.warehouse
    history = _days_between(days[0] - timedelta(days=settings.window_days - 1), days[-1])
    transactions = transactions_frame(warehouse.read_days("transactions", history, INPUT_COLUMNS))
    scored = []
    frames = score_days(transactions, days, settings, calo.ingest_options.workers)
    for day, frame in zip(days, frames, strict=True):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        scored.append(
            warehouse.write_day(
                "anomaly_scores", day.isoformat(), table.select(SCHEMAS["anomaly_scores"].names)
            )
        )
    warehouse.refresh_views()
    table = pa.concat_tables(scored)
    context.log.info(
        f"anomaly scores for {len(days)} day(s): {table.num_rows:,} transactions scored"
    )
    flagged = pc.sum(table["is_anomaly"]).as_py() or 0
    metadata = table_metadata(table, context.partition_keys)
    metadata["anomalies"] = flagged
    metadata["top anomalies"] = dg.MetadataValue.md(_top_anomalies(table))
    yield dg.MaterializeResult(metadata=metadata)
    yield anomaly_share_check(table.num_rows, flagged, settings.contamination)


def anomaly_share_check(scored: int, flagged: int, contamination: float) -> dg.AssetCheckResult:
    """Pass when the flagged share is within three binomial standard deviations of the contamination."""
    share = flagged / scored if scored else 0.0
    slack = (
        3 * math.sqrt(contamination * (1 - contamination) / scored) + 1 / scored if scored else 1.0
    )
    return dg.AssetCheckResult(
        check_name="anomaly_share",
        passed=abs(share - contamination) <= slack,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "scored": scored,
            "flagged": flagged,
            "share": share,
            "contamination": contamination,
            "allowed difference": slack,
        },
    )


def _top_anomalies(table: pa.Table) -> str:
    flagged = (
        table.filter(table["is_anomaly"])
        .sort_by([("score", "descending")])
        .slice(0, 10)
        .to_pylist()
    )
    lines = ["| transaction | day | score | why |", "|---|---|---|---|"]
    lines += [
        f"| {row['transaction_id']} | {row['day']} | {row['score']:.3f} | {row['reasons']} |"
        for row in flagged
    ]
    return "\n".join(lines)


def _days_between(first: date, last: date) -> list[str]:
    return [
        (first + timedelta(days=offset)).isoformat() for offset in range((last - first).days + 1)
    ]


def _history_asset(name: str, deps: list[str], description: str, check_specs=()):
    """An unpartitioned asset computed by ``reconcile.<name>`` over the whole warehouse."""

    def decorator(extra):
        @dg.asset(
            name=name,
            group_name="ledger",
            deps=deps,
            metadata=schema_metadata(name),
            description=description,
            check_specs=list(check_specs),
        )
        def history_asset(calo: CaloResource):
            warehouse = calo.warehouse
            with warehouse.connect(empty_tables=[*deps, *_DAILY_INPUTS]) as connection:
                table = getattr(reconcile, name)(connection)
            warehouse.write_table(name, table)
            warehouse.refresh_views()
            written = warehouse.read_all(name)
            metadata = table_metadata(written, warehouse.days("transactions"))
            results = extra(warehouse, written, metadata) or []
            yield dg.MaterializeResult(metadata=metadata)
            yield from results

        return history_asset

    return decorator


_DAILY_INPUTS = (
    "transactions",
    "balance_discrepancies",
    "negative_balance_rejections",
    "log_events",
)


@_history_asset(
    "ledger_breaks",
    ["transactions"],
    "Transactions breaking the arithmetic rule or the per-user continuity rule, once each.",
    [
        dg.AssetCheckSpec(
            "arithmetic_rule",
            asset="ledger_breaks",
            description="new = old ± (amount - vat) within 0.0005.",
        )
    ],
)
def ledger_breaks(warehouse: Warehouse, table: pa.Table, metadata: dict[str, Any]):
    counts = value_counts(table, "rule")
    metadata["breaks by rule"] = dg.MetadataValue.json(counts)
    arithmetic = table.filter(pc.equal(table["rule"], "arithmetic"))
    first = arithmetic.slice(0, PREVIEW_BREAKS).select(
        ["transaction_id", "user_id", "expected", "actual", "type_inferred"]
    )
    return [
        dg.AssetCheckResult(
            check_name="arithmetic_rule",
            passed=arithmetic.num_rows == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "breaks": arithmetic.num_rows,
                "of which legacy (inferred direction)": pc.sum(arithmetic["type_inferred"]).as_py()
                or 0,
                "first breaks": dg.MetadataValue.json(
                    [{key: str(value) for key, value in row.items()} for row in first.to_pylist()]
                ),
            },
        )
    ]


@_history_asset(
    "user_exposure",
    ["balance_discrepancies", "transactions"],
    "Per user and currency: the latest gap between subscription and payment balance, its sign, when "
    "first and last seen and how often logged. Never a sum over repeated events.",
)
def user_exposure(warehouse: Warehouse, table: pa.Table, metadata: dict[str, Any]):
    with warehouse.connect() as connection:
        totals = reconcile.exposure_totals(connection)
    metadata["exposure by currency"] = dg.MetadataValue.md(
        markdown_table(totals, ("revenue_at_risk", "owed_to_users"))
    )
    return []


@_history_asset(
    "overdrafts",
    ["negative_balance_rejections", "transactions"],
    "Attempted overdrafts (rejected by the service, with the balance at the time) and applied ones "
    "(a new balance below zero that was applied), kept apart by `kind`.",
)
def overdrafts(warehouse: Warehouse, table: pa.Table, metadata: dict[str, Any]):
    metadata["by kind"] = dg.MetadataValue.json(value_counts(table, "kind"))
    return []


@_history_asset(
    "sync_outcomes",
    ["transactions", "log_events"],
    "Per day: transactions by outcome, reconciled against the 'event published' messages.",
    [
        dg.AssetCheckSpec(
            "every_transaction_accounted_for",
            asset="sync_outcomes",
            description="Outcomes add up and published = applied.",
        )
    ],
)
def sync_outcomes(warehouse: Warehouse, table: pa.Table, metadata: dict[str, Any]):
    frame = table.to_pandas()
    unbalanced = frame[~frame["all_accounted_for"] | (frame["published_without_transaction"] != 0)]
    metadata["totals"] = dg.MetadataValue.json(
        {
            column: int(frame[column].sum())
            for column in (
                "transactions",
                "applied",
                "skipped",
                "rejected",
                "failed",
                "unknown",
                "published_events",
            )
        }
    )
    return [
        dg.AssetCheckResult(
            check_name="every_transaction_accounted_for",
            passed=unbalanced.empty,
            metadata={
                "days that do not add up": dg.MetadataValue.json(
                    [str(day) for day in unbalanced["day"].head(20)]
                )
            },
        )
    ]


@_history_asset(
    "user_summary",
    ["transactions", "user_exposure", "ledger_breaks", "anomaly_scores"],
    "Per user: currency, transactions, credits, debits, amounts, first and last activity, discrepancy "
    "events, exposure, breaks and anomalies.",
)
def user_summary(warehouse: Warehouse, table: pa.Table, metadata: dict[str, Any]):
    return []


HISTORY_ASSETS = [ledger_breaks, user_exposure, overdrafts, sync_outcomes, user_summary]
