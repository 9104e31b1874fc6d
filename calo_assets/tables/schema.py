"""Column types of every warehouse table, in one place, and the conversion of rows into Arrow tables.

Timestamps are UTC (``timestamp[ms, UTC]``), days are dates, money is ``decimal128(38, 18)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.money import MONEY_TYPE

TIMESTAMP = pa.timestamp("ms", tz="UTC")
DAY = pa.date32()
MONEY = MONEY_TYPE
TEXT = pa.string()
INT = pa.int64()
FLAG = pa.bool_()
RATIO = pa.float64()  # shares, durations, percentiles

# The runtime-health columns shared by runtime_daily (per day) and runtime_versions (per version).
_RUNTIME_HEALTH = [
    ("invocations", INT),
    ("cold_starts", INT),
    ("cold_start_share", RATIO),
    ("failed_inits", INT),
    ("init_duration_p50_ms", RATIO),
    ("init_duration_p95_ms", RATIO),
    ("duration_p50_ms", RATIO),
    ("duration_p95_ms", RATIO),
    ("duration_p99_ms", RATIO),
    ("duration_max_ms", RATIO),
    ("billed_seconds", RATIO),
    ("memory_sizes_mb", TEXT),
    ("memory_size_mb_most_used", INT),
    ("max_memory_used_mb", INT),
    ("failed_invocations", INT),
    ("failed_syncs_in_successful_invocations", INT),
    ("processing_errors", INT),
    ("errors_by_type", TEXT),
]

SCHEMAS: dict[str, pa.Schema] = {
    "log_events": pa.schema(
        [
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("stream", TEXT),
            ("file", TEXT),
            ("line", INT),
            ("request_id", TEXT),
            ("level", TEXT),
            ("kind", TEXT),
            ("message", TEXT),
            ("payload", TEXT),
            ("trailing_text", TEXT),
        ]
    ),
    "quarantine": pa.schema(
        [
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("stream", TEXT),
            ("file", TEXT),
            ("line", INT),
            ("unit", TEXT),
            ("reason", TEXT),
            ("excerpt", TEXT),
        ]
    ),
    "ingest_manifest": pa.schema(
        [("day", DAY), ("stream", TEXT), ("file", TEXT), ("records_read", INT), ("bytes_read", INT)]
    ),
    "invocations": pa.schema(
        [
            ("request_id", TEXT),
            ("day", DAY),
            ("started_at", TIMESTAMP),
            ("ended_at", TIMESTAMP),
            ("duration_ms", pa.float64()),
            ("billed_duration_ms", pa.float64()),
            ("init_duration_ms", pa.float64()),
            ("memory_size_mb", INT),
            ("max_memory_used_mb", INT),
            ("cold_start", FLAG),
            ("init_starts", INT),
            ("status", TEXT),
            ("error_type", TEXT),
            ("runtime_version", TEXT),
            ("transactions", INT),
            ("errors", INT),
            ("stream", TEXT),
        ]
    ),
    "transactions": pa.schema(
        [
            ("transaction_id", TEXT),
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("request_id", TEXT),
            ("message_id", TEXT),
            ("user_id", TEXT),
            ("type", TEXT),
            ("type_inferred", FLAG),
            ("source", TEXT),
            ("action", TEXT),
            ("currency", TEXT),
            ("amount", MONEY),
            ("vat", MONEY),
            ("old_balance", MONEY),
            ("new_balance", MONEY),
            ("payment_balance", MONEY),
            ("update_payment_balance", FLAG),
            ("metadata", TEXT),
            ("outcome", TEXT),
            ("outcome_detail", TEXT),
            ("times_logged", INT),
            ("stream", TEXT),
            ("line", INT),
        ]
    ),
    "balance_discrepancies": pa.schema(
        [
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("request_id", TEXT),
            ("user_id", TEXT),
            ("currency", TEXT),
            ("subscription_balance", MONEY),
            ("payment_balance", MONEY),
            ("gap", MONEY),
            ("transaction_id", TEXT),
            ("action", TEXT),
            ("stream", TEXT),
            ("line", INT),
        ]
    ),
    "negative_balance_rejections": pa.schema(
        [
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("request_id", TEXT),
            ("user_id", TEXT),
            ("transaction_id", TEXT),
            ("currency", TEXT),
            ("current_balance", MONEY),
            ("amount", MONEY),
            ("attempted_new_balance", MONEY),
            ("action", TEXT),
            ("stream", TEXT),
            ("line", INT),
        ]
    ),
    "processing_errors": pa.schema(
        [
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("request_id", TEXT),
            ("kind", TEXT),
            ("error_type", TEXT),
            ("message", TEXT),
            ("user_id", TEXT),
            ("transaction_id", TEXT),
            ("action", TEXT),
            ("detail", TEXT),
            ("stream", TEXT),
            ("line", INT),
        ]
    ),
    "anomaly_scores": pa.schema(
        [
            ("transaction_id", TEXT),
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("user_id", TEXT),
            ("currency", TEXT),
            ("score", pa.float64()),
            ("is_anomaly", FLAG),
            ("reasons", TEXT),
            ("window_rows", INT),
            ("contamination", pa.float64()),
        ]
    ),
    "ledger_breaks": pa.schema(
        [
            ("user_id", TEXT),
            ("transaction_id", TEXT),
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("currency", TEXT),
            ("type", TEXT),
            ("type_inferred", FLAG),
            ("outcome", TEXT),
            ("rule", TEXT),
            ("expected", MONEY),
            ("actual", MONEY),
            ("difference", MONEY),
            ("previous_transaction_id", TEXT),
        ]
    ),
    "user_exposure": pa.schema(
        [
            ("user_id", TEXT),
            ("currency", TEXT),
            ("latest_subscription_balance", MONEY),
            ("latest_payment_balance", MONEY),
            ("latest_gap", MONEY),
            ("exposure_type", TEXT),
            ("first_seen", TIMESTAMP),
            ("last_seen", TIMESTAMP),
            ("times_logged", INT),
            ("distinct_gaps", INT),
            ("latest_transaction_id", TEXT),
            ("later_applied_transactions", INT),
        ]
    ),
    "overdrafts": pa.schema(
        [
            ("kind", TEXT),
            ("day", DAY),
            ("occurred_at", TIMESTAMP),
            ("user_id", TEXT),
            ("transaction_id", TEXT),
            ("currency", TEXT),
            ("action", TEXT),
            ("balance_before", MONEY),
            ("amount", MONEY),
            ("balance_after", MONEY),
            ("outcome", TEXT),
            ("stream", TEXT),
            ("line", INT),
        ]
    ),
    "sync_outcomes": pa.schema(
        [
            ("day", DAY),
            ("transactions", INT),
            ("applied", INT),
            ("skipped", INT),
            ("rejected", INT),
            ("failed", INT),
            ("unknown", INT),
            ("published_events", INT),
            ("published_without_transaction", INT),
            ("all_accounted_for", FLAG),
        ]
    ),
    "user_summary": pa.schema(
        [
            ("user_id", TEXT),
            ("currency", TEXT),
            ("transactions", INT),
            ("credits", INT),
            ("debits", INT),
            ("credited_amount", MONEY),
            ("debited_amount", MONEY),
            ("rejected", INT),
            ("failed", INT),
            ("first_activity", TIMESTAMP),
            ("last_activity", TIMESTAMP),
            ("discrepancy_events", INT),
            ("latest_gap", MONEY),
            ("exposure_type", TEXT),
            ("ledger_breaks", INT),
            ("anomalies", INT),
        ]
    ),
    "discrepancy_cases": pa.schema(
        [
            ("user_id", TEXT),
            ("currency", TEXT),
            ("status", TEXT),
            ("opened_at", TIMESTAMP),
            ("opened_day", DAY),
            ("last_seen_at", TIMESTAMP),
            ("resolved_at", TIMESTAMP),
            ("resolved_day", DAY),
            ("resolved_transaction_id", TEXT),
            ("latest_gap", MONEY),
            ("latest_subscription_balance", MONEY),
            ("latest_payment_balance", MONEY),
            ("exposure_type", TEXT),
            ("revenue_at_risk", MONEY),
            ("owed_to_user", MONEY),
            ("times_logged", INT),
            ("distinct_gaps", INT),
            ("later_applied_syncs", INT),
            ("age_days", INT),
            ("age_bucket", TEXT),
            ("days_since_last_seen", INT),
            ("opened_transaction_id", TEXT),
            ("opened_action", TEXT),
            ("opened_source", TEXT),
            ("negative_payment_balance", FLAG),
            ("mirrors_transaction_id", TEXT),
            ("mirrors_outcome", TEXT),
            ("mirrors_basis", TEXT),
            ("mirrors_amount", MONEY),
        ]
    ),
    "exposure_daily": pa.schema(
        [
            ("day", DAY),
            ("currency", TEXT),
            ("revenue_at_risk", MONEY),
            ("owed_to_users", MONEY),
            ("users_over_credited", INT),
            ("users_under_credited", INT),
            ("cases_opened", INT),
            ("cases_resolved", INT),
            ("cases_probably_resolved", INT),
        ]
    ),
    "calendar": pa.schema(
        [
            ("day", DAY),
            ("weekday", TEXT),
            ("has_logs", FLAG),
            ("records", INT),
            ("streams", INT),
            ("invocations", INT),
            ("transactions", INT),
        ]
    ),
    "runtime_daily": pa.schema(
        [
            ("day", DAY),
            ("runtime_versions", TEXT),
            *_RUNTIME_HEALTH,
        ]
    ),
    "runtime_versions": pa.schema(
        [
            ("runtime_version", TEXT),
            ("function_versions", TEXT),
            ("first_day", DAY),
            ("last_day", DAY),
            ("days", INT),
            *_RUNTIME_HEALTH,
        ]
    ),
    "error_types": pa.schema(
        [
            ("error_type", TEXT),
            ("kind", TEXT),
            ("errors", INT),
            ("message", TEXT),
            ("first_seen", TIMESTAMP),
            ("last_seen", TIMESTAMP),
            ("days_affected", INT),
            ("invocations_affected", INT),
            ("transactions_affected", INT),
        ]
    ),
}

_PARSED_FROM_TEXT = (pa.types.is_timestamp, pa.types.is_date)


def to_table(name: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts) as an Arrow table with the schema of ``name``; ISO texts become dates and times."""
    rows = list(rows)
    return from_columns(
        name, {field: [row.get(field) for row in rows] for field in SCHEMAS[name].names}
    )


