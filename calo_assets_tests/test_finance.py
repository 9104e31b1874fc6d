"""The finance tables (cases, exposure by day, calendar, runtime health) on a hand-made export and the
real one; every expected figure is computed here from the rows the test wrote, or by hand."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from calo_assets.ledger import finance, reconcile
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, read_days
from calo_assets.tables.schema import SCHEMAS, to_table
from calo_assets.tables.sync import SYNC_TABLES, build_sync_tables
from calo_assets_tests.logtext import StreamText

TOLERANCE = Decimal("0.0005")
FIRST, LAST = date(2024, 1, 1), date(2024, 4, 10)
LOOK_BACK = LAST + timedelta(days=1)  # read as the pipeline does; it holds no record


@dataclass
class Call:
    """One invocation as the test wrote it."""

    day: date
    runtime: str
    duration: float
    memory: int
    init: float | None
    cold: bool
    failed: bool


@dataclass
class Export:
    """A hand-made CloudWatch export, and what was written into it."""

    streams: list[tuple[StreamText, str]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    gaps: list[tuple[date, str, str, Decimal]] = field(default_factory=list)  # day, user, currency
    syncs: dict[date, int] = field(default_factory=Counter)
    _cold: set[int] = field(default_factory=set)

    def stream(self, day: date, runtime: str | None) -> StreamText:
        """A new log stream; with a runtime, it starts with its INIT_START line."""
        text = StreamText(day.isoformat())
        if runtime:
            text.raw(f"INIT_START Runtime Version: {runtime}\tRuntime Version ARN: arn:{runtime}")
            self._cold.add(id(text))
        self.streams.append((text, runtime or finance.UNKNOWN_RUNTIME))
        return text

    def invoke(
        self,
        text: StreamText,
        request: str,
        duration: float,
        *,
        memory: int = 1024,
        init: float | None = None,
        crash: bool = False,
        body=(),
    ) -> None:
        """START .. END, REPORT; ``crash``: an init failure before START and a runtime error."""
        cold = id(text) in self._cold
        self._cold.discard(id(text))
        if crash:
            text.app(
                "undefined",
                "ERROR",
                'Uncaught Exception \t{"errorType":"Error","errorMessage":"Cannot find module x"}',
            )
            text.raw(
                "INIT_REPORT Init Duration: 700.00 ms\tPhase: init\tStatus: error\t"
                "Error Type: Runtime.ExitError"
            )
        text.start(request)
        for write in body:
            write(self, text, request)
        if crash:
            text.raw("Unknown application error occurred\nRuntime.Unknown")
        text.raw(f"END RequestId: {request}")
        init_text = f"Init Duration: {init} ms\t" if init is not None else ""
        text.raw(
            f"REPORT RequestId: {request}\tDuration: {duration} ms\tBilled Duration: "
            f"{int(duration) + 1} ms\tMemory Size: {memory} MB\tMax Memory Used: 90 MB\t{init_text}"
        )
        runtime = next(runtime for stream, runtime in self.streams if stream is text)
        day = date.fromisoformat(text.day)
        self.calls.append(
            Call(day, runtime, duration, memory, init, cold or init is not None, crash)
        )


def gap_sync(transaction: str, user: str, currency: str, subscription: str, payment: str):
    """An applied sync during which the service logged the user's two balances out of sync."""

    def write(export: Export, text: StreamText, request: str) -> None:
        text.message(request).sync(
            request, transaction, user, currency, action="RENEW_SUBSCRIPTION"
        )
        text.discrepancy(request, user, subscription, payment).published(request)
        day = date.fromisoformat(text.day)
        export.gaps.append((day, user, currency, Decimal(subscription) - Decimal(payment)))
        export.syncs[day] += 1

    return write


