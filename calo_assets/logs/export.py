"""Find the log streams of one or more CloudWatch exports and read each stream's files exactly once.

Layout, as CloudWatch writes it to S3::

    <export id>/<stream creation day>-[<version>]<stream id>/000000.gz   (000001.gz, ... for big streams)

A stream folder is found at any depth under the log root, so the root may hold one export, several
exports, or be an export folder itself. Names that stray from the layout but hold log data are still
read: a copied folder (``…-copy``, ``… (1)``) is the same stream, and ``000000.GZ``, ``000000.gz.1``
are part ``000000``. A file is gzip when it starts with the gzip magic bytes, whatever its name.
When a part has several copies (``000000`` and ``000000.gz``, the same stream in two exports, a copied
folder), the copy read without damage and with the most records is read; the others are listed as
duplicates. A file with log data under any other name is quarantined, not read; everything else
(``.DS_Store`` and the like) is junk: ignored and counted.

Only regular files are read: FIFOs, sockets, devices, symbolic link loops, dangling links and links
out of the log folder are refused with their reason (and quarantined by the ingest).

The root is a local folder or an ``s3://bucket/prefix`` (``source.py`` walks either one; an S3
"folder" is a key prefix): the rules below are the same for both.

Daily slices: the daily run's own CloudWatch exports (``calo_assets.cloudwatch_export``) are kept in
folders named ``day=YYYY-MM-DD``, one per slice of time of the log group. A stream that logged across
two slices has a piece in each: such pieces are parts of one stream, read together (merged in time
order), not copies of each other. Within one slice, copies are copies, as anywhere else.

A stream belongs to the day its folder is named after, unless that day cannot be a log day (before
``EARLIEST_LOG_DAY`` or after tomorrow): then to the day of its first record, or failing that the
export's first day. A stray folder named ``2099-01-01`` does not stretch the days of a run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from calo_assets.logs.reader import (
    GZIP_MAGIC,
    FileReading,
    first_record_day,
    read_segments,
)
from calo_assets.logs.source import ExportSource, Location, open_binary, open_source

# A stream folder's name starts with its day, version and id; a suffix marks a copy of it.
STREAM_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})-\[[^\]/]*\][0-9A-Za-z]+")
PART_FILE = re.compile(r"^(\d{6})(?:\.[^/]*)?$")
# A slice of the daily CloudWatch exports (see the module's docstring).
SLICE_FOLDER = re.compile(r"^day=(\d{4}-\d{2}-\d{2})$")
# A stream folder is named after the day its stream started, and a stream may run past midnight:
# day D reads the folders of D - LOOKBACK_DAYS .. D. The one place this rule is written.
LOOKBACK_DAYS = 1
EARLIEST_LOG_DAY = "2014-11-13"  # AWS Lambda's launch: no log stream is older
_TIMESTAMPED_LINE = re.compile(rb"\s*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z ")
OUTSIDE_LAYOUT = "log data under a name outside the export layout: not read"
# Files the exporting itself writes beside the streams: junk, known without opening them (an S3 GET
# each otherwise). CloudWatch's permission probe, and the marker of a daily export slice.
EXPORT_FILES = frozenset({"aws-logs-write-test", "calo-export.json"})


def folder_days_read_by(day: str) -> list[str]:
    """The stream-folder days whose files can hold records of ``day``, oldest first."""
    start = date.fromisoformat(day)
    return [(start - timedelta(days=back)).isoformat() for back in range(LOOKBACK_DAYS, -1, -1)]


def days_reading_folder(folder_day: str) -> list[str]:
    """The log days whose runs read the stream folders of ``folder_day``."""
    start = date.fromisoformat(folder_day)
    return [(start + timedelta(days=ahead)).isoformat() for ahead in range(LOOKBACK_DAYS + 1)]


def plausible_day(day: str | None) -> bool:
    """Whether ``day`` is a date a log stream can have: from ``EARLIEST_LOG_DAY`` to tomorrow (UTC)."""
    try:
        value = date.fromisoformat(day or "")
    except ValueError:
        return False
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return date.fromisoformat(EARLIEST_LOG_DAY) <= value <= tomorrow


@dataclass(frozen=True, slots=True, order=True)
class StreamPart:
    """One file to read: part ``part`` of stream ``stream``, which belongs to ``day``; in export
    slice ``slice`` when the export is kept in daily slices (see the module's docstring)."""

    day: str
    stream: str
    part: str
    path: Location
    slice: str = ""

    @property
    def folder_day(self) -> str:
        """The stream's day (its folder's, unless that one cannot be a log day)."""
        return self.day

    @property
    def file(self) -> str:
        """The file as the tables name it: its name, after its slice when it is in one."""
        return f"{self.slice}/{self.path.name}" if self.slice else self.path.name

    @property
    def label(self) -> str:
        return f"{self.stream}/{self.file}"


class Refusal(NamedTuple):
    """A file not read, why, and the day its quarantine row goes to."""

    path: Location
    reason: str
    day: str


@dataclass(slots=True)
class Discovery:
    """What was found under the log root."""

    parts: list[StreamPart] = field(default_factory=list)
    duplicates: list[Location] = field(default_factory=list)
    junk: list[Location] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def days(self) -> list[str]:
        """The stream days present (of parts read and of files refused), sorted."""
        return sorted({part.day for part in self.parts} | {refusal.day for refusal in self.refused})

    def parts_for_days(self, days: Iterable[str]) -> list[StreamPart]:
        """Parts whose records can belong to ``days``: streams of each day and the days before it."""
        wanted = _folder_days(days)
        return [part for part in self.parts if part.day in wanted]

    def refused_for_days(self, days: Iterable[str]) -> list[Refusal]:
        """Files refused whose quarantine rows go to one of ``days``."""
        wanted = set(days)
        return [refusal for refusal in self.refused if refusal.day in wanted]


def _folder_days(days: Iterable[str]) -> set[str]:
    return {folder for day in days for folder in folder_days_read_by(day)}


def discover(root: Path | str | ExportSource) -> Discovery:
    """List the stream parts under ``root``: a local folder (not following links that leave it) or
    an ``s3://bucket/prefix``, with the same rules (``source.py`` only walks them)."""
    source = open_source(root)
    source.check()
    found = Discovery()
    copies: dict[tuple[str, str, str], list[Location]] = {}  # (stream, slice, part) -> copies
    refused: list[tuple[Location, str, str | None]] = []  # location, reason, stream (if any)
    for entry in source.entries():
        location = entry.location
        stream = _stream_of(entry.folder)
        if entry.is_folder:
            refused.append((location, entry.refusal or "not read", stream))
            continue
        part = PART_FILE.match(location.name) if stream else None
        if entry.refusal:
            refused.append((location, entry.refusal, stream))
        elif part:
            copies.setdefault((stream, _slice_of(location), part.group(1)), []).append(location)
        elif location.name not in EXPORT_FILES and _holds_log_data(location):
            refused.append((location, OUTSIDE_LAYOUT, stream))
        else:
            found.junk.append(location)
    chosen: dict[tuple[str, str, str], Location] = {}
    for key, paths in copies.items():
        best = _best_copy(paths)
        chosen[key] = best
        found.duplicates.extend(path for path in paths if path != best)
    stream_days = _stream_days(chosen, {stream for _, _, stream in refused if stream})
    first = min((day for day in stream_days.values() if plausible_day(day)), default=None)
    for (stream, slice_name, part), path in chosen.items():
        found.parts.append(
            StreamPart(stream_days[stream] or first or stream[:10], stream, part, path, slice_name)
        )
    found.parts.sort()
    for path, reason, stream in refused:
        day = stream_days.get(stream) if stream else _day_of_file(path, reason)
        found.refused.append(
            Refusal(path, reason, day or first or _name_day(path) or EARLIEST_LOG_DAY)
        )
    found.refused.sort(key=lambda refusal: (refusal.day, str(refusal.path)))
    return found


def _slice_of(location: Location) -> str:
    """The export slice holding a stream file: the nearest folder above its stream folder named
    ``day=YYYY-MM-DD`` (the daily CloudWatch exports), or "" when there is none."""
    for folder in location.parent.parents:
        if SLICE_FOLDER.match(folder.name):
            return folder.name
    return ""


def _stream_of(name: str) -> str | None:
    match = STREAM_FOLDER.match(name)
    return match.group() if match else None


def _name_day(path: Location) -> str | None:
    match = STREAM_FOLDER.match(path.parent.name)
    return match.group(1) if match else None


def _stream_days(
    chosen: dict[tuple[str, str, str], Location], others: set[str]
) -> dict[str, str | None]:
    """Each stream's day: its folder's when plausible, else its earliest first record's, else None."""
    days: dict[str, str | None] = {}
    for stream in sorted({stream for stream, _, _ in chosen} | others):
        if plausible_day(stream[:10]):
            days[stream] = stream[:10]
            continue
        firsts = [first_record_day(path) for (name, _, _), path in chosen.items() if name == stream]
        days[stream] = min((day for day in firsts if plausible_day(day)), default=None)
    return days


def _day_of_file(path: Location, reason: str) -> str | None:
    """The day of a refused file outside any stream folder: its first record's, when it can be read."""
    if reason != OUTSIDE_LAYOUT:
        return None
    day = first_record_day(path)
    return day if plausible_day(day) else None


def _best_copy(paths: list[Location]) -> Location:
    """Of copies of one part, the one read without damage, then with the most records, then named
    ``.gz``, then the first found."""
    if len(paths) == 1:
        return paths[0]

    def rank(indexed: tuple[int, Location]) -> tuple[bool, int, bool, int]:
        index, path = indexed
        reading = FileReading()
        for _ in read_segments(path, reading):
            pass
        return (not reading.problems, reading.records_counted, path.suffix == ".gz", -index)

    return max(enumerate(paths), key=rank)[1]


def _holds_log_data(path: Location) -> bool:
    """Whether a file starts like a stream file: gzip magic bytes, or a timestamped line."""
    try:
        with open_binary(path) as handle:
            start = handle.read(256)
    except OSError:
        return False
    return start.startswith(GZIP_MAGIC) or _TIMESTAMPED_LINE.match(start) is not None
