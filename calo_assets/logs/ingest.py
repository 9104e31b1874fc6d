"""Turn stream files into the rows of ``log_events``, ``quarantine`` and ``ingest_manifest`` per day.

A record belongs to the UTC day of its invocation's ``START`` line (records logged before ``START``
during a cold start, such as ``INIT_START`` and init errors, belong to the invocation that follows;
records without a request id inside an invocation, such as metric and XRAY lines, to that invocation).
A record outside any invocation keeps the day of its own timestamp.

Which run keeps a record: a run of days ``W`` reads the streams of ``W`` and of the day before its
first day (``LOOKBACK_DAYS``). A record of day ``X`` from a stream of day ``F`` is typed under ``X``
when ``X`` is in ``W`` and not before ``F`` (from the day-before stream, only when ``X`` is within
the look-back); it is left to another run when that run reads it (``X`` within ``F``'s look-back but
outside ``W``); anything else (a record before its stream's day, of a day the run does not cover, an
impossible timestamp) is quarantined under ``F`` with the reason. Nothing is dropped unseen.

Memory stays bounded whatever a stream's size. A stream's files are read in segments
(``reader.read_segments``) and its records put in time order across all its files (the export writes
chunks, and parts of chunks, out of order): in memory up to ``sort_buffer_chars`` of text, beyond
that as sorted runs spilled to a temporary folder and merged. The ordered records are classified
``piece_records`` at a time, each piece cut between invocations (the rest waits for the next piece),
so the warehouse's row groups, which never split a piece, hold whole invocations. These bounds, and
the size of the batches of files read as one task, are ``IngestOptions.limits`` (``ReadLimits``).
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from calo_assets.logs.events import APP_KINDS, RecordError, classify, classify_common
from calo_assets.logs.export import Discovery, Refusal, StreamPart, days_reading_folder
from calo_assets.logs.limits import DEFAULT_LIMITS, ReadLimits
from calo_assets.logs.order import CANONICAL_TIMESTAMP_LENGTH, Chunk, OrderedRecords, canonical
from calo_assets.logs.reader import DEFAULT_MAX_BYTES, FileReading, Problem, excerpt, read_segments
from calo_assets.logs.source import size_of
from calo_assets.privacy import mask_text
from calo_assets.tables.schema import SCHEMAS, TIMESTAMP, from_columns, to_rows

QUARANTINED = "quarantined"
_START_DAYS = 4096  # invocations whose day a stream remembers (they run one after another)
_BEFORE_START = frozenset({"init_start", "init_report"})
_APP_KINDS = frozenset(APP_KINDS)
# Kinds whose text is machine-made (ids, figures, fixed messages): masking them would only cost time.
_WITHOUT_PERSONAL_DATA = frozenset(
    {"start", "end", "report", "init_start", "init_report", "xray", "sqs_message", "sync_published"}
)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How to read: personal-data masking, the per-file size ceiling, worker processes, and the
    bounds on what is read and held at a time."""

    mask_personal_data: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    workers: int = 1
    limits: ReadLimits = DEFAULT_LIMITS


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


@dataclass(frozen=True, slots=True)
class DayPiece:
    """Rows of one day: events, quarantined items, manifest rows. Every later piece comes from
    streams of ``complete_before`` or later, so the days before it are complete."""

    day: str
    events: pa.Table | None
    quarantine: list[dict[str, Any]]
    manifest: list[dict[str, Any]]
    complete_before: str = ""


@dataclass(frozen=True, slots=True)
class Stream:
    """The files of one stream, in part order, and the stream's day."""

    day: str
    name: str
    parts: tuple[StreamPart, ...]


class IngestError(RuntimeError):
    """An unexpected failure while reading one stream; the message names its files."""


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
    """Read every file that can hold records of ``days`` once; yield the rows piece by piece, by day.

    Batches of streams are read in worker processes and come back in a fixed order (whatever the
    number of workers), by stream day, so the rows do too.
    """
    wanted = sorted(set(days))
    tasks = _batches(_units(discovery, wanted), options.limits)
    if options.workers <= 1 or len(tasks) < 2:
        for task in tasks:
            yield from _read_task(task, options, wanted)
        return
    workers = min(options.workers, len(tasks))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # A bounded number of batches in flight, each bounded in memory (big results wait on disk):
        # a parent slower than its workers does not pile up rows.
        pending: deque[Future[_TaskResult]] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(_run_task, task, options, wanted))
                if len(pending) > 2 * workers:
                    yield from pending.popleft().result().pieces()
            while pending:
                yield from pending.popleft().result().pieces()
        finally:  # stopped early: results left unread are dropped, their files too
            for future in pending:
                if not future.cancel() and future.exception() is None:
                    future.result().discard()