def plain_sync(transaction: str, user: str, currency: str, outcome: str = "applied", **amounts):
    """A sync without a discrepancy: applied, rejected (negative balance) or failed (an ERROR)."""

    def write(export: Export, text: StreamText, request: str) -> None:
        text.message(request).sync(request, transaction, user, currency, **amounts)
        if outcome == "applied":
            text.published(request)
        elif outcome == "rejected":
            text.rejection(request, user, transaction, amounts.get("old", "100"))
        else:
            text.app(request, "ERROR", "Could not update the payment balance")
        export.syncs[date.fromisoformat(text.day)] += 1

    return write


def build_export() -> Export:
    """Seven cases over 2024-01-01..2024-04-10, an outage day, days without logs.

    - u1 BHD: +10 on 01-01, +10 again on 01-02, -5 on 01-03, 0.0002 (zero) on 01-05: resolved.
    - u6 AED: +3 on 01-11 (age 90: the last day of 31-90).
    - u4 BHD: a failed sync of 11.5 with 1.5 VAT on 02-20, then a gap of -10: mirrors it net of VAT.
    - u2 SAR: +20 on 03-01, open; u2 BHD: -7.5 on 03-20 then an applied BHD sync on 03-25: probably
      resolved (the BHD sync does not touch the SAR case).
    - u5 KWD: +2 on 04-03 (age 7: the last day of 0-7).
    - u3 SAR: a rejected 113,043.48 entry on 04-05, then a gap of 113,043.48 with a payment balance of
      -50: mirrors it, negative payment balance.
    - 01-02: two invocations fail at init on a new runtime with less memory, no transaction.
    """
    export = Export()
    day = FIRST
    text = export.stream(day, "nodejs:14.v42")
    export.invoke(text, "r1", 100.0, init=800.0, body=[gap_sync("T1", "u1", "BHD", "95", "85")])
    export.invoke(text, "r2", 200.0)
    outage = export.stream(date(2024, 1, 2), "nodejs:20.v13")
    export.invoke(outage, "x1", 780.0, memory=512, crash=True)
    export.invoke(outage, "x2", 790.0, memory=512, crash=True)
    text = export.stream(date(2024, 1, 2), "nodejs:14.v42")
    export.invoke(text, "r3", 110.0, init=810.0, body=[gap_sync("T2", "u1", "BHD", "95", "85")])
    text = export.stream(date(2024, 1, 3), None)  # its INIT_START is not in the export
    export.invoke(text, "r4", 50.0, body=[gap_sync("T3", "u1", "BHD", "80", "85")])
    text = export.stream(date(2024, 1, 5), "nodejs:20.v13")
    export.invoke(
        text, "r5", 120.0, init=900.0, body=[gap_sync("T4", "u1", "BHD", "85", "85.0002")]
    )
    export.invoke(text, "r6", 130.0, body=[plain_sync("T5", "u1", "BHD")])
    text = export.stream(date(2024, 1, 11), "nodejs:20.v13")
    export.invoke(text, "r7", 140.0, init=950.0, body=[gap_sync("T6", "u6", "AED", "13", "10")])
    text = export.stream(date(2024, 2, 20), "nodejs:20.v13")
    failed = plain_sync("F1", "u4", "BHD", "failed", amount="11.5", vat="1.5", old="50", new="40")
    export.invoke(text, "r8", 300.0, init=1000.0, body=[failed])
    export.invoke(text, "r9", 310.0, body=[gap_sync("T7", "u4", "BHD", "49", "59")])
    text = export.stream(date(2024, 3, 1), "nodejs:20.v13")
    export.invoke(text, "r10", 90.0, init=900.0, body=[gap_sync("T8", "u2", "SAR", "120", "100")])
    text = export.stream(date(2024, 3, 20), "nodejs:20.v13")
    export.invoke(text, "r11", 95.0, init=905.0, body=[gap_sync("T9", "u2", "BHD", "10", "17.5")])
    text = export.stream(date(2024, 3, 25), "nodejs:20.v13")
    export.invoke(text, "r12", 96.0, init=906.0, body=[plain_sync("T10", "u2", "BHD")])
    text = export.stream(date(2024, 4, 3), "nodejs:20.v13")
    export.invoke(text, "r13", 97.0, init=907.0, body=[gap_sync("T11", "u5", "KWD", "12", "10")])
    text = export.stream(date(2024, 4, 5), "nodejs:20.v13")
    rejected = plain_sync("R1", "u3", "SAR", "rejected", amount="113043.48", old="1000")
    mirrored = gap_sync("T12", "u3", "SAR", "112993.48", "-50")
    export.invoke(text, "r14", 98.0, init=908.0, body=[rejected, mirrored])
    text = export.stream(LAST, "nodejs:20.v13")
    export.invoke(text, "r15", 99.0, init=909.0, body=[plain_sync("T13", "u7", "QAR")])
    return export


