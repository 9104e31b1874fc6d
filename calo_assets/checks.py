"""Data-quality checks, each defined once, over the warehouse's views, without Dagster.

A check is rows read over a DuckDB connection with the warehouse's tables (``Warehouse.connect()``;
the tables the checks read are among ``metrics.INPUTS``) for the UTC days ``first..last``, and a
judgement of its rows. Rows that are figures of ``calo_assets.metrics`` are read from there; the
others are a query of the check's own. A daily check's rows start with their day: the same
judgement gives each day's result (Dagster records one per partition) and the result over a window
(the report, ``calo-report``); ``Check.over_days`` gives the result over the days judged one by
one. The report's Checks sheet, ``calo-report``'s exit code and the Dagster asset checks all read
``evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import duckdb

from calo_assets import metrics
from calo_assets.money import KNOWN_CURRENCIES, plain_decimal
from calo_assets.tables.sync import OUTCOMES

Severity = Literal["ERROR", "WARN"]
Rows = list[tuple[Any, ...]]
PREVIEW_BREAKS = 5
PREVIEW_DAYS = 20
DEFAULT_MAX_DISCREPANCY_RATE = 0.5
WHOLE_HISTORY = (date(1, 1, 1), date(9999, 12, 31))


@dataclass(frozen=True)
class CheckSettings:
    """What a check is judged against: configuration, not data."""

    max_discrepancy_rate: float = DEFAULT_MAX_DISCREPANCY_RATE
    today: date | None = None  # ``latest_day_present``: the clock's UTC day when None


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result: which check on which table, whether it passed, and its evidence
    (``summary``: one line for the report; ``metadata``: the figures, for Dagster)."""

    name: str
    asset: str
    passed: bool
    severity: Severity = "ERROR"
    metadata: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def failed_error(self) -> bool:
        return not self.passed and self.severity == "ERROR"

    @property
    def label(self) -> str:
        return CHECKS[self.name].label


Judgement = tuple[bool, str, dict[str, Any]]


@dataclass(frozen=True)
class Check:
    """A check: its table, what it proves, its rows over the window ``first..last`` and the
    judgement of its rows against the settings."""

    name: str
    table: str
    label: str  # short, as the report lists it
    description: str
    rows: Callable[[duckdb.DuckDBPyConnection, date, date, CheckSettings], Rows]
    judge: Callable[[Rows, CheckSettings], Judgement]
    severity: Severity = "ERROR"
    daily: bool = False  # rows start with their day: one result per day
    in_report: bool = True

    def outcome(self, rows: Rows, settings: CheckSettings) -> CheckOutcome:
        passed, summary, metadata = self.judge(rows, settings)
        return CheckOutcome(self.name, self.table, passed, self.severity, metadata, summary)

    def evaluate(
        self,
        connection: duckdb.DuckDBPyConnection,
        first: date,
        last: date,
        settings: CheckSettings,
    ) -> CheckOutcome:
        """The result over ``first..last``."""
        return self.outcome(self.rows(connection, first, last, settings), settings)

    def evaluate_days(
        self,
        connection: duckdb.DuckDBPyConnection,
        days: Iterable[str],
        settings: CheckSettings,
    ) -> dict[str, CheckOutcome]:
        """One result per day of a daily check, from one query over the days' span."""
        wanted = sorted(days)
        if not self.daily:
            raise ValueError(f"{self.name} is not a daily check")
        if not wanted:
            return {}
        first, last = date.fromisoformat(wanted[0]), date.fromisoformat(wanted[-1])
        by_day: dict[str, Rows] = {day: [] for day in wanted}
        for row in self.rows(connection, first, last, settings):
            by_day.setdefault(str(row[0]), []).append(row)
        return {day: self.outcome(by_day[day], settings) for day in wanted}

    def over_days(self, per_day: Mapping[str, CheckOutcome]) -> CheckOutcome:
        """The result over the days of ``per_day`` (``evaluate_days``): passed when each day did."""
        failed = days_not_passed(per_day)
        return CheckOutcome(
            self.name,
            self.table,
            not failed,
            self.severity,
            {"days checked": len(per_day), "days that did not pass": failed[:PREVIEW_DAYS]},
        )


