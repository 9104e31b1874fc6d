"""The daily run's own CloudWatch export: a slice of the log group per day, exported once, reused after.

The export root is ``CALO_LOG_DIR`` (an ``s3://bucket/prefix``); CloudWatch Logs writes each slice
under its own folder, which the reader treats as time slices of the same streams
(``logs/export.py``, "Daily slices")::

    <root>/day=YYYY-MM-DD/calo-export.json                               the marker (below)
    <root>/day=YYYY-MM-DD/<attempt>/<task id>/<stream>/000000.gz          what CloudWatch writes
    <root>/day=YYYY-MM-DD/<attempt>/aws-logs-write-test                   CloudWatch's probe (junk)

**Which events.** The slice of day D holds the events of ``[D + MARGIN, D + 1 + MARGIN)``; the slices do
not overlap, so their union is the log group, each event once. ``MARGIN`` is Lambda's longest
invocation (15 minutes): an invocation started before midnight has ended before its day's slice ends.
The run of day D reads the stream folders of D - 1 and D (``export.LOOKBACK_DAYS``), which hold
records of D from D 00:00 (init lines of a cold start just before midnight included: they are in the
slice of D - 1) to D + 1 00:15: the run ensures the slices of D - LOOKBACK_DAYS .. D
(``slices_for_days``).

**Once.** ``calo-export.json`` says which task exported the slice, for which log group, stream prefix
and range, its status and whether it was *settled*. CloudWatch can take up to 12 hours to make log
events exportable, so a slice exported less than ``settle_hours`` after its end may miss late events:
it is exported anyway (the daily run needs it) and marked provisional; the first run that needs it
after the settle time exports it again into a new attempt and removes the superseded attempt's objects
(best effort; if that is refused, the reader still reads each stream once: of two copies of a part
within a slice the one with more records wins). A settled slice is reused by every later run. A task
still running when a run gave up (timeout, crash) is waited for again by the next run, not exported
twice.

**One at a time.** CloudWatch runs one export task per account at a time: when another one is active,
``CreateExportTask`` is retried until the timeout. Waiting is bounded (``timeout_seconds``) and
reported every ``poll_seconds`` through ``progress``; a task that ends FAILED or CANCELLED, or does not
end in time, raises ``ExportError`` with what happened and what a re-run will do.

Permissions (the run's credentials, from the standard AWS configuration): ``logs:CreateExportTask``
and ``logs:DescribeExportTasks`` on the log group; ``s3:GetObject``, ``s3:PutObject``,
``s3:ListBucket`` (and ``s3:DeleteObject`` to remove superseded attempts) on the root. The bucket's
policy must let the ``logs.<region>.amazonaws.com`` service principal call ``s3:GetBucketAcl`` on the
bucket and ``s3:PutObject`` under the root, and it must be in the log group's region.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from calo_assets.logs.export import folder_days_read_by
from calo_assets.logs.source import S3Prefix, aws_client, describe_s3_error

MARGIN = timedelta(minutes=15)  # Lambda's longest invocation
MARKER = "calo-export.json"  # (``export.EXPORT_FILES``: junk to the reader)
SETTLE_HOURS = 12.0  # CloudWatch: "log data can take up to 12 hours to become available for export"
DONE, FAILED = "COMPLETED", ("FAILED", "CANCELLED")
_ACTIVE = "PENDING"  # the marker's status while a task is known to be running

Say = Callable[[str], None]


class ExportError(RuntimeError):
    """A slice could not be exported; the message says what happened and what a re-run does."""


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how long to wait for it."""

    log_group: str
    root: S3Prefix
    stream_prefix: str = ""
    timeout_seconds: float = 3600.0
    poll_seconds: float = 15.0
    settle_hours: float = SETTLE_HOURS


@dataclass
class SliceExport:
    """One slice: the task that exported it and what happened in this run."""

    day: str
    start_ms: int
    end_ms: int
    task_id: str = ""
    attempt: str = ""
    status: str = ""
    settled: bool = False
    reused: bool = False
    exported_at: str = ""
    seconds_waited: float = 0.0
    objects: int = 0
    bytes: int = 0
    superseded: str = ""  # an earlier attempt this one replaces (removed once this one completes)
    notes: list[str] = field(default_factory=list)

    @property
    def start(self) -> str:
        return _iso(self.start_ms)

    @property
    def end(self) -> str:
        return _iso(self.end_ms)


