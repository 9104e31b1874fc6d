"""Reconciliation over the whole history, in SQL (DuckDB) over the warehouse tables.

Every function takes a DuckDB connection on which the daily tables are visible as views
(``transactions``, ``balance_discrepancies``, ``negative_balance_rejections``, ``log_events``,
``anomaly_scores``) and returns an Arrow table. The rules are those of design.md:

- arithmetic: ``new_balance = old_balance ± (amount - vat)`` (+ for CREDIT, - for DEBIT), within 0.0005;
- continuity: per user and currency, in time order, an applied transaction's ``old_balance`` equals the
  ``new_balance`` of the user's previous applied transaction (rejected, skipped and failed transactions
  changed no balance and are not part of the chain); a break is reported once, where it shows;
- exposure: the latest gap per user and currency, never a sum over repeated events; totals per
  currency, never across currencies.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from calo_assets.money import TOLERANCE

OVER_CREDITED = "over_credited"  # the user can spend money that was never paid: revenue at risk
UNDER_CREDITED = "under_credited"  # the user paid more than they can spend: owed to the user
IN_SYNC = "in_sync"

# Ties in time are broken by where the record is in the logs, so every order is total and repeatable.
_TIME_ORDER = "occurred_at, stream, line, transaction_id"
# A user's latest discrepancy record comes first in this order (the rule of ``user_exposure``).
LATEST_FIRST = "occurred_at desc, stream desc, line desc"


def exposure_type(gap: str) -> str:
    """SQL classifying the gap expression ``gap`` (binds ``$tolerance``): over, under or in sync."""
    return (
        f"case when {gap} > $tolerance then '{OVER_CREDITED}' "
        f"when {gap} < -$tolerance then '{UNDER_CREDITED}' else '{IN_SYNC}' end"
    )


LEDGER_BREAKS_SQL = f"""
with signed as (
    select *, case type when 'CREDIT' then 1 when 'DEBIT' then -1 end as sign from transactions
),
arithmetic as (
    select user_id, transaction_id, day, occurred_at, currency, type, type_inferred, outcome,
           'arithmetic' as rule,
           old_balance + sign * (amount - coalesce(vat, 0)) as expected,
           new_balance as actual,
           null::varchar as previous_transaction_id,
           stream, line
    from signed
    where sign is not null
),
chain as (
    select user_id, transaction_id, day, occurred_at, currency, type, type_inferred, outcome,
           'continuity' as rule,
           lag(new_balance) over previous as expected,
           old_balance as actual,
           lag(transaction_id) over previous as previous_transaction_id,
           stream, line
    from transactions
    where outcome = 'applied'
    window previous as (partition by user_id, currency order by {_TIME_ORDER})
)
select user_id, transaction_id, day, occurred_at, currency, type, type_inferred, outcome, rule,
       expected, actual, actual - expected as difference, previous_transaction_id
from (select * from arithmetic union all select * from chain)
where expected is not null and abs(actual - expected) > $tolerance
order by occurred_at, stream, line, rule
"""

USER_EXPOSURE_SQL = f"""
with ranked as (
    select *,
           row_number() over (partition by user_id, currency order by {LATEST_FIRST})
               as recency,
           min(occurred_at) over (partition by user_id, currency) as first_seen,
           max(occurred_at) over (partition by user_id, currency) as last_seen,
           count(*) over (partition by user_id, currency) as times_logged,
           count(distinct gap) over (partition by user_id, currency) as distinct_gaps
    from balance_discrepancies
),
latest as (select * from ranked where recency = 1),
later as (
    select latest.user_id, latest.currency, count(t.transaction_id) as later_applied_transactions
    from latest left join transactions t
      on t.user_id = latest.user_id and t.currency is not distinct from latest.currency
     and t.outcome = 'applied' and t.occurred_at > latest.last_seen
    group by 1, 2
)
select latest.user_id, latest.currency,
       latest.subscription_balance as latest_subscription_balance,
       latest.payment_balance as latest_payment_balance,
       latest.gap as latest_gap,
       {exposure_type("latest.gap")} as exposure_type,
       first_seen, last_seen, times_logged, distinct_gaps,
       latest.transaction_id as latest_transaction_id,
       later.later_applied_transactions
from latest join later using (user_id, currency)
order by latest.currency nulls last, latest.gap desc, latest.user_id
"""

EXPOSURE_TOTALS_SQL = f"""
select coalesce(currency, 'unknown') as currency,
       count(*) filter (where exposure_type = '{OVER_CREDITED}') as users_over_credited,
       coalesce(sum(latest_gap) filter (where exposure_type = '{OVER_CREDITED}'), 0) as revenue_at_risk,
       count(*) filter (where exposure_type = '{UNDER_CREDITED}') as users_under_credited,
       coalesce(-sum(latest_gap) filter (where exposure_type = '{UNDER_CREDITED}'), 0) as owed_to_users,
       count(*) filter (where exposure_type = '{IN_SYNC}') as users_in_sync
from user_exposure
group by 1
order by 1
"""

OVERDRAFTS_SQL = """
select 'attempted' as kind, r.day, r.occurred_at, r.user_id, r.transaction_id, r.currency, r.action,
       r.current_balance as balance_before, r.amount, r.attempted_new_balance as balance_after,
       'rejected by the service' as outcome, r.stream, r.line
