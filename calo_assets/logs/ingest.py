"""Turn stream files into the rows of ``log_events``, ``quarantine`` and ``ingest_manifest`` per day.

A record belongs to the UTC day of its invocation's ``START`` line (records logged before ``START``
during a cold start, such as ``INIT_START`` and init errors, belong to the invocation that follows;
records without a request id inside an invocation, such as metric and XRAY lines, to that invocation).
A record outside any invocation keeps the day of its own timestamp.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from calo_assets.logs.events import APP_KINDS, RecordError, classify, classify_common
from calo_assets.logs.export import Discovery, StreamPart
from calo_assets.logs.reader import (
    DEFAULT_MAX_BYTES,
    Problem,
    Records,
    excerpt,
    read_text,
    split_records,
)
from calo_assets.privacy import mask_text
from calo_assets.tables.schema import SCHEMAS, from_columns, to_rows

QUARANTINED = "quarantined"
_CUT_OFF = ("truncated gzip", "corrupt gzip", "gzip inflates past", "file larger than")
_CANONICAL_TIMESTAMP_LENGTH = len("2024-01-01T00:00:00.000Z")
_BEFORE_START = frozenset({"init_start", "init_report"})
_APP_KINDS = frozenset(APP_KINDS)
# Files are read in batches of about this many compressed bytes (or files): per-file costs amortized.
_BATCH_BYTES = 1 << 19
_BATCH_FILES = 32
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
    """The rows of one day: typed events (Arrow, in the ``log_events`` schema), quarantine, manifest."""

    event_tables: list[pa.Table] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def event_table(self) -> pa.Table:
        if not self.event_tables:
            return SCHEMAS["log_events"].empty_table()
        return pa.concat_tables(self.event_tables)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events as dicts, times as ISO texts (what ``build_sync_tables`` reads)."""
        return to_rows(self.event_table)

    @property
    def records_read(self) -> int:
        return sum(row["records_read"] for row in self.manifest)


@dataclass(slots=True)
class PartRows:
    """The rows read from one file, as columns in the ``log_events`` layout, each row with its day."""

    part: StreamPart
    columns: dict[str, list[Any]]
    quarantine: list[dict[str, Any]]
    records_by_day: Counter[str]
    bytes_read: int


@dataclass(slots=True)
class BatchRows:
    """The rows of a batch of files: typed events as one Arrow table per day, quarantine, manifest."""

    events_by_day: dict[str, pa.Table]
    quarantine: list[dict[str, Any]]
    manifest: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DayPiece:
    """What a batch of files holds for one day: events, quarantined items, manifest rows."""

    day: str
    events: pa.Table | None
    quarantine: list[dict[str, Any]]
    manifest: list[dict[str, Any]]


def read_days(
    discovery: Discovery, days: Iterable[str], options: IngestOptions
) -> dict[str, DayRows]:
    """Read every file that can hold records of ``days`` once and collect the rows by day."""
    result = {day: DayRows() for day in sorted(set(days))}
    for piece in stream_days(discovery, days, options):
        rows = result[piece.day]
        if piece.events is not None:
            rows.event_tables.append(piece.events)
        rows.quarantine.extend(piece.quarantine)
        rows.manifest.extend(piece.manifest)
    return result


def stream_days(
    discovery: Discovery, days: Iterable[str], options: IngestOptions
) -> Iterator[DayPiece]:
    """Read every file that can hold records of ``days`` once; yield the rows batch by batch, by day.

    Batches of files are read in worker processes and come back in a fixed order (whatever the number
    of workers), so the rows do too.
    """
    wanted = sorted(set(days))
    batches = _batches(discovery.parts_for_days(wanted))
    for batch in _read_batches(batches, options, set(wanted)):
        for day in sorted(
            set(batch.events_by_day) | {row["day"] for row in batch.quarantine + batch.manifest}
        ):
            yield DayPiece(
                day,
                batch.events_by_day.get(day),
                [row for row in batch.quarantine if row["day"] == day],
                [row for row in batch.manifest if row["day"] == day],
            )
    for path, reason in discovery.refused:
        folder_day = path.parent.name[:10]
        if folder_day in wanted:
            row = _quarantine_row(
                folder_day, None, path.parent.name, path.name, None, reason, "", "file"
            )
            yield DayPiece(folder_day, None, [row], [])