def default_workers() -> int:
    """Worker processes for reading: one per core."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


# -- units of work ------------------------------------------------------------------------------------


def _units(discovery: Discovery, wanted: list[str]) -> list[Stream | Refusal]:
    """The streams to read and the refused files to quarantine, by day."""
    streams: dict[tuple[str, str], list[StreamPart]] = {}
    for part in discovery.parts_for_days(wanted):
        streams.setdefault((part.day, part.stream), []).append(part)
    units: list[Stream | Refusal] = [
        Stream(day, name, tuple(parts)) for (day, name), parts in streams.items()
    ]
    units += discovery.refused_for_days(wanted)
    return sorted(
        units,
        key=lambda unit: (unit.day, str(unit.path if isinstance(unit, Refusal) else unit.name)),
    )


def _batches(units: list[Stream | Refusal], limits: ReadLimits) -> list[list[Stream | Refusal]]:
    """Consecutive units in groups of about ``limits.batch_bytes`` of files (or ``batch_files``
    files): fewer, larger tasks, per-file costs amortized. A stream's files always stay together."""
    batches: list[list[Stream | Refusal]] = []
    size = files = 0
    for unit in units:
        parts = unit.parts if isinstance(unit, Stream) else ()
        unit_size = sum(size_of(part.path) for part in parts)
        if not batches or size + unit_size > limits.batch_bytes or files >= limits.batch_files:
            batches.append([])
            size = files = 0
        batches[-1].append(unit)
        size += unit_size
        files += max(1, len(parts))
    return batches


class _TaskResult(NamedTuple):
    """A worker's pieces: in memory, or (when big) in a temporary file of pickled pieces."""

    pieces_in_memory: list[DayPiece] | None
    spilled: str | None

    def discard(self) -> None:
        if self.spilled is not None:
            Path(self.spilled).unlink(missing_ok=True)

    def pieces(self) -> Iterator[DayPiece]:
        if self.pieces_in_memory is not None:
            yield from self.pieces_in_memory
            return
        assert self.spilled is not None
        try:
            with Path(self.spilled).open("rb") as handle:
                while True:
                    try:
                        yield pickle.load(handle)
                    except EOFError:
                        break
        finally:
            Path(self.spilled).unlink()


def _run_task(
    task: list[Stream | Refusal], options: IngestOptions, wanted: list[str]
) -> _TaskResult:
    """Read a task in a worker; past ``limits.result_bytes`` its pieces go to a temporary file."""
    kept: list[DayPiece] = []
    size = 0
    pieces = _read_task(task, options, wanted)
    for piece in pieces:
        kept.append(piece)
        size += (piece.events.nbytes if piece.events is not None else 0) + 200 * len(
            piece.quarantine
        )
        if size > options.limits.result_bytes:
            return _TaskResult(None, _spill_pieces(kept, pieces))
    return _TaskResult(kept, None)


def _spill_pieces(kept: list[DayPiece], rest: Iterator[DayPiece]) -> str:
    """Pickle ``kept`` (emptied as it goes) and then ``rest`` into a temporary file; its name."""
    descriptor, name = tempfile.mkstemp(prefix="calo-rows-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            while kept:
                pickle.dump(kept.pop(0), handle, pickle.HIGHEST_PROTOCOL)
            for piece in rest:
                pickle.dump(piece, handle, pickle.HIGHEST_PROTOCOL)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return name


def _read_task(
    task: list[Stream | Refusal], options: IngestOptions, wanted: list[str]
) -> Iterator[DayPiece]:
    """The pieces of a task's streams and refusals, by day, of about ``limits.piece_records`` rows."""
    gathered = _Gathered(task[0].day, options.limits.piece_records)
    for unit in task:
        if isinstance(unit, Refusal):
            gathered.quarantine[unit.day].append(
                _quarantine_row(
                    unit.day,
                    None,
                    unit.path.parent.name,
                    unit.path.name,
                    None,
                    unit.reason,
                    "",
                    "file",
                )
            )
            continue
        try:
            for rows in _read_stream(unit, options, wanted):
                gathered.add(rows)
                yield from gathered.full()
        except Exception as exc:
            files = ", ".join(str(part.path) for part in unit.parts)
            raise IngestError(f"reading {files} (stream day {unit.day}) failed: {exc!r}") from exc
    yield from gathered.rest()


@dataclass(slots=True)
class _Rows:
    """Rows of part of a stream: event columns by day, quarantine rows, manifest rows."""

    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)


