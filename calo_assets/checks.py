"""Data-quality checks, computed from the written warehouse files, without Dagster.

Each check returns a ``CheckOutcome``; the Dagster shell turns it into an asset check result and
``calo-report`` prints the failures (and exits non-zero when one of severity ERROR fails).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.money import KNOWN_CURRENCIES, plain_decimal
from calo_assets.tables.sync import OUTCOMES, SYNC_TABLES
from calo_assets.warehouse import Warehouse

Severity = Literal["ERROR", "WARN"]
PREVIEW_BREAKS = 5
DEFAULT_MAX_DISCREPANCY_RATE = 0.5


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result: which check on which table, whether it passed, and its evidence."""

    name: str
    asset: str
    passed: bool
    severity: Severity = "ERROR"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_error(self) -> bool:
        return not self.passed and self.severity == "ERROR"


# Every check, the table it is on and what it proves: one place for names and descriptions.
CHECKS: dict[str, tuple[str, str]] = {
    "nothing_lost": (
        "log_events",
        "Records read = records typed (log_events) + records quarantined, for every day.",
    ),
    "transaction_ids_unique": (
        "transactions",
        "No transaction id appears on two rows, over the whole warehouse.",
    ),
    "every_transaction_has_an_outcome": (
        "transactions",
        "Each transaction is applied, skipped, rejected, failed or unknown.",
    ),
    "currencies_known": (
        "transactions",
        "Every transaction's currency is one whose minor unit is known (BHD, KWD, SAR, AED, QAR).",
    ),
    "discrepancy_rate": (
        "balance_discrepancies",
        "Discrepancy events per transaction, per day, stay under the configured bound.",
    ),
    "anomaly_share": (
        "anomaly_scores",
        "The share of transactions flagged is close to the configured contamination.",
    ),
    "arithmetic_rule": ("ledger_breaks", "new = old ± (amount - vat) within 0.0005."),
    "every_transaction_accounted_for": (
        "sync_outcomes",
        "Outcomes add up and published = applied.",
    ),
    "every_day_has_logs": (
        "calendar",
        "Every day of the period holds log records (a day without any is a finding: the service "
        "did not run, or its logs are missing).",
    ),
}


def _outcome(name: str, passed: bool, severity: Severity = "ERROR", **metadata: Any):
    return CheckOutcome(name, CHECKS[name][0], bool(passed), severity, metadata)


def nothing_lost(warehouse: Warehouse, days: list[str]) -> CheckOutcome:
    """Compare, from the written files, records read with records typed plus quarantined, per day."""
    per_day = []
    for day in days:
        read = pc.sum(warehouse.read_day("ingest_manifest", day)["records_read"]).as_py() or 0
        typed = warehouse.day_rows("log_events", day)
        quarantine = warehouse.read_day("quarantine", day)
        quarantined = pc.sum(pc.equal(quarantine["unit"], "record")).as_py() or 0
        per_day.append({"day": day, "read": read, "typed": typed, "quarantined": quarantined})
    lost = [row for row in per_day if row["read"] != row["typed"] + row["quarantined"]]
    return _outcome(
        "nothing_lost",
        not lost,
        **{
            "records read": sum(row["read"] for row in per_day),
            "records typed": sum(row["typed"] for row in per_day),
            "records quarantined": sum(row["quarantined"] for row in per_day),
            "days with a difference": lost[:20],
        },
    )


def sync_checks(
    warehouse: Warehouse,
    days: list[str],
    selected: set[str] | None = None,
    max_rate: float = DEFAULT_MAX_DISCREPANCY_RATE,
) -> list[CheckOutcome]:
    """The checks of the sync tables (all, or the ``selected`` names), from the written files."""
    wanted = set(selected) if selected is not None else set(CHECKS)
    window = [date.fromisoformat(days[0]), date.fromisoformat(days[-1])]
    results = []
    with warehouse.connect(empty_tables=SYNC_TABLES) as connection:
        if "transaction_ids_unique" in wanted:
            duplicates = connection.sql(
                "select transaction_id from transactions group by 1 having count(*) > 1 order by 1 limit 20"
            ).fetchall()
            results.append(
                _outcome(
                    "transaction_ids_unique",
                    not duplicates,
                    **{"duplicated ids (first 20)": [row[0] for row in duplicates]},
                )
            )
        if "every_transaction_has_an_outcome" in wanted:
            (missing,) = connection.execute(
                "select count(*) from transactions where day between ? and ?"
                " and (outcome is null or outcome not in ?)",
                [*window, list(OUTCOMES)],
            ).fetchone()
            results.append(
                _outcome(
                    "every_transaction_has_an_outcome",
                    missing == 0,
                    **{"without an outcome": missing},
                )
            )
        if "currencies_known" in wanted:
            unknown = connection.execute(
                "select coalesce(currency, '(none)'), count(*) from transactions where day between ? and ?"
                " and (currency is null or currency not in ?) group by 1 order by 1",
                [*window, sorted(KNOWN_CURRENCIES)],
            ).fetchall()
            results.append(
                _outcome(
                    "currencies_known",
                    not unknown,
                    "WARN",
                    **{"unknown currencies (transactions)": dict(unknown)},
                )
            )
        if "discrepancy_rate" in wanted:
            rates = connection.execute(
                "with t as (select day, count(*) as n from transactions where day between ? and ? group by day),"
                " d as (select day, count(*) as n from balance_discrepancies group by day)"
                " select t.day::varchar, coalesce(d.n, 0) / t.n from t left join d using (day) order by 1",
                window,
            ).fetchall()
            high = [{"day": day, "rate": round(rate, 3)} for day, rate in rates if rate > max_rate]
            results.append(
                _outcome(
                    "discrepancy_rate",
                    not high,
                    "WARN",
                    **{
                        "bound": max_rate,
                        "days above the bound": high[:20],
                        "days checked": len(rates),
                    },
                )
            )
    return results


