"""Read one stream file as text in bounded pieces, and cut it into records.

A file is decompressed when it starts with the gzip magic bytes, whatever its name, and is read a
few megabytes at a time (``ReadLimits.read_bytes``) from the disk (or from S3: ``source.S3Object``
streams itself) to the text handed on: memory does not grow with the file. Only regular files are
opened (a FIFO could block a read forever). A damaged gzip keeps the text decoded before the damage.
A gzip bomb is recognised by what it is, not by its size: more than ``ReadLimits.bomb_bytes``
inflated at over ``ReadLimits.bomb_ratio`` times their compressed size without a single record;
reading stops there and the bytes not read are counted. ``max_bytes`` remains as a ceiling far above
any real file. Every problem is returned as a ``Problem`` for quarantine; nothing raises for bad
input.

Line ends are ``\\n`` and ``\\r\\n``; a file whose lines end with a lone ``\\r`` is read as such.

A record starts at a line beginning with an ISO timestamp (``2024-01-05T10:00:00.123Z``, zero to nine
fraction digits, ASCII digits) and a space; the lines after it without a timestamp (Node's multi-line
objects) belong to it. ``XRAY TraceId:`` lines, which Lambda appends to ``REPORT`` without a
timestamp, are records of their own with the timestamp of the record before. ``read_segments`` hands
the text on in segments that start and end between records, each record counted there with a regular
expression (``FileReading.records_counted``), apart from the parser; ``split_records`` cuts a segment
into records in one compiled pass (``_native.split_records``).
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from calo_assets.logs import _native
from calo_assets.logs.limits import DEFAULT_LIMITS, ReadLimits

if TYPE_CHECKING:
    from calo_assets.logs.source import Location

try:  # ISA-L's gzip is several times faster than zlib's; the standard library is the fallback.
    from isal import isal_zlib as zlib_impl
except ImportError:  # pragma: no cover - exercised only where isal is missing
    zlib_impl = zlib  # type: ignore[assignment]

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_BYTES = 1 << 40  # a ceiling no real stream file reaches: bombs are found by ratio
EXCERPT_CHARS = 200
_COMPRESSED_CHUNK = 1 << 16
_GZIP_WBITS = 31  # zlib's "gzip container" mode
_SALVAGE_SLICE = 1  # one compressed byte at a time: only what follows the damage is lost
_LINE_HOLD = 1 << 20  # a partial last line up to this long waits for the rest of its line
_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z "
_RECORD = re.compile(f"(?:{_STAMP}|XRAY TraceId: )")
_RECORD_AFTER_NEWLINE = re.compile(f"\n(?:{_STAMP}|XRAY TraceId: )")
_STAMPED = re.compile(_STAMP)
_STAMPED_AFTER_NEWLINE = re.compile(f"\n{_STAMP}")
_T = TypeVar("_T")
_NOTHING: Any = object()
_NOT_REGULAR = {
    stat.S_IFIFO: "named pipe",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "device",
    stat.S_IFBLK: "device",
    stat.S_IFDIR: "folder",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in a file that could not be read: why, where (line, if known) and a short excerpt."""

    reason: str
    line: int | None = None
    excerpt: str = ""
    occurred_at: str | None = None