def days_not_passed(per_day: Mapping[str, CheckOutcome]) -> list[str]:
    """The days of ``per_day`` whose result did not pass, in its order."""
    return [day for day, outcome in per_day.items() if not outcome.passed]


def _sql(query: str) -> Callable[[duckdb.DuckDBPyConnection, date, date, CheckSettings], Rows]:
    """The rows of ``query`` (``$first``/``$last``: the window)."""

    def rows(
        connection: duckdb.DuckDBPyConnection, first: date, last: date, _: CheckSettings
    ) -> Rows:
        return metrics.query_rows(connection, query, first, last)

    return rows


# --- nothing_lost: records read (bytes and lines of the stream files) against what was kept -----


def _records_per_day(
    connection: duckdb.DuckDBPyConnection, first: date, last: date, _: CheckSettings
) -> Rows:
    names = ("records_read", "records_typed", "records_quarantined")
    rows = [
        (day, *(metrics.find(figures, name).value for name in names))
        for day, figures in metrics.daily_figures(connection, names, first, last).items()
    ]
    return [row for row in rows if any(row[1:])]  # the days holding anything


def _nothing_lost(rows: Rows, _: CheckSettings) -> Judgement:
    lost = [
        {"day": str(day), "read": read, "typed": typed, "quarantined": quarantined}
        for day, read, typed, quarantined in rows
        if read != typed + quarantined
    ]
    return (
        not lost,
        f"days with a difference: {len(lost)}",
        {
            "records read": sum(row[1] for row in rows),
            "records typed": sum(row[2] for row in rows),
            "records quarantined": sum(row[3] for row in rows),
            "days with a difference": lost[:PREVIEW_DAYS],
        },
    )


# --- the sync tables ----------------------------------------------------------------------------

_OUTCOMES = ", ".join(f"'{outcome}'" for outcome in OUTCOMES)
_KNOWN = ", ".join(f"'{currency}'" for currency in sorted(KNOWN_CURRENCIES))


def _ids_unique(rows: Rows, _: CheckSettings) -> Judgement:
    (duplicated, first_ids), *_ = rows
    return (
        duplicated == 0,
        f"duplicated ids: {duplicated}",
        {"duplicated ids": duplicated, "duplicated ids (first 20)": first_ids or []},
    )


def _with_outcome(rows: Rows, _: CheckSettings) -> Judgement:
    missing = sum(row[1] for row in rows)
    return missing == 0, f"without an outcome: {missing}", {"without an outcome": missing}


def _currencies_known(rows: Rows, _: CheckSettings) -> Judgement:
    unknown: dict[str, int] = {}
    for _, currency, count in rows:
        unknown[currency] = unknown.get(currency, 0) + count
    return (
        not unknown,
        f"transactions with another currency: {sum(unknown.values())}",
        {"unknown currencies (transactions)": dict(sorted(unknown.items()))},
    )


def _discrepancies_per_transaction(
    connection: duckdb.DuckDBPyConnection, first: date, last: date, _: CheckSettings
) -> Rows:
    """(day, discrepancy events per transaction) of each day with transactions."""
    per_day = metrics.daily_figures(
        connection, ("transactions", "discrepancy_events"), first, last, every_day=False
    )
    return [
        (day, metrics.find(figures, "discrepancy_events").value / transactions)
        for day, figures in per_day.items()
        if (transactions := metrics.find(figures, "transactions").value)
    ]


def _discrepancy_rate(rows: Rows, settings: CheckSettings) -> Judgement:
    bound = settings.max_discrepancy_rate
    high = [{"day": str(day), "rate": round(rate, 3)} for day, rate in rows if rate > bound]
    return (
        not high,
        f"days above {bound:g} discrepancy events per transaction: {len(high)} of {len(rows)}",
        {"bound": bound, "days above the bound": high[:PREVIEW_DAYS], "days checked": len(rows)},
    )


