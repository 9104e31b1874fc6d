"""The Dagster code location: every asset, check and resource of calo_assets."""

import dagster as dg

from calo_assets.defs.automation import daily_refresh, daily_schedule, new_log_streams
from calo_assets.defs.daily_assets import ingest_logs, latest_day_present, sync_tables
from calo_assets.defs.history_assets import HISTORY_ASSETS, anomaly_scores
from calo_assets.defs.report_asset import balance_sync_report
from calo_assets.defs.resources import CaloResource

defs = dg.Definitions(
    assets=[ingest_logs, sync_tables, anomaly_scores, *HISTORY_ASSETS, balance_sync_report],
    asset_checks=[latest_day_present],
    jobs=[daily_refresh],
    schedules=[daily_schedule],
    sensors=[new_log_streams],
    resources={"calo": CaloResource.from_settings()},
)
