"""The daily job, its schedule, and the sensor that reacts to new or changed log streams.

One job, ``daily_refresh``, materializes a log day for every daily asset and then refreshes the
reconciliation tables and the report, so a user sees one daily result. The schedule runs it for the
previous complete UTC day; the sensor runs it for the days whose stream folders appeared or changed.
"""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from calo_assets.defs.partitions import daily_partitions
from calo_assets.defs.resources import LogSource
from calo_assets.logs.export import STREAM_FOLDER, days_reading_folder, folder_days_read_by

DAILY_JOB = "daily_refresh"
SCHEDULE_HOUR_UTC = 1  # an hour after midnight: late log deliveries of the day before have landed

daily_refresh = dg.define_asset_job(
    DAILY_JOB,
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="One log day through every daily asset, then the reconciliation tables and the report.",
)


def _switched_on(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}


daily_schedule = dg.build_schedule_from_partitioned_job(
    daily_refresh,
    name="daily_refresh_schedule",
    hour_of_day=SCHEDULE_HOUR_UTC,
    default_status=dg.DefaultScheduleStatus.RUNNING
    if _switched_on("CALO_SCHEDULE_RUNNING")
    else dg.DefaultScheduleStatus.STOPPED,
    description="Every day at 01:00 UTC, the previous complete log day. Set CALO_SCHEDULE_RUNNING=true to start it on.",
)


def stream_signatures(log_dir: Path) -> dict[str, str]:
    """Per stream folder under ``log_dir``: a signature of its files (names, sizes, modification times)."""
    signatures: dict[str, str] = {}
    if not log_dir.is_dir():
        return signatures
    for folder, subfolders, files in os.walk(log_dir, followlinks=False):
        subfolders.sort()
        name = Path(folder).name
        if STREAM_FOLDER.match(name) is None:
            continue
        parts = []
        for file in sorted(files):
            try:
                stat = (Path(folder) / file).stat()
            except OSError:
                continue
            parts.append(f"{file}:{stat.st_size}:{stat.st_mtime_ns}")
        signatures[f"{Path(folder).parent.name}/{name}"] = "|".join(parts)
    return signatures


def changed_days(
    previous: dict[str, str], current: dict[str, str], last_partition: str | None
) -> list[str]:
    """Days to re-run: each new or changed folder's day and the day after (a stream can run past midnight)."""
    days: set[str] = set()
    for folder, signature in current.items():
        if previous.get(folder) != signature:
            days.update(days_reading_folder(_folder_day(folder)))
    return sorted(day for day in days if last_partition is None or day <= last_partition)


@dg.sensor(
    job=daily_refresh,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING
    if _switched_on("CALO_SENSOR_RUNNING")
    else dg.DefaultSensorStatus.STOPPED,
    description="Requests the days whose stream folders under CALO_LOG_DIR are new or changed.",
)
def new_log_streams(context: dg.SensorEvaluationContext, log_source: LogSource):
    """Compare the stream folders with the cursor; request each affected day once per change."""
    previous = json.loads(context.cursor) if context.cursor else {}
    current = stream_signatures(log_source.path)
    keys = daily_partitions.get_partition_keys()
    known = set(keys)
    for day in changed_days(previous, current, keys[-1] if keys else None):
        if day in known:
            # The run key names the files the day reads: the same files never give a second run.
            inputs = sorted(
                sig
                for folder, sig in current.items()
                if _folder_day(folder) in folder_days_read_by(day)
            )
            digest = hashlib.sha256("\n".join(inputs).encode()).hexdigest()[:16]
            yield dg.RunRequest(run_key=f"{day}:{digest}", partition_key=day)
    context.update_cursor(json.dumps(current, sort_keys=True))


def _folder_day(folder: str) -> str:
    return folder.rsplit("/", 1)[-1][:10]