def _batches(parts: list[StreamPart]) -> list[list[StreamPart]]:
    """Consecutive files in groups of about ``_BATCH_BYTES``: fewer, larger tables and tasks.

    The files of one stream (``000000.gz``, ``000001.gz``, ...) stay in one batch: an invocation can
    run from one into the next, and the sync tables are built a batch's rows (a row group) at a time.
    """
    batches: list[list[StreamPart]] = []
    size = 0
    for part in parts:
        part_size = part.path.stat().st_size if part.path.exists() else 0
        if not batches or (
            batches[-1][-1].stream != part.stream
            and (size + part_size > _BATCH_BYTES or len(batches[-1]) >= _BATCH_FILES)
        ):
            batches.append([])
            size = 0
        batches[-1].append(part)
        size += part_size
    return batches


def _read_batches(
    batches: list[list[StreamPart]], options: IngestOptions, wanted: set[str]
) -> Iterator[BatchRows]:
    if options.workers <= 1 or len(batches) < 2:
        for batch in batches:
            yield read_batch(batch, options, wanted)
        return
    workers = min(options.workers, len(batches))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # A bounded number of batches in flight: results wait for the parent in order, and a
        # parent slower than its workers must not pile up a day's rows in memory.
        pending: deque[Future[BatchRows]] = deque()
        for batch in batches:
            pending.append(pool.submit(read_batch, batch, options, wanted))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def read_batch(parts: list[StreamPart], options: IngestOptions, wanted: set[str]) -> BatchRows:
    """Read a batch of files; keep the rows of the ``wanted`` days."""
    columns: dict[str, dict[str, list[Any]]] = {}
    quarantine: list[dict[str, Any]] = []
    manifest: list[dict[str, Any]] = []
    for part in parts:
        # A file of an earlier day's folder (a stream that may cross midnight) is read for its
        # records of the wanted days only.
        rows = read_part(part, options, None if part.folder_day in wanted else wanted)
        days = rows.columns["day"]
        typed = [kind != QUARANTINED for kind in rows.columns["kind"]]
        for day in sorted(set(days) & wanted):
            keep = [index for index, row_day in enumerate(days) if row_day == day and typed[index]]
            if keep:
                into = columns.setdefault(day, {name: [] for name in rows.columns})
                for name, values in rows.columns.items():
                    into[name].extend(
                        values if len(keep) == len(days) else [values[index] for index in keep]
                    )
        quarantine.extend(row for row in rows.quarantine if row["day"] in wanted)
        for day in sorted(wanted & ({part.folder_day} | set(rows.records_by_day))):
            manifest.append(_manifest_row(day, rows, rows.records_by_day.get(day, 0)))
    events = {day: from_columns("log_events", day_columns) for day, day_columns in columns.items()}
    return BatchRows(events, quarantine, manifest)