def anomaly_share(scored: int, flagged: int, contamination: float) -> CheckOutcome:
    """Pass when the flagged share is within three binomial standard deviations of the contamination."""
    share = flagged / scored if scored else 0.0
    slack = (
        3 * math.sqrt(contamination * (1 - contamination) / scored) + 1 / scored if scored else 1.0
    )
    return _outcome(
        "anomaly_share",
        abs(share - contamination) <= slack,
        "WARN",
        scored=scored,
        flagged=flagged,
        share=share,
        contamination=contamination,
        **{"allowed difference": slack},
    )


def anomaly_share_of_warehouse(
    warehouse: Warehouse, contamination_of: Callable[[str], float]
) -> CheckOutcome:
    """``anomaly_share`` over every scored day of the warehouse, against the contamination each day
    was scored with (weighted by the day's transactions when runs used different ones).

    Over the whole table, not per day or per run: IsolationForest flags a share of its trailing
    window, and unusual transactions cluster on some days, so one day's share says little alone.
    """
    with warehouse.connect(empty_tables=["anomaly_scores"]) as connection:
        per_day = connection.sql(
            "select day::varchar, count(*), count(*) filter (where is_anomaly)"
            " from anomaly_scores group by 1 order by 1"
        ).fetchall()
    scored = sum(count for _, count, _ in per_day)
    flagged = sum(count for _, _, count in per_day)
    expected = sum(count * contamination_of(day) for day, count, _ in per_day)
    return anomaly_share(scored, flagged, expected / scored if scored else contamination_of(""))


def arithmetic_rule(ledger_breaks: pa.Table) -> CheckOutcome:
    """Warn when a transaction breaks new = old ± (amount - vat); list the first breaks."""
    arithmetic = ledger_breaks.filter(pc.equal(ledger_breaks["rule"], "arithmetic"))
    first = arithmetic.slice(0, PREVIEW_BREAKS).select(
        ["transaction_id", "user_id", "expected", "actual", "type_inferred"]
    )
    return _outcome(
        "arithmetic_rule",
        arithmetic.num_rows == 0,
        "WARN",
        breaks=arithmetic.num_rows,
        **{
            "of which legacy (inferred direction)": pc.sum(arithmetic["type_inferred"]).as_py()
            or 0,
            "first breaks": [
                {
                    key: plain_decimal(value) if isinstance(value, Decimal) else str(value)
                    for key, value in row.items()
                }
                for row in first.to_pylist()
            ],
        },
    )


def every_transaction_accounted_for(sync_outcomes: pa.Table) -> CheckOutcome:
    """Fail when a day's outcomes do not add up or its published events differ from applied syncs."""
    balanced = pc.and_(
        sync_outcomes["all_accounted_for"],
        pc.equal(sync_outcomes["published_without_transaction"], 0),
    )
    unbalanced = sync_outcomes.filter(pc.invert(balanced))
    return _outcome(
        "every_transaction_accounted_for",
        unbalanced.num_rows == 0,
        **{"days that do not add up": [str(day) for day in unbalanced["day"].to_pylist()[:20]]},
    )


def every_day_has_logs(calendar: pa.Table) -> CheckOutcome:
    """Warn when a day of the period holds no log record; list the days."""
    missing = calendar.filter(pc.invert(calendar["has_logs"]))
    return _outcome(
        "every_day_has_logs",
        missing.num_rows == 0,
        "WARN",
        **{
            "days in the period": calendar.num_rows,
            "days without logs": [str(day) for day in missing["day"].to_pylist()],
        },
    )


# The checks run on a history table once it is built, by table.
HISTORY_CHECKS: dict[str, tuple[Callable[[pa.Table], CheckOutcome], ...]] = {
    "ledger_breaks": (arithmetic_rule,),
    "sync_outcomes": (every_transaction_accounted_for,),
    "calendar": (every_day_has_logs,),
}
