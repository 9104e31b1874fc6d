"""Transaction outcomes, discrepancy links and invocation status, on small hand-made streams."""

from __future__ import annotations

from decimal import Decimal

from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, read_days
from calo_assets.tables.sync import build_sync_tables
from calo_assets_tests.logtext import StreamText


def tables_of(tmp_path, stream: StreamText):
    stream.write(tmp_path)
    events = read_days(discover(tmp_path), ["2024-01-05"], IngestOptions())["2024-01-05"].events
    return {name: table.to_pylist() for name, table in build_sync_tables(events).items()}


def by_id(rows, key="transaction_id"):
    return {row[key]: row for row in rows}


def test_outcomes_follow_what_the_invocation_logged(tmp_path):
    stream = StreamText()
    stream.start("r1")
    stream.message("r1").sync("r1", "APPLIED").published("r1")
    stream.message("r1").sync("r1", "SKIPPED").app(
        "r1", "INFO", "Skipping the process, balance is already synced from other listeners"
    )
    stream.message("r1").sync("r1", "REJECTED", old="3", new="-2").rejection(
        "r1", "u1", "REJECTED", "3"
    )
    stream.message("r1").sync("r1", "UNKNOWN")
    stream.end("r1")
    stream.start("r2").message("r2").sync("r2", "FAILED").raw(
        "Unknown application error occurred\nRuntime.Unknown"
    ).end("r2")
    tables = tables_of(tmp_path, stream)
    outcomes = {key: row["outcome"] for key, row in by_id(tables["transactions"]).items()}
    assert outcomes == {
        "APPLIED": "applied",
        "SKIPPED": "skipped",
        "REJECTED": "rejected",
        "UNKNOWN": "unknown",
        "FAILED": "failed",
    }
    rejection = tables["negative_balance_rejections"][0]
    assert (
        rejection["transaction_id"],
        rejection["current_balance"],
        rejection["attempted_new_balance"],
    ) == (
        "REJECTED",
        Decimal("3"),
        Decimal("-2"),
    )
    status = {row["request_id"]: row["status"] for row in tables["invocations"]}
    assert status == {"r1": "success", "r2": "error"}
    assert [row["error_type"] for row in tables["processing_errors"]] == ["Runtime.Unknown"]
    assert tables["processing_errors"][0]["transaction_id"] == "FAILED"


def test_discrepancy_takes_the_transaction_and_currency_being_processed(tmp_path):
    stream = StreamText()
    stream.start("r1").message("r1").sync(
        "r1", "T1", user="u1", currency="SAR", old="100", new="95"
    ).published("r1")
    stream.discrepancy("r1", "u1", "95", "120.5")
    stream.message("r1").app(
        "r1", "INFO", "Skipping the balance sync for create subscription, it will be synced later"
    )
    stream.discrepancy("r1", "u1", "95", "-10")
    stream.end("r1")
    rows = tables_of(tmp_path, stream)["balance_discrepancies"]
    assert [(row["transaction_id"], row["currency"], row["gap"]) for row in rows] == [
        ("T1", "SAR", Decimal("-25.5")),
        (None, "SAR", Decimal("105")),  # no transaction in progress: the user's currency that day
    ]


def test_legacy_transactions_get_an_inferred_direction(tmp_path):
    stream = StreamText()
    stream.start("r1").message("r1").sync(
        "r1", "UP", kind=None, old="10", new="20", amount="10"
    ).published("r1")
    stream.message("r1").sync("r1", "DOWN", kind=None, old="10", new="4", amount="6").published(
        "r1"
    )
    stream.message("r1").sync(
        "r1", "TYPED", kind="CREDIT", old="10", new="20", amount="10"
    ).published("r1").end("r1")
    rows = by_id(tables_of(tmp_path, stream)["transactions"])
    assert {key: (row["type"], row["type_inferred"]) for key, row in rows.items()} == {
        "UP": ("CREDIT", True),
        "DOWN": ("DEBIT", True),
        "TYPED": ("CREDIT", False),
    }
    assert rows["UP"]["source"] is None