def default_workers() -> int:
    """Worker processes for reading: one per core."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


class IngestError(RuntimeError):
    """An unexpected failure while reading one file; the message names the file."""


def read_part(
    part: StreamPart, options: IngestOptions, days: Collection[str] | None = None
) -> PartRows:
    """Read one file: classify its records, attach each to its invocation and day.

    With ``days``, a file with no line starting with one of their dates is not parsed: a row belongs
    to a day only through a record timestamped on that day, so it has no rows of those days.
    Bad input never raises (it is quarantined); anything else that fails is re-raised as an
    ``IngestError`` naming the file, so a failed run says where it stopped.
    """
    try:
        return _read_part(part, options, days)
    except Exception as exc:
        raise IngestError(
            f"reading {part.path} (stream day {part.folder_day}) failed: {exc!r}"
        ) from exc


def _read_part(part: StreamPart, options: IngestOptions, days: Collection[str] | None) -> PartRows:
    text, problems = read_text(part.path, options.max_bytes)
    if days is not None and not any(_has_line_of(text, day) for day in days):
        text = ""
    records, split_problems = split_records(text)
    bad_utf8 = any(problem.reason.startswith("invalid UTF-8") for problem in problems)
    # Where the text stops mid-line at damage (truncation, corruption, size limit), its last record is
    # cut off: quarantined, not typed. Damage after complete data (a bad checksum) cuts nothing.
    damage = next(
        (problem.reason for problem in problems if problem.reason.startswith(_CUT_OFF)), None
    )
    cut_off = damage if damage and not text.endswith("\n") else None
    last_line = records.lines[-1] if records and cut_off else None
    bytes_read = len(text)
    del text
    mask_all = mask_text if options.mask_personal_data else _identity
    stream, file = part.stream, part.path.name
    records = _in_time_order(records)
    bodies = records.bodies
    # Columns of the file's rows; quarantined records stay in them until their day is known. The
    # commonest shapes are typed in one compiled pass (machine-made text: nothing to mask); the other
    # records, one by one below.
    kinds, levels, request_ids, messages, payloads, others = classify_common(bodies)
    trailings: list[str | None] = [None] * len(bodies)
    if last_line is not None and kinds[cut_index := records.lines.index(last_line)] is not None:
        others.append(cut_index)
    for index in others:
        body = bodies[index]
        if records.lines[index] == last_line:
            kind, level, request_id, trailing = QUARANTINED, None, None, None
            message = f"last record cut off where the file is damaged ({cut_off.split(':')[0]})"
            payload = mask_all(excerpt(body))
        elif bad_utf8 and "\ufffd" in body:
            kind, level, request_id, trailing = QUARANTINED, None, None, None
            message = "invalid UTF-8 in record: bytes replaced by U+FFFD"
            payload = mask_all(excerpt(body))
        else:
            try:
                event = classify(body)
            except RecordError as exc:
                kind, level, request_id, trailing = QUARANTINED, None, None, None
                message, payload = str(exc), mask_all(excerpt(body))
            else:
                mask = _identity if event.kind in _WITHOUT_PERSONAL_DATA else mask_all
                kind, level, request_id = event.kind, event.level, event.request_id
                message = mask(event.message)
                payload = None if event.payload is None else mask(event.payload)
                trailing = mask(event.trailing) if event.trailing else None
        kinds[index] = kind
        levels[index] = level
        request_ids[index] = request_id
        messages[index] = message
        payloads[index] = payload
        trailings[index] = trailing
    occurred, lines = records.stamps, records.lines
    days = _assign_invocations(kinds, request_ids, occurred)
    records_by_day = Counter(days)
    quarantine = [
        _quarantine_row(
            days[index],
            occurred[index],
            stream,
            file,
            lines[index],
            messages[index],
            payloads[index],
            "record",
        )
        for index, kind in enumerate(kinds)
        if kind == QUARANTINED
    ]
    columns = {
        "day": days,
        "occurred_at": occurred,
        "stream": [stream] * len(records),
        "file": [file] * len(records),
        "line": lines,
        "request_id": request_ids,
        "level": levels,
        "kind": kinds,
        "message": messages,
        "payload": payloads,
        "trailing_text": trailings,
    }
    for problem in split_problems:
        day = problem.occurred_at[:10] if problem.occurred_at else part.folder_day
        records_by_day[day] += (
            1  # text that could not be assembled into a record is one lost record
        )
        quarantine.append(_from_problem(problem, day, stream, file, "record", mask_all))
    for problem in problems:
        quarantine.append(_from_problem(problem, part.folder_day, stream, file, "file", mask_all))
    return PartRows(part, columns, quarantine, records_by_day, bytes_read)


def _has_line_of(text: str, day: str) -> bool:
    """Whether a line of ``text`` starts with a timestamp of ``day`` (as every record of it does)."""
    return text.startswith(f"{day}T") or f"\n{day}T" in text


def _assign_invocations(
    kinds: list[str], request_ids: list[str | None], occurred: list[str]
) -> list[str]:
    """The day of each row; rows without a request id get their invocation's (in ``request_ids``).

    A row belongs to the day of its invocation's ``START``; rows before it (init records, application
    lines logged outside a request) belong to the invocation that follows.
    """
    days: list[str] = [""] * len(kinds)
    start_day: dict[str, str] = {}
    current: str | None = None
    pending: list[int] = []
    for index, kind in enumerate(kinds):
        request_id = request_ids[index]
        if kind == "start" and request_id:
            current = request_id
            day = start_day[current] = occurred[index][:10]
            for waiting in pending:
                request_ids[waiting] = request_ids[waiting] or current
                days[waiting] = day
            pending.clear()
            days[index] = day
        elif request_id:
            days[index] = start_day.get(request_id) or occurred[index][:10]
        elif kind in _BEFORE_START or kind in _APP_KINDS:
            # init records, and application lines logged outside a request (request id "undefined")
            pending.append(index)
        elif current is not None:
            request_ids[index] = current
            days[index] = start_day[current]
        else:
            pending.append(index)
    for waiting in pending:
        days[waiting] = occurred[waiting][:10]
    return days


def _in_time_order(records: Records) -> Records:
    """Records by time, then line: an export writes a stream in chunks not always in time order."""
    stamps = records.stamps
    if set(map(len, stamps)) <= {_CANONICAL_TIMESTAMP_LENGTH} and stamps == sorted(stamps):
        return records  # the usual case, checked at C speed
    keys = [_instant(stamp) for stamp in stamps]
    return records.reordered(
        sorted(range(len(records)), key=lambda index: (keys[index], records.lines[index]))
    )


def _instant(timestamp: str) -> str:
    """A timestamp that sorts as its instant: no or more fraction digits are padded to three."""
    if len(timestamp) == _CANONICAL_TIMESTAMP_LENGTH:
        return timestamp
    seconds, _, fraction = timestamp[:-1].partition(".")
    return f"{seconds}.{fraction.ljust(3, '0')}Z"


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