from negative_balance_rejections r
union all
select 'applied' as kind, t.day, t.occurred_at, t.user_id, t.transaction_id, t.currency, t.action,
       t.old_balance, t.amount, t.new_balance, 'applied: the balance went below zero', t.stream, t.line
from transactions t
where t.outcome = 'applied' and t.new_balance < 0
order by kind, occurred_at, stream, line
"""

SYNC_OUTCOMES_SQL = """
with outcomes as (
    select day, count(*) as transactions,
           count(*) filter (where outcome = 'applied') as applied,
           count(*) filter (where outcome = 'skipped') as skipped,
           count(*) filter (where outcome = 'rejected') as rejected,
           count(*) filter (where outcome = 'failed') as failed,
           count(*) filter (where outcome = 'unknown') as unknown
    from transactions group by day
),
published as (
    select day, count(*) as published_events from log_events where kind = 'sync_published' group by day
)
select coalesce(o.day, p.day) as day,
       coalesce(transactions, 0) as transactions, coalesce(applied, 0) as applied,
       coalesce(skipped, 0) as skipped, coalesce(rejected, 0) as rejected,
       coalesce(failed, 0) as failed, coalesce(unknown, 0) as unknown,
       coalesce(published_events, 0) as published_events,
       coalesce(published_events, 0) - coalesce(applied, 0) as published_without_transaction,
       coalesce(transactions, 0) = coalesce(applied, 0) + coalesce(skipped, 0) + coalesce(rejected, 0)
           + coalesce(failed, 0) + coalesce(unknown, 0) as all_accounted_for
from outcomes o full join published p on o.day = p.day
order by day
"""

USER_SUMMARY_SQL = """
with activity as (
    select user_id,
           string_agg(distinct currency, ', ' order by currency) as currency,
           count(*) as transactions,
           count(*) filter (where type = 'CREDIT') as credits,
           count(*) filter (where type = 'DEBIT') as debits,
           coalesce(sum(amount) filter (where type = 'CREDIT' and outcome = 'applied'), 0) as credited_amount,
           coalesce(sum(amount) filter (where type = 'DEBIT' and outcome = 'applied'), 0) as debited_amount,
           count(*) filter (where outcome = 'rejected') as rejected,
           count(*) filter (where outcome = 'failed') as failed,
           min(occurred_at) as first_activity,
           max(occurred_at) as last_activity
    from transactions group by user_id
),
gaps as (
    select user_id, sum(times_logged) as discrepancy_events,
           arg_max(latest_gap, last_seen) as latest_gap,
           arg_max(exposure_type, last_seen) as exposure_type
    from user_exposure group by user_id
),
breaks as (select user_id, count(*) as ledger_breaks from ledger_breaks group by user_id),
anomalies as (
    select t.user_id, count(*) as anomalies
    from anomaly_scores a join transactions t using (transaction_id)
    where a.is_anomaly group by t.user_id
)
select u.user_id, a.currency, coalesce(a.transactions, 0) as transactions,
       coalesce(a.credits, 0) as credits, coalesce(a.debits, 0) as debits,
       a.credited_amount, a.debited_amount, coalesce(a.rejected, 0) as rejected,
       coalesce(a.failed, 0) as failed, a.first_activity, a.last_activity,
       coalesce(g.discrepancy_events, 0) as discrepancy_events, g.latest_gap, g.exposure_type,
       coalesce(b.ledger_breaks, 0) as ledger_breaks, coalesce(n.anomalies, 0) as anomalies
from (select user_id from transactions union select user_id from user_exposure) u
left join activity a using (user_id)
left join gaps g using (user_id)
left join breaks b using (user_id)
left join anomalies n using (user_id)
order by coalesce(a.transactions, 0) desc, u.user_id
"""


def run(connection: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run one of the queries above with the money tolerance bound."""
    parameters = {"tolerance": TOLERANCE} if "$tolerance" in sql else None
    return connection.sql(sql, params=parameters).to_arrow_table()


def ledger_breaks(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Transactions breaking the arithmetic or the continuity rule, once each, where they show."""
    return run(connection, LEDGER_BREAKS_SQL)


def user_exposure(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per user and currency: the latest gap, its sign, when first and last seen, how often logged."""
    return run(connection, USER_EXPOSURE_SQL)


def exposure_totals(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per currency: revenue at risk and amount owed to users (needs the ``user_exposure`` view)."""
    return run(connection, EXPOSURE_TOTALS_SQL)


def overdrafts(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Attempted overdrafts (rejected) and applied ones (a new balance below zero), kept apart."""
    return run(connection, OVERDRAFTS_SQL)


def sync_outcomes(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per day, transactions by outcome reconciled against the "event published" messages."""
    return run(connection, SYNC_OUTCOMES_SQL)


def user_summary(connection: duckdb.DuckDBPyConnection) -> pa.Table:
    """Per user: activity, amounts, discrepancies, exposure, breaks and anomalies."""
    return run(connection, USER_SUMMARY_SQL)