class _Gathered:
    """Rows of several streams gathered by day and handed on as ``DayPiece``s."""

    def __init__(self, complete_before: str, piece_records: int) -> None:
        self.complete_before, self.piece_records = complete_before, piece_records
        self.columns: dict[str, dict[str, list[Any]]] = {}
        self.quarantine: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.manifest: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, rows: _Rows) -> None:
        for day, columns in rows.columns.items():
            into = self.columns.setdefault(day, {name: [] for name in columns})
            for name, values in columns.items():
                into[name].extend(values)
        for row in rows.quarantine:
            self.quarantine[row["day"]].append(row)
        for row in rows.manifest:
            self.manifest[row["day"]].append(row)

    def full(self) -> Iterator[DayPiece]:
        for day in sorted(self.columns):
            if len(self.columns[day]["day"]) >= self.piece_records:
                yield self._piece(day)
        for day in sorted(self.quarantine):
            if len(self.quarantine[day]) >= self.piece_records:
                yield self._piece(day)

    def rest(self) -> Iterator[DayPiece]:
        for day in sorted(set(self.columns) | set(self.quarantine) | set(self.manifest)):
            yield self._piece(day)

    def _piece(self, day: str) -> DayPiece:
        columns = self.columns.pop(day, None)
        events = from_columns("log_events", columns) if columns else None
        return DayPiece(
            day,
            events,
            self.quarantine.pop(day, []),
            self.manifest.pop(day, []),
            self.complete_before,
        )


# -- one stream --------------------------------------------------------------------------------------


def _read_stream(stream: Stream, options: IngestOptions, wanted: list[str]) -> Iterator[_Rows]:
    """Read a stream's files, put its records in time order and classify them piece by piece."""
    readings = [FileReading() for _ in stream.parts]
    # A stream of the day before the run counts only if it logged into the run's first day.
    look_for = (
        None
        if stream.day in wanted
        else [day for day in days_reading_folder(stream.day)[1:] if day in wanted]
    )
    limits = options.limits
    with OrderedRecords(look_for, limits.sort_buffer_chars) as ordered:
        for index, part in enumerate(stream.parts):
            for segment in read_segments(part.path, readings[index], options.max_bytes, limits):
                ordered.add(index, segment)
        if look_for is not None and not ordered.holds_a_day_looked_for:
            return
        ordered.close()
        state = _StreamState(
            stream, readings, ordered.problems, ordered.last_lines, options, wanted
        )
        chunks = ordered.chunks(limits.piece_records)
        chunk = next(chunks, None)
        while chunk is not None:
            following = next(chunks, None)
            yield state.process(chunk, final=following is None)
            chunk = following
        yield state.finish()


# A millisecond timestamp whose every field is in range: only a day past its month's end (30 February)
# or year 0 can still be no instant. Checked over a whole piece in one match, in C.
_STAMP_IN_RANGE = (
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z"
)
_ALL_IN_RANGE = re.compile(rf"(?:{_STAMP_IN_RANGE}\n)*{_STAMP_IN_RANGE}")


def _impossible(stamps: list[str | None]) -> set[int]:
    """Indexes of millisecond timestamps that are no instant (hour 25, month 13, year 0)."""
    if not stamps:
        return set()
    if None not in stamps and _ALL_IN_RANGE.fullmatch("\n".join(stamps)):  # type: ignore[arg-type]
        suspects = [
            index
            for index, stamp in enumerate(stamps)
            if stamp[8:10] > "28" or stamp.startswith("0000")  # type: ignore[index,union-attr]
        ]
        return {suspects[index] for index in _no_instant([stamps[i] for i in suspects])}
    return _no_instant(stamps)


