"""Every figure a person can see, named and defined once, with its unit and currency.

The workbook, the HTML page, the CSV files, the ``calo-report`` summary and the Dagster metadata read
figures from here and compute none of their own; the checks they show are ``calo_assets.checks``'.
Each figure is one SQL aggregate over the warehouse's tables (any DuckDB connection that has the
``INPUTS``: ``Warehouse.connect()``, some of them copied into memory) for the UTC days
``first..last``; exposure is as known at the end of the period's last day (``exposure_daily``: the
latest gap per user up to that day). A figure per currency is also given in total when adding makes
sense (counts, never money); rows without a currency are counted under ``UNKNOWN_CURRENCY`` so the
currencies add up to the total. Metrics of one source (and kind: per currency or not, window) are
computed by one query.

API: ``headline``, ``overview``, ``checks``, ``period`` (or ``report_figures`` for all four at once)
give ``Figure``, ``CheckOutcome`` and ``Period`` values; ``window_figures`` and ``daily_figures`` give
named figures over a window or per day; ``find``, ``currencies``, ``by_currency`` and ``label`` read
them; ``query_rows`` runs a query over a window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from calo_assets.ledger import finance
from calo_assets.money import format_money

if TYPE_CHECKING:
    from calo_assets.checks import CheckOutcome, CheckSettings

UNKNOWN_CURRENCY = "unknown"
# The warehouse views the figures read: a connection needs a view, or an empty table, for each.
INPUTS = (
    *finance.INPUTS,
    "anomaly_scores",
    "quarantine",
    "ledger_breaks",
    "overdrafts",
    "sync_outcomes",
    "exposure_daily",
    "discrepancy_cases",
    "calendar",
)
# Units that are not counts (a share: a fraction of one); any other unit names what is counted.
MONEY, DAY, SHARE = "money", "day", "share"

_WINDOW = "day between $first and $last"


@dataclass(frozen=True)
class Figure:
    """One reported figure: ``value`` in ``unit`` ("money", "day", "share" or what is counted), per
    ``currency`` (None: not per currency, or the total over currencies)."""

    name: str
    label: str
    value: int | float | Decimal | date
    unit: str
    currency: str | None = None

    @property
    def text(self) -> str:
        """The value as shown: money to the currency's minor unit, counts with separators."""
        if self.unit == MONEY:
            return format_money(Decimal(self.value), self.currency)  # type: ignore[arg-type]
        if self.unit == DAY:
            return self.value.isoformat()  # type: ignore[union-attr]
        return f"{self.value:,}"


@dataclass(frozen=True)
class Period:
    """The days reported: the first and last day of the window that hold at least one log record
    (the window itself when none does)."""

    first: date
    last: date


@dataclass(frozen=True)
class _Metric:
    name: str
    label: str
    unit: str
    source: str  # a relation: table name or parenthesised query (with $first/$last for the window)
    value: str  # an aggregate over ``source``
    per_currency: bool = True
    total: bool = True  # also the total over currencies (False for money)
    days_before: int | None = None  # as known at the end of the period's last day minus this


def _window(table: str) -> str:
    return f"(select * from {table} where {_WINDOW})"


_TX, _DISCREPANCIES = _window("transactions"), _window("balance_discrepancies")
# Exposure as known at the end of a day (``$day``: the last day with a figure up to it), from
# ``exposure_daily`` (the latest gap per user, per currency); nothing before the period's first day.
_EXPOSURE_AT = """(select * from exposure_daily
    where day = (select max(day) from exposure_daily where day <= $day) and $day >= $first)"""


def _exposure_at(days_before: int) -> tuple[_Metric, ...]:
    when = "at the end of the period" if not days_before else f"{days_before} days before the end"
    suffix = "" if not days_before else f"_{days_before}_days_before"
    return tuple(
        _Metric(
            f"{name}{suffix}",
            f"{text} {when}",
            unit,
            _EXPOSURE_AT,
            f"coalesce(sum({name}), 0)" + ("" if unit == MONEY else "::bigint"),
            total=False,
            days_before=days_before,
        )
        for name, text, unit in (
            ("revenue_at_risk", "revenue at risk: latest gaps > 0,", MONEY),
            ("owed_to_users", "owed to users: latest gaps < 0,", MONEY),
            ("users_over_credited", "users over-credited (latest gap > 0)", "users"),
            ("users_under_credited", "users under-credited (latest gap < 0)", "users"),
        )
    )


