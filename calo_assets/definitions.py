"""The Dagster code location: every asset, check, job, schedule, sensor and resource of calo_assets."""

import dagster as dg

from calo_assets.defs.alerts import ALERT_SENSORS, discrepancy_alert
from calo_assets.defs.automation import daily_refresh, daily_schedule, new_log_streams
from calo_assets.defs.cloudwatch import settled_cloudwatch_slices, with_cloudwatch_export
from calo_assets.defs.ledger import HISTORY_ASSETS, anomaly_scores
from calo_assets.defs.logs import cloudwatch_export, ingest_logs, latest_day_present
from calo_assets.defs.report import balance_sync_report
from calo_assets.defs.resources import default_resources
from calo_assets.defs.sync import sync_tables

defs = dg.Definitions(
    assets=[
        with_cloudwatch_export(cloudwatch_export),  # exported by the run itself when configured
        ingest_logs,
        sync_tables,
        anomaly_scores,
        *HISTORY_ASSETS,
        balance_sync_report,
        discrepancy_alert,
    ],
    asset_checks=[latest_day_present],
    jobs=[daily_refresh],
    schedules=[daily_schedule],
    sensors=[new_log_streams, settled_cloudwatch_slices, *ALERT_SENSORS],
    resources=default_resources(),
    # Every step of a run in the run's own process: a daily run has five steps, and starting a new
    # Python process with Dagster, pandas and scikit-learn for each cost seconds per step.
    executor=dg.in_process_executor,
)
