"""The daily schedule (which day a tick requests) and the log-stream sensor (new or changed folders)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import dagster as dg

from calo_assets.definitions import defs
from calo_assets.defs.automation import changed_days, new_log_streams
from calo_assets.defs.resources import LogSource
from calo_assets_tests.logtext import StreamText


def test_a_tick_requests_the_previous_complete_day():
    schedule = defs.resolve_schedule_def("daily_refresh_schedule")
    assert schedule.cron_schedule == "0 1 * * *" and schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 3, 9, 1, 0, tzinfo=UTC)
    )
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2024-03-08"
    assert defs.resolve_job_def("daily_refresh").partitions_def is not None


def evaluate(log_dir, cursor=None):
    with dg.build_sensor_context(
        cursor=cursor,
        resources={"log_source": LogSource(location=str(log_dir))},
        definitions=defs,
    ) as context:
        result = new_log_streams.evaluate_tick(context)
    return (
        [request.partition_key for request in result.run_requests],
        result.cursor,
        [r.run_key for r in result.run_requests],
    )


def test_new_folder_requests_its_day_and_the_next_then_nothing_until_it_changes(tmp_path):
    path = StreamText(day="2024-03-04").start("r1").end("r1").write(tmp_path)
    days, cursor, keys = evaluate(tmp_path)
    assert days == ["2024-03-04", "2024-03-05"]
    assert evaluate(tmp_path, cursor)[0] == []  # unchanged: no request
    again = evaluate(
        tmp_path
    )  # same files, fresh cursor: the same run keys, so Dagster runs nothing twice
    assert again[2] == keys
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed, _, new_keys = evaluate(tmp_path, cursor)
    assert changed == ["2024-03-04", "2024-03-05"] and set(new_keys).isdisjoint(keys)


def test_changed_days_ignores_days_past_the_last_partition():
    assert changed_days({}, {"e/2024-03-04-[$LATEST]ab": "x"}, "2024-03-04") == ["2024-03-04"]
    assert (
        changed_days({"e/2024-03-04-[$LATEST]ab": "x"}, {"e/2024-03-04-[$LATEST]ab": "x"}, None)
        == []
    )
