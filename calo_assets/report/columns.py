"""Words for the workbook: what each sheet shows and what each column means."""

from __future__ import annotations

from calo_assets.tables.schema import COLUMN_DESCRIPTIONS, SCHEMAS, column_description

SHEET_PURPOSES = {
    "Overview": "exposure now and before, its trend, open cases by age, what needs action, the largest gaps.",
    "Daily": "every UTC day of the period: transactions by direction, discrepancy events, anomalies, invocations, failed invocations and processing errors.",
    "Transactions": "every balance sync of the period with exact amounts, direction and outcome.",
    "Balance Discrepancies": "every 'not in sync' event with both balances and the gap (subscription - payment).",
    "User Exposure": "per user and currency, the latest gap (over-credited: revenue at risk; under-credited: owed to the user).",
    "Exposure by Currency": "revenue at risk and amount owed to users per currency (latest gap per user, never summed over events).",
    "User Errors": "per user, the errors that hit them, when, the action that failed most, and their exposure.",
    "Ledger Breaks": "transactions whose balances do not add up (arithmetic) or do not follow the previous applied sync (continuity).",
    "Overdrafts": "attempted overdrafts (refused by the service) and applied ones (a balance taken below zero), kept apart.",
    "Anomalies": "transactions the IsolationForest model flagged, most unusual first, with the reasons in words.",
    "By Action": "transactions, discrepancies and processing errors per action.",
    "Top Users": "the ten users with the largest applied volume, per currency.",
    "Runtime Health": "every day of the period: invocations, cold starts, failures, durations, memory, errors and the runtime versions that ran.",
    "Runtime Versions": "the same measures per Lambda runtime version (whole history), with the days each ran.",
    "Errors by Type": "processing errors (other than discrepancies) by kind and type, with the first message (whole history).",
    "Data Quality": "what could not be read or parsed (quarantine), with the reason and where it was.",
    "Checks": "data checks over the period and whether they passed.",
    "Discrepancy Cases": "one row per user and currency ever out of sync: status, age, latest gap, origin and suspicion flags.",
    "Exposure Trend": "per currency and day, revenue at risk and amount owed as known at the end of the day, and cases opened and resolved.",
    "User Detail": "the users named on the Overview: cases, gap history, latest transactions, rejections, anomalies.",
    "Column Definitions": "what every column of every sheet means.",
}

# The sheets that show (some columns of) one warehouse table: their columns mean what they mean there.
SHEET_TABLES = {
    "Transactions": "transactions",
    "Balance Discrepancies": "balance_discrepancies",
    "Discrepancy Cases": "discrepancy_cases",
    "User Exposure": "user_exposure",
    "Exposure Trend": "exposure_daily",
    "Ledger Breaks": "ledger_breaks",
    "Overdrafts": "overdrafts",
    "Anomalies": "anomaly_scores",
    "Runtime Health": "runtime_daily",
    "Runtime Versions": "runtime_versions",
    "Errors by Type": "error_types",
    "Data Quality": "quarantine",
}

# Columns only the report computes (the others are described with the warehouse's tables).
REPORT_COLUMNS = {
    "day": "UTC day.",
    "users_in_sync": "Users whose latest gap is within 0.0005.",
    "errors": "Errors of any kind.",
    "discrepancies": "Balance discrepancy events.",
    "rejections": "Negative-balance rejections.",
    "first_error": "First error (UTC).",
    "last_error": "Last error (UTC).",
    "action_that_failed_most": "The action most often involved in the user's errors.",
    "volume": "Sum of applied amounts.",
    "check": "What is checked.",
    "passed": "TRUE when the check holds.",
    "detail": "The figures behind the result.",
    "sheet": "Sheet of the workbook.",
    "column": "Column of that sheet.",
    "meaning": "What the column means.",
}


def column_meaning(sheet: str, column: str) -> str:
    """What ``column`` of ``sheet`` means: from its warehouse table, else from the report's own."""
    table = SHEET_TABLES.get(sheet)
    if table is not None and column in SCHEMAS[table].names:
        return column_description(table, column)
    return REPORT_COLUMNS.get(column) or COLUMN_DESCRIPTIONS.get(column, "")
