"""Column types and descriptions of every warehouse table, in one place, and the conversion of rows
into Arrow tables.

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

# What each column holds, written once for the Dagster column schemas and the report's Column
# Definitions: by name, the same in every table that has the column...
COLUMN_DESCRIPTIONS: dict[str, str] = {
    # where a row comes from
    "day": "UTC day of the Lambda invocation that logged the row (the day of its START line).",
    "occurred_at": "When the row was logged (UTC).",
    "stream": "Log stream folder.",
    "file": "File in the stream folder.",
    "line": "Line in the file where the record starts.",
    "request_id": "Lambda request id of the invocation.",
    # log records
    "level": "Log level of an application line (INFO, WARN, ERROR, ...); empty for platform lines.",
    "kind": "Family of the log record: platform lines (start, end, report, init_start, ...), "
    "application lines (sync_started, sync_published, balance_discrepancy, uncaught_exception, ...), "
    "app_message or unknown for families never seen before.",
    "message": "Text of the record without its object, personal data masked.",
    "payload": "The record's object as JSON (exact decimals as strings), personal data masked.",
    "trailing_text": "Text logged after the record's object, masked.",
    "unit": "record (one log record) or file (a whole file or its damaged end).",
    "reason": "Why it was quarantined.",
    "excerpt": "The start of the text, masked.",
    "records_read": "Records counted in the file's text for that day (typed or quarantined).",
    "bytes_read": "Bytes of the file decompressed (on the stream folder's day; 0 on other days).",
    # invocations
    "started_at": "When the invocation's START line was logged (UTC).",
    "ended_at": "When its END or REPORT line was logged (UTC); empty when it never ended.",
    "duration_ms": "Duration from the REPORT line (ms).",
    "billed_duration_ms": "Billed duration from the REPORT line (ms).",
    "init_duration_ms": "Init duration of a cold start from the REPORT line (ms).",
    "memory_size_mb": "Configured memory size (MB).",
    "max_memory_used_mb": "Largest peak memory used (MB).",
    "cold_start": "TRUE when the invocation started a new execution environment (an INIT_START or "
    "an init duration).",
    "init_starts": "INIT_START lines that belong to the invocation.",
    "error_type": "Error type as logged.",
    "runtime_version": "Lambda runtime version (from the INIT_START lines).",
    "errors": "Errors of any kind.",
    # transactions and balances
    "transaction_id": "Id of the balance-sync transaction (as logged).",
    "message_id": "Id of the SQS message that carried the transaction.",
    "user_id": "Subscriber id.",
    "currency": "Currency of the user's balance.",
    "type": "CREDIT or DEBIT (inferred from the balances for legacy rows without a type).",
    "type_inferred": "TRUE when the direction was inferred from the balances.",
    "source": "Where the transaction came from (PAYMENT, MANUAL_DEDUCTION, ...).",
    "action": "Business action of the transaction.",
    "amount": "Amount as logged, VAT included.",
    "vat": "VAT part of the amount.",
    "old_balance": "Subscription balance before the transaction.",
    "new_balance": "Subscription balance after the transaction (never applied when rejected).",
    "payment_balance": "Payment balance logged with the transaction.",
    "update_payment_balance": "The transaction's updatePaymentBalance flag, as logged.",
    "metadata": "The transaction's metadata object as JSON, as logged.",
    "outcome": "applied, skipped, rejected, failed or unknown: what the service did with the "
    "transaction.",
    "outcome_detail": "The message that decided the outcome.",
    "times_logged": "How many times a discrepancy was logged for the user.",
    "subscription_balance": "Subscription balance logged with the discrepancy.",
    "gap": "subscription_balance - payment_balance: positive = revenue at risk, negative = owed to "
    "the user.",
    "current_balance": "The user's balance when the service refused the transaction.",
    "attempted_new_balance": "The balance the transaction would have left (when it was logged).",
    "detail": "The error's object as JSON, masked.",
    # anomalies and ledger checks
    "score": "Anomaly score: higher is more unusual.",
    "is_anomaly": "TRUE when the transaction is among the most unusual of its window (flagged).",
    "reasons": "Why the transaction looks unusual.",
    "window_rows": "Transactions of the window of days the model was fitted on.",
    "contamination": "The share of its window the model flags (run configuration): what the "
    "anomaly_share check compares the share flagged with.",
    "rule": "arithmetic (new = old +/- (amount - vat)) or continuity (starts where the previous "
    "applied sync ended).",
    "expected": "What the rule expects.",
    "actual": "What was logged.",
    "difference": "actual - expected.",
    "previous_transaction_id": "The previous applied transaction (continuity).",
    # exposure and cases
    "latest_subscription_balance": "Subscription balance at the latest discrepancy.",
    "latest_payment_balance": "Payment balance at the latest discrepancy.",
    "latest_gap": "The user's latest logged gap.",
    "exposure_type": "over_credited (revenue at risk), under_credited (owed to the user) or in_sync.",
    "first_seen": "First time a discrepancy was logged for the user.",
    "last_seen": "Last time a discrepancy was logged for the user.",
    "distinct_gaps": "How many different gap values were logged.",
    "latest_transaction_id": "The transaction being synced when the latest discrepancy was logged.",
    "later_applied_transactions": "Applied syncs of the user after the last discrepancy (it may "
    "have been fixed since).",
    "balance_before": "Balance before the overdraft.",
    "balance_after": "Balance the transaction would leave or left.",
    "transactions": "Transactions.",
    "applied": "Transactions applied (the balance update was published).",
    "skipped": "Transactions skipped (already synced, or nothing to do).",
    "rejected": "Transactions refused because the balance would go below zero.",
    "failed": "Transactions that failed (an error, or the invocation crashed or timed out).",
    "unknown": "Transactions without any outcome logged.",
    "published_events": "'SubscriptionBalanceUpdated event published' messages.",
    "published_without_transaction": "Published events minus applied transactions (0 when they "
    "match).",
    "all_accounted_for": "TRUE when the outcomes add up to the transactions.",
    "credits": "Credit transactions.",
    "debits": "Debit transactions.",
    "credited_amount": "Sum of the applied credits.",
    "debited_amount": "Sum of the applied debits.",
    "first_activity": "The user's first transaction (UTC).",
    "last_activity": "The user's last transaction (UTC).",
    "discrepancy_events": "Discrepancies logged for the user.",
    "ledger_breaks": "Ledger breaks of the user's transactions.",
    "anomalies": "Transactions flagged as anomalous.",
    "status": "open, probably_resolved (applied syncs followed without the gap being logged again) "
    "or resolved (a zero gap logged).",
    "opened_at": "When the case was first logged (UTC).",
    "opened_day": "UTC day the case was first logged.",
    "last_seen_at": "When the case was last logged (UTC).",
    "resolved_at": "When the case was resolved or probably resolved (UTC).",
    "resolved_day": "UTC day it was resolved or probably resolved.",
    "resolved_transaction_id": "The sync that resolved it (zero gap) or that followed it (probably "
    "resolved).",
    "revenue_at_risk": "Sum of positive latest gaps: money users can spend that was never paid.",
    "owed_to_user": "Minus the latest gap when negative: owed to the user.",
    "owed_to_users": "Sum of negative latest gaps, as a positive amount: money owed to users.",
    "later_applied_syncs": "Applied syncs of the user in that currency after the gap was last "
    "logged.",
    "age_days": "Days from the first log of the case to the end of the period.",
    "age_bucket": "0-7, 8-30, 31-90 or over 90 days.",
    "days_since_last_seen": "Days from the last log of the case to the end of the period.",
    "opened_transaction_id": "The sync being processed when the gap was first logged.",
    "opened_action": "Its action.",
    "opened_source": "Its source.",
    "negative_payment_balance": "TRUE when the latest payment balance is below zero (suspect).",
    "mirrors_transaction_id": "A refused or failed sync of the same user and currency whose amount "
    "equals the gap (suspect).",
    "mirrors_outcome": "rejected or failed.",
    "mirrors_basis": "amount, or amount net of VAT.",
    "mirrors_amount": "The mirrored amount.",
    "users_over_credited": "Users whose latest gap is positive.",
    "users_under_credited": "Users whose latest gap is negative.",
    "cases_opened": "Cases first logged that day.",
    "cases_resolved": "Cases resolved that day.",
    "cases_probably_resolved": "Cases probably resolved that day.",
    # days and runtime health
    "weekday": "Day of the week.",
    "has_logs": "TRUE when the day holds at least one log record (a day without is a finding).",
    "records": "Log records read that day.",
    "streams": "Log streams with records that day.",
    "invocations": "Lambda invocations.",
    "runtime_versions": "Lambda runtime versions that ran that day (from the INIT_START lines).",
    "function_versions": "Function versions seen.",
    "first_day": "First day it ran.",
    "last_day": "Last day it ran.",
    "days": "Days it ran.",
    "cold_starts": "Invocations that started a new execution environment.",
    "cold_start_share": "Share of invocations that were cold starts.",
    "failed_inits": "Cold starts that failed before the handler ran.",
    "init_duration_p50_ms": "Median init duration of successful cold starts (ms).",
    "init_duration_p95_ms": "95th percentile of init duration (ms).",
    "duration_p50_ms": "Median invocation duration (ms).",
    "duration_p95_ms": "95th percentile of invocation duration (ms).",
    "duration_p99_ms": "99th percentile of invocation duration (ms).",
    "duration_max_ms": "Longest invocation (ms).",
    "billed_seconds": "Billed duration (s).",
    "memory_sizes_mb": "Configured memory sizes seen (MB).",
    "memory_size_mb_most_used": "The configured memory size most invocations ran with (MB).",
    "failed_invocations": "Invocations that ended in error, timed out or never ended.",
    "failed_syncs_in_successful_invocations": "Syncs that failed inside an invocation that ended "
    "'success'.",
    "processing_errors": "Errors other than discrepancies, linked to a transaction or not.",
    "errors_by_type": "Processing errors by type: count, most frequent first.",
    "days_affected": "Days with at least one such error.",
    "invocations_affected": "Invocations with at least one such error.",
    "transactions_affected": "Transactions with at least one such error.",
}

# ...except where a table gives the name a meaning of its own.
TABLE_COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "quarantine": {
        "day": "UTC day it is quarantined under (the record's day, or its stream folder's day).",
        "occurred_at": "When the record was logged (UTC); empty for a file or an impossible time.",
    },
    "ingest_manifest": {"day": "UTC day the file's records were read for."},
    "invocations": {
        "max_memory_used_mb": "Peak memory the invocation used (MB).",
        "status": "success, error (the runtime reported an error or init failed), timeout, or "
        "incomplete (no END or REPORT).",
        "error_type": "Error type of a failed invocation, as logged.",
        "runtime_version": "Lambda runtime version from the invocation's INIT_START line (cold "
        "starts only).",
        "transactions": "Transactions whose sync started in the invocation.",
        "errors": "Error records logged in the invocation.",
    },
    "transactions": {
        "times_logged": "How many times the transaction was logged (SQS redeliveries).",
        "line": "Line in the file where the transaction's sync started.",
    },
    "balance_discrepancies": {
        "payment_balance": "Payment balance logged with the discrepancy.",
        "transaction_id": "The transaction being synced when the discrepancy was logged.",
    },
    "negative_balance_rejections": {
        "amount": "Amount of the refused transaction (when it was logged).",
    },
    "processing_errors": {
        "kind": "Family of the error's record: uncaught_exception, runtime_error, or another "
        "ERROR line.",
        "message": "The error's message (its errorMessage when it logged one), masked.",
        "transaction_id": "The transaction being synced when the error was logged (empty: none).",
        "action": "Action of that transaction.",
    },
    "anomaly_scores": {"day": "UTC day of the transaction scored."},
    "overdrafts": {
        "kind": "attempted (refused by the service) or applied (a balance taken below zero).",
        "outcome": "What became of the transaction: refused, or applied below zero.",
    },
    "sync_outcomes": {
        "day": "UTC day (a log day).",
        "transactions": "Transactions of the day.",
    },
    "user_summary": {
        "currency": "The user's currencies.",
        "transactions": "Transactions of the user.",
        "latest_gap": "The user's latest logged gap (of the currency logged last).",
    },
    "discrepancy_cases": {
        "times_logged": "How many times the case's gap was logged.",
        "revenue_at_risk": "The latest gap when positive (0 once resolved): revenue at risk.",
        "exposure_type": "over_credited, under_credited or in_sync, from the latest gap.",
    },
    "exposure_daily": {
        "day": "UTC day: figures as known at its end.",
        "currency": "Currency (unknown for a gap whose currency could not be told).",
        "revenue_at_risk": "Sum of the positive latest gaps known at the end of the day.",
        "owed_to_users": "Sum of the negative latest gaps known at the end of the day, as a "
        "positive amount.",
    },
    "calendar": {
        "day": "UTC day of the period.",
        "invocations": "Lambda invocations that day.",
        "transactions": "Transactions that day.",
    },
    "runtime_daily": {"day": "UTC day of the period (zeros on days without invocations)."},
    "error_types": {
        "kind": "Family of the error records: uncaught_exception, runtime_error, or another ERROR line.",
        "errors": "Errors of this type and kind.",
        "message": "The first message logged for the type.",
        "first_seen": "First time the error was logged (UTC).",
        "last_seen": "Last time the error was logged (UTC).",
    },
}


def column_description(table: str, column: str) -> str:
    """What ``column`` of ``table`` holds ("" for a column nobody described)."""
    return TABLE_COLUMN_DESCRIPTIONS.get(table, {}).get(column) or COLUMN_DESCRIPTIONS.get(
        column, ""
    )


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
