"""The metrics layer: every headline figure against an independent computation over the Parquet rows
(pandas, no code under test), on the hand-made export, the shipped sample and the real export."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pytest

from calo_assets import metrics
from calo_assets.ledger import finance
from calo_assets.warehouse import Warehouse
from calo_assets_tests.report_cases import (
    FIRST_DAY,
    LAST_DAY,
    LOOK_BACK_DAY,
    UNKNOWN,
    expected_figures,
    materialized,
)


def with_finance_tables(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """The finance tables on ``connection``, built from its daily tables, where they are missing."""
    present = {
        row[0] for row in connection.execute("select view_name from duckdb_views()").fetchall()
    }
    for name in set(finance.TABLES) - present:
        connection.register(name, getattr(finance, name)(connection))
    return connection


def figures_of(
    warehouse: Warehouse, first: str, last: str, kind=metrics.headline
) -> list[metrics.Figure]:
    with warehouse.connect(empty_tables=("quarantine",)) as connection:
        connection = with_finance_tables(connection)
        return kind(connection, date.fromisoformat(first), date.fromisoformat(last))


def headline_of(
    warehouse: Warehouse, first: str, last: str
) -> dict[tuple[str, str | None], object]:
    figures = figures_of(warehouse, first, last)
    return {(figure.name, figure.currency): figure.value for figure in figures}


def assert_headline_matches(warehouse: Warehouse, first: str, last: str) -> None:
    found = headline_of(warehouse, first, last)
    expected = expected_figures(warehouse)
    zero_unknown = {
        key for key, value in expected.items() if key[1] == UNKNOWN and not value
    }  # the unknown-currency bucket is shown only when it holds something
    if all(not expected[key] for key in expected if key[1] == UNKNOWN):
        expected = {key: value for key, value in expected.items() if key not in zero_unknown}
    found = {key: value for key, value in found.items() if not key[0].startswith("checks_")}
    assert found == expected


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Warehouse:
    return materialized(tmp_path_factory.getbasetemp())


def test_every_headline_figure_of_the_handmade_export(handmade):
    assert_headline_matches(handmade, FIRST_DAY, LOOK_BACK_DAY)
    found = headline_of(handmade, FIRST_DAY, LOOK_BACK_DAY)
    # the figures the hand-made export was written to have
    assert found[("period_last", None)] == date.fromisoformat(LAST_DAY)
    assert found[("negative_balance_rejections", "unknown")] == 1
    assert found[("negative_balance_rejections", None)] == 2
    assert found[("transactions_rejected", None)] == 1
    assert found[("volume_debited", "BHD")] == Decimal(24)  # gross: VAT included
    assert (found[("revenue_at_risk", "BHD")], found[("owed_to_users", "BHD")]) == (10, 3)
    assert (found[("processing_errors", None)], found[("failed_invocations", None)]) == (3, 2)


def test_every_headline_figure_of_the_sample(sample_run):
    _, warehouse = sample_run
    assert_headline_matches(warehouse, "2024-03-01", "2024-03-08")


def test_every_headline_figure_of_the_real_export(real_run):
    _, warehouse = real_run
    assert_headline_matches(warehouse, "2023-12-12", "2024-04-15")
    found = headline_of(warehouse, "2023-12-12", "2024-04-15")
    assert (found[("period_first", None)], found[("period_last", None)]) == (
        date(2023, 12, 12),
        date(2024, 4, 14),
    )


def test_totals_add_up_over_currencies_and_figures_have_units(handmade):
    figures = figures_of(handmade, FIRST_DAY, LOOK_BACK_DAY)
    for name in {figure.name for figure in figures if figure.currency is not None}:
        parts = [figure for figure in figures if figure.name == name and figure.currency]
        if parts[0].unit == metrics.MONEY:
            with pytest.raises(KeyError):  # money is never added across currencies
                metrics.find(figures, name)
        elif "users" not in name:  # a user may hold two currencies
            assert metrics.find(figures, name).value == sum(part.value for part in parts), name
    assert {figure.unit for figure in figures} >= {"money", "day", "transactions", "users"}
    assert metrics.find(figures, "volume_credited", "SAR").text == "100.00 SAR"
    assert metrics.find(figures, "transactions").text == "9"


def test_checks_name_what_failed(handmade):
    with handmade.connect() as connection:
        checks = metrics.checks(connection, date(2024, 1, 5), date(2024, 1, 9))
    assert [check.name for check in checks] == [
        "nothing_lost",
        "transaction_ids_unique",
        "every_transaction_has_an_outcome",
        "currencies_known",
        "discrepancy_rate",
        "anomaly_share",
        "arithmetic_rule",
        "continuity_rule",
        "every_transaction_accounted_for",
        "every_day_has_logs",
    ]
    # The hand-made export: 2024-01-05 logs more discrepancy events than half its transactions, and
    # no stream holds a record of 2024-01-07.
    evidence = {
        "discrepancy_rate": "days above the bound",
        "every_day_has_logs": "days without logs",
    }
    failed = {check.name: check.metadata.get(evidence.get(check.name, "")) for check in checks}
    assert {name: failed[name] for name in failed if not checks_by(checks, name).passed} == {
        "discrepancy_rate": [{"day": "2024-01-05", "rate": 0.667}],
        "every_day_has_logs": ["2024-01-07"],
    }


def checks_by(checks, name):
    (check,) = [check for check in checks if check.name == name]
    return check
