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
