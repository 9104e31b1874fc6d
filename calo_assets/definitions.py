"""The Dagster code location: every asset, check and resource of calo_assets."""

from __future__ import annotations

import dagster as dg

from calo_assets.defs.daily_assets import ingest_logs, sync_tables
from calo_assets.defs.resources import CaloResource

defs = dg.Definitions(
    assets=[ingest_logs, sync_tables],
    resources={"calo": CaloResource.from_settings()},
)
