"""Daily partitions: one UTC log day each, from ``CALO_FIRST_DAY`` to the last complete day."""

from __future__ import annotations

import dagster as dg

from calo_assets.config import Settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().first_day, timezone="UTC"
)
single_run = dg.BackfillPolicy.single_run()