def register_export(root, export: Export) -> duckdb.DuckDBPyConnection:
    """The daily tables of ``export`` (its days and the empty look-back day) as DuckDB tables."""
    for text, _ in export.streams:
        text.write(root)
    days = sorted({text.day for text, _ in export.streams} | {LOOK_BACK.isoformat()})
    read = read_days(discover(root), days, IngestOptions())
    parts: dict[str, list[pa.Table]] = defaultdict(list)
    for rows in read.values():
        for name, table in build_sync_tables(rows.events).items():
            parts[name].append(table)
        parts["log_events"].append(rows.event_table)
        parts["ingest_manifest"].append(to_table("ingest_manifest", rows.manifest))
        parts["quarantine"].append(to_table("quarantine", rows.quarantine))
    # A stream file read again for the look-back day, holding none of its records.
    last_stream = export.streams[-1][0]
    empty = {"day": LOOK_BACK.isoformat(), "stream": last_stream.day, "records_read": 0}
    parts["ingest_manifest"].append(to_table("ingest_manifest", [empty]))
    connection = duckdb.connect()
    for name in (*SYNC_TABLES, "log_events", "ingest_manifest", "quarantine"):
        connection.register(name, pa.concat_tables(parts[name]))
    connection.register("anomaly_scores", SCHEMAS["anomaly_scores"].empty_table())
    connection.register("user_exposure", reconcile.user_exposure(connection))
    return connection


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    export = build_export()
    return export, register_export(tmp_path_factory.mktemp("finance"), export)


def period_days() -> list[date]:
    return [FIRST + timedelta(days=offset) for offset in range((LAST - FIRST).days + 1)]


def money(value: str | int) -> Decimal:
    return Decimal(value)


def by_key(table: pa.Table, *keys: str) -> dict:
    return {tuple(row[key] for key in keys): row for row in table.to_pylist()}


def test_the_period_ends_on_the_last_day_with_a_record_not_the_look_back_day(made):
    _, connection = made
    look_back = "select count(*), sum(records_read) from ingest_manifest where day = $day"
    assert connection.sql(look_back, params={"day": LOOK_BACK}).fetchall() == [(1, 0)]
    assert finance.period(connection) == (FIRST, LAST)


