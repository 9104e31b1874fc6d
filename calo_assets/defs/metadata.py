"""Metadata attached to materializations: row counts, figures (from ``calo_assets.metrics``), a
preview, column schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa

# Not exported by dagster: what an evaluation says it checked (Dagster fills it in for the results
# of AssetCheckResult; an evaluation per partition has to name its partition's materialization).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from calo_assets import metrics
from calo_assets.checks import CheckOutcome
from calo_assets.money import plain_decimal
from calo_assets.tables.schema import SCHEMAS
from calo_assets.warehouse import Warehouse

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60


def schema_metadata(table: str) -> dict[str, Any]:
    """Definition metadata of a warehouse table: its columns, types and descriptions."""
    from calo_assets.tables.schema import column_description

    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(
                    field.name, str(field.type), description=column_description(table, field.name)
                )
                for field in SCHEMAS[table]
            ]
        )
    }


def _cell(value: Any) -> str:
    # Money is exact decimal text: never 1.2E+2, 0E-18 or Arrow's 18 digits of scale.
    text = (
        "" if value is None else plain_decimal(value) if isinstance(value, Decimal) else str(value)
    )
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def _days_text(days: list[str]) -> str:
    if not days:
        return "none"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]} ({len(days)} days)"


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """A core check's outcome as Dagster's check result."""
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=outcome.asset,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity[outcome.severity],
        metadata={
            **({"summary": outcome.summary} if outcome.summary else {}),
            **{key: _metadata_value(value) for key, value in outcome.metadata.items()},
        },
    )


def _metadata_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return dg.MetadataValue.json(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    return value


def preview_value(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows as Dagster table metadata: every column shows, cells as short text."""
    names = table.column_names
    records = [
        dg.TableRecord({name: _cell(row[name]) for name in names})
        for row in table.slice(0, rows).to_pylist()
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in names])
    return dg.MetadataValue.table(records, schema)


def materialize_days(
    context: dg.AssetExecutionContext,
    asset: str,
    per_day: dict[str, dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dg.MaterializeResult:
    """The materialization of ``asset`` for the run's days, each partition with its own figures.

    A range of days is one run and one step, and Dagster records one materialization per partition:
    each day's figures (``per_day``: row count, preview, counts) are attached to its own partition
    with ``add_asset_metadata(partition_key=...)``, so a partition never shows another day's or the
    range's figures, and its numbers are what the Plots tab draws. ``extra`` is what is true of the whole
    run (files read, ...), shown on every partition of it.
    """
    days = list(per_day)
    for day, figures in per_day.items():
        context.add_asset_metadata(figures, asset_key=asset, partition_key=day)
    metadata: dict[str, Any] = {**(extra or {})}
    if len(days) > 1:
        rows = sum(figures["dagster/row_count"] for figures in per_day.values())
        # Text, not a number: a range total must not plot as a day's figure.
        metadata["this run"] = dg.MetadataValue.text(
            f"{_days_text(days)}, {rows:,} rows in all (each partition shows its own day)"
        )
    return dg.MaterializeResult(asset_key=asset, metadata=metadata)


def materialize_table_days(
    context: dg.AssetExecutionContext, store: Warehouse, names: list[str], days: list[str]
) -> Iterator[dg.MaterializeResult]:
    """Materialize daily tables from their written files, every partition with its own figures."""
    for name, per_day in table_days_figures(store, names, days).items():
        yield materialize_days(context, name, per_day)


def table_days_figures(
    store: Warehouse, names: list[str], days: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per table of ``names``, per day: its row count (its file's footer), its figures
    (``metrics``, the ones ``PARTITION_METRICS`` names for it) and its first rows; the figures of
    every table from one connection."""
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    wanted = {name: metrics.PARTITION_METRICS.get(name, ()) for name in names}
    with store.connect(empty_tables=metrics.INPUTS) as connection:
        every = [metric for chosen in wanted.values() for metric in chosen]
        figures = metrics.daily_figures(connection, every, first, last)
    per_table: dict[str, dict[str, dict[str, Any]]] = {}
    for name, chosen in wanted.items():
        per_table[name] = {}
        for day in days:
            rows, head = store.day_head(name, day, PREVIEW_ROWS)
            shown = [figure for figure in figures[date.fromisoformat(day)] if figure.name in chosen]
            per_table[name][day] = {
                "dagster/row_count": rows,
                **figure_metadata(shown),
                "preview": preview_value(head),
            }
    return per_table


def figure_metadata(figures: list[metrics.Figure]) -> dict[str, Any]:
    """Figures as metadata, by name: a count or total as a number (the Plots tab draws it), the
    values per currency as JSON (money as exact decimal text)."""
    shown: dict[str, Any] = {}
    for figure in figures:
        value = plain_decimal(figure.value) if figure.unit == metrics.MONEY else figure.value
        if figure.currency is None:
            shown[figure.name] = value
        else:
            shown.setdefault(f"{figure.name} by currency", {})[figure.currency] = value
    return {
        key: dg.MetadataValue.json(value) if isinstance(value, dict) else value
        for key, value in shown.items()
    }


def check_evaluations(
    outcomes: dict[str | None, CheckOutcome], latest: LatestMaterializations
) -> list[dg.AssetCheckEvaluation]:
    """Core check outcomes of one check, by partition of its table (``None``: for the whole table),
    each tied to that partition's latest materialization (``latest``) as Dagster ties a check result
    it builds itself: the UI counts a partition's check as passed or failed only when it targets that
    materialization."""
    if not outcomes:
        return []
    asset_key = dg.AssetKey(next(iter(outcomes.values())).asset)
    found = latest(asset_key, list(outcomes))
    evaluations = []
    for partition, outcome in outcomes.items():
        result, record = check_result(outcome), found.get(partition)
        target = (
            AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
            if record
            else None
        )
        evaluations.append(
            dg.AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=outcome.name,
                passed=outcome.passed,
                metadata=result.metadata,
                target_materialization_data=target,
                severity=result.severity,
                partition=partition,
            )
        )
    return evaluations


class LatestMaterializations:
    """The latest materialization of each partition of an asset, looked up once per asset and
    partitions in a step (the checks of one table share the lookup)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._found: dict[tuple[dg.AssetKey, tuple[str | None, ...]], dict] = {}

    def __call__(
        self, asset_key: dg.AssetKey, partitions: list[str | None]
    ) -> dict[str | None, dg.EventLogRecord]:
        key = (asset_key, tuple(partitions))
        if key not in self._found:
            self._found[key] = _latest_materializations(asset_key, partitions, self._instance)
        return self._found[key]


def _latest_materializations(
    asset_key: dg.AssetKey, partitions: list[str | None], instance: dg.DagsterInstance
) -> dict[str | None, dg.EventLogRecord]:
    """The latest materialization of each partition (``None``: of the asset), newest first in one
    query; a partition materialized many times since is looked up alone."""
    latest: dict[str | None, dg.EventLogRecord] = {}
    days = [partition for partition in partitions if partition is not None]
    if days:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=days), limit=4 * len(days)
        ).records
        for record in records:  # newest first
            latest.setdefault(record.partition_key, record)
    for partition in [partition for partition in partitions if partition not in latest]:
        filter_ = dg.AssetRecordsFilter(
            asset_key=asset_key, asset_partitions=[partition] if partition else None
        )
        records = instance.fetch_materializations(filter_, limit=1).records
        if records:
            latest[partition] = records[0]
    return latest