def slice_range(day: str) -> tuple[int, int]:
    """The slice of ``day``: ``[day + MARGIN, day + 1 + MARGIN)`` in epoch milliseconds."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC) + MARGIN
    return _ms(start), _ms(start + timedelta(days=1))


def slices_for_days(days: Iterable[str]) -> list[str]:
    """The slices the runs of ``days`` read: each day's and the look-back days before it."""
    return sorted({folder for day in days for folder in folder_days_read_by(day)})


def ensure_slices(
    config: ExportConfig,
    days: Iterable[str],
    progress: Say = print,
    warn: Say = print,
    *,
    logs: Any = None,
    s3: Any = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[SliceExport]:
    """Make sure the slices the runs of ``days`` read are exported (one at a time), reusing what is."""
    exporter = _Exporter(config, progress, warn, logs, s3, now, sleep, clock)
    return [exporter.ensure(day) for day in slices_for_days(days)]


class _Exporter:
    def __init__(self, config, progress, warn, logs, s3, now, sleep, clock) -> None:
        self.config, self.progress, self.warn = config, progress, warn
        self.logs = logs if logs is not None else aws_client("logs")  # False: not needed
        self.s3 = s3 if s3 is not None else aws_client("s3")
        self.now, self.sleep, self.clock = now, sleep, clock

    # -- one slice --------------------------------------------------------------------------------

    def ensure(self, day: str) -> SliceExport:
        start_ms, end_ms = slice_range(day)
        wanted = {
            "log_group": self.config.log_group,
            "stream_prefix": self.config.stream_prefix,
            "start_ms": start_ms,
            "end_ms": end_ms,
        }
        marker = self._read_marker(day)
        same = marker is not None and all(marker.get(k) == v for k, v in wanted.items())
        result = SliceExport(day, start_ms, end_ms)
        if same and marker["status"] == DONE:
            settled_at = _from_ms(end_ms) + timedelta(hours=self.config.settle_hours)
            if marker.get("settled") or self.now() < settled_at:
                return self._reused(result, marker, settled_at)
            result.notes.append("the provisional export is replaced by a settled one")
            result.superseded = marker.get("attempt", "")
            return self._export(result, wanted)
        if same and marker["status"] == _ACTIVE and marker.get("task_id"):
            status = self._status(marker["task_id"])
            if status is not None and status[0] not in FAILED:
                self.progress(
                    f"slice {day}: export task {marker['task_id']} of an earlier run is "
                    f"{status[0]}: waiting for it instead of exporting again"
                )
                _fill(result, marker)
                return self._wait(result, wanted)
        if marker is not None and not same:
            result.notes.append("the slice was exported with other settings: exported again")
        if marker is not None:
            result.superseded = marker.get("attempt", "")
        return self._export(result, wanted)

    def _reused(self, result: SliceExport, marker: dict, settled_at: datetime) -> SliceExport:
        _fill(result, marker)
        result.reused = True
        if result.settled:
            self.progress(
                f"slice {result.day} ({result.start} to {result.end}): reusing export task "
                f"{result.task_id} of {result.exported_at}"
            )
        else:
            self.warn(
                f"slice {result.day}: reusing the provisional export of {result.exported_at}; "
                f"it is exported again by the first run after {settled_at:%Y-%m-%d %H:%M} UTC"
            )
        return result

    def _export(self, result: SliceExport, wanted: dict) -> SliceExport:
        exported_at = self.now()
        result.attempt = f"export-{exported_at:%Y%m%dT%H%M%S}Z"
        result.exported_at = exported_at.isoformat(timespec="seconds")
        destination = self._slice(result.day).child(result.attempt)
        began = self.clock()
        while True:
            try:
                response = self.logs.create_export_task(
                    taskName=f"calo-{result.day}-{result.attempt}",
                    logGroupName=self.config.log_group,
                    fromTime=result.start_ms,
                    to=result.end_ms - 1,  # CloudWatch exports events up to ``to`` inclusive
                    destination=destination.bucket,
                    destinationPrefix=destination.prefix.rstrip("/"),
                    **(
                        {"logStreamNamePrefix": self.config.stream_prefix}
                        if self.config.stream_prefix
                        else {}
                    ),
                )
                break
            except Exception as exc:
                code = _code(exc)
                if code == "LimitExceededException" and not self._late(began):
                    self.progress(
                        f"slice {result.day}: another export task is running in this account "
                        "(CloudWatch runs one at a time): waiting for it to end"
                    )
                    self.sleep(self.config.poll_seconds)
                    continue
                raise ExportError(self._create_failed(result, exc)) from exc
        result.task_id = response["taskId"]
        result.status = _ACTIVE
        self._write_marker(result, wanted)  # a run that stops now is resumed by the next one
        self.progress(
            f"slice {result.day}: export task {result.task_id} created for "
            f"{self.config.log_group} from {result.start} to {result.end} into {destination}"
        )
        return self._wait(result, wanted, began)

    def _wait(self, result: SliceExport, wanted: dict, began: float | None = None) -> SliceExport:
        began = self.clock() if began is None else began
        last_said = began
        while True:
            status = self._status(result.task_id)
            code, message = status if status is not None else ("UNKNOWN", "task not found")
            result.seconds_waited = round(self.clock() - began, 1)
            if code == DONE:
                break
            if code in FAILED or status is None:
                result.status = "FAILED"
                self._write_marker(result, wanted)
                raise ExportError(
                    f"CloudWatch export task {result.task_id} for the slice {result.day} "
                    f"({result.start} to {result.end}) ended {code}: {message or 'no message'}. "
                    "Nothing of it is read; a re-run exports the slice again"
                )
            if self._late(began):
                raise ExportError(
                    f"CloudWatch export task {result.task_id} for the slice {result.day} did not "
                    f"finish within {self.config.timeout_seconds:g} s (status {code}). It goes on in "
                    "CloudWatch; a re-run waits for it instead of exporting again (exports can take "
                    "long when the account runs another one or the range is large)"
                )
            if (
                self.clock() - last_said >= max(30.0, self.config.poll_seconds)
                or last_said == began
            ):
                self.progress(
                    f"slice {result.day}: export task {result.task_id} {code} "
                    f"({result.seconds_waited:.0f} s of at most {self.config.timeout_seconds:g} s)"
                )
                last_said = self.clock()
            self.sleep(self.config.poll_seconds)
        settled_at = _from_ms(result.end_ms) + timedelta(hours=self.config.settle_hours)
        result.status = DONE
        result.settled = datetime.fromisoformat(result.exported_at) >= settled_at
        result.objects, result.bytes = self._count(result)
        self._write_marker(result, wanted)
        self.progress(
            f"slice {result.day}: export task {result.task_id} completed in "
            f"{result.seconds_waited:.0f} s: {result.objects} objects, {result.bytes:,} bytes"
        )
        if not result.settled:
            self.warn(
                f"slice {result.day} was exported less than {self.config.settle_hours:g} h after "
                f"its end: CloudWatch may not have made every event exportable yet. It is "
                f"provisional: the first run after {settled_at:%Y-%m-%d %H:%M} UTC that reads it "
                "exports it again"
            )
        if result.superseded and result.superseded != result.attempt:
            self._remove_attempt(result.day, result.superseded)
        return result

    # -- S3 and CloudWatch ------------------------------------------------------------------------

    def _status(self, task_id: str) -> tuple[str, str] | None:
        try:
            tasks = self.logs.describe_export_tasks(taskId=task_id).get("exportTasks", [])
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise ExportError(
                f"DescribeExportTasks for task {task_id} failed: {_aws_message(exc)} (the run's "
                "credentials need logs:DescribeExportTasks)"
            ) from exc
        if not tasks:
            return None
        status = tasks[0].get("status") or {}
        return str(status.get("code", "UNKNOWN")).upper(), str(status.get("message", ""))

    def _slice(self, day: str) -> S3Prefix:
        return self.config.root.child(f"day={day}")

    def _read_marker(self, day: str) -> dict | None:
        key = self._slice(day).key(MARKER)
        try:
            body = self.s3.get_object(Bucket=self.config.root.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise ExportError(
                describe_s3_error(
                    exc, f"reading the export marker s3://{self.config.root.bucket}/{key}"
                )
            ) from exc
        try:
            marker = json.loads(body)
        except ValueError:
            return None  # unreadable: exported again, and rewritten
        return marker if isinstance(marker, dict) else None

    def _write_marker(self, result: SliceExport, wanted: dict) -> None:
        marker = {
            **wanted,
            "day": result.day,
            "start": result.start,
            "end": result.end,
            "task_id": result.task_id,
            "attempt": result.attempt,
            "status": result.status,
            "settled": result.settled,
            "exported_at": result.exported_at,
            "objects": result.objects,
            "bytes": result.bytes,
            "superseded": result.superseded,
        }
        key = self._slice(result.day).key(MARKER)
        try:
            self.s3.put_object(
                Bucket=self.config.root.bucket,
                Key=key,
                Body=json.dumps(marker, indent=2, sort_keys=True).encode(),
                ContentType="application/json",
            )
        except Exception as exc:
            raise ExportError(
                describe_s3_error(
                    exc, f"writing the export marker s3://{self.config.root.bucket}/{key}"
                )
                + " (the run needs s3:PutObject under CALO_LOG_DIR)"
            ) from exc

    def _count(self, result: SliceExport) -> tuple[int, int]:
        prefix = self._slice(result.day).child(result.attempt)
        objects = size = 0
        pages = self.s3.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=prefix.bucket, Prefix=prefix.prefix):
            for item in page.get("Contents", ()):
                objects += 1
                size += int(item.get("Size", 0))
        return objects, size

    def _remove_attempt(self, day: str, attempt: str) -> None:
        """Delete a superseded attempt's objects (best effort: the reader copes with both)."""
        prefix = self._slice(day).child(attempt)
        try:
            pages = self.s3.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=prefix.bucket, Prefix=prefix.prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
                if keys:
                    answer = self.s3.delete_objects(Bucket=prefix.bucket, Delete={"Objects": keys})
                    if answer.get("Errors"):
                        raise RuntimeError(answer["Errors"][0].get("Code", "error"))
        except Exception as exc:
            self.warn(
                f"slice {day}: the superseded export {prefix} was not removed ({_aws_message(exc)}; "
                "s3:DeleteObject is needed): each stream is still read once, the more complete "
                "copy winning, at the cost of reading both"
            )
            return
        self.progress(f"slice {day}: superseded export {prefix} removed")

    def _late(self, began: float) -> bool:
        return self.clock() - began >= self.config.timeout_seconds

    def _create_failed(self, result: SliceExport, exc: BaseException) -> str:
        code = _code(exc)
        hint = {
            "ResourceNotFoundException": f"the log group {self.config.log_group!r} does not exist "
            "in this account and region (CALO_CLOUDWATCH_LOG_GROUP, AWS_DEFAULT_REGION)",
            "InvalidParameterException": "CloudWatch refused the destination: the bucket must "
            "exist, be in the log group's region, and its policy must let the logs service "
            "principal call s3:GetBucketAcl and s3:PutObject",
            "AccessDeniedException": "the run's credentials need logs:CreateExportTask",
            "LimitExceededException": f"another export task kept running for "
            f"{self.config.timeout_seconds:g} s (CloudWatch runs one per account at a time)",
        }.get(code, "")
        return (
            f"CreateExportTask for the slice {result.day} ({result.start} to {result.end}) "
            f"failed: {_aws_message(exc)}" + (f": {hint}" if hint else "")
        )


def _fill(result: SliceExport, marker: dict) -> None:
    names = (
        "task_id",
        "attempt",
        "status",
        "settled",
        "exported_at",
        "objects",
        "bytes",
        "superseded",
    )
    for name in names:
        if name in marker:
            setattr(result, name, marker[name])


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _aws_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _iso(value: int) -> str:
    return _from_ms(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def provisional_slices(
    config: ExportConfig,
    days: Iterable[str],
    *,
    s3: Any = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[tuple[str, str]]:
    """Of the slices of ``days``, those exported provisionally whose settle time has passed:
    (day, task id) of each, for a run of the day to export them again and recompute it."""
    reader = _Exporter(config, print, print, logs=False, s3=s3, now=now, sleep=None, clock=None)
    found = []
    for day in sorted(set(days)):
        marker = reader._read_marker(day)
        if not marker or marker.get("status") != DONE or marker.get("settled"):
            continue
        if marker.get("log_group") != config.log_group:
            continue
        settled_at = _from_ms(int(marker["end_ms"])) + timedelta(hours=config.settle_hours)
        if now() >= settled_at:
            found.append((day, str(marker.get("task_id", ""))))
    return found


def summary(results: list[SliceExport]) -> list[dict[str, Any]]:
    """The slices as rows for metadata (no credentials in them)."""
    rows = []
    for result in results:
        row = asdict(result)
        row["notes"] = "; ".join(result.notes)
        rows.append(row)
    return rows