def _no_instant(stamps: list[str | None]) -> set[int]:
    """Indexes of ``stamps`` that Arrow cannot read as an instant, or of year 0."""
    if not stamps:
        return set()
    try:
        pa.array(stamps, pa.string()).cast(TIMESTAMP)
        bad: set[int] = set()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = set()
        for index, stamp in enumerate(stamps):
            try:
                pa.scalar(stamp, pa.string()).cast(TIMESTAMP)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.add(index)
    bad.update(index for index, stamp in enumerate(stamps) if str(stamp).startswith("0000"))
    return bad


class _Invocations:
    """Which invocation, hence which day, each record of a stream belongs to, across pieces.

    A row belongs to the day of its invocation's ``START``; rows before it (init records, application
    lines logged outside a request) belong to the invocation that follows.
    """

    def __init__(self) -> None:
        self.current: str | None = None
        self.start_day: OrderedDict[str, str] = OrderedDict()

    def assign(
        self,
        kinds: list[str],
        request_ids: list[str | None],
        occurred: list[str | None],
        final: bool,
    ) -> tuple[list[str], int]:
        """The day of each row (request ids filled in), and where the piece can end: before the last
        invocation opened in it (with its init records), unless ``final``. Rows after that point
        are assigned again with the next piece."""
        days: list[str] = [""] * len(kinds)
        pending: list[int] = []
        # where each invocation begins (its first init record, or START), and the one before it
        boundaries: list[tuple[int, str | None]] = []
        for index, kind in enumerate(kinds):
            if kind == QUARANTINED and occurred[index] is None:
                continue  # an impossible timestamp: no day, no invocation
            request_id = request_ids[index]
            if kind == "start" and request_id:
                boundaries.append((pending[0] if pending else index, self.current))
                self.current = request_id
                day = self._remember(request_id, str(occurred[index])[:10])
                for waiting in pending:
                    request_ids[waiting] = request_ids[waiting] or request_id
                    days[waiting] = day
                pending.clear()
                days[index] = day
            elif request_id:
                days[index] = self.start_day.get(request_id) or str(occurred[index])[:10]
            elif kind in _BEFORE_START or kind in _APP_KINDS:
                # init records, and application lines logged outside a request (request id "undefined")
                pending.append(index)
            elif self.current is not None:
                request_ids[index] = self.current
                days[index] = self.start_day.get(self.current) or str(occurred[index])[:10]
            else:
                pending.append(index)
        cut, current = (
            (len(kinds), None)
            if final
            else _clean_cut(boundaries, pending, self.current, request_ids, len(kinds))
        )
        if cut < len(kinds):
            self.current = current
        else:  # the end of the stream (or an invocation longer than a piece): no START follows here
            for waiting in pending:
                days[waiting] = str(occurred[waiting])[:10]
        return days, cut

    def _remember(self, request_id: str, day: str) -> str:
        self.start_day[request_id] = day
        self.start_day.move_to_end(request_id)
        if len(self.start_day) > _START_DAYS:
            self.start_day.popitem(last=False)
        return day


def _clean_cut(
    boundaries: list[tuple[int, str | None]],
    pending: list[int],
    current: str | None,
    request_ids: list[str | None],
    size: int,
) -> tuple[int, str | None]:
    """The last place a piece can end without splitting an invocation (before an invocation's
    first record, or before records still waiting for their START), and the invocation current
    there; the whole piece when there is none (an invocation longer than a piece)."""
    candidates = list(boundaries)
    if pending:
        candidates.append((pending[0], current))
    for cut, current_there in reversed(candidates):
        if cut == 0:
            break
        before = {request_id for request_id in request_ids[:cut] if request_id}
        if before.isdisjoint(request_id for request_id in request_ids[cut:] if request_id):
            return cut, current_there
    return size, None