def test_cases_status_age_origin_and_flags(made):
    _, connection = made
    cases = by_key(finance.discrepancy_cases(connection), "user_id", "currency")
    columns = (
        "status",
        "latest_gap",
        "revenue_at_risk",
        "owed_to_user",
        "times_logged",
        "age_days",
        "age_bucket",
        "resolved_day",
        "resolved_transaction_id",
        "opened_transaction_id",
        "opened_action",
        "opened_source",
        "negative_payment_balance",
        "mirrors_transaction_id",
        "mirrors_outcome",
        "mirrors_basis",
    )
    zero = money(0)
    renew, manual = "RENEW_SUBSCRIPTION", "MANUAL_DEDUCTION"
    expected = {  # written out from the scenario of ``build_export``
        ("u1", "BHD"): ("resolved", money("-0.0002"), zero, zero, 4, 100, "over 90",
                        date(2024, 1, 5), "T4", "T1", renew, manual, False, None, None, None),
        ("u6", "AED"): ("open", money(3), money(3), zero, 1, 90, "31-90",
                        None, None, "T6", renew, manual, False, None, None, None),
        ("u4", "BHD"): ("open", money(-10), zero, money(10), 1, 50, "31-90",
                        None, None, "T7", renew, manual, False, "F1", "failed", "amount net of VAT"),
        ("u2", "SAR"): ("open", money(20), money(20), zero, 1, 40, "31-90",
                        None, None, "T8", renew, manual, False, None, None, None),
        ("u2", "BHD"): ("probably_resolved", money("-7.5"), zero, money("7.5"), 1, 21, "8-30",
                        date(2024, 3, 25), "T10", "T9", renew, manual, False, None, None, None),
        ("u5", "KWD"): ("open", money(2), money(2), zero, 1, 7, "0-7",
                        None, None, "T11", renew, manual, False, None, None, None),
        ("u3", "SAR"): ("open", money("113043.48"), money("113043.48"), zero, 1, 5, "0-7",
                        None, None, "T12", renew, manual, True, "R1", "rejected", "amount"),
    }  # fmt: skip
    assert {key: tuple(row[column] for column in columns) for key, row in cases.items()} == expected
    u1 = cases[("u1", "BHD")]
    assert (u1["distinct_gaps"], u1["days_since_last_seen"], u1["opened_day"]) == (3, 96, FIRST)
    assert cases[("u3", "SAR")]["mirrors_amount"] == money("113043.48")
    assert cases[("u4", "BHD")]["mirrors_amount"] == money(10)
    assert cases[("u2", "BHD")]["later_applied_syncs"] == finance.PROBABLY_RESOLVED_AFTER_SYNCS


def test_cases_exposure_adds_up_to_user_exposure(made):
    _, connection = made
    cases = finance.discrepancy_cases(connection).to_pandas()
    totals = reconcile.exposure_totals(connection).to_pandas().set_index("currency")
    summed = cases.groupby("currency")[["revenue_at_risk", "owed_to_user"]].sum()
    assert summed["revenue_at_risk"].to_dict() == totals["revenue_at_risk"].to_dict()
    assert summed["owed_to_user"].to_dict() == totals["owed_to_users"].to_dict()
    assert (cases[cases.status == "resolved"][["revenue_at_risk", "owed_to_user"]] == 0).all().all()


def expected_exposure(export: Export) -> dict[tuple[date, str], tuple]:
    """Per day and currency, from the gaps as written: the latest gap per user up to the day."""
    currencies = sorted({currency for _, _, currency, _ in export.gaps})
    result = {}
    for day in period_days():
        latest: dict[tuple[str, str], Decimal] = {}
        for gap_day, user, currency, gap in export.gaps:  # in time order
            if gap_day <= day:
                latest[(user, currency)] = gap
        for currency in currencies:
            gaps = [gap for (_, of), gap in latest.items() if of == currency]
            over = [gap for gap in gaps if gap > TOLERANCE]
            under = [gap for gap in gaps if gap < -TOLERANCE]
            result[(day, currency)] = (
                sum(over, money(0)),
                -sum(under, money(0)),
                len(over),
                len(under),
            )
    return result