def _applied_sum(kind: str) -> str:
    return f"coalesce(sum(amount) filter (where type = '{kind}' and outcome = 'applied'), 0)"


METRICS: tuple[_Metric, ...] = (
    _Metric("transactions", "transactions (balance syncs)", "transactions", _TX, "count(*)"),
    _Metric(
        "users_with_transactions",
        "users with transactions",
        "users",
        _TX,
        "count(distinct user_id)",
    ),
    _Metric(
        "applied_credits",
        "credits applied",
        "transactions",
        _TX,
        "count(*) filter (where type = 'CREDIT' and outcome = 'applied')",
    ),
    _Metric(
        "applied_debits",
        "debits applied",
        "transactions",
        _TX,
        "count(*) filter (where type = 'DEBIT' and outcome = 'applied')",
    ),
    _Metric(
        "volume_credited",
        "volume credited: applied credits, gross (VAT included)",
        MONEY,
        _TX,
        _applied_sum("CREDIT"),
        total=False,
    ),
    _Metric(
        "volume_debited",
        "volume debited: applied debits, gross (VAT included)",
        MONEY,
        _TX,
        _applied_sum("DEBIT"),
        total=False,
    ),
    _Metric(
        "transactions_rejected",
        "transactions with outcome rejected (negative balance)",
        "transactions",
        _TX,
        "count(*) filter (where outcome = 'rejected')",
    ),
    _Metric(
        "transactions_failed",
        "transactions with outcome failed (failed syncs)",
        "transactions",
        _TX,
        "count(*) filter (where outcome = 'failed')",
    ),
    _Metric(
        "negative_balance_rejections",
        "negative-balance rejections (logged refusals)",
        "rejections",
        _window("negative_balance_rejections"),
        "count(*)",
    ),
    _Metric(
        "discrepancy_events",
        "balance discrepancy events (a gap is logged at every sync)",
        "events",
        _DISCREPANCIES,
        "count(*)",
    ),
    _Metric(
        "users_with_discrepancies",
        "users with discrepancies",
        "users",
        _DISCREPANCIES,
        "count(distinct user_id)",
    ),
    *_exposure_at(0),
    _Metric(
        "anomalies",
        "transactions flagged as anomalous",
        "transactions",
        _window("anomaly_scores"),
        "count(*) filter (where is_anomaly)",
    ),
    _Metric(
        "processing_errors",
        "processing errors (all, linked to a transaction or not)",
        "errors",
        _window("processing_errors"),
        "count(*)",
        per_currency=False,
    ),
    _Metric(
        "invocations",
        "Lambda invocations",
        "invocations",
        _window("invocations"),
        "count(*)",
        per_currency=False,
    ),
    _Metric(
        "failed_invocations",
        "failed invocations (error, timeout or never ended)",
        "invocations",
        _window("invocations"),
        "count(*) filter (where status <> 'success')",
        per_currency=False,
    ),
    _Metric(
        "log_streams",
        "log streams",
        "streams",
        _window("ingest_manifest"),
        "count(distinct stream)",
        per_currency=False,
    ),
    _Metric(
        "records_read",
        "records read",
        "records",
        _window("ingest_manifest"),
        "coalesce(sum(records_read), 0)::bigint",
        per_currency=False,
    ),
    _Metric(
        "records_typed",
        "records typed",
        "records",
        _window("log_events"),
        "count(*)",
        per_currency=False,
    ),
    _Metric(
        "records_quarantined",
        "records quarantined",
        "records",
        _window("quarantine"),
        "count(*) filter (where unit = 'record')",
        per_currency=False,
    ),
    _Metric(
        "files_quarantined",
        "files quarantined",
        "files",
        _window("quarantine"),
        "count(*) filter (where unit = 'file')",
        per_currency=False,
    ),
)
# The Overview: exposure 7 and 30 days before the end; the cases of ``discrepancy_cases`` (whole
# history, ages at the end of the period); what needs action.
EXPOSURE_BEFORE = (*_exposure_at(7), *_exposure_at(30))
_CASES = "discrepancy_cases"
_NOT_RESOLVED = "status <> 'resolved'"
_SUSPECT = f"{_NOT_RESOLVED} and (negative_payment_balance or mirrors_transaction_id is not null)"
OVERVIEW_METRICS: tuple[_Metric, ...] = (
    _Metric("open_cases", "open cases", "cases", _CASES, "count(*) filter (where status = 'open')"),
    _Metric(
        "probably_resolved_cases",
        "cases probably resolved (applied syncs since, gap not logged again)",
        "cases",
        _CASES,
        "count(*) filter (where status = 'probably_resolved')",
    ),
    *(
        _Metric(
            f"open_cases_aged_{bucket.replace('-', '_').replace(' ', '_')}",
            f"open cases aged {bucket} days",
            "cases",
            _CASES,
            f"count(*) filter (where status = 'open' and age_bucket = '{bucket}')",
        )
        for _, bucket in finance.AGE_BUCKETS
    ),
    _Metric(
        "cases_opened_last_7_days",
        "cases opened in the period's last 7 days, not resolved",
        "cases",
        _CASES,
        f"count(*) filter (where {_NOT_RESOLVED} and opened_day > $last - 7 and opened_day <= $last)",
    ),
    _Metric(
        "suspect_gaps",
        "suspect gaps: negative payment balance or mirroring a refused or failed sync",
        "cases",
        _CASES,
        f"count(*) filter (where {_SUSPECT})",
    ),
    *EXPOSURE_BEFORE,
    _Metric(
        "days_without_logs",
        "days of the period without any log",
        "days",
        f"(select * from calendar where {_WINDOW})",
        "count(*) filter (where not has_logs)",
        per_currency=False,
    ),
)
# Alerts: the cases first logged in the window (a daily run's own day), per currency, with the
# money they hold now (not resolved: latest gap > 0 at risk, < 0 owed), from ``discrepancy_cases``.
_OPENED = f"(select * from {_CASES} where opened_day between $first and $last)"
ALERT_METRICS: tuple[_Metric, ...] = (
    _Metric(
        "cases_opened", "cases opened (first logged) in the period", "cases", _OPENED, "count(*)"
    ),
    _Metric(
        "revenue_at_risk_of_cases_opened",
        "revenue at risk of the cases opened in the period (latest gaps > 0, not resolved)",
        MONEY,
        _OPENED,
        "coalesce(sum(revenue_at_risk), 0)",
        total=False,
    ),
    _Metric(
        "owed_to_users_of_cases_opened",
        "owed to users by the cases opened in the period (latest gaps < 0, not resolved)",
        MONEY,
        _OPENED,
        "coalesce(sum(owed_to_user), 0)",
        total=False,
    ),
)
# Figures shown on Dagster only, not in the report: two history tables' own (their attempted
# overdrafts are the report's negative_balance_rejections, and whether each day's outcomes and
# published events add up is the every_transaction_accounted_for check's), and the anomaly_share
# check's evidence (with ``anomalies``).
_DAGSTER_METRICS: tuple[_Metric, ...] = (
    _Metric(
        "overdrafts_applied",
        "applied overdrafts (a balance below zero applied)",
        "transactions",
        _window("overdrafts"),
        "count(*) filter (where kind = 'applied')",
    ),
    _Metric(
        "published_events",
        "'event published' messages logged",
        "events",
        _window("sync_outcomes"),
        "coalesce(sum(published_events), 0)::bigint",
        per_currency=False,
    ),
    _Metric(
        "transactions_scored",
        "transactions scored for anomalies",
        "transactions",
        _window("anomaly_scores"),
        "count(*)",
    ),
    _Metric(
        "scored_contamination",
        "contamination the transactions were scored with (weighted by transactions)",
        SHARE,
        _window("anomaly_scores"),
        "coalesce(sum(contamination) / count(*), 0)",
        per_currency=False,
    ),
)
_BY_NAME = {
    metric.name: metric
    for metric in (
        *METRICS,
        *OVERVIEW_METRICS,
        *ALERT_METRICS,
        *_DAGSTER_METRICS,
    )
}
PERIOD_FIGURES = ("period_first", "period_last")
CHECK_FIGURES = ("checks_passed", "checks_failed")


