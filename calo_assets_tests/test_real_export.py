"""End to end on the real export: every figure of its README, through the Dagster assets."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest

from calo_assets.warehouse import DUCKDB_FILE


@pytest.fixture(scope="module")
def sql(real_run):
    result, warehouse = real_run
    assert result.success
    connection = duckdb.connect(str(warehouse.root / DUCKDB_FILE), read_only=True)
    yield lambda query: connection.execute(query).fetchall()
    connection.close()


def test_streams_read_once_and_nothing_lost(real_run, sql):
    result, _ = real_run
    assert sql("select count(distinct stream) from ingest_manifest") == [(1279,)]
    assert sql("select count(*) from ingest_manifest where bytes_read > 0") == [(1279,)]
    assert sql("select count(*) from quarantine") == [(0,)]
    checks: dict[str, list] = {}  # a daily check has one result per day, in its partition
    for check in result.get_asset_check_evaluations():
        checks.setdefault(check.check_name, []).append(check)
    nothing_lost = checks["nothing_lost"]
    assert len(nothing_lost) == 126 and all(check.passed for check in nothing_lost)
    assert sum(check.metadata["records read"].value for check in nothing_lost) == 70081
    failing = {name for name, results in checks.items() if not all(c.passed for c in results)}
    # Warnings that are findings: 5 legacy rows that do not add up, syncs that do not start where
    # the user's previous one ended, 18 days where discrepancies outnumber
    # half the transactions, days without any log inside the period, and an export from 2024 (the
    # warehouse is not fresh).
    assert failing == {
        "arithmetic_rule",
        "continuity_rule",
        "discrepancy_rate",
        "every_day_has_logs",
        "latest_day_present",
    }
    assert sum(not check.passed for check in checks["discrepancy_rate"]) == 18
    (continuity,) = checks["continuity_rule"]
    assert continuity.metadata["breaks"].value == 179  # README, "Checks"; the table holds them too
    assert sql("select count(*) from ledger_breaks where rule = 'continuity'") == [(179,)]
    days_with_logs = {str(day) for (day,) in sql("select distinct day from log_events")}
    first, last = min(days_with_logs), max(days_with_logs)
    every_day = {
        str(day)
        for (day,) in sql(
            f"select range::date from range(date '{first}', date '{last}' + 1, interval 1 day)"
        )
    }
    (every_day_has_logs,) = checks["every_day_has_logs"]
    assert every_day_has_logs.metadata["days without logs"].value == sorted(
        every_day - days_with_logs
    )
    assert len(every_day - days_with_logs) == 4  # README: 4 of the period's days hold no log
    assert sql("select count(*) from log_events") == [(70081,)]


def test_invocations_and_cold_starts(sql):
    assert sql("select count(*), count(distinct request_id) from invocations") == [(7127, 7127)]
    assert sql("select count(*) from log_events where kind = 'start'") == [(7127,)]
    assert sql("select count(*) from log_events where kind = 'init_start'") == [(1295,)]


def test_transactions_directions_and_legacy(sql):
    assert sql("select count(*), count(distinct transaction_id) from transactions") == [
        (13689, 13689)
    ]
    assert sql("select type, count(*) from transactions group by 1 order by 1") == [
        ("CREDIT", 853),
        ("DEBIT", 12836),
    ]
    assert sql("select count(*) from transactions where type_inferred") == [(1773,)]
    assert sql("select count(*) from transactions where source is null and action is null") == [
        (1773,)
    ]


def test_published_and_outcomes(sql):
    assert sql("select count(*) from log_events where kind = 'sync_published'") == [(13197,)]
    assert sql("select outcome, count(*) from transactions group by 1 order by 1") == [
        ("applied", 13197),
        ("rejected", 3),
        ("skipped", 489),
    ]


def test_discrepancies_rejections_and_exceptions(sql):
    assert sql("select count(*), count(distinct user_id) from balance_discrepancies") == [
        (3574, 147)
    ]
    assert sql("select count(*) from balance_discrepancies where transaction_id is null") == [(0,)]
    assert sql(
        "select count(*) from balance_discrepancies where gap <> subscription_balance - payment_balance"
    ) == [(0,)]
    assert sql("select count(*), count(distinct user_id) from negative_balance_rejections") == [
        (10, 8)
    ]
    assert sql("select count(*) from processing_errors where kind = 'uncaught_exception'") == [
        (72,)
    ]


def test_days_with_transactions(sql):
    assert sql(
        "select count(distinct day), min(day)::varchar, max(day)::varchar from transactions"
    ) == [(119, "2023-12-12", "2024-04-14")]


def test_exact_sums_by_currency(sql):
    sums = dict(sql("select currency, sum(amount) from transactions group by 1"))
    assert {currency: total.normalize() for currency, total in sums.items()} == {
        "AED": Decimal("28614.46"),
        "BHD": Decimal("270595.080999999999996"),
        "KWD": Decimal("2452"),
        "QAR": Decimal("19430"),
        "SAR": Decimal("592815.74"),
    }


def test_stream_past_midnight_lands_on_the_start_day(sql):
    rows = sql(
        "select day::varchar, count(*) from log_events "
        "where stream = '2024-01-22-[$LATEST]3efed65f043e4d0290eee6971bc15203' group by 1 order by 1"
    )
    assert [day for day, _ in rows] == ["2024-01-22", "2024-01-23"]


def test_personal_data_is_masked(sql):
    hits = sql(
        "select count(*) from log_events where regexp_matches(coalesce(payload, '') || message, "
        "'[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}|\\+9[0-9]{9,}')"
    )
    assert hits == [(0,)]
    assert sql("select count(*) from transactions where metadata like '%@%.%'") == [(0,)]


def test_no_typed_transaction_breaks_the_arithmetic_rule(sql):
    assert sql(
        "select type_inferred, count(*) from ledger_breaks where rule = 'arithmetic' group by 1"
    ) == [(True, 5)]
    assert sql("select count(*) from ledger_breaks where rule = 'continuity'") == [(179,)]


def test_exposure_per_currency_matches_an_independent_count_from_the_raw_rows(sql):
    latest: dict[str, tuple] = {}
    for user, currency, occurred, stream, line, subscription, payment in sql(
        "select user_id, currency, occurred_at, stream, line, subscription_balance, payment_balance from balance_discrepancies"
    ):
        key = (occurred, stream, line)
        if user not in latest or key > latest[user][0]:
            latest[user] = (key, currency, subscription - payment)
    expected: dict[str, list[Decimal]] = {}
    for _, currency, gap in latest.values():
        totals = expected.setdefault(currency, [Decimal(0), Decimal(0)])
        if gap > Decimal("0.0005"):
            totals[0] += gap
        elif gap < Decimal("-0.0005"):
            totals[1] -= gap
    exposure = sql(
        "select currency, sum(latest_gap) filter (where exposure_type = 'over_credited'),"
        " sum(-latest_gap) filter (where exposure_type = 'under_credited') from user_exposure group by 1"
    )
    assert {
        currency: [at_risk or Decimal(0), owed or Decimal(0)]
        for currency, at_risk, owed in exposure
    } == expected
    assert sql("select count(*), sum(times_logged) from user_exposure") == [(147, 3574)]
    assert {currency for currency, *_ in exposure} == {"AED", "BHD", "KWD", "QAR", "SAR"}


def test_every_transaction_is_accounted_for_and_reconciled(sql):
    assert sql(
        "select sum(transactions), sum(applied), sum(published_events), bool_and(all_accounted_for),"
        " sum(abs(published_without_transaction)) from sync_outcomes"
    ) == [(13689, 13197, 13197, True, 0)]
    assert sql("select kind, count(*) from overdrafts group by 1 order by 1") == [("attempted", 10)]
    assert sql("select count(*), sum(transactions) from user_summary") == [(617, 13689)]


def test_anomaly_scores_cover_every_transaction(sql):
    assert sql("select count(*), count(distinct transaction_id) from anomaly_scores") == [
        (13689, 13689)
    ]
    flagged = sql("select count(*) from anomaly_scores where is_anomaly and reasons <> ''")[0][0]
    assert sql("select count(*) from anomaly_scores where is_anomaly") == [(flagged,)]


def test_report_files_hold_no_email_or_phone_number(real_run):
    import zipfile

    from calo_assets.report.figures import CHARTS
    from calo_assets_tests.test_report import EMAIL_OR_PHONE, png_size, without_plotly_library

    _, warehouse = real_run
    folder = warehouse.root.parent / "reports"
    checked = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    assert EMAIL_OR_PHONE.search(archive.read(member)) is None, (path, member)
        elif path.suffix in (".csv", ".html"):
            assert EMAIL_OR_PHONE.search(without_plotly_library(path.read_bytes())) is None, path
        elif path.suffix == ".png":
            assert png_size(path) == (1000, 520) and path.stat().st_size > 10_000
        else:
            continue
        checked.append(path.suffix)
    assert sorted(set(checked)) == [".csv", ".html", ".png", ".xlsx"]
    assert checked.count(".png") == len(CHARTS)