def from_columns(name: str, columns: Mapping[str, list[Any]]) -> pa.Table:
    """Columns (lists of Python values) as an Arrow table with the schema of ``name``.

    ISO texts become dates and times; a column missing from ``columns`` is null.
    """
    schema = SCHEMAS[name]
    length = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        if values is None:
            arrays.append(pa.nulls(length, field.type))
            continue
        try:
            column = pa.array(values, type=field.type)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            if not any(check(field.type) for check in _PARSED_FROM_TEXT):
                raise
            column = pa.array(values, type=TEXT).cast(field.type)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows of an Arrow table as dicts, with dates and timestamps as ISO texts (fast to convert back)."""
    for index, field in enumerate(table.schema):
        if any(check(field.type) for check in _PARSED_FROM_TEXT):
            table = table.set_column(index, field.name, pc.cast(table[field.name], TEXT))
    return table.to_pylist()


def with_corrections(
    table: pa.Table, corrections: Mapping[int, Mapping[str, Any]], first_row: int = 0
) -> pa.Table:
    """``table`` with some cells replaced, its rows and their order unchanged.

    ``corrections`` maps a row number to the new values of some of its columns; rows are numbered
    from ``first_row`` (the number of the table's first row, when it is a part of a bigger table).
    """
    rows = {
        row - first_row: values
        for row, values in corrections.items()
        if first_row <= row < first_row + table.num_rows
    }
    for name in dict.fromkeys(name for values in rows.values() for name in values):
        index = table.schema.get_field_index(name)
        column = table[name].to_pylist()
        for row, values in rows.items():
            if name in values:
                column[row] = values[name]
        field = table.schema.field(index)
        table = table.set_column(index, field, pa.array(column, field.type))
    return table
