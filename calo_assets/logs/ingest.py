"""Turn stream files into the rows of ``log_events``, ``quarantine`` and ``ingest_manifest`` per day.

A record belongs to the UTC day of its invocation's ``START`` line (records logged before ``START``
during a cold start, such as ``INIT_START`` and init errors, belong to the invocation that follows;
records without a request id inside an invocation, such as metric and XRAY lines, to that invocation).
A record outside any invocation keeps the day of its own timestamp.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from calo_assets.logs.events import APP_KINDS, RecordError, classify
from calo_assets.logs.export import Discovery, StreamPart
from calo_assets.logs.inspect_literal import UNDEFINED
from calo_assets.logs.reader import (
    DEFAULT_MAX_BYTES,
    Problem,
    Record,
    excerpt,
    read_text,
    split_records,
)
from calo_assets.privacy import mask_text

QUARANTINED = "quarantined"
_CUT_OFF = ("truncated gzip", "corrupt gzip", "gzip inflates past", "file larger than")
_CANONICAL_TIMESTAMP_LENGTH = len("2024-01-01T00:00:00.000Z")
_BEFORE_START = frozenset({"init_start", "init_report"})
# Kinds whose text is machine-made (ids, figures, fixed messages): masking them would only cost time.
_WITHOUT_PERSONAL_DATA = frozenset(
    {"start", "end", "report", "init_start", "init_report", "xray", "sqs_message", "sync_published"}
)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How to read: personal-data masking, the per-file size limit, worker processes."""

    mask_personal_data: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    workers: int = 1


@dataclass(slots=True)
class DayRows:
    """The rows of one day: typed events, quarantined items and the per-file manifest."""

    events: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records_read(self) -> int:
        return sum(row["records_read"] for row in self.manifest)


@dataclass(slots=True)
class PartRows:
    """The rows read from one file, each already carrying its day."""

    part: StreamPart
    events: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    records_by_day: Counter[str]
    bytes_read: int


def read_days(
    discovery: Discovery, days: Iterable[str], options: IngestOptions
) -> dict[str, DayRows]:
    """Read every file that can hold records of ``days`` once and split the rows by day."""
    wanted = sorted(set(days))
    result = {day: DayRows() for day in wanted}
    parts = discovery.parts_for_days(wanted)
    for rows in _read_parts(parts, options):
        for row in rows.events:
            if row["day"] in result:
                result[row["day"]].events.append(row)
        for row in rows.quarantine:
            if row["day"] in result:
                result[row["day"]].quarantine.append(row)
        for day in wanted:
            records = rows.records_by_day.get(day, 0)
            if records or rows.part.folder_day == day:
                result[day].manifest.append(_manifest_row(day, rows, records))
    for path, reason in discovery.refused:
        folder_day = path.parent.name[:10]
        if folder_day in result:
            result[folder_day].quarantine.append(
                _quarantine_row(
                    folder_day, None, path.parent.name, path.name, None, reason, "", "file"
                )
            )
    return result


