"""What finance asks, in SQL (DuckDB) over the warehouse: gap cases, exposure by day, calendar, runtime.

Same contract as ``reconcile``: every table is one statement in a module constant, run by a function on a
connection where the daily tables are visible as views (``transactions``, ``balance_discrepancies``,
``negative_balance_rejections``, ``processing_errors``, ``invocations``, ``log_events``,
``ingest_manifest``), and returned as an Arrow table in its schema (``tables.schema.SCHEMAS``).

Days are log days (the UTC day of the invocation's ``START``, the ``day`` column of the daily tables).
The *period* is the first to the last day holding at least one log record: a ``log_events`` row or
``ingest_manifest.records_read > 0``; the look-back day after the last stream folder holds none.

A *case* is a user and currency whose balances the service reported out of sync at least once. Its
status, from the latest record of the case (the rule of ``user_exposure``):

- ``resolved``: the latest gap logged is zero (within the tolerance); dated by the first zero gap logged
  after the last non-zero one.
- ``probably_resolved``: the latest gap is not zero, but the user had at least
  ``PROBABLY_RESOLVED_AFTER_SYNCS`` applied syncs in that currency after it was last logged. The service
  checks the two balances on every sync and logs "not in sync" only when they differ (on the real
  export 3,402 of the 3,422 applied syncs inside a case's life logged the gap), so an applied sync with
  nothing logged is a sync that found them in sync. Dated by that applied sync.
- ``open``: otherwise.

Exposure is the latest gap of every case that is not ``resolved`` (a resolved case's gap is zero), so
the cases' revenue at risk and amount owed add up, per currency, to ``reconcile.exposure_totals``;
``probably_resolved`` cases are kept in it (nothing logged says their gap is gone) and are told apart
by their status.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa

from calo_assets.ledger.reconcile import (
    _TIME_ORDER,
    LATEST_FIRST,
    OVER_CREDITED,
    UNDER_CREDITED,
    USER_EXPOSURE_SQL,
    exposure_type,
    run,
)
from calo_assets.tables.schema import SCHEMAS

OPEN, PROBABLY_RESOLVED, RESOLVED = "open", "probably_resolved", "resolved"
# Applied syncs of the user in the case's currency, after its gap was last logged, that make it
# probably resolved.
PROBABLY_RESOLVED_AFTER_SYNCS = 1
# Age buckets of a case (days from its first log to the end of the period): upper bound, label.
AGE_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (7, "0-7"),
    (30, "8-30"),
    (90, "31-90"),
    (None, "over 90"),
)
UNKNOWN_CURRENCY = "unknown"  # as in ``reconcile.exposure_totals``
UNKNOWN_RUNTIME = "unknown"  # no INIT_START of the invocation's log stream in the warehouse
# The tables built here (each by the function of the same name), and the daily tables they read:
# a connection needs a view, or an empty table, for each input.
TABLES = (
    "discrepancy_cases",
    "exposure_daily",
    "calendar",
    "runtime_daily",
    "runtime_versions",
    "error_types",
)
INPUTS = (
    "transactions",
    "balance_discrepancies",
    "negative_balance_rejections",
    "processing_errors",
    "invocations",
    "log_events",
    "ingest_manifest",
)


def _age_bucket(days: str) -> str:
    arms = " ".join(
        f"when {days} <= {bound} then '{label}'"
        for bound, label in AGE_BUCKETS
        if bound is not None
    )
    return f"case {arms} else '{AGE_BUCKETS[-1][1]}' end"


# Days holding log records: records read (the ingest manifest; the typed events where it is missing)
# and the streams they came from.
LOGGED_DAYS_SQL = """
select day, max(records) as records, max(streams) as streams
from (
    select day, sum(records_read) as records,
           count(distinct stream) filter (where records_read > 0) as streams
    from ingest_manifest group by day
    union all
    select day, count(*) as records, count(distinct stream) as streams from log_events group by day
)
group by day
having max(records) > 0
"""

PERIOD_SQL = f"select min(day) as first_day, max(day) as last_day from ({LOGGED_DAYS_SQL})"

# Every calendar day of the period, one row each.
_DAYS_SQL = f"""
select unnest(generate_series(first_day, last_day, interval 1 day))::date as day
from ({PERIOD_SQL})
"""

DISCREPANCY_CASES_SQL = f"""
with period as ({PERIOD_SQL}),
exposure as ({USER_EXPOSURE_SQL}),
positioned as (
    select *, row_number() over (partition by user_id, currency order by {_TIME_ORDER}) as position
    from balance_discrepancies
),
runs as (
    select user_id, currency, max(day) as last_seen_day,
           coalesce(max(position) filter (where abs(gap) > $tolerance), 0) as last_gap_position
    from positioned group by all
),
opened as (
    select p.user_id, p.currency, p.day as opened_day, p.transaction_id, p.action, t.source
    from positioned p left join transactions t using (transaction_id)
    where p.position = 1
),
closed as (  -- the first zero gap logged after the last non-zero one
    select p.user_id, p.currency, p.occurred_at, p.day, p.transaction_id
    from positioned p join runs r
      on p.user_id = r.user_id and p.currency is not distinct from r.currency
     and p.position = r.last_gap_position + 1
),
refused as (
    select transaction_id, user_id, currency, occurred_at, stream, line, amount, vat,
           case when transaction_id in (select transaction_id from negative_balance_rejections)
                then 'rejected' else outcome end as outcome
    from transactions
    where outcome in ('rejected', 'failed')
       or transaction_id in (select transaction_id from negative_balance_rejections)
),
after_last as (  -- applied syncs of the user in the currency after the case was last logged, in order
    select *, row_number() over (partition by user_id, currency order by {_TIME_ORDER}) as rank
    from (
        select t.* from transactions t join exposure e
          on t.user_id = e.user_id and t.currency is not distinct from e.currency
         and t.outcome = 'applied' and t.occurred_at > e.last_seen
    )
),
candidates as (  -- refused or failed syncs, by their amount and by their amount net of VAT
    select *, 1 as basis_rank, 'amount' as basis, abs(amount) as value from refused
    union all
    select *, 2, 'amount net of VAT', abs(amount - coalesce(vat, 0)) from refused
),
mirrors as (  -- the first such sync (amount before net, then time) whose value the gap equals
    select e.user_id, e.currency, c.transaction_id, c.outcome, c.basis, c.value,
           row_number() over (partition by e.user_id, e.currency
                              order by c.basis_rank, c.occurred_at, c.stream, c.line, c.transaction_id)
               as pick
    from exposure e join candidates c
      on c.user_id = e.user_id and c.currency is not distinct from e.currency
     and abs(abs(e.latest_gap) - c.value) <= $tolerance
    where abs(e.latest_gap) > $tolerance
),
cases as (
    select e.*, o.opened_day, o.transaction_id as opened_transaction_id, o.action as opened_action,
           o.source as opened_source, r.last_seen_day,
           case when e.exposure_type not in ('{OVER_CREDITED}', '{UNDER_CREDITED}') then '{RESOLVED}'
                when e.later_applied_transactions >= {PROBABLY_RESOLVED_AFTER_SYNCS}
                    then '{PROBABLY_RESOLVED}'
                else '{OPEN}' end as status
    from exposure e
    join opened o on o.user_id = e.user_id and o.currency is not distinct from e.currency
    join runs r on r.user_id = e.user_id and r.currency is not distinct from e.currency
)
select c.user_id, c.currency, c.status,
       c.first_seen as opened_at, c.opened_day, c.last_seen as last_seen_at,
       case c.status when '{RESOLVED}' then z.occurred_at when '{PROBABLY_RESOLVED}' then l.occurred_at
           end as resolved_at,
       case c.status when '{RESOLVED}' then z.day when '{PROBABLY_RESOLVED}' then l.day end
           as resolved_day,
       case c.status when '{RESOLVED}' then z.transaction_id
           when '{PROBABLY_RESOLVED}' then l.transaction_id end as resolved_transaction_id,
       c.latest_gap, c.latest_subscription_balance, c.latest_payment_balance, c.exposure_type,
       case when c.exposure_type = '{OVER_CREDITED}' then c.latest_gap else 0 end as revenue_at_risk,
       case when c.exposure_type = '{UNDER_CREDITED}' then -c.latest_gap else 0 end as owed_to_user,
       c.times_logged, c.distinct_gaps,
       c.later_applied_transactions as later_applied_syncs,
       p.last_day - c.opened_day as age_days,
       {_age_bucket("p.last_day - c.opened_day")} as age_bucket,
       p.last_day - c.last_seen_day as days_since_last_seen,
       c.opened_transaction_id, c.opened_action, c.opened_source,
       c.latest_payment_balance < -$tolerance as negative_payment_balance,
       m.transaction_id as mirrors_transaction_id, m.outcome as mirrors_outcome,
       m.basis as mirrors_basis, m.value as mirrors_amount