class _StreamState:
    """Classifies a stream's ordered records piece by piece and routes each row to its day."""

    def __init__(
        self,
        stream: Stream,
        readings: list[FileReading],
        split_problems: dict[int, list[Problem]],
        last_lines: dict[int, int],
        options: IngestOptions,
        wanted: list[str],
    ) -> None:
        self.stream, self.readings, self.wanted = stream, readings, set(wanted)
        self.first, self.last = wanted[0], wanted[-1]
        self.lookback = set(days_reading_folder(stream.day))
        self.mask = mask_text if options.mask_personal_data else _identity
        self.invocations = _Invocations()
        self.carry = Chunk([], [], [], [])
        self.counts: Counter[tuple[int, str]] = Counter()
        self.parsed = [
            len(split_problems.get(index, [])) + len(reading.record_problems)
            for index, reading in enumerate(readings)
        ]
        self.cut_off = {
            (index, last_lines[index]): reading.cut_off
            for index, reading in enumerate(readings)
            if reading.cut_off and index in last_lines
        }
        self.bad_utf8 = {index for index, reading in enumerate(readings) if reading.bad_utf8}
        self.split_problems = split_problems

    def process(self, chunk: Chunk, final: bool = False) -> _Rows:
        """Rows of the carried records and ``chunk``, up to the last clean cut (all when ``final``)."""
        records = Chunk(*(carried + new for carried, new in zip(self.carry, chunk, strict=True)))
        for file, count in Counter(chunk.files).items():
            self.parsed[file] += count
        stamps = records.stamps
        occurred: list[str | None] = (
            list(stamps)
            if set(map(len, stamps)) <= {CANONICAL_TIMESTAMP_LENGTH}
            else [canonical(stamp) for stamp in stamps]
        )
        impossible = _impossible(occurred)
        kinds, levels, request_ids, messages, payloads, trailings = self._classify(
            records, impossible
        )
        for index in impossible:
            occurred[index] = None
        days, cut = self.invocations.assign(kinds, request_ids, occurred, final)
        self.carry = Chunk(*(column[cut:] for column in records))
        by_day: dict[str, list[int]] = {}  # impossible timestamps have no day ("")
        for index, day in enumerate(islice(days, cut)):
            by_day.setdefault(day, []).append(index)
        typed: dict[str, list[int]] = {}
        quarantined: list[tuple[int, str]] = []
        folder_day, owned = self.stream.day, self.stream.day in self.wanted
        for day, indexes in by_day.items():
            if day and self._typed_here(day):
                target = day
                kept = [index for index in indexes if kinds[index] != QUARANTINED]
                if len(kept) < len(indexes):
                    quarantined += [(i, day) for i in indexes if kinds[i] == QUARANTINED]
                if kept:
                    typed[day] = kept
            elif day and (not owned or day in self.lookback):
                continue  # another run reads it: the run of its day
            else:
                target = folder_day
                if day:
                    for index in indexes:
                        messages[index] = self._outside(day)
                quarantined += [(index, folder_day) for index in indexes]
            self._count(records.files, indexes, target)
        rows = _Rows()
        rows.quarantine = [
            self._quarantine(day, occurred[index], records, index, messages[index])
            for index, day in sorted(quarantined)
        ]
        names = [part.file for part in self.stream.parts]
        for day, indexes in typed.items():
            rows.columns[day] = {
                "day": [day] * len(indexes),
                "occurred_at": [occurred[index] for index in indexes],
                "stream": [self.stream.name] * len(indexes),
                "file": [names[records.files[index]] for index in indexes],
                "line": [records.lines[index] for index in indexes],
                "request_id": [request_ids[index] for index in indexes],
                "level": [levels[index] for index in indexes],
                "kind": [kinds[index] for index in indexes],
                "message": [messages[index] for index in indexes],
                "payload": [payloads[index] for index in indexes],
                "trailing_text": [trailings[index] for index in indexes],
            }
        return rows

    def finish(self) -> _Rows:
        """The carried records, then per file the problems met and the manifest rows."""
        rows = self.process(Chunk([], [], [], []), final=True) if self.carry.files else _Rows()
        owned = self.stream.day in self.wanted
        for index, part in enumerate(self.stream.parts):
            reading = self.readings[index]
            file = part.file
            if owned:
                for problem in self.split_problems.get(index, []) + reading.record_problems:
                    self.counts[index, self.stream.day] += 1
                    rows.quarantine.append(
                        _from_problem(
                            problem, self.stream.day, self.stream.name, file, "record", self.mask
                        )
                    )
                for problem in reading.problems:
                    rows.quarantine.append(
                        _from_problem(
                            problem, self.stream.day, self.stream.name, file, "file", self.mask
                        )
                    )
            # Records counted in the text but not parsed would be lost: they count as read on the
            # stream's day, so nothing_lost fails there.
            missing = reading.records_counted - self.parsed[index]
            days = {day for (file_index, day) in self.counts if file_index == index}
            if owned:
                days.add(self.stream.day)
            for day in sorted(days & self.wanted):
                rows.manifest.append(
                    {
                        "day": day,
                        "stream": self.stream.name,
                        "file": file,
                        "records_read": self.counts[index, day]
                        + (missing if day == self.stream.day else 0),
                        "bytes_read": reading.bytes_read if day == self.stream.day else 0,
                    }
                )
        return rows

    def _count(self, files: list[int], indexes: list[int], day: str) -> None:
        """Count the records at ``indexes`` as read for ``day``, per file."""
        if len(self.stream.parts) == 1:
            self.counts[0, day] += len(indexes)
            return
        for file, count in Counter(files[index] for index in indexes).items():
            self.counts[file, day] += count

    def _typed_here(self, day: str) -> bool:
        """Whether a record of ``day`` is typed by this run (see the module's docstring)."""
        if day not in self.wanted or day < self.stream.day:
            return False
        return self.stream.day in self.wanted or day in self.lookback

    def _outside(self, day: str) -> str:
        if day < self.stream.day:
            return f"record of {day}, before its stream's day {self.stream.day}: quarantined under that day"
        return (
            f"record of {day}, outside the days of this run ({self.first} to {self.last}) and of its "
            f"stream's look-back ({self.stream.day} + {len(self.lookback) - 1} day): quarantined under the stream's day"
        )

    def _classify(self, records: Chunk, impossible: set[int]) -> tuple[list, ...]:
        """Kinds, levels, request ids, messages, payloads and trailing texts of the records."""
        bodies = records.bodies
        # The commonest shapes are typed in one compiled pass (machine-made text: nothing to mask);
        # the other records, one by one below.
        kinds, levels, request_ids, messages, payloads, others = classify_common(bodies)
        trailings: list[str | None] = [None] * len(bodies)
        cut_indexes = (
            {
                index
                for index, place in enumerate(zip(records.files, records.lines, strict=True))
                if place in self.cut_off
            }
            if self.cut_off
            else set()
        )
        others = sorted(
            set(others) | {index for index in cut_indexes if kinds[index] is not None} | impossible
        )
        for index in others:
            body = bodies[index]
            kind, level, request_id, payload, trailing = QUARANTINED, None, None, None, None
            if index in impossible:
                message = f"impossible timestamp {records.stamps[index]}: record quarantined"
            elif index in cut_indexes:
                damage = self.cut_off[records.files[index], records.lines[index]]
                message = f"last record cut off where the file is damaged ({damage.split(':')[0]})"
            elif records.files[index] in self.bad_utf8 and "\ufffd" in body:
                message = "invalid UTF-8 in record: bytes replaced by U+FFFD"
            else:
                try:
                    event = classify(body)
                except RecordError as exc:
                    message = str(exc)
                else:
                    mask = _identity if event.kind in _WITHOUT_PERSONAL_DATA else self.mask
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
        return kinds, levels, request_ids, messages, payloads, trailings

    def _quarantine(
        self, day: str, occurred: str | None, records: Chunk, index: int, reason: str
    ) -> dict[str, Any]:
        """The quarantine row of a record, with a short masked excerpt of its text."""
        file = self.stream.parts[records.files[index]].file
        text = self.mask(excerpt(records.bodies[index]))
        return _quarantine_row(
            day, occurred, self.stream.name, file, records.lines[index], reason, text, "record"
        )


def _identity(text: str) -> str:
    return text


def _from_problem(
    problem: Problem, day: str, stream: str, file: str, unit: str, mask
) -> dict[str, Any]:
    return _quarantine_row(
        day, None, stream, file, problem.line, problem.reason, mask(problem.excerpt), unit
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