def test_exposure_daily_is_the_latest_gap_per_user_as_known_each_day(made):
    export, connection = made
    table = finance.exposure_daily(connection)
    columns = ("revenue_at_risk", "owed_to_users", "users_over_credited", "users_under_credited")
    got = {
        key: tuple(row[c] for c in columns) for key, row in by_key(table, "day", "currency").items()
    }
    assert got == expected_exposure(export)
    assert table.num_rows == len(period_days()) * 4  # every day x AED, BHD, KWD, SAR (no QAR case)
    assert got[(date(2024, 1, 2), "BHD")] == (
        money(10),
        money(0),
        1,
        0,
    )  # known from the day before
    assert got[(date(2024, 1, 3), "BHD")] == (money(0), money(5), 0, 1)  # the sign changed
    assert got[(date(2024, 1, 5), "BHD")] == (money(0), money(0), 0, 0)  # closed
    events = by_key(table, "day", "currency")
    counted = {
        key: (row["cases_opened"], row["cases_resolved"], row["cases_probably_resolved"])
        for key, row in events.items()
        if row["cases_opened"] or row["cases_resolved"] or row["cases_probably_resolved"]
    }
    assert counted == {
        (date(2024, 1, 1), "BHD"): (1, 0, 0),
        (date(2024, 1, 5), "BHD"): (0, 1, 0),
        (date(2024, 1, 11), "AED"): (1, 0, 0),
        (date(2024, 2, 20), "BHD"): (1, 0, 0),
        (date(2024, 3, 1), "SAR"): (1, 0, 0),
        (date(2024, 3, 20), "BHD"): (1, 0, 0),
        (date(2024, 3, 25), "BHD"): (0, 0, 1),
        (date(2024, 4, 3), "KWD"): (1, 0, 0),
        (date(2024, 4, 5), "SAR"): (1, 0, 0),
    }


def test_exposure_daily_last_day_equals_exposure_totals(made):
    _, connection = made
    assert_last_day_is_exposure_totals(connection)


def assert_last_day_is_exposure_totals(connection: duckdb.DuckDBPyConnection) -> None:
    daily = finance.exposure_daily(connection).to_pandas()
    last = daily[daily.day == daily.day.max()].set_index("currency")
    totals = reconcile.exposure_totals(connection).to_pandas().set_index("currency")
    for column in (
        "revenue_at_risk",
        "owed_to_users",
        "users_over_credited",
        "users_under_credited",
    ):
        assert last[column].to_dict() == totals[column].to_dict(), column


def test_calendar_every_day_with_its_records(made):
    export, connection = made
    table = finance.calendar(connection).to_pylist()
    written_days = {date.fromisoformat(text.day) for text, _ in export.streams}
    records: Counter[date] = Counter()
    streams: Counter[date] = Counter()
    for text, _ in export.streams:
        records[date.fromisoformat(text.day)] += len(text.records)
        streams[date.fromisoformat(text.day)] += 1
    calls = Counter(call.day for call in export.calls)
    expected = [
        {
            "day": day,
            "weekday": day.strftime("%A"),
            "has_logs": day in written_days,
            "records": records[day],
            "streams": streams[day],
            "invocations": calls[day],
            "transactions": export.syncs[day],
        }
        for day in period_days()
    ]
    assert table == expected
    assert date(2024, 1, 4) not in written_days  # a day without logs inside the period


def percentiles(values: list[float]) -> list[float | None]:
    if not values:
        return [None, None, None]
    return [float(np.percentile(values, q)) for q in (50, 95, 99)]


def test_runtime_daily_every_day_and_the_outage(made):
    export, connection = made
    table = by_key(finance.runtime_daily(connection), "day")
    assert sorted(day for (day,) in table) == period_days()
    for day in period_days():
        calls = [call for call in export.calls if call.day == day]
        row = table[(day,)]
        inits = [call.init for call in calls if call.init is not None]
        durations = [call.duration for call in calls]
        assert row["invocations"] == len(calls)
        assert row["cold_starts"] == sum(call.cold for call in calls)
        assert row["failed_invocations"] == sum(call.failed for call in calls)
        assert [row["duration_p50_ms"], row["duration_p95_ms"], row["duration_p99_ms"]] == (
            pytest.approx(percentiles(durations))
        )
        assert row["duration_max_ms"] == (max(durations) if durations else None)
        assert [row["init_duration_p50_ms"], row["init_duration_p95_ms"]] == pytest.approx(
            percentiles(inits)[:2]
        )
        assert row["billed_seconds"] == pytest.approx(sum(int(d) + 1 for d in durations) / 1000)
    outage = table[(date(2024, 1, 2),)]
    assert {key: outage[key] for key in (
        "runtime_versions", "memory_sizes_mb", "memory_size_mb_most_used", "failed_invocations",
        "failed_inits", "processing_errors", "errors_by_type", "cold_start_share",
    )} == {
        "runtime_versions": "nodejs:14.v42, nodejs:20.v13",
        "memory_sizes_mb": "512, 1024",
        "memory_size_mb_most_used": 512,
        "failed_invocations": 2,
        "failed_inits": 2,
        "processing_errors": 4,
        "errors_by_type": "Error: 2; Runtime.Unknown: 2",
        "cold_start_share": pytest.approx(2 / 3),
    }  # fmt: skip
    quiet = table[(date(2024, 1, 4),)]  # no logs: zeros, not a missing row
    assert (quiet["invocations"], quiet["failed_invocations"], quiet["billed_seconds"]) == (0, 0, 0)
    failed_sync_day = table[(date(2024, 2, 20),)]
    assert failed_sync_day["failed_syncs_in_successful_invocations"] == 1
    assert failed_sync_day["failed_invocations"] == 0