from cases c
cross join period p
left join closed z on z.user_id = c.user_id and z.currency is not distinct from c.currency
left join after_last l on l.user_id = c.user_id and l.currency is not distinct from c.currency
     and l.rank = {PROBABLY_RESOLVED_AFTER_SYNCS}
left join mirrors m on m.user_id = c.user_id and m.currency is not distinct from c.currency
     and m.pick = 1
order by c.currency nulls last, c.latest_gap desc, c.user_id
"""

EXPOSURE_DAILY_SQL = f"""
with days as ({_DAYS_SQL}),
cases as ({DISCREPANCY_CASES_SQL}),
day_latest as (  -- each user's latest record of each day, valid until the user's next logged day
    select user_id, currency, day, gap,
           lead(day) over (partition by user_id, currency order by day) as next_day
    from (
        select *, row_number() over (partition by user_id, currency, day order by {LATEST_FIRST})
                      as recency
        from balance_discrepancies
    )
    where recency = 1
),
known as (  -- the latest gap of every user as known at the end of each day
    select d.day, coalesce(l.currency, '{UNKNOWN_CURRENCY}') as currency, l.gap,
           {exposure_type("l.gap")} as exposure_type
    from days d join day_latest l on l.day <= d.day and (l.next_day is null or d.day < l.next_day)
),
positions as (
    select day, currency,
           coalesce(sum(gap) filter (where exposure_type = '{OVER_CREDITED}'), 0) as revenue_at_risk,
           coalesce(-sum(gap) filter (where exposure_type = '{UNDER_CREDITED}'), 0) as owed_to_users,
           count(*) filter (where exposure_type = '{OVER_CREDITED}') as users_over_credited,
           count(*) filter (where exposure_type = '{UNDER_CREDITED}') as users_under_credited
    from known group by all
),
opened as (
    select opened_day as day, coalesce(currency, '{UNKNOWN_CURRENCY}') as currency,
           count(*) as cases_opened
    from cases group by all
),
resolved as (
    select resolved_day as day, coalesce(currency, '{UNKNOWN_CURRENCY}') as currency,
           count(*) filter (where status = '{RESOLVED}') as cases_resolved,
           count(*) filter (where status = '{PROBABLY_RESOLVED}') as cases_probably_resolved
    from cases where resolved_day is not null group by all
),
currencies as (select distinct coalesce(currency, '{UNKNOWN_CURRENCY}') as currency from cases)
select d.day, c.currency,
       coalesce(p.revenue_at_risk, 0) as revenue_at_risk,
       coalesce(p.owed_to_users, 0) as owed_to_users,
       coalesce(p.users_over_credited, 0) as users_over_credited,
       coalesce(p.users_under_credited, 0) as users_under_credited,
       coalesce(o.cases_opened, 0) as cases_opened,
       coalesce(r.cases_resolved, 0) as cases_resolved,
       coalesce(r.cases_probably_resolved, 0) as cases_probably_resolved
