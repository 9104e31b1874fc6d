"""The rows the report's sheets and charts show, read from the warehouse with SQL for a window of days.

Every figure (totals, per currency, checks) comes from ``calo_assets.metrics``; this module only holds
the queries of the table rows. Everything is read on one DuckDB connection; the workbook, the chart
images, the HTML page and the CSV files all draw from the same ``ReportData``, so they cannot
disagree. Rows are fully ordered, so the same warehouse gives the same report.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date

import duckdb
import pandas as pd

from calo_assets import metrics
from calo_assets.checks import CheckOutcome, CheckSettings
from calo_assets.warehouse import Warehouse

_WINDOW = "day between $first and $last"
LEGACY_ACTION = "(legacy, no action)"  # transactions logged before actions existed
NOT_LINKED = "(not linked to a transaction)"  # errors logged while no transaction was being synced
_ERROR_ACTION = f"coalesce(action, case when transaction_id is null then '{NOT_LINKED}' else '{LEGACY_ACTION}' end)"
TOP_GAPS, NEEDS_ACTION_ROWS = 10, 10  # largest gaps per currency; rows per kind of action
DETAIL_TRANSACTIONS = 20  # a user's latest transactions on the User Detail sheet
NEW_CASE, SUSPECT_GAP, FAILED_SYNC, NO_LOGS, FAILING_CHECK = (
    "case opened in the last 7 days",
    "suspect gap",
    "failed sync",
    "day without logs",
    "failing check",
)
_NOT_RESOLVED = "status <> 'resolved'"
_CASE_FLAGS = """concat_ws('; ',
    case when negative_payment_balance then 'negative payment balance' end,
    case when mirrors_transaction_id is not null
         then 'mirrors ' || mirrors_outcome || ' sync ' || mirrors_transaction_id || ' (' || mirrors_basis || ')'
    end)"""
EXPOSURE_FIGURES = (
    "revenue_at_risk",
    "owed_to_users",
    "users_over_credited",
    "users_under_credited",
)

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
            select user_id, currency, occurred_at, action, 'balance discrepancy' as error
            from balance_discrepancies where {_WINDOW}
            union all
            select p.user_id, t.currency, p.occurred_at, p.action, p.error_type
            from processing_errors p left join transactions t using (transaction_id)
            where p.{_WINDOW} and p.user_id is not null
            union all
            select user_id, currency, occurred_at, action, 'negative balance rejection'
            from negative_balance_rejections where {_WINDOW}
        ),
        most as (  -- the action named in most of the errors (ties: the first by name)
            select user_id, currency, first(action order by errors desc, action) as action
            from (select user_id, currency, action, count(*) as errors from errors
                  where action is not null group by all)
            group by all
        )
        select e.user_id, e.currency, count(*) as errors,
               count(*) filter (where error = 'balance discrepancy') as discrepancies,
               count(*) filter (where error = 'negative balance rejection') as rejections,
               count(*) filter (where error not in ('balance discrepancy', 'negative balance rejection'))
                   as processing_errors,
               min(occurred_at) as first_error, max(occurred_at) as last_error,
               any_value(m.action) as action_that_failed_most,
               any_value(x.latest_gap) as latest_gap, any_value(x.exposure_type) as exposure_type
        from errors e  -- one row per user and currency: the exposure of that currency
        left join most m on m.user_id = e.user_id and m.currency is not distinct from e.currency
        left join user_exposure x on x.user_id = e.user_id and x.currency is not distinct from e.currency
        group by e.user_id, e.currency order by errors desc, e.user_id, e.currency nulls last""",
    "runtime_daily": f"""
        select * from runtime_daily where {_WINDOW} order by day""",
    "runtime_versions": """
        select * from runtime_versions order by first_day, last_day, runtime_version""",
    "errors_by_type": """
        select kind, error_type, errors, message, first_seen, last_seen, days_affected,
               invocations_affected, transactions_affected
        from error_types order by errors desc, kind, error_type""",
    "daily": f"""
        with days as (
            select unnest(generate_series($first::timestamp, $last::timestamp, interval 1 day))::date as day),
        t as (
            select day, count(*) filter (where type = 'CREDIT') as credits,
                   count(*) filter (where type = 'DEBIT') as debits, count(*) as transactions
            from transactions where {_WINDOW} group by day),
        d as (select day, count(*) as discrepancies from balance_discrepancies where {_WINDOW} group by day),
        a as (select day, count(*) filter (where is_anomaly) as anomalies from anomaly_scores where {_WINDOW} group by day),
        r as (select day, invocations, failed_invocations, processing_errors from runtime_daily)
        select day, coalesce(credits, 0) as credits, coalesce(debits, 0) as debits,
               coalesce(transactions, 0) as transactions, coalesce(discrepancies, 0) as discrepancies,
               coalesce(anomalies, 0) as anomalies, coalesce(invocations, 0) as invocations,
               coalesce(failed_invocations, 0) as failed_invocations,
               coalesce(processing_errors, 0) as processing_errors
        from days left join t using (day) left join d using (day) left join a using (day)
        left join r using (day) order by day""",
    "by_action": f"""
        with labelled as (
            select coalesce(action, '{LEGACY_ACTION}') as action, 'transaction' as row_kind, type
            from transactions where {_WINDOW}
            union all
            select {_ERROR_ACTION}, 'discrepancy', null from balance_discrepancies where {_WINDOW}
            union all
            select {_ERROR_ACTION}, 'processing error', null from processing_errors where {_WINDOW}
        )
        select action, count(*) filter (where row_kind = 'transaction') as transactions,
               count(*) filter (where row_kind = 'transaction' and type = 'CREDIT') as credits,
               count(*) filter (where row_kind = 'transaction' and type = 'DEBIT') as debits,
               count(*) filter (where row_kind = 'discrepancy') as discrepancies,
               count(*) filter (where row_kind = 'processing error') as processing_errors
        from labelled group by action order by transactions desc, action""",
    "top_users": f"""
        select currency, user_id, volume, transactions from (
            select currency, user_id, sum(amount) as volume, count(*) as transactions,
                   row_number() over (partition by currency order by sum(amount) desc, user_id) as rank
            from transactions where {_WINDOW} and outcome = 'applied' group by 1, 2)
        where rank <= 10 order by currency, volume desc, user_id""",
    "cases": """
        select * from discrepancy_cases order by currency nulls last, abs(latest_gap) desc, user_id""",
    "exposure_trend": f"""
        select day, currency, revenue_at_risk, owed_to_users, users_over_credited, users_under_credited,
               cases_opened, cases_resolved, cases_probably_resolved
        from exposure_daily where {_WINDOW} order by currency, day""",
    "top_gaps": f"""
        select currency, rank, user_id, latest_gap, share_of_total, status, age_days, opened_day,
               last_seen_at, {_CASE_FLAGS} as flags
        from (
            select *, row_number() over (partition by currency order by abs(latest_gap) desc, user_id)
                          as rank,
                      abs(latest_gap) / sum(abs(latest_gap)) over (partition by currency, exposure_type)
                          as share_of_total
            from discrepancy_cases where {_NOT_RESOLVED})
        where rank <= {TOP_GAPS} order by currency nulls last, rank""",
    "needs_action": f"""
        select what, day, user_id, currency, amount, detail from (
            select 1 as position, 0 as priority, '{NEW_CASE}' as what, opened_day as day, user_id, currency,
                   latest_gap as amount, 'status ' || status || coalesce('; ' || opened_action, '') as detail
            from discrepancy_cases
            where {_NOT_RESOLVED} and opened_day > $last - 7 and opened_day <= $last
            union all
            select 2, (mirrors_transaction_id is not null)::int, '{SUSPECT_GAP}', opened_day, user_id,
                   currency, latest_gap, {_CASE_FLAGS}
            from discrepancy_cases
            where {_NOT_RESOLVED} and (negative_payment_balance or mirrors_transaction_id is not null)
            union all
            select 3, 0, '{FAILED_SYNC}', day, user_id, currency, amount,
                   coalesce(action, '{LEGACY_ACTION}') || ': ' || coalesce(outcome_detail, '')
            from transactions where outcome = 'failed' and {_WINDOW}
            union all
            select 4, 0, '{NO_LOGS}', day, null, null, null, 'no log record that day (' || weekday || ')'
            from calendar where not has_logs and {_WINDOW}
        )
        qualify row_number() over (partition by what order by abs(amount) desc nulls last, day desc, user_id)
                <= {NEEDS_ACTION_ROWS}
        order by position, abs(amount) desc nulls last, day desc, user_id""",
    "quarantine": f"""
        select day, occurred_at, stream, file, line, unit, reason, excerpt from quarantine
        where {_WINDOW} order by day, stream, line, file, unit, reason, excerpt""",
}