def test_runtime_versions_from_the_streams_init_start(made):
    export, connection = made
    table = by_key(finance.runtime_versions(connection), "runtime_version")
    versions = sorted({call.runtime for call in export.calls})
    assert sorted(key for (key,) in table) == versions
    for version in versions:
        calls = [call for call in export.calls if call.runtime == version]
        row = table[(version,)]
        memory = Counter(call.memory for call in calls)
        assert (row["invocations"], row["cold_starts"], row["failed_invocations"]) == (
            len(calls),
            sum(call.cold for call in calls),
            sum(call.failed for call in calls),
        )
        assert (row["first_day"], row["last_day"]) == (
            min(call.day for call in calls),
            max(call.day for call in calls),
        )
        assert row["memory_sizes_mb"] == ", ".join(str(size) for size in sorted(memory))
        assert row["memory_size_mb_most_used"] == max(memory, key=lambda size: (memory[size], size))
        assert row["duration_max_ms"] == max(call.duration for call in calls)
        assert row["function_versions"] == "$LATEST"
    assert table[("nodejs:20.v13",)]["failed_inits"] == 2
    assert table[("nodejs:20.v13",)]["processing_errors"] == 5  # the outage's 4 and a failed sync
    assert table[("unknown",)]["invocations"] == 1  # a stream whose INIT_START is not in the export


def test_error_types_with_their_first_message(made):
    _, connection = made
    table = by_key(finance.error_types(connection), "error_type", "kind")
    summary = {
        key: (row["errors"], row["message"], row["days_affected"], row["transactions_affected"])
        for key, row in table.items()
    }
    assert summary == {
        ("Error", "uncaught_exception"): (2, "Cannot find module x", 1, 0),
        ("Runtime.Unknown", "runtime_error"): (2, "Unknown application error occurred", 1, 0),
        ("app_message", "app_message"): (1, "Could not update the payment balance", 1, 1),
    }


def test_an_empty_warehouse_has_no_period_and_empty_tables():
    connection = duckdb.connect()
    for name in finance.INPUTS:
        connection.register(name, SCHEMAS[name].empty_table())
    assert finance.period(connection) == (None, None)
    for name in finance.TABLES:
        table = getattr(finance, name)(connection)
        assert table.num_rows == 0 and table.schema == SCHEMAS[name], name


# ---- the real export -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(real_run):
    result, warehouse = real_run
    assert result.success
    connection = warehouse.connect()
    raw = {
        name: connection.sql(f"select * from {name}").to_arrow_table().to_pandas()
        for name in ("balance_discrepancies", "transactions", "invocations", "log_events",
                     "processing_errors")
    }  # fmt: skip
    tables = {name: getattr(finance, name)(connection).to_pandas() for name in finance.TABLES}
    yield connection, raw, tables
    connection.close()


