"""The core checks on small tables, without Dagster."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from calo_assets import checks


def test_days_without_logs_are_a_warning_that_names_them():
    calendar = pa.table(
        {
            "day": [date(2024, 3, 15), date(2024, 3, 16), date(2024, 3, 17)],
            "has_logs": [True, False, True],
        }
    )
    outcome = checks.every_day_has_logs(calendar)
    assert (outcome.passed, outcome.severity, outcome.asset) == (False, "WARN", "calendar")
    assert outcome.metadata["days without logs"] == ["2024-03-16"]
    assert not outcome.failed_error  # a finding, not a failure of the run


def test_every_history_check_is_declared_with_its_table():
    for table, history_checks in checks.HISTORY_CHECKS.items():
        for check in history_checks:
            assert checks.CHECKS[check.__name__][0] == table


def test_the_anomaly_share_is_over_every_scored_day_of_the_warehouse(tmp_path):
    """One definition for both paths: the share of every day's scores, not only the run's days."""
    from calo_assets.warehouse import Warehouse

    warehouse = Warehouse(tmp_path)
    schema = warehouse_schema()
    for day, flags in (("2024-03-01", [True] * 3 + [False] * 97), ("2024-03-02", [False] * 100)):
        rows = [
            {"transaction_id": f"{day}-{i}", "day": date.fromisoformat(day), "is_anomaly": flag}
            for i, flag in enumerate(flags)
        ]
        warehouse.write_day("anomaly_scores", day, pa.Table.from_pylist(rows, schema=schema))
    outcome = checks.anomaly_share_of_warehouse(warehouse, lambda _: 0.01)
    assert (outcome.metadata["scored"], outcome.metadata["flagged"]) == (200, 3)
    assert outcome.metadata["share"] == 3 / 200


def warehouse_schema() -> pa.Schema:
    from calo_assets.tables.schema import SCHEMAS

    return SCHEMAS["anomaly_scores"]