# The per-user detail of the users named on the Overview ($users), section by section.
_USERS = "user_id in (select unnest($users))"
DETAIL_QUERIES: dict[str, str] = {
    "cases": f"""
        select user_id, currency, status, latest_gap, opened_day, last_seen_at, age_days, times_logged,
               {_CASE_FLAGS} as flags
        from discrepancy_cases where {_USERS} order by user_id, currency nulls last""",
    "gaps": f"""
        with ordered as (
            select user_id, currency, occurred_at, stream, line, gap, subscription_balance,
                   payment_balance, gap is distinct from lag(gap) over logged as changed
            from balance_discrepancies where {_WINDOW} and {_USERS}
            window logged as (partition by user_id, currency order by occurred_at, stream, line)
        ),
        runs as (  -- a run: the same gap logged again and again
            select *, sum(changed::int) over (partition by user_id, currency
                                              order by occurred_at, stream, line
                                              rows unbounded preceding) as run
            from ordered
        )
        select user_id, currency, min(occurred_at) as first_logged, max(occurred_at) as last_logged,
               first(gap) as gap, first(subscription_balance) as subscription_balance,
               first(payment_balance) as payment_balance, count(*) as times_logged
        from runs group by user_id, currency, run order by user_id, currency nulls last, first_logged""",
    "transactions": f"""
        select user_id, day, occurred_at, currency, type, action, amount, vat, old_balance,
               new_balance, outcome, transaction_id
        from transactions where {_WINDOW} and {_USERS}
        qualify row_number() over (partition by user_id order by occurred_at desc, transaction_id desc)
                <= {DETAIL_TRANSACTIONS}
        order by user_id, occurred_at, transaction_id""",
    "rejections": f"""
        select user_id, day, occurred_at, currency, action, current_balance, amount,
               attempted_new_balance, transaction_id
        from negative_balance_rejections where {_WINDOW} and {_USERS}
        order by user_id, occurred_at, transaction_id""",
    "anomalies": f"""
        select user_id, day, occurred_at, currency, round(score, 4) as score, transaction_id, reasons
        from anomaly_scores where is_anomaly and {_WINDOW} and {_USERS}
        order by user_id, occurred_at, transaction_id""",
}