def test_a_redelivered_transaction_is_one_row_counted_twice(tmp_path):
    stream = StreamText()
    stream.start("r1").message("r1").sync("r1", "T1").published("r1").end("r1")
    stream.start("r2").message("r2").sync("r2", "T1").published("r2").end("r2")
    rows = tables_of(tmp_path, stream)["transactions"]
    assert [(row["transaction_id"], row["times_logged"], row["request_id"]) for row in rows] == [
        ("T1", 2, "r1")
    ]


def test_cold_start_and_report_figures(tmp_path):
    stream = StreamText()
    stream.raw("INIT_START Runtime Version: nodejs:20.v15\tRuntime Version ARN: arn")
    stream.start("r1").end("r1", init_ms="902.78")
    stream.start("r2").end("r2")
    stream.start("r3")  # never ended
    rows = by_id(tables_of(tmp_path, stream)["invocations"], "request_id")
    assert (
        rows["r1"]["cold_start"],
        rows["r1"]["init_duration_ms"],
        rows["r1"]["runtime_version"],
    ) == (True, 902.78, "nodejs:20.v15")
    assert (rows["r2"]["cold_start"], rows["r2"]["duration_ms"], rows["r2"]["memory_size_mb"]) == (
        False,
        12.5,
        1024,
    )
    assert rows["r3"]["status"] == "incomplete"


def test_an_unknown_currency_is_kept_and_shown(tmp_path):
    stream = StreamText()
    stream.start("r1").message("r1").sync("r1", "T1", currency="XYZ").published("r1").end("r1")
    rows = tables_of(tmp_path, stream)["transactions"]
    assert [(row["transaction_id"], row["currency"], row["outcome"]) for row in rows] == [
        ("T1", "XYZ", "applied")
    ]


def test_a_day_built_file_by_file_equals_the_day_built_at_once(tmp_path):
    from calo_assets.config import SAMPLE_LOG_DIR
    from calo_assets.tables.sync import build_sync_tables_in_parts, shared_transaction_ids
    from calo_assets.warehouse import Warehouse

    found = discover(SAMPLE_LOG_DIR)
    days = read_days(found, found.days(), IngestOptions())
    store = Warehouse(tmp_path)
    checked = 0
    for day, rows in days.items():
        events = rows.events
        streams = list(dict.fromkeys(event["stream"] for event in events))
        parts = [[event for event in events if event["stream"] == stream] for stream in streams]
        store.write_day("log_events", day, rows.event_table)
        shared = shared_transaction_ids(store.day_file("log_events", day))
        whole = build_sync_tables(events)
        for in_parts in (
            build_sync_tables_in_parts(parts),
            build_sync_tables_in_parts(parts, shared),  # rows moved to Arrow part by part
        ):
            for name, table in whole.items():
                other = in_parts[name]
                if name in ("processing_errors", "negative_balance_rejections"):
                    table, other = table.sort_by("line"), other.sort_by("line")  # orphans
                assert other.equals(table), (day, name)
        checked += whole["transactions"].num_rows
    assert checked == 620  # the seven stream days (the eighth holds the streams past midnight)
    redelivered = [
        row
        for rows in days.values()
        for row in build_sync_tables(rows.events)["transactions"].to_pylist()
        if row["times_logged"] > 1
    ]
    assert len(redelivered) == 0


def test_redeliveries_and_rejections_across_parts_match_the_whole_day(tmp_path):
    from calo_assets.tables.sync import build_sync_tables_in_parts, shared_transaction_ids
    from calo_assets.warehouse import Warehouse

    first, second = StreamText(start="10:00:00"), StreamText(start="11:00:00")
    first.start("r1").message("r1").sync("r1", "T1").end("r1")  # no outcome logged yet
    first.start("r2").message("r2").sync("r2", "T2", old="3", new="-2").end("r2")
    first.start("r3").message("r3").sync("r3", "T3").published("r3").end("r3")
    second.start("r4").message("r4").sync("r4", "T1").published("r4").end("r4")  # redelivered
    second.start("r5").message("r5").rejection("r5", "U1", "T2", "3").end("r5")
    first.write(tmp_path / "logs", "2024-01-05-[$LATEST]a")
    second.write(tmp_path / "logs", "2024-01-05-[$LATEST]b")
    rows = read_days(discover(tmp_path / "logs"), ["2024-01-05"], IngestOptions())["2024-01-05"]
    store = Warehouse(tmp_path / "warehouse")
    store.write_day("log_events", "2024-01-05", rows.event_table)
    shared = shared_transaction_ids(store.day_file("log_events", "2024-01-05"))
    assert shared == {"T1", "T2"}
    events = rows.events
    parts = [
        [event for event in events if event["request_id"] in part]
        for part in ({"r1", "r2", "r3"}, {"r4", "r5"})
    ]
    whole = build_sync_tables(events)
    in_parts = build_sync_tables_in_parts(parts, shared)
    for name, table in whole.items():
        assert in_parts[name].equals(table), name
    outcomes = {
        row["transaction_id"]: (row["outcome"], row["times_logged"])
        for row in in_parts["transactions"].to_pylist()
    }
    assert outcomes == {"T1": ("applied", 2), "T2": ("rejected", 1), "T3": ("applied", 1)}