from days d cross join currencies c
left join positions p on p.day = d.day and p.currency = c.currency
left join opened o on o.day = d.day and o.currency = c.currency
left join resolved r on r.day = d.day and r.currency = c.currency
order by c.currency, d.day
"""

CALENDAR_SQL = f"""
with days as ({_DAYS_SQL}),
logged as ({LOGGED_DAYS_SQL}),
calls as (select day, count(*) as invocations from invocations group by day),
syncs as (select day, count(*) as transactions from transactions group by day)
select d.day, dayname(d.day) as weekday, l.day is not null as has_logs,
       coalesce(l.records, 0) as records, coalesce(l.streams, 0) as streams,
       coalesce(c.invocations, 0) as invocations, coalesce(s.transactions, 0) as transactions
from days d
left join logged l on l.day = d.day
left join calls c on c.day = d.day
left join syncs s on s.day = d.day
order by d.day
"""

# The runtime version of anything logged in a log stream is that of the stream's latest INIT_START at
# or before it: a stream is one execution environment, and only its cold start logs the version. The
# function version is the one in the stream's name (``<day>-[<version>]<id>``, as on ``START`` lines).
_RUNTIME_INPUTS = f"""
init_starts as (
    select stream, occurred_at, json_extract_string(payload, '$.runtime_version') as runtime_version
    from log_events where kind = 'init_start'
),
runs as (
    select i.request_id, i.day, i.cold_start, i.status, i.duration_ms, i.billed_duration_ms,
           i.init_duration_ms, i.memory_size_mb, i.max_memory_used_mb,
           coalesce(s.runtime_version, '{UNKNOWN_RUNTIME}') as runtime,
           regexp_extract(i.stream, '\\[([^\\]]*)\\]', 1) as function_version
    from invocations i asof left join init_starts s
      on i.stream = s.stream and i.started_at >= s.occurred_at
),
errors as (
    select e.day, e.error_type, coalesce(s.runtime_version, '{UNKNOWN_RUNTIME}') as runtime
    from processing_errors e asof left join init_starts s
      on e.stream = s.stream and e.occurred_at >= s.occurred_at
),
init_failures as (  -- INIT_REPORT lines with status error: cold starts that never ran the handler
    select e.day, coalesce(s.runtime_version, '{UNKNOWN_RUNTIME}') as runtime
    from (select * from log_events
          where kind = 'init_report' and lower(json_extract_string(payload, '$.status')) = 'error') e
    asof left join init_starts s on e.stream = s.stream and e.occurred_at >= s.occurred_at
),
failed_syncs as (  -- syncs that failed inside an invocation that ended "success"
    select r.day, r.runtime
    from transactions t join runs r on r.request_id = t.request_id
    where t.outcome = 'failed' and r.status = 'success'
)
"""


def _health(key: str) -> str:
    """CTEs of the runtime measures grouped by ``key`` (``day`` or ``runtime``), keyed ``key``."""
    return f"""
