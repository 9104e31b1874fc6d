"""Alerts to the webhook (``CALO_ALERT_WEBHOOK_URL``): new money out of sync after a daily run, failed
checks, failed runs. The messages and the sending are in ``calo_assets.alerts``.

- ``discrepancy_alert``: an asset after the finance tables, in every daily run: the cases opened on
  the run's day(s) per currency, and a message when they hold more than the alert amount. A webhook
  that fails or hangs is retried a bounded number of times and logged as a warning: the run goes on.
- ``failed_checks_alert``: when a run succeeds with a failed check of severity ERROR.
- ``run_failure_alert``: when a run fails.

The sensors run in the daemon; they start running when the webhook is set at load time.
"""

import os
from datetime import date

import dagster as dg

from calo_assets import alerts, metrics
from calo_assets.defs.cloudwatch import markdown_rows
from calo_assets.defs.partitions import OWNERS, single_run
from calo_assets.defs.resources import AlertWebhook, ReportOutput, WarehouseResource
from calo_assets.money import plain_decimal
from calo_assets.pipeline import days_between

WEBHOOK_VARIABLE = "CALO_ALERT_WEBHOOK_URL"
_FAILURE_TEXT = 300  # characters of a step's own failure message in an alert


def _sensor_status() -> dg.DefaultSensorStatus:
    if os.environ.get(WEBHOOK_VARIABLE, "").strip():
        return dg.DefaultSensorStatus.RUNNING
    return dg.DefaultSensorStatus.STOPPED


def run_days(tags: dict[str, str]) -> list[str]:
    """The days of a run from its partition tags (none for a run without partitions)."""
    if tags.get("dagster/partition"):
        return [tags["dagster/partition"]]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return days_between(date.fromisoformat(start), date.fromisoformat(end))
    return []


@dg.asset(
    group_name="finance",
    backfill_policy=single_run,  # as the history tables: a range of days is one run
    deps=["discrepancy_cases", "exposure_daily"],
    kinds={"slack"},
    owners=OWNERS,
    description="The cases first logged on the run's day(s), per currency, with the money they hold; "
    "a message to CALO_ALERT_WEBHOOK_URL when that is above CALO_ALERT_MIN_AMOUNT. Never fails the "
    "run: an unreachable webhook is a warning.",
)
def discrepancy_alert(
    context: dg.AssetExecutionContext,
    alerts_webhook: AlertWebhook,
    warehouse: WarehouseResource,
    report_output: ReportOutput,
) -> dg.MaterializeResult:
    """Alert on the new cases of the run's days (the last day with logs when the run has none)."""
    settings = alerts_webhook.settings
    store = warehouse.store
    days = run_days(dict(context.run.tags))
    with store.connect(empty_tables=metrics.INPUTS) as connection:
        if not days:
            logged = store.days("log_events")
            days = logged[-1:]
        found = {
            day: alerts.new_cases(connection, date.fromisoformat(day), settings.thresholds)
            for day in days
        }
    link = settings.run_link(context.run_id) or alerts.report_link(report_output.path)
    message = alerts.cases_alert(found, link)
    if message is None:
        outcome = "nothing above the alert amount"
    elif not settings.enabled:
        outcome = "above the alert amount, but no webhook is configured (CALO_ALERT_WEBHOOK_URL)"
        context.log.info(f"alert not sent: {outcome}")
    else:
        delivery = alerts.send(settings, message)
        outcome = delivery.text
        if delivery.delivered:
            context.log.info(f"alert {outcome}")
        else:
            context.log.warning(f"the alert was {outcome}; the run goes on")
    rows = [
        {
            "day": day,
            "currency": case.currency,
            "cases opened": case.cases,
            "revenue at risk": plain_decimal(case.revenue_at_risk),
            "owed to users": plain_decimal(case.owed_to_users),
            "alert above": plain_decimal(case.threshold),
            "alert": "yes" if case.above else "no",
        }
        for day, cases in found.items()
        for case in cases
    ]
    columns = list(rows[0]) if rows else ["day"]
    return dg.MaterializeResult(
        metadata={
            "days": ", ".join(days) if len(days) <= 3 else f"{days[0]} to {days[-1]}",
            "new cases": dg.MetadataValue.md(markdown_rows(rows[:50], columns)),
            "alert": outcome,
            # (the message without its link: a file location is never text in metadata)
            "message": dg.MetadataValue.md(f"```\n{alerts.cases_alert(found)}\n```")
            if message
            else "",
        }
    )


def _check_failures(instance: dg.DagsterInstance, run_id: str) -> tuple[list[tuple[str, str]], int]:
    """The (asset, check) pairs of severity ERROR that failed in a run, and how many WARN ones."""
    failed: list[tuple[str, str]] = []
    warnings = 0
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation is None or evaluation.passed:
            continue
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append((evaluation.asset_key.to_user_string(), evaluation.check_name))
        else:
            warnings += 1
    return failed, warnings


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="failed_checks_alert",
    default_status=_sensor_status(),
    description="Sends an alert to CALO_ALERT_WEBHOOK_URL when a run succeeded but a check of "
    "severity ERROR failed in it.",
)
def failed_checks_alert(context: dg.RunStatusSensorContext, alerts_webhook: AlertWebhook):
    run = context.dagster_run
    failed, warnings = _check_failures(context.instance, run.run_id)
    settings = alerts_webhook.settings
    message = alerts.checks_alert(
        run.job_name,
        alerts.days_text(run.tags),
        failed,
        warnings,
        settings.run_link(run.run_id),
    )
    if message is None or not settings.enabled:
        return dg.SkipReason(
            "no failed check of severity ERROR" if message is None else "no webhook"
        )
    delivery = alerts.send(settings, message)
    if not delivery.delivered:
        context.log.warning(f"the check alert for run {run.run_id} was {delivery.text}")
    return dg.SkipReason(f"check alert {delivery.text}")


def _failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Each failed step with its own failure message (``dg.Failure``: written by this project)
    or only the error's class (an exception's text may quote data)."""
    steps = []
    records = instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data
        failure = getattr(data, "user_failure_data", None)
        if failure is not None and failure.description:
            text = " ".join(failure.description.split())
            if len(text) > _FAILURE_TEXT:
                text = text[:_FAILURE_TEXT] + "…"
        else:
            error = getattr(data, "error", None)
            while error is not None and error.cause is not None:  # the user code's own error
                error = error.cause
            text = f"{error.cls_name} (details in the run)" if error is not None else "failed"
        steps.append(f"{event.step_key}: {text}")
    return steps


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=_sensor_status(),
    description="Sends an alert to CALO_ALERT_WEBHOOK_URL when a run fails.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, alerts_webhook: AlertWebhook):
    run = context.dagster_run
    settings = alerts_webhook.settings
    if not settings.enabled:
        return dg.SkipReason("no webhook")
    steps = _failed_steps(context.instance, run.run_id) or [
        " ".join((context.failure_event.message or "the run failed").split())[:_FAILURE_TEXT]
    ]
    message = alerts.run_failure_alert(
        run.job_name, alerts.days_text(run.tags), steps, settings.run_link(run.run_id)
    )
    delivery = alerts.send(settings, message)
    if not delivery.delivered:
        context.log.warning(f"the failure alert for run {run.run_id} was {delivery.text}")
    return dg.SkipReason(f"failure alert {delivery.text}")


ALERT_SENSORS = [failed_checks_alert, run_failure_alert]
