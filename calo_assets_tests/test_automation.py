"""The daily schedule (which day a tick requests) and the log-stream sensor (new or changed files)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.definitions import defs
from calo_assets.defs.automation import (
    RANGE_END,
    RANGE_START,
    changed_folder_days,
    day_digests,
    make_cursor,
    new_log_streams,
)
from calo_assets.defs.partitions import build_daily_partitions, last_partition_day
from calo_assets.defs.resources import LogSource
from calo_assets_tests.logtext import StreamText

SAMPLE_DAYS = [f"2024-03-0{day}" for day in range(1, 9)]  # folders 03-01..03-07, and the day after


def test_a_tick_requests_the_previous_complete_day():
    schedule = defs.resolve_schedule_def("daily_refresh_schedule")
    assert schedule.cron_schedule == "0 1 * * *" and schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 3, 9, 1, 0, tzinfo=UTC)
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-03-08"
    assert defs.resolve_job_def("daily_refresh").partitions_def is not None
    assert "Partition set: daily partitions (UTC days) from 2023-12-01" in schedule.description


def test_partitions_end_where_the_logs_end(tmp_path):
    today = date(2026, 1, 10)
    # The shipped sample: folders up to 2024-03-07, so days up to 2024-03-08.
    assert last_partition_day("", SAMPLE_LOG_DIR, today) == "2024-03-08"
    assert last_partition_day("auto", SAMPLE_LOG_DIR, today) == "2024-03-08"
    # A live export (folders up to today): the last complete day, moving on every day.
    StreamText(day="2026-01-10").start("r1").end("r1").write(tmp_path)
    assert last_partition_day("", tmp_path, today) is None
    assert last_partition_day("", tmp_path / "nowhere", today) is None
    assert last_partition_day("yesterday", SAMPLE_LOG_DIR, today) is None
    assert last_partition_day("2024-04-15", SAMPLE_LOG_DIR, today) == "2024-04-15"
    with pytest.raises(ValueError, match="CALO_LAST_DAY"):
        last_partition_day("2024-13-01", SAMPLE_LOG_DIR, today)
    keys = build_daily_partitions("2023-12-01", "2024-03-08").get_partition_keys()
    assert (keys[0], keys[-1], len(keys)) == ("2023-12-01", "2024-03-08", 99)
    rolling = build_daily_partitions("2023-12-01", None).get_partition_keys()
    assert rolling[-1] == (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def evaluate(log_dir, cursor=None, instance=None):
    with dg.build_sensor_context(
        cursor=cursor,
        resources={"log_source": LogSource(location=str(log_dir))},
        definitions=defs,
        instance=instance,
        sensor_name="new_log_streams",
    ) as context:
        result = new_log_streams.evaluate_tick(context)
    ranges = [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in result.run_requests]
    return ranges, result.cursor, [r.run_key for r in result.run_requests], result.skip_message


@pytest.fixture
def export(tmp_path):
    """A copy of the shipped sample (with its .DS_Store junk), which a test may change."""
    return shutil.copytree(SAMPLE_LOG_DIR, tmp_path / "logs")


def test_a_first_tick_requests_the_missing_days_as_one_range_run(export):
    with dg.instance_for_test() as instance:
        ranges, cursor, _, _ = evaluate(export, instance=instance)
        assert ranges == [(SAMPLE_DAYS[0], SAMPLE_DAYS[-1])]  # one run: history and report once
        assert len(cursor) < 600 and ".DS_Store" not in cursor
        assert evaluate(export, cursor, instance)[0] == []  # nothing changed: no run
        # Days this instance already holds are not missing: a first tick leaves them alone.
        for day in SAMPLE_DAYS[:5]:
            instance.report_runless_asset_event(
                dg.AssetMaterialization("log_events", partition=day)
            )
        assert evaluate(export, instance=instance)[0] == [(SAMPLE_DAYS[5], SAMPLE_DAYS[-1])]


def test_a_changed_stream_file_requests_its_day_and_the_next(export):
    ranges, cursor, keys, _ = evaluate(export)
    again = evaluate(
        export
    )  # same files, fresh cursor: same run key, so Dagster runs nothing twice
    assert again[2] == keys
    junk = next(export.rglob(".DS_Store"))
    junk.write_text("changed")  # junk never starts a run
    assert evaluate(export, cursor)[0] == []
    stream = next(export.rglob("2024-03-04-*/000000.gz"))
    stat = stream.stat()
    os.utime(stream, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    ranges, _, new_keys, _ = evaluate(export, cursor)
    assert ranges == [("2024-03-04", "2024-03-05")] and set(new_keys).isdisjoint(keys)
    new = StreamText(day="2024-03-08").start("r1").end("r1")
    new.write(export / "a-new-export")  # a new export folder: its day and the next
    assert evaluate(export, cursor)[0] == [("2024-03-04", "2024-03-09")]


def test_one_run_at_a_time(export):
    with dg.instance_for_test() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="daily_refresh",
                run_id="a1b2c3d4-0000-0000-0000-000000000000",
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/sensor_name": "new_log_streams"},
            )
        )
        ranges, cursor, _, skipped = evaluate(export, instance=instance)
        assert ranges == [] and cursor is None and "still in progress" in skipped


def test_days_past_the_last_partition_are_reported_not_requested(tmp_path):
    StreamText(day="2024-03-04").start("r1").end("r1").write(tmp_path)
    StreamText(day=(date.today() + timedelta(days=3)).isoformat()).start("r2").end("r2").write(
        tmp_path
    )
    ranges, _, _, _ = evaluate(tmp_path)
    assert ranges == [("2024-03-04", "2024-03-05")]
    only_future = tmp_path / "future"
    StreamText(day=(date.today() + timedelta(days=3)).isoformat()).start("r").end("r").write(
        only_future
    )
    ranges, _, _, skipped = evaluate(only_future)
    assert ranges == [] and "not partitions" in skipped


def test_the_cursor_stays_small_as_history_grows():
    start = date(2022, 1, 1)
    days = {(start + timedelta(days=n)).isoformat(): f"{n:012x}" for n in range(3 * 365)}
    cursor = make_cursor(days)
    stored = json.loads(cursor)
    # the last day is 2024-12-30: days of November and December 2024, months before that
    assert len(stored["months"]) == 34 and len(stored["days"]) == 30 + 30
    # A digest per day for two months, then 25 bytes a month: not a line per stream file.
    decade = {(start + timedelta(days=n)).isoformat(): "x" for n in range(3653)}
    assert len(cursor) < 3_000 and len(make_cursor(decade)) < 5_000
    assert changed_folder_days(cursor, days) == set()
    # A change in the last two months is found to the day; an older one to its month.
    recent = {**days, "2024-11-20": "changed"}
    assert changed_folder_days(cursor, recent) == {"2024-11-20"}
    older = {**days, "2023-02-14": "changed"}
    assert changed_folder_days(cursor, older) == {f"2023-02-{d:02d}" for d in range(1, 29)}
    # When the newest day moves into a new month, the month that rolls up compares as days.
    grown = {**days, "2025-01-01": "new"}
    assert changed_folder_days(cursor, grown) == {"2025-01-01"}
    assert changed_folder_days(None, {"2024-01-01": "x"}) == {"2024-01-01"}


def test_day_digests_ignore_junk_and_name_every_export(export):
    digests = day_digests(export)
    assert sorted(digests) == SAMPLE_DAYS[:-1]
    for junk in export.rglob(".DS_Store"):
        junk.unlink()
    assert day_digests(export) == digests