invocation_health as (
    select {key} as key, count(*) as invocations, count(*) filter (where cold_start) as cold_starts,
           quantile_cont(init_duration_ms, 0.5) as init_duration_p50_ms,
           quantile_cont(init_duration_ms, 0.95) as init_duration_p95_ms,
           quantile_cont(duration_ms, 0.5) as duration_p50_ms,
           quantile_cont(duration_ms, 0.95) as duration_p95_ms,
           quantile_cont(duration_ms, 0.99) as duration_p99_ms,
           max(duration_ms) as duration_max_ms,
           coalesce(sum(billed_duration_ms), 0) / 1000 as billed_seconds,
           max(max_memory_used_mb) as max_memory_used_mb,
           count(*) filter (where status <> 'success') as failed_invocations,
           string_agg(distinct runtime, ', ' order by runtime) as runtime_versions,
           string_agg(distinct function_version, ', ' order by function_version)
               as function_versions,
           min(day) as first_day, max(day) as last_day, count(distinct day) as days
    from runs group by 1
),
memory as (
    select key, string_agg(memory_size_mb::varchar, ', ' order by memory_size_mb) as memory_sizes_mb,
           first(memory_size_mb order by invocations desc, memory_size_mb desc)
               as memory_size_mb_most_used
    from (select {key} as key, memory_size_mb, count(*) as invocations
          from runs where memory_size_mb is not null group by all)
    group by key
),
error_health as (
    select key, sum(errors) as processing_errors,
           string_agg(error_type || ': ' || errors, '; ' order by errors desc, error_type)
               as errors_by_type
    from (select {key} as key, coalesce(error_type, 'unknown') as error_type, count(*) as errors
          from errors group by all)
    group by key
),
init_health as (select {key} as key, count(*) as failed_inits from init_failures group by 1),
sync_health as (
    select {key} as key, count(*) as failed_syncs_in_successful_invocations
    from failed_syncs group by 1
)"""


_HEALTH_COLUMNS = """
       coalesce(h.invocations, 0) as invocations, coalesce(h.cold_starts, 0) as cold_starts,
       h.cold_starts / nullif(h.invocations, 0) as cold_start_share,
       coalesce(i.failed_inits, 0) as failed_inits,
       h.init_duration_p50_ms, h.init_duration_p95_ms,
       h.duration_p50_ms, h.duration_p95_ms, h.duration_p99_ms, h.duration_max_ms,
       coalesce(h.billed_seconds, 0) as billed_seconds,
       m.memory_sizes_mb, m.memory_size_mb_most_used, h.max_memory_used_mb,
       coalesce(h.failed_invocations, 0) as failed_invocations,
       coalesce(s.failed_syncs_in_successful_invocations, 0) as failed_syncs_in_successful_invocations,
       coalesce(e.processing_errors, 0) as processing_errors, e.errors_by_type"""

_HEALTH_JOINS = """
left join invocation_health h on h.key = k.key
left join memory m on m.key = k.key
left join error_health e on e.key = k.key
left join init_health i on i.key = k.key
left join sync_health s on s.key = k.key"""

RUNTIME_DAILY_SQL = f"""
with {_RUNTIME_INPUTS}, {_health("day")},
k as (select day as key from ({_DAYS_SQL}))
select k.key as day, h.runtime_versions,{_HEALTH_COLUMNS}
from k{_HEALTH_JOINS}
order by k.key
"""

RUNTIME_VERSIONS_SQL = f"""
with {_RUNTIME_INPUTS}, {_health("runtime")},
k as (
    select key from invocation_health union select key from error_health
    union select key from init_health
)
select k.key as runtime_version, h.function_versions, h.first_day, h.last_day, h.days,{_HEALTH_COLUMNS}
from k{_HEALTH_JOINS}
order by h.first_day nulls last, k.key
"""

ERROR_TYPES_SQL = f"""
select error_type, kind, count(*) as errors,
       first(message order by {_TIME_ORDER}) as message,
       min(occurred_at) as first_seen, max(occurred_at) as last_seen,
       count(distinct day) as days_affected,
       count(distinct request_id) as invocations_affected,
       count(transaction_id) as transactions_affected
