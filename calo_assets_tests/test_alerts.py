"""Alerts to a webhook: a small HTTP server started by the test records what it receives.

New cases above the alert amount after a daily run, failed checks and failed runs each send one
Slack-compatible message with the day, the figures and a link, and nothing personal; a webhook that
answers 500 or never answers is retried a bounded number of times, logged as a warning, and the run
succeeds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from calo_assets import alerts, metrics
from calo_assets.alerts import AlertSettings, Thresholds, parse_thresholds, send
from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.defs.alerts import discrepancy_alert, failed_checks_alert, run_failure_alert
from calo_assets.defs.resources import AlertWebhook, resources_for
from calo_assets.warehouse import Warehouse
from calo_assets_tests.conftest import every_step

SAMPLE_DAYS = [f"2024-03-0{day}" for day in range(1, 9)]


class Webhook:
    """An HTTP server on 127.0.0.1 recording each POST; answers ``status`` or hangs."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        self.hang_seconds = 0.0
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                webhook.received.append(
                    {"path": self.path, "type": self.headers["Content-Type"], **json.loads(body)}
                )
                if webhook.hang_seconds:
                    time.sleep(webhook.hang_seconds)
                self.send_response(webhook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def texts(self) -> list[str]:
        return [item["text"] for item in self.received]


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.hang_seconds = 0
    server.server.shutdown()


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory) -> Warehouse:
    """The shipped sample through every step but the report."""
    return every_step(SAMPLE_LOG_DIR, tmp_path_factory.mktemp("alerts") / "warehouse", SAMPLE_DAYS)


def test_thresholds_per_currency_one_for_all_or_both():
    assert parse_thresholds("") == Thresholds()
    assert parse_thresholds("250").of("SAR") == Decimal(250)
    both = parse_thresholds("SAR=1000, bhd=100.5,250")
    assert (both.of("SAR"), both.of("BHD"), both.of("KWD")) == (1000, Decimal("100.5"), 250)
    for bad in ("SAR=", "=5", "SAR=-1", "SAR=lots", "inf"):
        with pytest.raises(ValueError, match="CALO_ALERT_MIN_AMOUNT"):
            parse_thresholds(bad)


def test_a_message_is_posted_as_slack_json_and_a_failing_or_hanging_webhook_is_bounded(webhook):
    settings = AlertSettings(webhook.url, timeout_seconds=1, attempts=3)
    assert send(settings, "hello") == alerts.Delivery(True, 1, 200)
    assert webhook.received == [
        {"path": "/services/T000/B000/secret-token", "type": "application/json", "text": "hello"}
    ]

    webhook.status, pauses = 500, []
    failed = send(settings, "again", sleep=pauses.append)
    assert (failed.delivered, failed.attempts, failed.status, failed.error) == (
        False,
        3,
        500,
        "HTTP 500",
    )
    assert pauses == [1.0, 2.0] and len(webhook.received) == 4

    webhook.status = 404  # not a passing failure: not retried
    assert send(settings, "gone", sleep=pauses.append).attempts == 1

    webhook.status, webhook.hang_seconds = 200, 30
    began = time.monotonic()
    hung = send(settings, "slow", sleep=lambda _: None)
    assert time.monotonic() - began < 3 * (1 + 1) + 1  # three attempts of at most ~2 s each
    assert (hung.delivered, hung.attempts, hung.error) == (False, 3, "no answer within 1 s")
    assert "secret-token" not in hung.text and "secret-token" not in failed.text

    refused = send(
        AlertSettings("http://127.0.0.1:9/hook", timeout_seconds=1, attempts=2),
        "x",
        sleep=lambda _: None,
    )
    assert (refused.delivered, refused.attempts) == (False, 2)
    assert refused.error.startswith("cannot reach the webhook")
    assert send(AlertSettings(""), "x").text == "no webhook configured (CALO_ALERT_WEBHOOK_URL)"
    assert not send(AlertSettings("file:///etc/passwd"), "x").delivered


def test_new_cases_are_the_finance_tables_figures_and_the_message_holds_no_personal_data(
    sample_warehouse,
):
    with sample_warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        opened = connection.execute(
            """select opened_day, currency, count(*), sum(revenue_at_risk), sum(owed_to_user)
               from discrepancy_cases group by all order by all"""
        ).fetchall()
        from_daily = {
            (day, currency): count
            for day, currency, count in connection.execute(
                "select day, currency, sum(cases_opened) from exposure_daily group by all"
            ).fetchall()
        }
        user_ids = [
            row[0] for row in connection.execute("select user_id from discrepancy_cases").fetchall()
        ]
        day = max(opened, key=lambda row: row[2])[0]
        cases = alerts.new_cases(connection, day, parse_thresholds("1"))
    assert opened and user_ids
    expected = [row for row in opened if row[0] == day]
    assert [(c.currency, c.cases, c.revenue_at_risk, c.owed_to_users) for c in cases] == [
        (currency, count, risk, owed) for _, currency, count, risk, owed in expected
    ]
    for case in cases:  # the same count as exposure_daily.cases_opened
        assert from_daily[day, case.currency] == case.cases

    message = alerts.cases_alert({day.isoformat(): cases}, "https://dagster.example/runs/r1")
    assert message.startswith(
        f"calo_assets: new balance discrepancies on {day} above the alert amount"
    )
    assert "Run: https://dagster.example/runs/r1" in message
    for case in cases:
        assert f"{case.currency}: {case.cases:,} case" in message
    assert not any(user_id in message for user_id in user_ids)
    high = {day.isoformat(): [replace(case, threshold=case.amount) for case in cases]}
    assert alerts.cases_alert(high) is None  # "above": strictly more than the alert amount