def _read_parts(parts: list[StreamPart], options: IngestOptions) -> Iterator[PartRows]:
    if options.workers <= 1 or len(parts) < 2 * options.workers:
        for part in parts:
            yield read_part(part, options)
        return
    chunk = max(1, len(parts) // (options.workers * 8))
    with ProcessPoolExecutor(max_workers=options.workers) as pool:
        yield from pool.map(read_part, parts, [options] * len(parts), chunksize=chunk)


def default_workers() -> int:
    """Worker processes for reading: one per core."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


class IngestError(RuntimeError):
    """An unexpected failure while reading one file; the message names the file."""


def read_part(part: StreamPart, options: IngestOptions) -> PartRows:
    """Read one file: classify its records, attach each to its invocation and day.

    Bad input never raises (it is quarantined); anything else that fails is re-raised as an
    ``IngestError`` naming the file, so a failed run says where it stopped.
    """
    try:
        return _read_part(part, options)
    except Exception as exc:
        raise IngestError(
            f"reading {part.path} (stream day {part.folder_day}) failed: {exc!r}"
        ) from exc


def _read_part(part: StreamPart, options: IngestOptions) -> PartRows:
    text, problems = read_text(part.path, options.max_bytes)
    records, split_problems = split_records(text)
    bad_utf8 = any(problem.reason.startswith("invalid UTF-8") for problem in problems)
    # Where the text stops mid-line at damage (truncation, corruption, size limit), its last record is
    # cut off: quarantined, not typed. Damage after complete data (a bad checksum) cuts nothing.
    damage = next(
        (problem.reason for problem in problems if problem.reason.startswith(_CUT_OFF)), None
    )
    cut_off = damage if damage and not text.endswith("\n") else None
    last_line = records[-1].line if records and cut_off else None
    mask_all = mask_text if options.mask_personal_data else _identity
    stream, file = part.stream, part.path.name
    # An export writes a stream in chunks that are not always in time order: restore the order.
    records.sort(key=_record_order)
    rows: list[dict[str, Any]] = []
    for record in records:
        row = {
            "day": None,
            "occurred_at": record.occurred_at,
            "stream": stream,
            "file": file,
            "line": record.line,
            "request_id": None,
            "level": None,
            "kind": QUARANTINED,
            "message": None,
            "payload": None,
            "trailing_text": None,
        }
        if record.line == last_line:
            row["message"] = (
                f"last record cut off where the file is damaged ({cut_off.split(':')[0]})"
            )
            row["payload"] = mask_all(excerpt(record.body))
        elif bad_utf8 and "\ufffd" in record.body:
            row["message"] = "invalid UTF-8 in record: bytes replaced by U+FFFD"
            row["payload"] = mask_all(excerpt(record.body))
        else:
            try:
                event = classify(record.body)
            except RecordError as exc:
                row["message"] = str(exc)
                row["payload"] = mask_all(excerpt(record.body))
            else:
                mask = _identity if event.kind in _WITHOUT_PERSONAL_DATA else mask_all
                row["kind"] = event.kind
                row["level"] = event.level
                row["request_id"] = event.request_id
                row["message"] = mask(event.message)
                row["payload"] = None if event.payload is None else mask(to_json(event.payload))
                row["trailing_text"] = mask(event.trailing) if event.trailing else None
        rows.append(row)
    _assign_invocations(rows)
    records_by_day = Counter(row["day"] for row in rows)
    events = [row for row in rows if row["kind"] != QUARANTINED]
    quarantine = [
        _quarantine_row(
            row["day"],
            row["occurred_at"],
            stream,
            file,
            row["line"],
            row["message"],
            row["payload"],
            "record",
        )
        for row in rows
        if row["kind"] == QUARANTINED
    ]
    for problem in split_problems:
        day = problem.occurred_at[:10] if problem.occurred_at else part.folder_day
        records_by_day[day] += (
            1  # text that could not be assembled into a record is one lost record
        )
        quarantine.append(_from_problem(problem, day, stream, file, "record", mask_all))
    for problem in problems:
        quarantine.append(_from_problem(problem, part.folder_day, stream, file, "file", mask_all))
    return PartRows(part, events, quarantine, records_by_day, len(text))


def _assign_invocations(rows: list[dict[str, Any]]) -> None:
    """Give each row its invocation's request id (where the line has none) and its day."""
    start_day: dict[str, str] = {}
    current: str | None = None
    pending: list[dict[str, Any]] = []
    for row in rows:
        kind = row["kind"]
        if kind == "start" and row["request_id"]:
            current = row["request_id"]
            start_day[current] = row["occurred_at"][:10]
            for waiting in pending:
                waiting["request_id"] = waiting["request_id"] or current
                waiting["day"] = start_day[current]
            pending.clear()
            row["day"] = start_day[current]
        elif row["request_id"]:
            row["day"] = start_day.get(row["request_id"], row["occurred_at"][:10])
        elif kind in _BEFORE_START or kind in APP_KINDS:
            # init records, and application lines logged outside a request (request id "undefined")
            pending.append(row)
        elif current is not None:
            row["request_id"] = current
            row["day"] = start_day[current]
        else:
            pending.append(row)
    for waiting in pending:
        waiting["day"] = waiting["occurred_at"][:10]


def _record_order(record: Record) -> tuple[str, int]:
    timestamp = record.occurred_at
    if (
        len(timestamp) != _CANONICAL_TIMESTAMP_LENGTH
    ):  # e.g. no or more fraction digits: sort as instants
        seconds, _, fraction = timestamp[:-1].partition(".")
        timestamp = f"{seconds}.{fraction.ljust(3, '0')}Z"
    return timestamp, record.line


def to_json(value: Any) -> str:
    """Compact JSON of a parsed payload; exact decimals are written as strings, ``undefined`` as null."""
    return _ENCODER.encode(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if value is UNDEFINED:
        return None
    return str(value)


_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _identity(text: str) -> str:
    return text


def _from_problem(
    problem: Problem, day: str, stream: str, file: str, unit: str, mask
) -> dict[str, Any]:
    return _quarantine_row(
        day,
        problem.occurred_at,
        stream,
        file,
        problem.line,
        problem.reason,
        mask(problem.excerpt),
        unit,
    )


def _quarantine_row(
    day: str,
    occurred_at: str | None,
    stream: str,
    file: str,
    line: int | None,
    reason: str,
    excerpt_text: str,
    unit: str,
) -> dict[str, Any]:
    return {
        "day": day,
        "occurred_at": occurred_at,
        "stream": stream,
        "file": file,
        "line": line,
        "unit": unit,
        "reason": reason,
        "excerpt": excerpt_text,
    }


def _manifest_row(day: str, rows: PartRows, records: int) -> dict[str, Any]:
    return {
        "day": day,
        "stream": rows.part.stream,
        "file": rows.part.path.name,
        "records_read": records,
        "bytes_read": rows.bytes_read if rows.part.folder_day == day else 0,
    }