from processing_errors
group by error_type, kind
order by errors desc, error_type, kind
"""


def _table(connection: duckdb.DuckDBPyConnection, name: str, sql: str) -> pa.Table:
    """Run ``sql`` and return its rows in the schema of table ``name``."""
    schema = SCHEMAS[name]
    return run(connection, sql).select(schema.names).cast(schema)


def period(connection: duckdb.DuckDBPyConnection) -> tuple[date | None, date | None]:
    """First and last day holding a log record (``None, None`` for an empty warehouse)."""
    ((first, last),) = connection.sql(PERIOD_SQL).fetchall()
    return first, last


def discrepancy_cases(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per user and currency ever out of sync: status, age, latest gap, origin, suspicion flags."""
    return _table(connection, "discrepancy_cases", DISCREPANCY_CASES_SQL)


def exposure_daily(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per day of the period and currency: exposure as known at the day's end, cases opened and closed."""
    return _table(connection, "exposure_daily", EXPOSURE_DAILY_SQL)


def calendar(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every day of the period: whether it has logs, records, streams, invocations, transactions."""
    return _table(connection, "calendar", CALENDAR_SQL)


def runtime_daily(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Runtime health of every day of the period (a day without invocations reads zeros)."""
    return _table(connection, "runtime_daily", RUNTIME_DAILY_SQL)


def runtime_versions(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Runtime health per Lambda runtime version (from the log streams' INIT_START lines)."""
    return _table(connection, "runtime_versions", RUNTIME_VERSIONS_SQL)


def error_types(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per processing-error type and kind: the first message, count, first and last seen, days."""
    return _table(connection, "error_types", ERROR_TYPES_SQL)