_ANOMALY_SHARE_FIGURES = ("transactions_scored", "anomalies", "scored_contamination")


def _scored(
    connection: duckdb.DuckDBPyConnection, first: date, last: date, _: CheckSettings
) -> Rows:
    """One row: the figures ``_ANOMALY_SHARE_FIGURES`` over the window."""
    figures = metrics.window_figures(connection, _ANOMALY_SHARE_FIGURES, first, last)
    return [tuple(metrics.find(figures, name).value for name in _ANOMALY_SHARE_FIGURES)]


def _anomaly_share(rows: Rows, _: CheckSettings) -> Judgement:
    """Within three binomial standard deviations (plus one transaction) of the contamination each
    day was scored with, weighted by its transactions."""
    (scored, flagged, contamination), *_ = rows
    contamination = float(contamination)
    share = flagged / scored if scored else 0.0
    slack = (
        3 * math.sqrt(contamination * (1 - contamination) / scored) + 1 / scored if scored else 1.0
    )
    return (
        abs(share - contamination) <= slack,
        f"flagged {flagged} of {scored} ({share:.2%}) against a contamination of {contamination:.2%}",
        {
            "scored": scored,
            "flagged": flagged,
            "share": share,
            "contamination": contamination,
            "allowed difference": slack,
        },
    )


# --- the history tables -------------------------------------------------------------------------


def _breaks(rows: Rows, _: CheckSettings) -> Judgement:
    """Rows (day, transaction, user, expected, actual, direction inferred) of one rule's breaks."""
    legacy = sum(bool(row[-1]) for row in rows)
    first = [
        {
            "transaction_id": str(transaction),
            "user_id": str(user),
            "expected": plain_decimal(expected),
            "actual": plain_decimal(actual),
            "type_inferred": str(inferred),
        }
        for _, transaction, user, expected, actual, inferred in rows[:PREVIEW_BREAKS]
    ]
    return (
        not rows,
        f"breaks: {len(rows)} (of which legacy: {legacy})",
        {
            "breaks": len(rows),
            "of which legacy (inferred direction)": legacy,
            "first breaks": first,
        },
    )


def _accounted_for(rows: Rows, _: CheckSettings) -> Judgement:
    days = [str(day) for day, balanced in rows if not balanced]
    return (
        not days,
        f"days that do not add up: {len(days)}",
        {"days that do not add up": days[:PREVIEW_DAYS]},
    )


def _logged_days(
    connection: duckdb.DuckDBPyConnection, first: date, last: date, _: CheckSettings
) -> Rows:
    """(day, holds logs) of each day of the calendar in the window."""
    per_day = metrics.daily_figures(
        connection, ("days_without_logs",), first, last, every_day=False
    )
    return [
        (day, not metrics.find(figures, "days_without_logs").value)
        for day, figures in per_day.items()
    ]


def _has_logs(rows: Rows, _: CheckSettings) -> Judgement:
    missing = [str(day) for day, has_logs in rows if not has_logs]
    return (
        not missing,
        f"days without logs: {len(missing)} of {len(rows)}",
        {"days in the period": len(rows), "days without logs": missing},
    )


def _latest_day(rows: Rows, settings: CheckSettings) -> Judgement:
    (latest,), *_ = rows
    expected = (settings.today or datetime.now(UTC).date()) - timedelta(days=1)
    return (
        latest is not None and latest >= expected,
        f"latest day {latest or 'none'}, latest complete day {expected}",
        {
            "latest complete day": expected.isoformat(),
            "latest day in the warehouse": str(latest) if latest else "none",
        },
    )


_WINDOW = "day between $first and $last"
_BREAKS = (
    "select day, transaction_id, user_id, expected, actual, type_inferred from ledger_breaks"
    f" where rule = '{{rule}}' and {_WINDOW} order by occurred_at, transaction_id"
)

