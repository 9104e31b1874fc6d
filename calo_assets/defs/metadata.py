"""Metadata attached to materializations: row counts, days covered, a preview, column schema."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal, localcontext
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

# Not exported by dagster: what an evaluation says it checked (Dagster fills it in for the results
# of AssetCheckResult; an evaluation per partition has to name its partition's materialization).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from calo_assets.checks import CheckOutcome
from calo_assets.money import plain_decimal
from calo_assets.tables.schema import SCHEMAS
from calo_assets.warehouse import Warehouse

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60
MAX_DIGITS = 80  # enough for any sum of Arrow's 38-digit decimals


class TableSummary:
    """What a table's metadata shows, gathered from its parts in order (never the whole table).

    Rows, the first rows for the preview, the value counts of ``counted`` columns and, for each
    ``(key, value)`` of ``summed``, the sum of ``value`` per ``key`` in the order keys first appear.
    """

    def __init__(
        self,
        name: str,
        counted: tuple[str, ...] = (),
        summed: tuple[tuple[str, str], ...] = (),
        preview: bool = True,
    ) -> None:
        self.preview = preview
        self.rows = 0
        self.head = SCHEMAS[name].empty_table()
        self.counts: dict[str, Counter[str]] = {column: Counter() for column in counted}
        self.sums: dict[tuple[str, str], dict[str, Decimal | None]] = {pair: {} for pair in summed}

    @property
    def wants_preview(self) -> bool:
        """Whether the preview still needs rows: until it has them, parts must have every column."""
        return self.preview and self.head.num_rows < PREVIEW_ROWS

    @property
    def columns(self) -> list[str]:
        """The columns the summary reads once the preview is full (none: it then only counts rows)."""
        return list(dict.fromkeys([*self.counts, *(name for pair in self.sums for name in pair)]))

    def add(self, part: pa.Table) -> None:
        self.rows += part.num_rows
        if self.wants_preview:
            more = part.slice(0, PREVIEW_ROWS - self.head.num_rows)
            self.head = pa.concat_tables([self.head, more])
        for column, counts in self.counts.items():
            counts.update(value_counts(part, column))
        for (key, value), sums in self.sums.items():
            grouped = part.group_by(key, use_threads=False).aggregate([(value, "sum")])
            for row in grouped.to_pylist():
                total, known = row[f"{value}_sum"], sums.get(str(row[key]))
                with localcontext(prec=MAX_DIGITS):  # exact, as Arrow sums a whole table
                    sums[str(row[key])] = total if known is None else known + (total or 0)

    def value_counts(self, column: str) -> dict[str, int]:
        """``value_counts`` of the whole table."""
        return dict(sorted(self.counts[column].items()))

    def sum_by(self, key: str, value: str) -> dict[str, str]:
        """The sum of ``value`` per ``key`` (plain decimal text, never exponent notation)."""
        return {
            group: plain_decimal(total) if total is not None else "none"
            for group, total in self.sums[key, value].items()
        }


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


def value_counts(table: pa.Table, column: str) -> dict[str, int]:
    """How many rows hold each value of ``column`` (as text), sorted by value."""
    counts: Counter[str] = Counter()
    for item in pc.value_counts(table[column]).to_pylist():  # counted in Arrow: one row per value
        counts[str(item["values"])] += item["counts"]
    return dict(sorted(counts.items()))


def first_rows(store: Warehouse, table: str, day: str, rows: int = PREVIEW_ROWS) -> pa.Table:
    """The first rows of a day of a daily table (only its first row group is read)."""
    for part in store.read_day_in_parts(table, day):
        if part.num_rows:
            return part.slice(0, rows)
    return SCHEMAS[table].empty_table()


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """A core check's outcome as Dagster's check result."""
    return dg.AssetCheckResult(
        check_name=outcome.name,
        asset_key=outcome.asset,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity[outcome.severity],
        metadata={key: _metadata_value(value) for key, value in outcome.metadata.items()},
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


def day_figures(
    summary: TableSummary, counted: tuple[str, ...], summed: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """What one day of a table shows: its row count, first rows, value counts and sums."""
    figures: dict[str, Any] = {"dagster/row_count": summary.rows}
    if summary.preview:
        figures["preview"] = preview_value(summary.head)
    for column in counted:
        figures[f"{column} counts"] = dg.MetadataValue.json(summary.value_counts(column))
    for key, value in summed:
        figures[f"{value} by {key}"] = dg.MetadataValue.json(summary.sum_by(key, value))
    return figures


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
    context: dg.AssetExecutionContext,
    store: Warehouse,
    name: str,
    days: list[str],
    counted: tuple[str, ...] = (),
    summed: tuple[tuple[str, str], ...] = (),
) -> dg.MaterializeResult:
    """Materialize a daily table from its written files, every partition with its own figures."""
    return materialize_days(context, name, table_days_figures(store, name, days, counted, summed))


def table_days_figures(
    store: Warehouse,
    name: str,
    days: list[str],
    counted: tuple[str, ...] = (),
    summed: tuple[tuple[str, str], ...] = (),
) -> dict[str, dict[str, Any]]:
    """Per day: the figures of a daily table, read from its written file in parts."""
    per_day = {}
    for day in days:
        summary = TableSummary(name, counted, summed)
        for part in store.read_day_in_parts(
            name, day, None if summary.wants_preview else summary.columns
        ):
            summary.add(part)
        per_day[day] = day_figures(summary, counted, summed)
    return per_day


def check_evaluation(
    outcome: CheckOutcome, partition: str | None, instance: dg.DagsterInstance
) -> dg.AssetCheckEvaluation:
    """A core check's outcome for one partition of its table (``None``: for the whole table), tied
    to that partition's latest materialization as Dagster ties a check result it builds itself: the
    UI counts a partition's check as passed or failed only when it targets that materialization."""
    result = check_result(outcome)
    asset_key = dg.AssetKey(outcome.asset)
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key, asset_partitions=[partition] if partition is not None else None
        ),
        limit=1,
    ).records
    target = (
        AssetCheckEvaluationTargetMaterializationData(
            storage_id=records[0].storage_id,
            run_id=records[0].run_id,
            timestamp=records[0].timestamp,
        )
        if records
        else None
    )
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        metadata=result.metadata,
        target_materialization_data=target,
        severity=result.severity,
        partition=partition,
    )