def query_rows(
    connection: duckdb.DuckDBPyConnection, sql: str, first: date, last: date
) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` with ``$first``/``$last`` (and ``$day``: ``last``) bound where it uses them."""
    values = {"first": first, "last": last, "day": last}
    parameters = {name: value for name, value in values.items() if f"${name}" in sql}
    return connection.execute(sql, parameters or None).fetchall()


def _sql(source: str, per_currency: bool, values: list[str], by_day: bool = False) -> str:
    """One query for several metrics of one source: rows of (the day when ``by_day``, the currency,
    or None for the total over currencies, then each metric's value)."""
    measures = ", ".join(values)
    day = "day, " if by_day else ""
    if not per_currency:
        return f"select {day}null as currency, {measures} from {source}" + (
            " group by day" if by_day else ""
        )
    sets = "(day, currency), (day)" if by_day else "(currency), ()"
    return (
        f"select {day}case when grouping(currency) = 0 then currency end as currency, {measures} "
        f"from (select * replace (coalesce(currency, '{UNKNOWN_CURRENCY}') as currency) from {source}) "
        f"group by grouping sets ({sets})"
    )


def period(connection: duckdb.DuckDBPyConnection, first: date, last: date) -> Period:
    """First and last day of ``first..last`` holding at least one log record (``finance``'s rule)."""
    sql = f"select min(day), max(day) from ({finance.LOGGED_DAYS_SQL}) where {_WINDOW}"
    low, high = query_rows(connection, sql, first, last)[0]
    return Period(low, high) if low is not None else Period(first, last)


@dataclass(frozen=True)
class ReportFigures:
    """Everything ``report_figures`` computes, each once."""

    period: Period
    headline: list[Figure]
    overview: list[Figure]
    checks: list[CheckOutcome]


def report_figures(
    connection: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    settings: CheckSettings | None = None,
) -> ReportFigures:
    """The period, the headline and Overview figures and the checks of ``first..last``, in one pass
    (what ``period``, ``headline``, ``overview`` and ``checks`` give one by one)."""
    days, results = period(connection, first, last), checks(connection, first, last, settings)
    return ReportFigures(
        days,
        _headline(connection, first, last, days, results),
        _overview(connection, days),
        results,
    )


def headline(connection: duckdb.DuckDBPyConnection, first: date, last: date) -> list[Figure]:
    """Every headline figure for ``first..last``: the period, then each metric in total and per
    currency (every currency any metric has, zero where a metric has no rows), then the checks."""
    days = period(connection, first, last)
    return _headline(connection, first, last, days, checks(connection, first, last))


def _headline(
    connection: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    days: Period,
    results: list[CheckOutcome],
) -> list[Figure]:
    passed = sum(check.passed for check in results)
    return [
        Figure("period_first", "first day with a log record", days.first, DAY),
        Figure("period_last", "last day with a log record", days.last, DAY),
        *_figures(connection, METRICS, first, last, days),
        Figure("checks_passed", "data checks passed", passed, "checks"),
        Figure("checks_failed", "data checks failed", len(results) - passed, "checks"),
    ]


def _figures(
    connection: duckdb.DuckDBPyConnection,
    chosen: Iterable[_Metric],
    first: date,
    last: date,
    days: Period,
) -> list[Figure]:
    """Each metric in total and per currency (every currency any of them has, zero where a metric
    has no rows; the unknown-currency bucket only when some figure has something in it). A metric
    as known some days before the end is evaluated on the period ``days``; it has no figure before
    it."""
    chosen = list(chosen)
    values: dict[str, dict[str | None, Any]] = {metric.name: {} for metric in chosen}
    for batch, window in _batches(chosen, first, last, days):
        sql = _sql(batch[0].source, batch[0].per_currency, [metric.value for metric in batch])
        for currency, *found in query_rows(connection, sql, *window):
            for metric, value in zip(batch, found, strict=True):
                values[metric.name][currency] = value
    return _assembled(chosen, values)


def _batches(
    chosen: list[_Metric], first: date, last: date, days: Period
) -> list[tuple[list[_Metric], tuple[date, date]]]:
    """The metrics grouped by source (one query each), with the window each is evaluated on."""
    batches: dict[tuple[str, bool, int | None], list[_Metric]] = {}
    for metric in chosen:
        batches.setdefault((metric.source, metric.per_currency, metric.days_before), []).append(
            metric
        )
    return [
        (batch, (first, last) if before is None else (days.first, days.last - timedelta(before)))
        for (_, _, before), batch in batches.items()
    ]


def _assembled(chosen: list[_Metric], values: dict[str, dict[str | None, Any]]) -> list[Figure]:
    """The figures of ``chosen`` from their values per currency (None: the total)."""
    found_currencies = {currency for found in values.values() for currency in found} - {None}
    if not any(found.get(UNKNOWN_CURRENCY) for found in values.values()):
        found_currencies.discard(UNKNOWN_CURRENCY)
    figures = []
    for metric in chosen:
        found = values[metric.name]
        if metric.days_before and set(found) <= {None}:  # before the first day: unknown, not 0
            continue
        zero: int | Decimal = Decimal(0) if metric.unit == MONEY else 0
        if metric.total or not metric.per_currency:
            total = found.get(None)
            figures.append(
                Figure(metric.name, metric.label, zero if total is None else total, metric.unit)
            )
        if metric.per_currency:
            figures += [
                Figure(metric.name, metric.label, found.get(currency, zero), metric.unit, currency)
                for currency in sorted(found_currencies, key=currency_order)
            ]
    return figures


def window_figures(
    connection: duckdb.DuckDBPyConnection, names: Iterable[str], first: date, last: date
) -> list[Figure]:
    """The figures ``names`` over ``first..last``, in total and per currency, as ``headline`` gives
    them (metrics of a window only, not as known some days before its end)."""
    chosen = [_BY_NAME[name] for name in names]
    for metric in chosen:
        if metric.days_before is not None:
            raise ValueError(f"{metric.name} is not a figure of a window")
    return _figures(connection, chosen, first, last, Period(first, last))


def daily_figures(
    connection: duckdb.DuckDBPyConnection,
    names: Iterable[str],
    first: date,
    last: date,
    every_day: bool = True,
) -> dict[date, list[Figure]]:
    """The figures ``names`` of each day of ``first..last``, as ``headline`` gives them for a window
    of that one day (not those as known some days before the end), from one query per source.
    ``every_day`` False: only the days a source of theirs has rows for, in order (the window may then
    be the whole history)."""
    chosen = [_BY_NAME[name] for name in names]
    values: dict[date, dict[str, dict[str | None, Any]]] = {}
    for batch, window in _batches(chosen, first, last, Period(first, last)):
        if batch[0].days_before is not None:
            raise ValueError(f"{batch[0].name} is not a figure of a day")
        sql = _sql(batch[0].source, batch[0].per_currency, [m.value for m in batch], by_day=True)
        for day, currency, *found in query_rows(connection, sql, *window):
            per_day = values.setdefault(day, {metric.name: {} for metric in chosen})
            for metric, value in zip(batch, found, strict=True):
                per_day[metric.name][currency] = value
    days = (
        [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
        if every_day
        else sorted(values)
    )
    return {
        day: _assembled(chosen, values.get(day, {metric.name: {} for metric in chosen}))
        for day in days
    }


# What a history table's materialization shows in Dagster (its figures over the whole history).
HISTORY_METRICS: dict[str, tuple[str, ...]] = {
    "discrepancy_cases": ("open_cases", "probably_resolved_cases", "suspect_gaps"),
    "overdrafts": ("negative_balance_rejections", "overdrafts_applied"),
    "sync_outcomes": ("published_events",),
}


def history_figures(
    connection: duckdb.DuckDBPyConnection, tables: Iterable[str]
) -> dict[str, list[Figure]]:
    """Per table of ``tables``: the figures ``HISTORY_METRICS`` names for it, over every day of the
    warehouse (each table's own: a currency one table has is not added to another's)."""
    days = period(connection, date.min, date.max)
    return {
        table: _figures(
            connection,
            [_BY_NAME[name] for name in HISTORY_METRICS.get(table, ())],
            days.first,
            days.last,
            days,
        )
        for table in tables
    }


# What the partitions of each daily table show in Dagster, beside their row count and preview.
PARTITION_METRICS: dict[str, tuple[str, ...]] = {
    "log_events": ("records_typed",),
    "quarantine": ("records_quarantined", "files_quarantined"),
    "ingest_manifest": ("log_streams", "records_read"),
    "invocations": ("invocations", "failed_invocations"),
    "transactions": (
        "transactions",
        "applied_credits",
        "applied_debits",
        "volume_credited",
        "volume_debited",
        "transactions_rejected",
        "transactions_failed",
    ),
    "balance_discrepancies": ("discrepancy_events", "users_with_discrepancies"),
    "negative_balance_rejections": ("negative_balance_rejections",),
    "processing_errors": ("processing_errors",),
    "anomaly_scores": ("anomalies",),
}


def overview(connection: duckdb.DuckDBPyConnection, first: date, last: date) -> list[Figure]:
    """The figures of the Overview for ``first..last``: exposure 7 and 30 days before the end,
    cases by status and age, what needs action."""
    return _overview(connection, period(connection, first, last))


def _overview(connection: duckdb.DuckDBPyConnection, days: Period) -> list[Figure]:
    return _figures(connection, OVERVIEW_METRICS, days.first, days.last, days)


def alert_figures(connection: duckdb.DuckDBPyConnection, first: date, last: date) -> list[Figure]:
    """The figures alerts are made of (``ALERT_METRICS``) for ``first..last``, in total and per
    currency (every currency with a case opened in the window)."""
    return _figures(connection, ALERT_METRICS, first, last, Period(first, last))


def currency_order(currency: str) -> tuple[bool, str]:
    """Currencies by code, the unknown bucket last."""
    return currency == UNKNOWN_CURRENCY, currency


def find(figures: Iterable[Figure], name: str, currency: str | None = None) -> Figure:
    """The figure ``name`` for ``currency`` (None: its total, or the figure if not per currency)."""
    for figure in figures:
        if figure.name == name and figure.currency == currency:
            return figure
    raise KeyError(f"no figure {name!r} for currency {currency!r}")


def currencies(figures: Iterable[Figure]) -> list[str]:
    """The currencies the figures are given in, in display order."""
    return sorted(
        {figure.currency for figure in figures if figure.currency is not None}, key=currency_order
    )


def by_currency(figures: Iterable[Figure], names: Iterable[str]) -> pd.DataFrame:
    """One row per currency that any figure in ``names`` has, one column per figure (exact values;
    None where a figure has no value for the currency)."""
    cells = {(figure.name, figure.currency): figure.value for figure in figures}
    names = list(names)
    shown = sorted(
        {currency for name, currency in cells if name in names and currency}, key=currency_order
    )
    rows = [
        {"currency": currency, **{name: cells.get((name, currency)) for name in names}}
        for currency in shown
    ]
    rows = [  # the unknown bucket only when it holds something
        row
        for row in rows
        if row["currency"] != UNKNOWN_CURRENCY or any(row[name] for name in names)
    ]
    return pd.DataFrame(rows, columns=["currency", *names])


def currency_title(currency: str | None) -> str:
    """A currency as a column header: its code, "unknown currency", or "total"."""
    if currency is None:
        return "total"
    return "unknown currency" if currency == UNKNOWN_CURRENCY else currency


def label(name: str) -> str:
    """The label of the metric ``name``."""
    return _BY_NAME[name].label


def checks(
    connection: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    settings: CheckSettings | None = None,
) -> list[CheckOutcome]:
    """The report's data checks over ``first..last`` (``calo_assets.checks``), in a fixed order."""
    from calo_assets import (
        checks as data_checks,  # imported here: calo_assets.checks imports this module
    )

    return data_checks.evaluate(connection, first, last, settings=settings)