def test_currencies_filled_from_a_later_part_match_the_whole_day(tmp_path):
    from calo_assets.tables.sync import SyncDay, build_sync_tables_in_parts

    first, second = StreamText(start="10:00:00"), StreamText(start="11:00:00")
    first.start("r1").message("r1").sync("r1", "T1", user="U1", currency="BHD").published("r1")
    first.end("r1")
    first.start("r2").discrepancy("r2", "U1", "10", "5").discrepancy("r2", "U2", "7", "3")
    first.rejection("r2", "U2", "T9", "1").end("r2")  # no transaction to take a currency from
    second.start("r3").message("r3").sync("r3", "T2", user="U1", currency="AED").published("r3")
    second.message("r3").sync("r3", "T3", user="U2", currency="KWD").published("r3").end("r3")
    first.write(tmp_path / "logs", "2024-01-05-[$LATEST]a")
    second.write(tmp_path / "logs", "2024-01-05-[$LATEST]b")
    events = read_days(discover(tmp_path / "logs"), ["2024-01-05"], IngestOptions())[
        "2024-01-05"
    ].events
    parts = [[e for e in events if e["request_id"] in part] for part in ({"r1", "r2"}, {"r3"})]
    shared = frozenset({"T9"})
    day = SyncDay(shared)
    for part in parts:
        day.add(part)
    assert day.corrections() == {  # U1's last currency is AED, U2's only one KWD
        "balance_discrepancies": {0: {"currency": "AED"}, 1: {"currency": "KWD"}},
        "negative_balance_rejections": {0: {"currency": "KWD"}},
    }
    whole = build_sync_tables(events)
    in_parts = build_sync_tables_in_parts(parts, shared)
    for name, table in whole.items():
        assert in_parts[name].equals(table), name
    assert [row["currency"] for row in in_parts["balance_discrepancies"].to_pylist()] == [
        "AED",
        "KWD",
    ]


def test_a_day_handed_out_part_by_part_needs_no_correction_when_nothing_crosses_parts(tmp_path):
    from calo_assets.tables.sync import SyncDay

    first, second = StreamText(start="10:00:00"), StreamText(start="11:00:00")
    first.start("r1").message("r1").sync("r1", "T1").published("r1").end("r1")
    second.start("r2").message("r2").sync("r2", "T2", old="3", new="-2")
    second.rejection("r2", "u1", "T2", "3").end("r2")
    first.write(tmp_path / "logs", "2024-01-05-[$LATEST]a")
    second.write(tmp_path / "logs", "2024-01-05-[$LATEST]b")
    events = read_days(discover(tmp_path / "logs"), ["2024-01-05"], IngestOptions())[
        "2024-01-05"
    ].events
    day = SyncDay(frozenset({"T2"}))
    handed_out = [day.add([e for e in events if e["request_id"] == r]) for r in ("r1", "r2")]
    assert [list(pieces) for pieces in handed_out] == [
        ["invocations", "transactions"],
        ["invocations", "transactions", "negative_balance_rejections"],
    ]
    assert handed_out[1]["transactions"].column("outcome").to_pylist() == ["rejected"]
    assert day.corrections() == {}
    assert list(day.transactions) == ["T2"]  # only a shared transaction is kept until the end