_DEFINED = (
    Check(
        "nothing_lost",
        "log_events",
        "records read = typed + quarantined, every day",
        "Records read from the stream files = records typed (log_events) + records quarantined, "
        "for every day.",
        _records_per_day,
        _nothing_lost,
        daily=True,
    ),
    Check(
        "transaction_ids_unique",
        "transactions",
        "transaction ids unique (whole history)",
        "No transaction id appears on two rows, over the whole warehouse.",
        _sql(
            "select count(*), list(transaction_id order by transaction_id)[:20] from"
            " (select transaction_id from transactions group by 1 having count(*) > 1)"
        ),
        _ids_unique,
    ),
    Check(
        "every_transaction_has_an_outcome",
        "transactions",
        "every transaction has an outcome",
        "Each transaction is applied, skipped, rejected, failed or unknown.",
        _sql(
            f"select day, count(*) from transactions where {_WINDOW}"
            f" and (outcome is null or outcome not in ({_OUTCOMES})) group by 1"
        ),
        _with_outcome,
        daily=True,
    ),
    Check(
        "currencies_known",
        "transactions",
        f"every currency is known ({', '.join(sorted(KNOWN_CURRENCIES))})",
        "Every transaction's currency is one whose minor unit is known "
        f"({', '.join(sorted(KNOWN_CURRENCIES))}).",
        _sql(
            f"select day, coalesce(currency, '(none)'), count(*) from transactions where {_WINDOW}"
            f" and (currency is null or currency not in ({_KNOWN})) group by 1, 2 order by 1, 2"
        ),
        _currencies_known,
        "WARN",
        daily=True,
    ),
    Check(
        "discrepancy_rate",
        "balance_discrepancies",
        "discrepancy events per transaction under the bound, every day",
        "Discrepancy events per transaction, per day, stay under the configured bound.",
        _discrepancies_per_transaction,
        _discrepancy_rate,
        "WARN",
        daily=True,
    ),
    Check(
        "anomaly_share",
        "anomaly_scores",
        "share of transactions flagged close to the contamination",
        "The share of transactions flagged is close to the contamination they were scored with.",
        _scored,
        _anomaly_share,
        "WARN",
    ),
    Check(
        "arithmetic_rule",
        "ledger_breaks",
        "arithmetic rule: new = old +/- (amount - vat)",
        "new = old ± (amount - vat) within 0.0005.",
        _sql(_BREAKS.format(rule="arithmetic")),
        _breaks,
        "WARN",
    ),
    Check(
        "continuity_rule",
        "ledger_breaks",
        "continuity: each applied sync starts where the previous ended",
        "Each applied sync of a user starts from the balance the previous one ended with.",
        _sql(_BREAKS.format(rule="continuity")),
        _breaks,
        "WARN",
    ),
    Check(
        "every_transaction_accounted_for",
        "sync_outcomes",
        "published events = applied transactions",
        "Outcomes add up and published = applied.",
        _sql(
            "select day, all_accounted_for and published_without_transaction = 0"
            f" from sync_outcomes where {_WINDOW} order by 1"
        ),
        _accounted_for,
    ),
    Check(
        "every_day_has_logs",
        "calendar",
        "every day of the period holds log records",
        "Every day of the period holds log records (a day without any is a finding: the service "
        "did not run, or its logs are missing).",
        _logged_days,
        _has_logs,
        "WARN",
    ),
    Check(
        "latest_day_present",
        "log_events",
        "the latest complete day is in the warehouse",
        "The daily tables are fresh: the latest complete UTC day (yesterday) has been materialized.",
        _sql("select max(day) from log_events"),
        _latest_day,
        "WARN",
        in_report=False,  # about today's clock, not about the period reported
    ),
)
CHECKS: dict[str, Check] = {check.name: check for check in _DEFINED}
REPORT_CHECKS = tuple(name for name, check in CHECKS.items() if check.in_report)


def evaluate(
    connection: duckdb.DuckDBPyConnection,
    first: date,
    last: date,
    names: Iterable[str] = REPORT_CHECKS,
    settings: CheckSettings | None = None,
) -> list[CheckOutcome]:
    """The checks ``names`` over ``first..last``, in the order given."""
    chosen = settings or CheckSettings()
    return [CHECKS[name].evaluate(connection, first, last, chosen) for name in names]
