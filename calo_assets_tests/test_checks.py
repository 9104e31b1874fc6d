"""The core checks on small hand-made warehouses, without Dagster: one definition for every surface."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest

from calo_assets import checks, metrics
from calo_assets.tables.schema import SCHEMAS
from calo_assets.warehouse import Warehouse


def _write(warehouse: Warehouse, table: str, rows: list[dict]) -> None:
    data = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    if table in ("calendar", "ledger_breaks", "sync_outcomes"):
        warehouse.write_table(table, data)
        return
    for day in sorted({row["day"] for row in rows}):
        warehouse.write_day(table, day.isoformat(), data.filter(pa.compute.equal(data["day"], day)))


def _evaluate(warehouse: Warehouse, name: str, first: date, last: date, **settings):
    with warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        return checks.CHECKS[name].evaluate(
            connection, first, last, checks.CheckSettings(**settings)
        )


def _figures(warehouse: Warehouse, names: tuple[str, ...], first: date, last: date) -> list:
    """The values of the metrics ``names`` over ``first..last`` (their totals), in order."""
    with warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        figures = metrics.window_figures(connection, names, first, last)
    return [metrics.find(figures, name).value for name in names]


D1, D2, D3 = date(2024, 3, 15), date(2024, 3, 16), date(2024, 3, 17)


def test_days_without_logs_are_a_warning_that_names_them(tmp_path):
    warehouse = Warehouse(tmp_path)
    _write(
        warehouse,
        "calendar",
        [{"day": day, "has_logs": day != D2} for day in (D1, D2, D3)],
    )
    outcome = _evaluate(warehouse, "every_day_has_logs", D1, D3)
    assert (outcome.passed, outcome.severity, outcome.asset) == (False, "WARN", "calendar")
    assert outcome.metadata["days without logs"] == ["2024-03-16"]
    assert outcome.summary == "days without logs: 1 of 3"
    assert not outcome.failed_error  # a finding, not a failure of the run
    assert _evaluate(warehouse, "every_day_has_logs", D3, D3).passed  # only the window is judged


def test_every_day_has_logs_agrees_with_the_days_without_logs_figure(tmp_path):
    warehouse = Warehouse(tmp_path)
    logged = {D1: True, D2: False, D3: True, date(2024, 3, 18): False}
    _write(warehouse, "calendar", [{"day": day, "has_logs": has} for day, has in logged.items()])
    for first, last in ((D1, D3), checks.WHOLE_HISTORY, (D3, D3)):  # fails, fails, passes
        days = [day for day in logged if first <= day <= last]
        missing = [day.isoformat() for day in days if not logged[day]]
        outcome = _evaluate(warehouse, "every_day_has_logs", first, last)
        assert (outcome.passed, outcome.summary, outcome.metadata) == (
            not missing,
            f"days without logs: {len(missing)} of {len(days)}",
            {"days in the period": len(days), "days without logs": missing},
        )
        assert _figures(warehouse, ("days_without_logs",), first, last) == [len(missing)]


def test_nothing_lost_compares_records_read_with_typed_and_quarantined_per_day(tmp_path):
    warehouse = Warehouse(tmp_path)
    _write(
        warehouse,
        "ingest_manifest",
        [{"day": D1, "records_read": 3}, {"day": D2, "records_read": 2}],
    )
    _write(warehouse, "log_events", [{"day": D1}, {"day": D1}, {"day": D2}, {"day": D2}])
    _write(warehouse, "quarantine", [{"day": D1, "unit": "record"}, {"day": D2, "unit": "file"}])
    window = _evaluate(warehouse, "nothing_lost", D1, D2)
    assert window.passed  # D1: 3 = 2 + 1; D2: 2 = 2 + 0 (a quarantined file is not a record)
    assert (window.metadata["records read"], window.metadata["records typed"]) == (5, 4)
    _write(warehouse, "log_events", [{"day": D2}])  # D2 now holds one typed record of two read
    with warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        per_day = checks.CHECKS["nothing_lost"].evaluate_days(
            connection, ["2024-03-15", "2024-03-16"], checks.CheckSettings()
        )
    assert {day: outcome.passed for day, outcome in per_day.items()} == {
        "2024-03-15": True,
        "2024-03-16": False,
    }
    assert per_day["2024-03-16"].metadata["days with a difference"] == [
        {"day": "2024-03-16", "read": 2, "typed": 1, "quarantined": 0}
    ]


def test_discrepancy_rate_is_judged_against_the_configured_bound(tmp_path):
    warehouse = Warehouse(tmp_path)
    _write(warehouse, "transactions", [{"day": D1, "transaction_id": f"t{i}"} for i in range(4)])
    _write(warehouse, "balance_discrepancies", [{"day": D1}] * 3)  # 0.75 per transaction
    assert not _evaluate(warehouse, "discrepancy_rate", D1, D1).passed
    relaxed = _evaluate(warehouse, "discrepancy_rate", D1, D1, max_discrepancy_rate=0.8)
    assert relaxed.passed and relaxed.metadata["bound"] == 0.8


def test_discrepancy_rate_agrees_with_the_transactions_and_discrepancy_events_figures(tmp_path):
    warehouse = Warehouse(tmp_path)
    # D1: 3 events for 4 transactions (two currencies and none); D2: 1 for 4; D3: events only.
    counts = {D1: (4, 3), D2: (4, 1), D3: (0, 2)}
    currencies = ("SAR", "BHD", None, "SAR")
    _write(
        warehouse,
        "transactions",
        [
            {"day": day, "transaction_id": f"{day}-{i}", "currency": currencies[i]}
            for day, (transactions, _) in counts.items()
            for i in range(transactions)
        ],
    )
    _write(
        warehouse,
        "balance_discrepancies",
        [
            {"day": day, "user_id": f"u{i}", "currency": currencies[i]}
            for day, (_, events) in counts.items()
            for i in range(events)
        ],
    )
    names = ("transactions", "discrepancy_events")
    for day, expected in counts.items():
        assert _figures(warehouse, names, day, day) == list(expected)
    failing = _evaluate(warehouse, "discrepancy_rate", D1, D3)  # D3 has no transaction to judge
    assert (failing.passed, failing.summary, failing.metadata) == (
        False,
        "days above 0.5 discrepancy events per transaction: 1 of 2",
        {
            "bound": 0.5,
            "days above the bound": [{"day": "2024-03-15", "rate": 0.75}],
            "days checked": 2,
        },
    )
    passing = _evaluate(warehouse, "discrepancy_rate", D2, D3)
    assert (passing.passed, passing.summary, passing.metadata) == (
        True,
        "days above 0.5 discrepancy events per transaction: 0 of 1",
        {"bound": 0.5, "days above the bound": [], "days checked": 1},
    )
    check, days = checks.CHECKS["discrepancy_rate"], ["2024-03-15", "2024-03-16", "2024-03-17"]
    with warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        per_day = check.evaluate_days(connection, days, checks.CheckSettings())
    assert {day: outcome.passed for day, outcome in per_day.items()} == dict(
        zip(days, (False, True, True), strict=True)
    )
    assert checks.days_not_passed(per_day) == ["2024-03-15"]
    overall = check.over_days(per_day)  # what Dagster records for a run without a partition
    assert (overall.passed, overall.severity, overall.summary, overall.metadata) == (
        False,
        "WARN",
        "",
        {"days checked": 3, "days that did not pass": ["2024-03-15"]},
    )
    assert check.over_days({day: per_day[day] for day in days[1:]}).passed


def test_the_anomaly_share_uses_the_contamination_each_day_was_scored_with(tmp_path):
    warehouse = Warehouse(tmp_path)
    rows = [
        {"transaction_id": f"a{i}", "day": D1, "is_anomaly": i < 3, "contamination": 0.01}
        for i in range(100)
    ] + [
        {"transaction_id": f"b{i}", "day": D2, "is_anomaly": i < 10, "contamination": 0.1}
        for i in range(100)
    ]
    _write(warehouse, "anomaly_scores", rows)
    outcome = _evaluate(warehouse, "anomaly_share", *checks.WHOLE_HISTORY)
    assert (outcome.metadata["scored"], outcome.metadata["flagged"]) == (200, 13)
    assert outcome.metadata["contamination"] == pytest.approx(0.055)
    assert outcome.metadata["share"] == 13 / 200
    assert outcome.passed


def test_anomaly_share_agrees_with_the_anomaly_figures(tmp_path):
    warehouse = Warehouse(tmp_path)
    # D1: 10 of 100 flagged at 0.125; D2: 40 of 100 at 0.25 (contaminations exact in binary).
    scored = {D1: (100, 10, 0.125), D2: (100, 40, 0.25)}
    _write(
        warehouse,
        "anomaly_scores",
        [
            {
                "transaction_id": f"{day}-{i}",
                "day": day,
                "currency": ("SAR", "BHD", None)[i % 3],
                "is_anomaly": i < flagged,
                "contamination": contamination,
            }
            for day, (transactions, flagged, contamination) in scored.items()
            for i in range(transactions)
        ],
    )
    names = ("transactions_scored", "anomalies", "scored_contamination")
    # over both days: 50 of 200 flagged (0.25) against 37.5 / 200 = 0.1875, within 0.0878: passes;
    # D2 alone: 0.4 against 0.25, more than 0.1399 apart: fails.
    for first, last, passed, (n, flagged, contamination), summary in (
        (
            D1,
            D2,
            True,
            (200, 50, 0.1875),
            "flagged 50 of 200 (25.00%) against a contamination of 18.75%",
        ),
        (
            D2,
            D2,
            False,
            (100, 40, 0.25),
            "flagged 40 of 100 (40.00%) against a contamination of 25.00%",
        ),
    ):
        slack = 3 * math.sqrt(contamination * (1 - contamination) / n) + 1 / n
        outcome = _evaluate(warehouse, "anomaly_share", first, last)
        assert (outcome.passed, outcome.summary, outcome.metadata) == (
            passed,
            summary,
            {
                "scored": n,
                "flagged": flagged,
                "share": flagged / n,
                "contamination": contamination,
                "allowed difference": slack,
            },
        )
        assert _figures(warehouse, names, first, last) == [n, flagged, contamination]
    empty = _evaluate(warehouse, "anomaly_share", D3, D3)  # nothing scored: nothing to judge
    assert (empty.passed, empty.metadata["scored"], empty.metadata["contamination"]) == (True, 0, 0)


def test_breaks_of_each_rule_are_counted_and_listed(tmp_path):
    warehouse = Warehouse(tmp_path)
    base = {"day": D1, "user_id": "u", "expected": Decimal("1.5"), "actual": Decimal("2")}
    _write(
        warehouse,
        "ledger_breaks",
        [
            {**base, "transaction_id": "t1", "rule": "arithmetic", "type_inferred": True},
            {**base, "transaction_id": "t2", "rule": "continuity", "type_inferred": False},
            {**base, "transaction_id": "t3", "rule": "continuity", "type_inferred": False},
        ],
    )
    arithmetic = _evaluate(warehouse, "arithmetic_rule", D1, D1)
    continuity = _evaluate(warehouse, "continuity_rule", D1, D1)
    assert (arithmetic.metadata["breaks"], continuity.metadata["breaks"]) == (1, 2)
    assert arithmetic.summary == "breaks: 1 (of which legacy: 1)"
    assert arithmetic.metadata["first breaks"] == [
        {
            "transaction_id": "t1",
            "user_id": "u",
            "expected": "1.5",
            "actual": "2",
            "type_inferred": "True",
        }
    ]


def test_latest_day_present_reads_the_clock_it_is_given(tmp_path):
    warehouse = Warehouse(tmp_path)
    _write(warehouse, "log_events", [{"day": D2}])
    name = "latest_day_present"
    fresh = _evaluate(warehouse, name, *checks.WHOLE_HISTORY, today=D3)
    stale = _evaluate(warehouse, name, *checks.WHOLE_HISTORY, today=date(2024, 3, 18))
    assert (fresh.passed, stale.passed) == (True, False)
    assert name not in checks.REPORT_CHECKS  # about today's clock, not the period reported


def test_every_check_runs_in_dagster_and_every_report_check_is_in_the_report():
    from calo_assets.defs.checks import ASSET_CHECKS

    in_dagster = {key.name for group in ASSET_CHECKS for key in group.check_keys}
    assert in_dagster == set(checks.CHECKS)
    for key in (key for group in ASSET_CHECKS for key in group.check_keys):
        assert key.asset_key.path == [checks.CHECKS[key.name].table]