def test_real_period_and_calendar(real):
    connection, raw, tables = real
    days = pd.to_datetime(raw["log_events"]["day"]).dt.date
    first, last = days.min(), days.max()
    assert finance.period(connection) == (first, last) == (date(2023, 12, 12), date(2024, 4, 14))
    calendar = tables["calendar"]
    every = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    assert list(calendar["day"]) == every
    without = sorted(set(every) - set(days))
    assert list(calendar.loc[~calendar["has_logs"], "day"]) == without
    assert [day.isoformat() for day in without] == [
        "2024-03-16",
        "2024-04-05",
        "2024-04-06",
        "2024-04-11",
    ]
    assert calendar["records"].sum() == len(raw["log_events"]) == 70081
    assert calendar["invocations"].sum() == len(raw["invocations"])
    assert calendar["transactions"].sum() == len(raw["transactions"])


def independent_cases(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per user and currency from the raw rows: latest gap, applied syncs after it, status."""
    gaps = raw["balance_discrepancies"].sort_values(["occurred_at", "stream", "line"])
    latest = gaps.groupby(["user_id", "currency"]).agg(
        latest_gap=("gap", "last"),
        last_seen=("occurred_at", "last"),
        payment=("payment_balance", "last"),
        first_day=("day", "first"),
    )
    applied = raw["transactions"][raw["transactions"]["outcome"] == "applied"]
    joined = applied.merge(latest.reset_index(), on=["user_id", "currency"])
    later = (
        joined[joined["occurred_at"] > joined["last_seen"]].groupby(["user_id", "currency"]).size()
    )
    latest["later"] = later.reindex(latest.index).fillna(0).astype(int)
    resolved = latest["latest_gap"].abs() <= TOLERANCE
    latest["status"] = np.where(
        resolved, "resolved", np.where(latest["later"] >= 1, "probably_resolved", "open")
    )
    return latest


def test_real_cases_match_the_raw_rows(real):
    _, raw, tables = real
    cases = tables["discrepancy_cases"].set_index(["user_id", "currency"]).sort_index()
    expected = independent_cases(raw).sort_index()
    assert len(cases) == len(expected) == 147
    assert list(cases.index) == list(expected.index)
    assert (cases["latest_gap"] == expected["latest_gap"]).all()
    assert (cases["status"] == expected["status"]).all()
    assert cases["status"].value_counts().to_dict() == {"open": 119, "probably_resolved": 28}
    end = date(2024, 4, 14)
    age = [(end - pd.Timestamp(day).date()).days for day in expected["first_day"]]
    assert list(cases["age_days"]) == age
    bucket = [
        "0-7" if a <= 7 else "8-30" if a <= 30 else "31-90" if a <= 90 else "over 90" for a in age
    ]
    assert list(cases["age_bucket"]) == bucket
    assert Counter(bucket) == {"over 90": 103, "31-90": 24, "8-30": 15, "0-7": 5}
    negative = expected["payment"] < -TOLERANCE
    assert (cases["negative_payment_balance"] == negative).all() and negative.sum() == 49
    assert (cases["days_since_last_seen"] > 30).sum() == 102


def test_real_mirrors_name_the_rejected_entries(real):
    _, raw, tables = real
    cases = tables["discrepancy_cases"]
    transactions = raw["transactions"]
    refused = transactions[transactions["outcome"].isin(["rejected", "failed"])]
    expected = {}
    for row in cases.itertuples():
        same = refused[(refused["user_id"] == row.user_id) & (refused["currency"] == row.currency)]
        match = same[(same["amount"].abs() - abs(row.latest_gap)).abs() <= TOLERANCE]
        if abs(row.latest_gap) > TOLERANCE and len(match):
            expected[row.user_id] = match.sort_values("occurred_at")["transaction_id"].iloc[0]
    mirrored = cases[cases["mirrors_transaction_id"].notna()]
    assert (
        dict(zip(mirrored["user_id"], mirrored["mirrors_transaction_id"], strict=True)) == expected
    )
    assert sorted(zip(mirrored["currency"], mirrored["latest_gap"], strict=True)) == [
        ("BHD", money("81.818")),
        ("SAR", money("744.78")),
        ("SAR", money("5250")),
    ]


def test_real_exposure_daily_against_user_exposure_and_the_raw_rows(real):
    connection, raw, tables = real
    assert_last_day_is_exposure_totals(connection)
    daily = tables["exposure_daily"]
    cases = tables["discrepancy_cases"]
    exposure = cases.groupby("currency")[["revenue_at_risk", "owed_to_user"]].sum()
    totals = reconcile.exposure_totals(connection).to_pandas().set_index("currency")
    assert exposure["revenue_at_risk"].to_dict() == totals["revenue_at_risk"].to_dict()
    assert exposure["owed_to_user"].to_dict() == totals["owed_to_users"].to_dict()
    assert len(daily) == 125 * 5
    day = date(2024, 1, 31)  # as known at the end of a day in the middle of the period
    gaps = raw["balance_discrepancies"]
    known = gaps[pd.to_datetime(gaps["day"]).dt.date <= day].sort_values(
        ["occurred_at", "stream", "line"]
    )
    latest = known.groupby(["user_id", "currency"])["gap"].last().reset_index()
    row = daily[daily["day"] == day].set_index("currency")
    for currency, group in latest.groupby("currency"):
        over = group[group["gap"] > TOLERANCE]["gap"]
        assert row.loc[currency, "revenue_at_risk"] == sum(over, money(0)), currency
        assert row.loc[currency, "users_over_credited"] == len(over)
    assert daily.groupby("currency")["cases_opened"].sum().to_dict() == (
        cases.groupby("currency").size().to_dict()
    )


def test_real_runtime_shows_the_outage_of_2023_12_28(real):
    _, raw, tables = real
    daily = tables["runtime_daily"].set_index("day")
    assert len(daily) == 125  # every day, with or without invocations
    invocations = raw["invocations"]
    failed = invocations[invocations["status"] != "success"]
    per_day = failed.groupby(pd.to_datetime(failed["day"]).dt.date).size()
    assert (
        daily["failed_invocations"][daily["failed_invocations"] > 0].to_dict() == per_day.to_dict()
    )
    outage = daily.loc[date(2023, 12, 28)]
    before = daily.loc[date(2023, 12, 27)]
    assert (outage["invocations"], outage["failed_invocations"], outage["failed_inits"]) == (
        54,
        53,
        72,
    )
    assert outage["processing_errors"] == len(raw["processing_errors"]) == 125
    assert outage["errors_by_type"] == "Error: 72; Runtime.Unknown: 53"
    assert (before["runtime_versions"], before["memory_sizes_mb"]) == ("nodejs:14.v42", "1024")
    assert (outage["runtime_versions"], outage["memory_sizes_mb"]) == (
        "nodejs:14.v42, nodejs:20.v13",
        "512, 1024",
    )
    assert outage["memory_size_mb_most_used"] == 512
    assert daily.loc[date(2024, 3, 16), "invocations"] == 0  # a day without logs reads zeros
    versions = tables["runtime_versions"].set_index("runtime_version")
    assert versions["invocations"].sum() == len(invocations)
    assert list(versions.index) == [
        "nodejs:14.v42",
        "nodejs:20.v13",
        "nodejs:20.v14",
        "nodejs:20.v15",
        "nodejs:20.v16",
        "nodejs:20.v18",
        "nodejs:20.v19",
    ]
    assert versions.loc["nodejs:20.v13", "failed_invocations"] == 53
    assert versions.loc["nodejs:14.v42", "last_day"] == date(2023, 12, 28)
    cold = invocations[invocations["cold_start"]]
    assert versions["cold_starts"].sum() == len(cold)
    errors = tables["error_types"].set_index(["error_type", "kind"])
    first = raw["processing_errors"].sort_values(["occurred_at", "stream", "line"])
    for (error_type, kind), group in first.groupby(["error_type", "kind"]):
        assert errors.loc[(error_type, kind), "errors"] == len(group)
        assert errors.loc[(error_type, kind), "message"] == group["message"].iloc[0]
