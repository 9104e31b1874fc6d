"""The daily job, its schedule, and the sensor that reacts to new or changed log streams.

One job, ``daily_refresh``, materializes log days for every daily asset and then refreshes the
reconciliation tables and the report, so a user sees one daily result. The schedule runs it for the
previous complete UTC day; the sensor runs it, as one range run, for the days whose stream files
appeared or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from calo_assets.defs.partitions import daily_partitions, describe_partitions
from calo_assets.defs.resources import LogSource
from calo_assets.logs.export import (
    PART_FILE,
    STREAM_FOLDER,
    days_reading_folder,
    folder_days_read_by,
)

DAILY_JOB = "daily_refresh"
SCHEDULE_HOUR_UTC = 1  # an hour after midnight: late log deliveries of the day before have landed
CURSOR_VERSION = 2
DIGEST_CHARS = 12  # 48 bits: enough to notice a change, short enough to keep the cursor small
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
_ACTIVE_RUNS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

daily_refresh = dg.define_asset_job(
    DAILY_JOB,
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Log days through every daily asset, then the reconciliation tables and the report "
    f"(one run; a range of days is one run too). Partitions: {describe_partitions()}.",
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
    description=f"Every day at 01:00 UTC, the previous complete log day of job {DAILY_JOB}. "
    f"Partition set: {describe_partitions()} (Dagster 1.13 shows 'None' above for schedules built "
    "from a partitioned job). Set CALO_SCHEDULE_RUNNING=true to start it running.",
)


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:DIGEST_CHARS]


def day_digests(log_dir: Path) -> dict[str, str]:
    """Per stream-folder day under ``log_dir``: a digest of its stream files (paths, sizes, times).

    Only stream part files count (``000000``, ``000000.gz``, ...): ``.DS_Store`` and other junk never
    start a run, and a day without stream files has no digest.
    """
    lines: dict[str, list[str]] = {}
    if not log_dir.is_dir():
        return {}
    for folder, subfolders, files in os.walk(log_dir, followlinks=False):
        subfolders.sort()
        name = Path(folder).name
        match = STREAM_FOLDER.match(name)
        if match is None:
            continue
        relative = Path(folder).relative_to(log_dir).as_posix()
        for file in sorted(files):
            if PART_FILE.match(file) is None:
                continue
            try:
                stat = (Path(folder) / file).stat()
            except OSError:
                continue
            lines.setdefault(match.group(1), []).append(
                f"{relative}/{file}:{stat.st_size}:{stat.st_mtime_ns}"
            )
    return {day: _digest(sorted(entries)) for day, entries in sorted(lines.items())}


def _month_digest(days: Mapping[str, str]) -> str:
    return _digest([f"{day}:{digest}" for day, digest in sorted(days.items())])


def _by_month(days: Mapping[str, str]) -> dict[str, dict[str, str]]:
    months: dict[str, dict[str, str]] = {}
    for day, digest in days.items():
        months.setdefault(day[:7], {})[day] = digest
    return months


def make_cursor(days: Mapping[str, str]) -> str:
    """The cursor: a digest per day for the newest folder's month and the month before it, and one
    per month before that, so it grows by a few bytes a month, not with every folder."""
    if not days:
        return json.dumps({"v": CURSOR_VERSION, "months": {}, "days": {}})
    newest = max(days)
    year, month = int(newest[:4]), int(newest[5:7])
    cutoff = f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"
    months = _by_month(days)
    return json.dumps(
        {
            "v": CURSOR_VERSION,
            "months": {m: _month_digest(d) for m, d in sorted(months.items()) if m < cutoff},
            "days": {day: digest for day, digest in sorted(days.items()) if day[:7] >= cutoff},
        },
        separators=(",", ":"),
    )


def changed_folder_days(cursor: str | None, current: Mapping[str, str]) -> set[str]:
    """Folder days whose stream files differ from the cursor's (new, changed or removed).

    A month the cursor only holds as one digest is compared as a whole: when it differs, every
    current day of that month counts as changed.
    """
    previous = json.loads(cursor) if cursor else {}
    if previous.get("v") != CURSOR_VERSION:  # no cursor, or one from an older version
        return set(current)
    previous_days: dict[str, str] = previous["days"]
    previous_months: dict[str, str] = previous["months"]
    current_months = _by_month(current)
    earlier_months = _by_month(previous_days)
    changed: set[str] = set()
    for month in {*previous_months, *earlier_months, *current_months}:
        now = current_months.get(month, {})
        before_days = earlier_months.get(month, {})
        before = previous_months.get(month) or (_month_digest(before_days) if before_days else None)
        if before == (_month_digest(now) if now else None):
            continue
        if month in previous_months:
            changed.update(now)
        else:
            changed.update(
                day for day in {*now, *before_days} if now.get(day) != before_days.get(day)
            )
    return changed


def days_to_run(folder_days: set[str]) -> list[str]:
    """The log days that read the given folder days (each folder's day and the day after)."""
    return sorted({day for folder in folder_days for day in days_reading_folder(folder)})


def _instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    """The sensor's instance (``None`` only under a test that gives none)."""
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:
        return None


@dg.sensor(
    job=daily_refresh,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING
    if _switched_on("CALO_SENSOR_RUNNING")
    else dg.DefaultSensorStatus.STOPPED,
    description="Runs daily_refresh, as one range run, for the days whose stream files under "
    "CALO_LOG_DIR are new or changed (on its first tick: the days not materialized yet).",
)
def new_log_streams(context: dg.SensorEvaluationContext, log_source: LogSource):
    """Compare the stream files with the cursor; request the affected days as one range run."""
    instance = _instance(context)
    if instance is not None:
        active = instance.get_runs(
            filters=dg.RunsFilter(
                tags={"dagster/sensor_name": context.sensor_name}, statuses=_ACTIVE_RUNS
            ),
            limit=1,
        )
        if active:
            # One run at a time: the next tick sees what changed meanwhile (the cursor stays).
            return dg.SkipReason(f"run {active[0].run_id} of this sensor is still in progress")
    current = day_digests(log_source.path)
    wanted = days_to_run(changed_folder_days(context.cursor, current))
    if not context.cursor and instance is not None:
        # First tick on this deployment: the days not materialized yet (a day already in the
        # instance is re-run when its files change, not now).
        done = instance.get_materialized_partitions(dg.AssetKey("log_events"))
        wanted = [day for day in wanted if day not in done]
    keys = daily_partitions.get_partition_keys()
    known = set(keys)
    outside = [day for day in wanted if day not in known]
    wanted = [day for day in wanted if day in known]
    cursor = make_cursor(current)
    note = (
        f"{len(outside)} day(s) with logs are not partitions ({outside[0]} to {outside[-1]}): "
        "reload the code location, or set CALO_FIRST_DAY / CALO_LAST_DAY"
        if outside
        else ""
    )
    if note:
        context.log.warning(note)
    if not wanted:
        return dg.SensorResult(skip_reason=note or "no new or changed stream files", cursor=cursor)
    first, last = wanted[0], wanted[-1]
    # The run key names the files the range reads: the same files never start a second run.
    read = {folder for day in wanted for folder in folder_days_read_by(day)}
    digest = _digest([f"{day}:{current[day]}" for day in sorted(read) if day in current])
    request = dg.RunRequest(
        run_key=f"{first}..{last}:{digest}",
        tags={RANGE_START: first, RANGE_END: last, "calo/changed_days": str(len(wanted))},
    )
    return dg.SensorResult(run_requests=[request], cursor=cursor)
