"""Daily partitions: one UTC log day each, from ``CALO_FIRST_DAY`` to where the logs end.

The last partition is decided when the code location loads:

- ``CALO_LAST_DAY=YYYY-MM-DD``: that day;
- ``CALO_LAST_DAY=yesterday``: the last complete UTC day, moving on every day (a live export);
- unset (``auto``): the last day the logs under ``CALO_LOG_DIR`` can hold (the day after the newest
  stream folder, since a stream can run past midnight) when that is before yesterday, i.e. an export
  that has stopped (an archive, the shipped sample); otherwise yesterday, as for a live export.

So the UI lists the days that can have data, and the launch dialog does not open on 90 empty days.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from calo_assets.config import Settings
from calo_assets.logs.export import STREAM_FOLDER, days_reading_folder

LAST_DAY_VARIABLE = "CALO_LAST_DAY"
ROLLING = "yesterday"


def newest_stream_day(log_dir: Path) -> str | None:
    """The day of the newest stream folder under ``log_dir`` (folder names only, no file is read)."""
    if not log_dir.is_dir():
        return None
    newest = None
    for _, subfolders, _ in os.walk(log_dir, followlinks=False):
        for name in subfolders:
            match = STREAM_FOLDER.match(name)
            if match and (newest is None or match.group(1) > newest):
                newest = match.group(1)
    return newest


def last_partition_day(configured: str, log_dir: Path, today: date | None = None) -> str | None:
    """The last daily partition (``None``: the last complete UTC day, moving on every day)."""
    configured = configured.strip().lower()
    if configured == ROLLING:
        return None
    if configured and configured != "auto":
        try:
            return date.fromisoformat(configured).isoformat()
        except ValueError as exc:
            raise ValueError(
                f"{LAST_DAY_VARIABLE}={configured!r} is not a date (YYYY-MM-DD), "
                f"'{ROLLING}' or 'auto'"
            ) from exc
    newest = newest_stream_day(log_dir)
    if newest is None:
        return None
    last = days_reading_folder(newest)[-1]
    yesterday = ((today or datetime.now(UTC).date()) - timedelta(days=1)).isoformat()
    return last if last < yesterday else None


def build_daily_partitions(first_day: str, last_day: str | None) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions from ``first_day`` through ``last_day`` (or the last complete day)."""
    end = None if last_day is None else date.fromisoformat(last_day) + timedelta(days=1)
    return dg.DailyPartitionsDefinition(
        start_date=first_day,
        end_date=None if end is None else end.isoformat(),
        timezone="UTC",
    )


_settings = Settings.from_env()
LAST_DAY = last_partition_day(os.environ.get(LAST_DAY_VARIABLE, ""), _settings.log_dir)
daily_partitions = build_daily_partitions(_settings.first_day, LAST_DAY)
single_run = dg.BackfillPolicy.single_run()


def describe_partitions() -> str:
    """The partition set in words, for descriptions (the schedule page, the job)."""
    end = LAST_DAY or "the last complete UTC day"
    return f"daily partitions (UTC days) from {_settings.first_day} to {end}"


# Who answers for the assets, and the version of the code that computes them (bump it when a rule
# changes the tables, so the UI shows which partitions were computed by older code).
OWNERS = ["team:data-engineering"]
CODE_VERSION = "2"