@dataclass(slots=True)
class Records:
    """A file's records as columns: first line number in the file, export timestamp, text after it."""

    lines: list[int]
    stamps: list[str]
    bodies: list[str]

    def __len__(self) -> int:
        return len(self.lines)

    def reordered(self, order: list[int]) -> Records:
        """The records in ``order`` (a list of indexes)."""
        return Records(
            [self.lines[index] for index in order],
            [self.stamps[index] for index in order],
            [self.bodies[index] for index in order],
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """Text of whole records (it starts where a record starts and ends before the next one begins),
    whose first line is line ``first_line`` of the file."""

    text: str
    first_line: int


@dataclass(slots=True)
class FileReading:
    """What reading one file found besides its segments (complete once they are consumed).

    ``records_counted`` counts record starts in the text read (and one for text before the first
    record, one for each record too long to keep), apart from the parser; ``record_problems`` are
    those two kinds of record, quarantined; ``cut_off`` is the damage that stopped the text in the
    middle of its last record.
    """

    problems: list[Problem] = field(default_factory=list)
    record_problems: list[Problem] = field(default_factory=list)
    records_counted: int = 0
    bytes_read: int = 0
    compressed_read: int = 0
    file_size: int = 0
    gzip: bool = False
    damage: str | None = None
    cut_off: str | None = None
    bad_utf8: bool = False


def excerpt(text: str) -> str:
    """A short, single-line excerpt of ``text`` for quarantine rows."""
    flat = text[: EXCERPT_CHARS * 2].replace("\r", " ").replace("\n", "\\n")
    return flat[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def not_regular(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not read (a FIFO, socket, device or folder), or None."""
    kind = _NOT_REGULAR.get(stat.S_IFMT(mode))
    return None if kind is None else f"not a regular file ({kind}): not read"


def read_segments(
    path: Location,
    reading: FileReading,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[Segment]:
    """The text of a stream file in segments of whole records; what else is found goes in ``reading``."""
    with _opened(path, reading) as handle:
        if handle is not None:
            raw = _raw(handle, max_bytes, reading, limits.read_bytes)
            yield from _Cutter(reading, limits).segments(_decoded(raw, reading))


def read_text(path: Location, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, list[Problem]]:
    """The whole decoded text of a (small) stream file and the problems met while reading it."""
    reading = FileReading()
    with _opened(path, reading) as handle:
        if handle is None:
            return "", reading.problems
        raw = _raw(handle, max_bytes, reading, DEFAULT_LIMITS.read_bytes)
        text = "".join(piece for piece, _ in _decoded(raw, reading))
    if not text and not reading.problems:
        reading.problems.append(Problem("empty file: nothing to read"))
    return text, reading.problems


def first_record_day(path: Location, limit: int = 1 << 20) -> str | None:
    """The day of the first timestamped record in the first ``limit`` bytes of a file, if any."""
    reading = FileReading()
    read = 0
    with _opened(path, reading) as handle:
        if handle is None:
            return None
        raw = _raw(handle, limit, reading, DEFAULT_LIMITS.read_bytes)
        for text, at_line_start in _decoded(raw, reading):
            match = (
                _STAMPED.match(text) if at_line_start and read == 0 else None
            ) or _STAMPED_AFTER_NEWLINE.search(text)
            if match is not None:
                return match.group().lstrip("\n")[:10]
            read += len(text)
    return None


def split_records(text: str, first_line: int = 1) -> tuple[Records, list[Problem]]:
    """Cut text into records (lines numbered from ``first_line``); text before the first timestamp
    is a problem, not a record."""
    head_end, lines, stamps, bodies = _native.split_records(text)
    if first_line != 1:
        lines = [line + first_line - 1 for line in lines]
    problems: list[Problem] = []
    head = text[:head_end]
    if head.strip():
        problems.append(
            Problem("text without a timestamp before the first record", first_line, excerpt(head))
        )
    if None in stamps:  # XRAY lines before any timestamped record
        keep = [index for index, stamp in enumerate(stamps) if stamp is not None]
        problems.extend(
            Problem("XRAY line before any timestamped record", lines[index], excerpt(bodies[index]))
            for index, stamp in enumerate(stamps)
            if stamp is None
        )
        lines, stamps, bodies = (
            [lines[index] for index in keep],
            [stamps[index] for index in keep],
            [bodies[index] for index in keep],
        )
    return Records(lines, stamps, bodies), problems


@contextmanager
def _opened(path: Location, reading: FileReading) -> Iterator[BinaryIO | None]:
    """A regular file opened for reading (None, with the reason in ``reading``, for anything else).

    Opened without blocking, then checked: opening a FIFO for reading would wait for a writer.
    A file of another store (an ``S3Object``) opens itself as a seekable stream."""
    if not isinstance(path, str | os.PathLike):
        try:
            stream = path.open_binary()
        except OSError as exc:
            reading.problems.append(Problem(f"file could not be read: {exc}"))
            yield None
            return
        reading.file_size = path.size
        with stream:
            yield stream
        return
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        reading.problems.append(Problem(f"file could not be read: {exc.strerror or exc}"))
        yield None
        return
    status = os.fstat(descriptor)
    refusal = not_regular(status.st_mode)
    if refusal:
        os.close(descriptor)
        reading.problems.append(Problem(refusal))
        yield None
        return
    os.set_blocking(descriptor, True)
    reading.file_size = status.st_size
    with os.fdopen(descriptor, "rb") as handle:
        yield handle


def _raw(
    handle: BinaryIO, max_bytes: int, reading: FileReading, read_bytes: int
) -> Iterator[bytes]:
    """The file's bytes, inflated when it is gzip, ``read_bytes`` at a time, up to ``max_bytes``."""
    reading.gzip = handle.read(2) == GZIP_MAGIC
    handle.seek(0)
    if not reading.gzip:
        yield from _plain(handle, max_bytes, reading, read_bytes)
        return
    emitted = 0
    try:
        for data in _inflate(handle, max_bytes, reading, zlib_impl, read_bytes):
            emitted += len(data)
            yield data
    except _CorruptError:  # ISA-L cannot copy an inflater: zlib reads again, to keep what it can
        handle.seek(0)
        yield from _inflate(handle, max_bytes, reading, zlib, read_bytes, skip=emitted)


def _plain(
    handle: BinaryIO, max_bytes: int, reading: FileReading, read_bytes: int
) -> Iterator[bytes]:
    while data := handle.read(min(read_bytes, max_bytes - reading.bytes_read + 1)):
        if reading.bytes_read + len(data) > max_bytes:
            data = data[: max_bytes - reading.bytes_read]
            left = reading.file_size - max_bytes
            _damaged(
                reading,
                f"file larger than the {max_bytes:,}-byte limit: the rest ({left:,} bytes) not read",
            )
        reading.bytes_read += len(data)
        reading.compressed_read = reading.bytes_read
        if data:
            yield data
        if reading.damage:
            return


class _CorruptError(Exception):
    """ISA-L met damage: the file is read again with zlib, which can keep what precedes it."""


def _inflate(
    handle: BinaryIO, max_bytes: int, reading: FileReading, module, read_bytes: int, skip: int = 0
) -> Iterator[bytes]:
    """Inflate gzip members one step at a time, stopping at damage or at ``max_bytes``; the first
    ``skip`` bytes (already handed on) are not handed on again."""
    inflater = module.decompressobj(wbits=_GZIP_WBITS)
    produced = 0
    started = False
    pending = b""
    position = 0
    while True:
        data = pending or handle.read(_COMPRESSED_CHUNK)
        pending = b""
        if not data:
            out = inflater.flush() if started else b""
            if out:
                yield from _handed_on(out, produced, skip, reading)
                produced += len(out)
            break
        if not started and not data.strip(b"\0"):
            position += len(data)
            continue  # zero padding after the last member
        started = True
        snapshot = inflater.copy() if module is zlib else None
        try:
            out = inflater.decompress(data, read_bytes)
        except module.error as exc:
            if snapshot is None:
                raise _CorruptError from exc
            out = _salvage(snapshot, data, read_bytes)
            yield from _handed_on(out, produced, skip, reading)
            produced += len(out)
            _damaged(reading, f"corrupt gzip after {produced:,} decompressed bytes: {exc}")
            return
        pending = inflater.unconsumed_tail
        if inflater.eof:  # one member done; what follows is another member, padding or garbage
            pending = inflater.unused_data
            inflater = module.decompressobj(wbits=_GZIP_WBITS)
            started = False
        position += len(data) - len(pending)
        reading.compressed_read = position
        if produced + len(out) > max_bytes:
            out = out[: max_bytes - produced]
            yield from _handed_on(out, produced, skip, reading)
            left = reading.file_size - position
            _damaged(
                reading,
                f"gzip inflates past the {max_bytes:,}-byte limit: the rest ({left:,} compressed bytes) not read",
            )
            return
        yield from _handed_on(out, produced, skip, reading)
        produced += len(out)
    if started:
        _damaged(reading, f"truncated gzip: file ends after {produced:,} decompressed bytes")


def _handed_on(out: bytes, produced: int, skip: int, reading: FileReading) -> Iterator[bytes]:
    if produced + len(out) > skip:
        data = out[max(0, skip - produced) :]
        reading.bytes_read += len(data)
        yield data


def _damaged(reading: FileReading, reason: str) -> None:
    reading.damage = reason
    reading.problems.append(Problem(reason))


def _salvage(inflater, data: bytes, limit: int) -> bytes:
    """What ``inflater`` yields from ``data`` fed in small slices, up to the slice that fails."""
    out: list[bytes] = []
    for start in range(0, len(data), _SALVAGE_SLICE):
        try:
            out.append(inflater.decompress(data[start : start + _SALVAGE_SLICE], limit))
        except zlib.error:
            break
    return b"".join(out)


def _decoded(chunks: Iterator[bytes], reading: FileReading) -> Iterator[tuple[str, bool]]:
    """UTF-8 text (invalid bytes replaced and reported) with ``\\n`` line ends, cut after a line end
    where it can be, with whether each piece starts a line."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lone_cr: bool | None = None  # decided on the first text: lines end with a lone CR
    held = ""  # the partial last line (or a CR that may start a CRLF), waiting for the next piece
    at_line_start = True
    offset = 0
    for data, final in _with_last(chunks):
        try:
            state = decoder.getstate()
            text = decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            if not reading.bad_utf8:
                reading.problems.append(
                    Problem(
                        f"invalid UTF-8 at byte {offset + exc.start - len(state[0]):,}: bad bytes replaced by U+FFFD"
                    )
                )
            reading.bad_utf8 = True
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            decoder.setstate(state)
            text = decoder.decode(data, final)
        offset += len(data)
        text = held + text
        if lone_cr is None and text:
            lone_cr = "\r" in text and text.count("\r") - text.count("\r\n") > text.count("\n")
        if text.endswith("\r") and not final:
            text, held = text[:-1], "\r"
        else:
            held = ""
        text = text.replace("\r\n", "\n")
        if lone_cr:
            text = text.replace("\r", "\n")
        cut = text.rfind("\n") + 1
        if not final and len(text) - cut <= _LINE_HOLD:
            text, held = text[:cut], text[cut:] + held
        if text:
            yield text, at_line_start
            at_line_start = text.endswith("\n")
    if held:
        yield held, at_line_start


def _with_last(items: Iterator[_T]) -> Iterator[tuple[_T, bool]]:
    """Each item with whether it is the last one."""
    iterator = iter(items)
    previous = next(iterator, _NOTHING)
    while previous is not _NOTHING:
        item = next(iterator, _NOTHING)
        yield previous, item is _NOTHING  # type: ignore[misc]
        previous = item


class _Cutter:
    """Cuts decoded text into segments of whole records, each cut before a timestamped record.

    The text before the first record is one record, kept only as an excerpt; a record longer than
    ``limits.max_record_chars`` is kept only as an excerpt too. Both are quarantined and counted.
    """

    def __init__(self, reading: FileReading, limits: ReadLimits) -> None:
        self.reading, self.limits = reading, limits
        self.buffer = ""  # text from the start of the current record (nothing before the first one)
        self.line = 1  # line number of the buffer's first line
        self.head = ""  # the start of the text before the first record, for its excerpt
        self.head_blank = True
        self.started = False
        self.skipping = False  # inside a record too long to keep
        self.oversized: Problem | None = None
        self.since_record = 0  # characters since the last record start
        self.compressed_at_record = 0

    def segments(self, texts: Iterator[tuple[str, bool]]) -> Iterator[Segment]:
        for (text, at_line_start), last in _with_last(texts):
            if not self.started:
                text = self._head(text, at_line_start)
                if text is None:
                    if self._bomb():
                        break
                    continue
                at_line_start = True
            cut = self._last_stamped(text, at_line_start)
            if last and cut >= 0 and not self.skipping:
                self.buffer += text  # whole records to the end: one last segment
                break
            if cut < 0:
                self._grow(text)
                if self._bomb():
                    break
                continue
            if self.skipping:
                self._end_skipping(text[:cut])
                self.buffer = ""
            else:
                self.buffer += text[:cut]
            if self.buffer:
                yield self._segment(self.buffer)
            self.buffer = text[cut:]
            self.since_record = len(self.buffer)
            self.compressed_at_record = self.reading.compressed_read
        yield from self._end()

    def _head(self, text: str, at_line_start: bool) -> str | None:
        """Consume text before the first record; return the text from the first record, if any."""
        match = _RECORD.match(text) if at_line_start else None
        if match is None:
            found = _RECORD_AFTER_NEWLINE.search(text)
            start = found.start() + 1 if found else -1
        else:
            start = 0
        head = text if start < 0 else text[:start]
        if len(self.head) < EXCERPT_CHARS * 2:
            self.head += head[: EXCERPT_CHARS * 2]
        self.head_blank = self.head_blank and (not head or head.isspace())
        self.line += head.count("\n")
        self.since_record += len(head)
        if start < 0:
            return None
        self._end_head()
        self.started = True
        return text[start:]

    def _end_head(self) -> None:
        if not self.head_blank:
            self.reading.record_problems.append(
                Problem("text without a timestamp before the first record", 1, excerpt(self.head))
            )
            self.reading.records_counted += 1
        self.head_blank = True

    def _last_stamped(self, text: str, at_line_start: bool) -> int:
        """Where the last timestamped record in ``text`` starts (not at 0 when nothing comes before
        it in the buffer), or -1."""
        end = len(text)
        while (newline := text.rfind("\n", 0, end)) >= 0:
            if _STAMPED.match(text, newline + 1):
                return newline + 1
            end = newline
        if at_line_start and _STAMPED.match(text) and (self.buffer or self.skipping):
            return 0
        return -1

    def _grow(self, text: str) -> None:
        """Text without a new timestamped record: the current record (or the skipped one) grows."""
        self.since_record += len(text)
        if self.skipping:
            self.line += text.count("\n")
            return
        self.buffer += text
        if len(self.buffer) > (limit := self.limits.max_record_chars):
            self.skipping = True
            self.oversized = Problem(
                f"record longer than {limit:,} characters: quarantined, only an excerpt kept",
                self.line,
                excerpt(self.buffer),
            )
            self.line += self.buffer.count("\n")
            self.buffer = ""

    def _end_skipping(self, rest: str) -> None:
        assert self.oversized is not None
        self.line += rest.count("\n")
        self.reading.record_problems.append(self.oversized)
        self.reading.records_counted += 1
        self.skipping = False

    def _segment(self, text: str) -> Segment:
        segment = Segment(text, self.line)
        self.reading.records_counted += len(_RECORD_AFTER_NEWLINE.findall(text)) + 1
        self.line += text.count("\n")
        return segment

    def _bomb(self) -> bool:
        """Whether the text since the last record is a gzip bomb: then stop, counting what is left."""
        reading, limits = self.reading, self.limits
        compressed = max(1, reading.compressed_read - self.compressed_at_record)
        if not (
            reading.gzip
            and self.since_record >= limits.bomb_bytes
            and self.since_record >= limits.bomb_ratio * compressed
        ):
            return False
        left = reading.file_size - reading.compressed_read
        reason = (
            f"gzip bomb: {self.since_record:,} bytes inflated from {compressed:,} compressed bytes "
            f"({self.since_record // compressed:,}:1) without a log record; the rest "
            f"({left:,} compressed bytes) not read"
        )
        reading.damage = reason
        reading.problems.append(Problem(reason))
        return True

    def _end(self) -> Iterator[Segment]:
        reading = self.reading
        if not self.started:
            self._end_head()
            if reading.bytes_read == 0 and not reading.problems:
                reading.problems.append(Problem("empty file: nothing to read"))
        elif self.skipping:
            self._end_skipping("")
        elif self.buffer:
            if reading.damage and not self.buffer.endswith("\n"):
                reading.cut_off = reading.damage
            yield self._segment(self.buffer)
