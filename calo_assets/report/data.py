"""What the report shows, read from the warehouse with SQL for a window of days.

Everything here is a pandas DataFrame built by one query each, all on one DuckDB connection; the
workbook, the chart images and the HTML page all draw from the same ``ReportData``, so they cannot
disagree. Rows are fully ordered, so the same warehouse gives the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb
import pandas as pd

from calo_assets.ledger import reconcile
from calo_assets.money import KNOWN_CURRENCIES
from calo_assets.warehouse import Warehouse

_WINDOW = "day between $first and $last"
_KNOWN = ", ".join(f"'{currency}'" for currency in sorted(KNOWN_CURRENCIES))
_KNOWN_TEXT = "'" + ", ".join(sorted(KNOWN_CURRENCIES)) + "'"
_IN_MEMORY = "report_inputs"

QUERIES: dict[str, str] = {
    "transactions": f"""
        select transaction_id, day, occurred_at, user_id, currency, type, type_inferred, source, action,
               amount, vat, old_balance, new_balance, payment_balance, outcome, outcome_detail, request_id
        from transactions where {_WINDOW} order by occurred_at, transaction_id""",
    "discrepancies": f"""
        select day, occurred_at, user_id, currency, subscription_balance, payment_balance, gap,
               transaction_id, action, request_id
        from balance_discrepancies where {_WINDOW}
        order by occurred_at, user_id, request_id, transaction_id, gap""",
    "exposure": """
        select user_id, currency, latest_gap, exposure_type, latest_subscription_balance,
               latest_payment_balance, first_seen, last_seen, times_logged, distinct_gaps,
               later_applied_transactions
        from user_exposure order by currency, latest_gap desc, user_id""",
    "ledger_breaks": f"""
        select day, occurred_at, user_id, transaction_id, currency, rule, expected, actual, difference,
               type, type_inferred, outcome, previous_transaction_id
        from ledger_breaks where {_WINDOW} order by occurred_at, transaction_id, rule""",
    "overdrafts": f"""
        select kind, day, occurred_at, user_id, transaction_id, currency, action, balance_before, amount,
               balance_after, outcome
        from overdrafts where {_WINDOW} order by kind, occurred_at, transaction_id, user_id""",
    "anomalies": f"""
        select a.day, a.occurred_at, a.transaction_id, a.user_id, a.currency, t.action, t.type, t.amount,
               t.old_balance, t.new_balance, round(a.score, 4) as score, a.reasons
        from anomaly_scores a left join transactions t using (transaction_id)
        where a.is_anomaly and a.{_WINDOW} order by a.score desc, a.transaction_id""",
    "user_errors": f"""
        with errors as (
            select user_id, occurred_at, action, 'balance discrepancy' as error from balance_discrepancies
            where {_WINDOW}
            union all
            select user_id, occurred_at, action, error_type from processing_errors
            where {_WINDOW} and user_id is not null
            union all
            select user_id, occurred_at, action, 'negative balance rejection' from negative_balance_rejections
            where {_WINDOW}
        )
        select e.user_id, count(*) as errors,
               count(*) filter (where error = 'balance discrepancy') as discrepancies,
               count(*) filter (where error = 'negative balance rejection') as rejections,
               count(*) filter (where error not in ('balance discrepancy', 'negative balance rejection'))
                   as processing_errors,
               min(occurred_at) as first_error, max(occurred_at) as last_error,
               any_value(a.action) as action_that_failed_most,
               any_value(x.currency) as currency, any_value(x.latest_gap) as latest_gap,
               any_value(x.exposure_type) as exposure_type
        from errors e
        left join (  -- the action named in most of the user's errors (ties: the first by name)
            select user_id, first(action order by errors desc, action) as action
            from (select user_id, action, count(*) as errors from errors where action is not null group by all)
            group by user_id
        ) a using (user_id)
        left join (  -- one row per user (the first currency by name, if a user has several)
            select user_id, first(currency order by currency) as currency,
                   first(latest_gap order by currency) as latest_gap,
                   first(exposure_type order by currency) as exposure_type
            from user_exposure group by user_id
        ) x using (user_id)
        group by e.user_id order by errors desc, e.user_id""",
    "runtime_daily": f"""
        select day, count(*) as invocations, count(*) filter (where cold_start) as cold_starts,
               count(*) filter (where status <> 'success') as failed_invocations,
               round(median(duration_ms), 1) as median_duration_ms,
               round(quantile_cont(duration_ms, 0.95), 1) as p95_duration_ms,
               round(max(duration_ms), 1) as max_duration_ms,
               round(avg(max_memory_used_mb), 1) as avg_memory_mb
        from invocations where {_WINDOW} group by day order by day""",
    "errors_by_type": f"""
        select kind, error_type, count(*) as errors, min(occurred_at) as first_seen, max(occurred_at) as last_seen
        from processing_errors where {_WINDOW} group by 1, 2 order by errors desc, kind, error_type""",
    "daily": f"""
        with t as (
            select day, count(*) filter (where type = 'CREDIT') as credits,
                   count(*) filter (where type = 'DEBIT') as debits, count(*) as transactions
            from transactions where {_WINDOW} group by day),
        d as (select day, count(*) as discrepancies from balance_discrepancies where {_WINDOW} group by day),
        a as (select day, count(*) filter (where is_anomaly) as anomalies from anomaly_scores where {_WINDOW} group by day),
        e as (select day, count(*) as runtime_errors from processing_errors where {_WINDOW} group by day)
        select t.day, credits, debits, transactions, coalesce(discrepancies, 0) as discrepancies,
               coalesce(anomalies, 0) as anomalies, coalesce(runtime_errors, 0) as runtime_errors
        from t left join d using (day) left join a using (day) left join e using (day) order by day""",
    "by_action": f"""
        select coalesce(t.action, '(legacy, no action)') as action, count(*) as transactions,
               count(*) filter (where t.type = 'CREDIT') as credits, count(*) filter (where t.type = 'DEBIT') as debits,
               (select count(*) from balance_discrepancies d where d.action is not distinct from t.action and d.{_WINDOW})
                   as discrepancies,
               (select count(*) from processing_errors p where p.action is not distinct from t.action and p.{_WINDOW})
                   as processing_errors
        from transactions t where t.{_WINDOW} group by t.action order by transactions desc, 1""",
    "top_users": f"""
        select currency, user_id, volume, transactions from (
            select currency, user_id, sum(amount) as volume, count(*) as transactions,
                   row_number() over (partition by currency order by sum(amount) desc, user_id) as rank
            from transactions where {_WINDOW} and outcome = 'applied' group by 1, 2)
        where rank <= 10 order by currency, volume desc, user_id""",
    "kpis": f"""
        with t as (select * from transactions where {_WINDOW})
        select currency,
               coalesce(sum(amount) filter (where type = 'CREDIT' and outcome = 'applied'), 0) as credited,
               coalesce(sum(amount) filter (where type = 'DEBIT' and outcome = 'applied'), 0) as debited,
               count(*) as transactions,
               (select count(distinct user_id) from balance_discrepancies d where d.currency is not distinct from t.currency and d.{_WINDOW})
                   as discrepancy_users,
               (select count(*) from negative_balance_rejections r where r.currency is not distinct from t.currency and r.{_WINDOW})
                   as rejected_overdrafts,
               (select count(*) from anomaly_scores a where a.currency is not distinct from t.currency and a.is_anomaly and a.{_WINDOW})
                   as anomalies,
               (select count(*) from processing_errors p join transactions x using (transaction_id)
                where x.currency is not distinct from t.currency and p.{_WINDOW}) as runtime_errors
        from t group by currency order by currency""",
    "quarantine": f"""
        select day, occurred_at, stream, file, line, unit, reason, excerpt from quarantine
        where {_WINDOW} order by day, stream, line, file, unit, reason, excerpt""",
    "data_quality": f"""
        select (select count(distinct stream) from ingest_manifest where {_WINDOW}) as streams,
               (select coalesce(sum(records_read), 0) from ingest_manifest where {_WINDOW}) as records_read,
               (select count(*) from log_events where {_WINDOW}) as records_typed,
               (select count(*) from quarantine where {_WINDOW} and unit = 'record') as records_quarantined,
               (select count(*) from quarantine where {_WINDOW} and unit = 'file') as files_quarantined""",
    "checks": f"""
        select "check", passed, detail from (
        select 1 as position, 'records read = typed + quarantined, every day' as "check",
               count(*) filter (where m.records_read <> coalesce(e.typed, 0) + coalesce(q.quarantined, 0)) = 0 as passed,
               'days with a difference: ' || count(*) filter (where m.records_read <> coalesce(e.typed, 0) + coalesce(q.quarantined, 0)) as detail
        from (select day, sum(records_read) as records_read from ingest_manifest where {_WINDOW} group by day) m
        left join (select day, count(*) as typed from log_events where {_WINDOW} group by day) e using (day)
        left join (select day, count(*) as quarantined from quarantine where unit = 'record' and {_WINDOW} group by day) q using (day)
        union all
        select 2 as position, 'transaction ids unique', count(*) = count(distinct transaction_id),
               'duplicated ids: ' || (count(*) - count(distinct transaction_id)) from transactions
        union all
        select 3 as position, 'every transaction has an outcome', count(*) filter (where outcome is null) = 0,
               'without outcome: ' || count(*) filter (where outcome is null) from transactions where {_WINDOW}
        union all
        select 4 as position, 'arithmetic rule: new = old +/- (amount - vat)', count(*) = 0,
               'breaks: ' || count(*) || ' (of which legacy: ' || count(*) filter (where type_inferred) || ')'
        from ledger_breaks where rule = 'arithmetic' and {_WINDOW}
        union all
        select 5 as position, 'continuity: each applied sync starts where the previous ended', count(*) = 0, 'breaks: ' || count(*)
        from ledger_breaks where rule = 'continuity' and {_WINDOW}
        union all
        select 6 as position, 'every currency is known (' || {_KNOWN_TEXT} || ')',
               count(*) filter (where currency is null or currency not in ({_KNOWN})) = 0,
               'transactions with another currency: '
                   || count(*) filter (where currency is null or currency not in ({_KNOWN}))
        from transactions where {_WINDOW}
        union all
        select 7 as position, 'published events = applied transactions', sum(abs(published_without_transaction)) = 0 and bool_and(all_accounted_for),
               'days that do not add up: ' || count(*) filter (where published_without_transaction <> 0 or not all_accounted_for)
        from sync_outcomes where {_WINDOW}
        ) order by position""",
}

REPORT_INPUTS = (
    "transactions",
    "balance_discrepancies",
    "negative_balance_rejections",
    "processing_errors",
    "invocations",
    "quarantine",
    "ingest_manifest",
    "log_events",
    "anomaly_scores",
    "ledger_breaks",
    "user_exposure",
    "overdrafts",
    "sync_outcomes",
)


@dataclass
class ReportData:
    """The frames of one report, for the days ``first..last``."""

    first: date
    last: date
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    exposure_totals: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]


def load(warehouse: Warehouse, first: date, last: date) -> ReportData:
    """Run every report query over the warehouse for ``first..last``.

    The inputs are read from their Parquet files once, into memory, and every query runs on that copy
    (most tables are read by several queries; a table is about a hundred small files).
    """
    data = ReportData(first, last)
    with warehouse.connect(empty_tables=REPORT_INPUTS) as connection:
        _read_inputs_once(connection)
        for name, sql in QUERIES.items():
            data.frames[name] = _query(connection, sql, first, last)
        totals = reconcile.exposure_totals(connection).to_pandas()
        data.exposure_totals = totals[
            [
                "currency",
                "revenue_at_risk",
                "owed_to_users",
                "users_over_credited",
                "users_under_credited",
                "users_in_sync",
            ]
        ]
    return data


def _read_inputs_once(connection: duckdb.DuckDBPyConnection) -> None:
    """Copy every input into an in-memory schema searched first (``log_events`` stays on disk: the
    report only counts its rows, which Parquet metadata answers)."""
    connection.execute(f"create schema {_IN_MEMORY}")
    for table in REPORT_INPUTS:
        if table != "log_events":
            connection.execute(f'create table {_IN_MEMORY}."{table}" as select * from "{table}"')
    connection.execute(f"set search_path = '{_IN_MEMORY},main'")


def _query(
    connection: duckdb.DuckDBPyConnection, sql: str, first: date, last: date
) -> pd.DataFrame:
    parameters = {
        name: value for name, value in (("first", first), ("last", last)) if f"${name}" in sql
    }
    # Through Arrow, so money stays Decimal (DuckDB's own .df() would turn it into float).
    return connection.sql(sql, params=parameters or None).to_arrow_table().to_pandas()
