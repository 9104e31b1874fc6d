"""Daily partitions: one UTC log day each, from ``CALO_FIRST_DAY`` to the last complete day."""

from __future__ import annotations

import dagster as dg

from calo_assets.config import Settings

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=Settings.from_env().first_day, timezone="UTC"
)
single_run = dg.BackfillPolicy.single_run()

# Who answers for the assets, and the version of the code that computes them (bump it when a rule
# changes the tables, so the UI shows which partitions were computed by older code).
OWNERS = ["team:data-engineering"]
CODE_VERSION = "2"
