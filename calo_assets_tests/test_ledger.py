"""Reconciliation rules on small hand-made cases, and the anomaly model's determinism."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from calo_assets import pipeline
from calo_assets.ledger import reconcile
from calo_assets.ledger.anomalies import AnomalySettings, score_day
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, read_days
from calo_assets.tables.schema import SCHEMAS, to_table
from calo_assets.tables.sync import build_sync_tables
from calo_assets.warehouse import Warehouse
from calo_assets_tests.conftest import break_history_table
from calo_assets_tests.logtext import StreamText


def ledger_of(tmp_path, stream: StreamText) -> duckdb.DuckDBPyConnection:
    """The sync tables of a hand-made stream, visible to the reconciliation queries."""
    stream.write(tmp_path)
    rows = read_days(discover(tmp_path), ["2024-01-05"], IngestOptions())["2024-01-05"]
    connection = duckdb.connect()
    for name, table in build_sync_tables(rows.events).items():
        connection.register(name, table)
    connection.register("log_events", to_table("log_events", rows.events))
    connection.register("anomaly_scores", SCHEMAS["anomaly_scores"].empty_table())
    return connection


def rows(table: pa.Table, *columns: str) -> list[tuple]:
    return [tuple(row[column] for column in columns) for row in table.to_pylist()]


def test_a_rejected_transaction_in_the_middle_of_a_chain_is_not_part_of_it(tmp_path):
    stream = StreamText().start("r1")
    stream.message("r1").sync("r1", "T1", old="100", new="95", amount="5").published("r1")
    stream.message("r1").sync("r1", "T2", old="95", new="-5", amount="100").rejection(
        "r1", "u1", "T2", "95"
    )
    stream.message("r1").sync("r1", "T3", old="95", new="90", amount="5").published("r1")
    stream.message("r1").sync("r1", "T4", old="91", new="86", amount="5").published("r1").end("r1")
    breaks = reconcile.ledger_breaks(ledger_of(tmp_path, stream))
    assert rows(
        breaks,
        "transaction_id",
        "rule",
        "expected",
        "actual",
        "difference",
        "previous_transaction_id",
    ) == [
        ("T4", "continuity", Decimal(90), Decimal(91), Decimal(1), "T3"),
    ]


def test_arithmetic_uses_the_inferred_direction_of_legacy_transactions(tmp_path):
    stream = StreamText().start("r1")
    stream.message("r1").sync("r1", "OK", kind=None, old="10", new="4", amount="6").published("r1")
    stream.message("r1").sync("r1", "BAD", kind=None, old="4", new="20", amount="10").published(
        "r1"
    )
    stream.message("r1").sync(
        "r1", "NOISE", kind="DEBIT", old="20", new="19.9994", amount="0.0001"
    ).published("r1").end("r1")
    breaks = reconcile.ledger_breaks(ledger_of(tmp_path, stream))
    assert rows(
        breaks, "transaction_id", "rule", "type", "type_inferred", "expected", "actual"
    ) == [
        ("BAD", "arithmetic", "CREDIT", True, Decimal(14), Decimal(20)),
    ]  # NOISE is 0.0005 off: within the tolerance


def test_exposure_is_the_latest_gap_per_currency_never_a_sum(tmp_path):
    stream = StreamText().start("r1")
    stream.message("r1").sync("r1", "A", user="u1", currency="BHD", old="100", new="95").published(
        "r1"
    )
    for _ in range(3):
        stream.discrepancy("r1", "u1", "95", "85")  # +10, logged three times
    stream.message("r1").sync(
        "r1", "B", user="u1", currency="BHD", old="95", new="80", amount="15"
    ).published("r1")
    stream.discrepancy("r1", "u1", "80", "85")  # then the sign changes: -5, the user is owed
    stream.message("r1").sync("r1", "C", user="u2", currency="SAR", old="50", new="45").published(
        "r1"
    )
    stream.discrepancy("r1", "u2", "45", "20.5").end("r1")
    connection = ledger_of(tmp_path, stream)
    exposure = reconcile.user_exposure(connection)
    assert rows(
        exposure,
        "user_id",
        "currency",
        "latest_gap",
        "exposure_type",
        "times_logged",
        "distinct_gaps",
    ) == [
        ("u1", "BHD", Decimal(-5), "under_credited", 4, 2),
        ("u2", "SAR", Decimal("24.5"), "over_credited", 1, 1),
    ]
    connection.register("user_exposure", exposure)
    totals = reconcile.exposure_totals(connection)
    assert rows(totals, "currency", "revenue_at_risk", "owed_to_users") == [
        ("BHD", Decimal(0), Decimal(5)),
        ("SAR", Decimal("24.5"), Decimal(0)),
    ]


def test_overdrafts_attempted_and_applied_are_kept_apart(tmp_path):
    stream = StreamText().start("r1")
    stream.message("r1").sync("r1", "NO", old="3", new="-2", amount="5").rejection(
        "r1", "u1", "NO", "3"
    )
    stream.message("r1").sync("r1", "YES", old="3", new="-1", amount="4").published("r1").end("r1")
    table = reconcile.overdrafts(ledger_of(tmp_path, stream))
    assert rows(table, "kind", "transaction_id", "balance_before", "balance_after") == [
        ("applied", "YES", Decimal(3), Decimal(-1)),
        ("attempted", "NO", Decimal(3), Decimal(-2)),
    ]


def test_sync_outcomes_account_for_every_transaction(tmp_path):
    stream = StreamText().start("r1")
    stream.message("r1").sync("r1", "A").published("r1")
    stream.message("r1").sync("r1", "S").app(
        "r1", "INFO", "Skipping the process, balance is already synced from other listeners"
    )
    stream.message("r1").sync("r1", "U").end("r1")
    table = reconcile.sync_outcomes(ledger_of(tmp_path, stream))
    assert rows(
        table,
        "transactions",
        "applied",
        "skipped",
        "unknown",
        "published_events",
        "all_accounted_for",
    ) == [(3, 1, 1, 1, 1, True)]


def test_user_summary_brings_it_together(tmp_path):
    stream = StreamText().start("r1")
    stream.message("r1").sync(
        "r1", "A", user="u1", kind="CREDIT", old="0", new="30", amount="33", vat="3"
    ).published("r1")
    stream.discrepancy("r1", "u1", "30", "0")
    stream.message("r1").sync("r1", "B", user="u1", old="31", new="26", amount="5").published(
        "r1"
    ).end("r1")
    connection = ledger_of(tmp_path, stream)
    connection.register("ledger_breaks", reconcile.ledger_breaks(connection))
    connection.register("user_exposure", reconcile.user_exposure(connection))
    (summary,) = reconcile.user_summary(connection).to_pylist()
    assert {
        key: summary[key]
        for key in (
            "user_id",
            "currency",
            "transactions",
            "credits",
            "debits",
            "credited_amount",
            "debited_amount",
            "discrepancy_events",
            "latest_gap",
            "exposure_type",
            "ledger_breaks",
        )
    } == {
        "user_id": "u1",
        "currency": "BHD",
        "transactions": 2,
        "credits": 1,
        "debits": 1,
        "credited_amount": Decimal(33),
        "debited_amount": Decimal(5),
        "discrepancy_events": 1,
        "latest_gap": Decimal(30),
        "exposure_type": "over_credited",
        "ledger_breaks": 1,
    }


@pytest.fixture(scope="module")
def window():
    """Thirty days of ordinary debits for twenty users, and one outlier on the last day."""
    import random

    generator = random.Random(1)
    rows_ = []
    for day in range(1, 31):
        for index in range(20):
            amount = Decimal(generator.randint(20, 60))
            rows_.append(
                {
                    "transaction_id": f"T{day:02d}{index:02d}",
                    "day": date(2024, 1, day),
                    "occurred_at": f"2024-01-{day:02d}T{10 + index % 8:02d}:00:00.000Z",
                    "user_id": f"u{index}",
                    "type": "DEBIT",
                    "source": "MANUAL_DEDUCTION",
                    "action": "DELIVERY_DEDUCTION",
                    "currency": "BHD" if index % 2 else "SAR",
                    "amount": amount,
                    "vat": Decimal(0),
                    "old_balance": Decimal(500),
                    "new_balance": Decimal(500) - amount,
                    "outcome": "applied",
                }
            )
    rows_.append(
        {
            **rows_[-1],
            "transaction_id": "ODD",
            "occurred_at": "2024-01-30T03:10:00.000Z",
            "amount": Decimal(4000),
            "old_balance": Decimal(500),
            "new_balance": Decimal(-3500),
            "action": "REPLACE_FOOD",
            "type": "CREDIT",
        }
    )
    return to_table("transactions", rows_).to_pandas()


def test_anomaly_scores_flag_the_outlier_with_reasons_and_are_reproducible(window):
    settings = AnomalySettings(window_days=28, contamination=0.01)
    last_window = window[window["day"] >= date(2024, 1, 3)]
    first = score_day(last_window, date(2024, 1, 30), settings)
    second = score_day(last_window.sample(frac=1, random_state=3), date(2024, 1, 30), settings)
    assert first.reset_index(drop=True).equals(second.reset_index(drop=True))
    top = first.sort_values("score", ascending=False).iloc[0]
    assert (top["transaction_id"], bool(top["is_anomaly"])) == ("ODD", True)
    assert (
        "the new balance is below zero" in top["reasons"]
        and "rare action REPLACE_FOOD" in top["reasons"]
    )
    assert len(first) == 21 and first["is_anomaly"].sum() <= 2


def test_too_little_history_is_not_scored(window):
    tiny = window[window["day"] == date(2024, 1, 1)].head(5)
    result = score_day(tiny, date(2024, 1, 1))
    assert result["score"].isna().all() and not result["is_anomaly"].any()


def test_a_history_table_that_fails_stops_only_the_tables_reading_it(tmp_path, monkeypatch):
    stream = StreamText().start("r1")
    stream.message("r1").sync("r1", "T1", old="3", new="8", amount="5").published("r1").end("r1")
    stream.write(tmp_path / "logs")
    store = Warehouse(tmp_path / "warehouse")
    pipeline.ingest(tmp_path / "logs", store, ["2024-01-05"], IngestOptions())
    pipeline.build_sync(store, ["2024-01-05"])

    break_history_table(monkeypatch, "user_exposure")
    with pytest.raises(pipeline.HistoryError) as raised:
        pipeline.build_history(store)
    assert raised.value.failed == {
        "user_exposure": "RuntimeError: boom",
        "user_summary": "not built, as user_exposure failed",
    }
    others = set(pipeline.HISTORY_TABLES) - {"user_exposure", "user_summary"}
    assert set(raised.value.built) == others
    assert {name for name in pipeline.HISTORY_TABLES if store.table_file(name).exists()} == others
    assert "user_exposure: RuntimeError: boom" in str(raised.value)