# Inputs that one query reads (copying them first would read them twice), and log_events (the report
# only counts its rows and days, which Parquet files answer fast).
_READ_ONCE = frozenset(
    {"log_events", "invocations", "sync_outcomes", "overdrafts", "runtime_versions", "error_types"}
)
REPORT_INPUTS = (
    *metrics.INPUTS,
    "user_exposure",
    "runtime_daily",
    "runtime_versions",
    "error_types",
)
# The others are copied into memory (``Warehouse.connect``): several queries read each of them, and a
# daily table is one small file per day.
_COPIED = tuple(table for table in REPORT_INPUTS if table not in _READ_ONCE)


@dataclass
class ReportData:
    """The rows and figures of one report (``publish`` returns it in ``Published.data``).

    The figures are held once, in ``report_figures``: ``figures``, ``overview``, ``checks`` and the
    period ``first..last`` (the days of ``window`` that hold at least one log record) read them there.
    """

    window: tuple[date, date]  # the days asked for
    report_figures: metrics.ReportFigures  # for ``window``, as computed (the checks included)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    cache: dict[str, object] = field(
        default_factory=dict
    )  # what the writers derive once per report

    @property
    def first(self) -> date:
        """The period's first day."""
        return self.report_figures.period.first

    @property
    def last(self) -> date:
        """The period's last day."""
        return self.report_figures.period.last

    @property
    def figures(self) -> list[metrics.Figure]:
        """The headline figures."""
        return self.report_figures.headline

    @property
    def overview(self) -> list[metrics.Figure]:
        """The Overview's own figures."""
        return self.report_figures.overview

    @property
    def checks(self) -> list[CheckOutcome]:
        """Every check's outcome for ``window``."""
        return self.report_figures.checks

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]


def load(
    warehouse: Warehouse,
    first: date,
    last: date,
    check_settings: CheckSettings | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> ReportData:
    """Every figure and every report query over the warehouse for ``first..last``.

    The inputs read by several queries are copied into memory once (``Warehouse.connect``, up to its
    ``COPY_BYTES``), and every query runs on that copy, unless ``connection`` is given: a
    ``Warehouse.connect`` holding every input already, left open.
    """
    opened = (
        nullcontext(connection)
        if connection is not None
        else warehouse.connect(empty_tables=REPORT_INPUTS, in_memory=_COPIED)
    )
    with opened as connection:
        data = ReportData(
            (first, last), metrics.report_figures(connection, first, last, check_settings)
        )
        window = {"first": data.first, "last": data.last}
        for name, sql in QUERIES.items():
            data.frames[name] = _query(connection, sql, window)
        window["users"] = overview_users(data)
        for name, sql in DETAIL_QUERIES.items():
            data.frames[f"detail_{name}"] = _query(connection, sql, window)
    data.frames["exposure_by_currency"] = metrics.by_currency(data.figures, EXPOSURE_FIGURES)
    data.frames["checks"] = pd.DataFrame(
        [(check.label, check.passed, check.summary) for check in data.checks],
        columns=["check", "passed", "detail"],
    )
    return data


def _query(
    connection: duckdb.DuckDBPyConnection, sql: str, values: dict[str, object]
) -> pd.DataFrame:
    parameters = {name: value for name, value in values.items() if f"${name}" in sql}
    # Through Arrow, so money stays Decimal (DuckDB's own .df() would turn it into float).
    return connection.sql(sql, params=parameters or None).to_arrow_table().to_pandas()


def overview_users(data: ReportData) -> list[str]:
    """The users named on the Overview, in its order: needs action, then the largest gaps."""
    named = [*data["needs_action"]["user_id"], *data["top_gaps"]["user_id"]]
    return list(dict.fromkeys(user for user in named if isinstance(user, str)))