def run_event(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType):
    [record] = instance.get_records_for_run(run_id=run_id, of_type=kind).records
    return record.event_log_entry.dagster_event


def warnings_in(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        entry.user_message
        for entry in instance.all_logs(run_id)
        if entry.level == logging.WARNING and entry.dagster_event is None
    ]


def run_alert_asset(warehouse: Warehouse, day: str, webhook_url: str, tmp_path: Path, **options):
    resources = resources_for(SAMPLE_LOG_DIR, warehouse.root, tmp_path / "reports")
    resources["alerts_webhook"] = AlertWebhook(
        url=webhook_url, dagster_url="http://dagster.example:3000/", **options
    )
    return dg.materialize(
        [discrepancy_alert],
        resources=resources,
        tags={"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": day},
        instance=INSTANCE,
    )


INSTANCE = dg.DagsterInstance.ephemeral()


def test_a_daily_run_alerts_on_new_cases_and_goes_on_when_the_webhook_fails_or_hangs(
    sample_warehouse, webhook, tmp_path
):
    with sample_warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        day, count = connection.execute(
            "select opened_day, count(*) from discrepancy_cases group by 1 order by 2 desc, 1 limit 1"
        ).fetchone()
    day = day.isoformat()
    result = run_alert_asset(sample_warehouse, day, webhook.url, tmp_path, min_amount="0")
    assert result.success
    [text] = webhook.texts
    assert text.startswith(f"calo_assets: new balance discrepancies on {day}")
    assert f"Run: http://dagster.example:3000/runs/{result.run_id}" in text
    metadata = result.asset_materializations_for_node("discrepancy_alert")[0].metadata
    assert metadata["alert"].value.startswith("delivered (HTTP 200")
    assert f"| {day} |" in metadata["new cases"].value and count > 0

    for status, hang in ((500, 0), (200, 30)):
        webhook.received.clear()
        webhook.status, webhook.hang_seconds = status, hang
        began = time.monotonic()
        result = run_alert_asset(
            sample_warehouse,
            day,
            webhook.url,
            tmp_path,
            min_amount="0",
            timeout_seconds=1,
            attempts=2,
        )
        assert result.success and time.monotonic() - began < 30
        assert len(webhook.received) == 2  # bounded retries
        outcome = result.asset_materializations_for_node("discrepancy_alert")[0].metadata["alert"]
        assert outcome.value.startswith("not delivered after 2 attempt(s)")
        [logged] = warnings_in(INSTANCE, result.run_id)  # in the run's event log, as a warning
        assert logged.startswith("the alert was not delivered after 2 attempt(s)")
        assert logged.endswith("; the run goes on") and "secret-token" not in logged
    webhook.hang_seconds, webhook.status = 0, 200

    webhook.received.clear()
    quiet = run_alert_asset(sample_warehouse, day, webhook.url, tmp_path, min_amount="1000000000")
    assert quiet.success and webhook.received == []
    assert (
        quiet.asset_materializations_for_node("discrepancy_alert")[0].metadata["alert"].value
        == "nothing above the alert amount"
    )


def test_failed_checks_and_failed_runs_are_alerted_with_a_link_and_no_data(webhook):
    @dg.asset
    def ledger():
        return 1

    @dg.asset_check(asset=ledger)
    def balances_add_up():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=ledger)
    def freshness():
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)

    @dg.asset
    def export_failed():
        raise dg.Failure("CloudWatch export task t-1 for the slice 2024-03-05 ended FAILED")

    @dg.asset
    def crashed():
        raise ValueError("user u-4242 has balance 12.5 in a message nobody should forward")

    instance = dg.DagsterInstance.ephemeral()
    resources = {"alerts_webhook": AlertWebhook(url=webhook.url, dagster_url="http://ui:3000")}

    checked = dg.materialize(
        [ledger, balances_add_up, freshness],
        instance=instance,
        tags={"dagster/partition": "2024-03-05"},
    )
    assert checked.success
    run = instance.get_run_by_id(checked.run_id)
    success_event = run_event(instance, checked.run_id, dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        sensor_name="failed_checks_alert",
        dagster_event=success_event,
        dagster_instance=instance,
        dagster_run=run,
        resources=resources,
    )
    failed_checks_alert(context)
    [text] = webhook.texts
    assert text.splitlines() == [
        "calo_assets: 1 data check(s) failed in run of __ephemeral_asset_job__ (2024-03-05)",
        "• balances_add_up on ledger",
        "(and 1 check(s) of severity WARN did not pass)",
        f"Run: http://ui:3000/runs/{checked.run_id}",
    ]

    for asset, expected in (
        (
            export_failed,
            "export_failed: CloudWatch export task t-1 for the slice 2024-03-05 ended FAILED",
        ),
        (crashed, "crashed: ValueError (details in the run)"),
    ):
        webhook.received.clear()
        failed = dg.materialize([asset], instance=instance, raise_on_error=False)
        assert not failed.success
        failure_event = run_event(instance, failed.run_id, dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=failure_event,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(failed.run_id),
            resources=resources,
        ).for_run_failure()
        run_failure_alert(context)
        [text] = webhook.texts
        assert text.splitlines() == [
            "calo_assets: run of __ephemeral_asset_job__ failed (no partition)",
            f"• {expected}",
            f"Run: http://ui:3000/runs/{failed.run_id}",
        ]
        assert "u-4242" not in text and "12.5" not in text
