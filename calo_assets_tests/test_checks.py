"""The core checks on small hand-made warehouses, without Dagster: one definition for every surface."""

from __future__ import annotations

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
