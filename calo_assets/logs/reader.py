"""Read one stream file into text and cut it into records.

A file is decompressed when it starts with the gzip magic bytes, whatever its name. Decompression
stops at ``max_bytes`` (a gzip bomb cannot exhaust memory); a damaged gzip keeps the text decoded before
the damage. Every problem is returned as a ``Problem`` for quarantine; nothing raises for bad input.

A record starts at a line beginning with an ISO timestamp (``2024-01-05T10:00:00.123Z``, zero to nine
fraction digits, ASCII digits) and a space; the lines after it without a timestamp (Node's multi-line
objects) belong to it. ``XRAY TraceId:`` lines, which Lambda appends to ``REPORT`` without a
timestamp, are records of their own with the timestamp of the record before. The cutting is done in
one compiled pass (``_native.split_records``): at a few microseconds a record in Python it cost more
than decompressing the file.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from calo_assets.logs import _native

try:  # ISA-L's gzip is several times faster than zlib's; the standard library is the fallback.
    from isal import igzip as gzip_impl
    from isal import isal_zlib as zlib_impl
except ImportError:  # pragma: no cover - exercised only where isal is missing
    import gzip as gzip_impl  # type: ignore[no-redef]

    zlib_impl = zlib  # type: ignore[assignment]

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_BYTES = 1 << 30
# Deflate cannot expand data more than about 1032 times: below this bound a file is safe to inflate at once.
_MAX_DEFLATE_RATIO = 1100
_CHUNK = 1 << 16
_GZIP_WBITS = 31  # zlib's "gzip container" mode
_SALVAGE_SLICE = 1  # one compressed byte at a time: only what follows the damage is lost
EXCERPT_CHARS = 200


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


def excerpt(text: str) -> str:
    """A short, single-line excerpt of ``text`` for quarantine rows."""
    flat = text[: EXCERPT_CHARS * 2].replace("\r", " ").replace("\n", "\\n")
    return flat[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def read_text(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, list[Problem]]:
    """Return the decoded text of a stream file and the problems met while reading it."""
    problems: list[Problem] = []
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
            handle.seek(0)
            if magic == GZIP_MAGIC:
                data = _inflate(handle, path, max_bytes, problems)
            else:
                data = handle.read(max_bytes + 1)
                if len(data) > max_bytes:
                    data = data[:max_bytes]
                    problems.append(
                        Problem(f"file larger than the {max_bytes:,}-byte limit: rest not read")
                    )
    except OSError as exc:
        return "", [Problem(f"file could not be read: {exc.strerror or exc}")]
    if not data and not problems:
        problems.append(Problem("empty file: nothing to read"))
    try:
        return data.decode("utf-8"), problems
    except UnicodeDecodeError as exc:
        problems.append(Problem(f"invalid UTF-8 at byte {exc.start}: bad bytes replaced by U+FFFD"))
        return data.decode("utf-8", errors="replace"), problems


def _inflate(handle, path: Path, max_bytes: int, problems: list[Problem]) -> bytes:
    if path.stat().st_size * _MAX_DEFLATE_RATIO <= max_bytes:
        raw = handle.read()
        try:
            return gzip_impl.decompress(raw)
        except (OSError, EOFError, zlib.error, zlib_impl.error):
            handle.seek(
                0
            )  # damaged: inflate again step by step to keep what comes before the damage
    return _inflate_steps(handle, max_bytes, problems)


def _inflate_steps(handle, max_bytes: int, problems: list[Problem]) -> bytes:
    """Inflate gzip members one input chunk at a time, stopping at damage or at ``max_bytes``."""
    chunks: list[bytes] = []
    total = 0
    # The standard zlib here: its inflaters can be copied, which lets a damaged chunk be re-read in
    # small slices so that everything before the damage is kept.
    inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
    started = False
    pending = b""
    while True:
        data = pending or handle.read(_CHUNK)
        pending = b""
        if not data:
            break
        if not started and not data.strip(b"\0"):
            continue  # zero padding after the last member
        started = True
        snapshot = inflater.copy()
        try:
            out = inflater.decompress(data, max_bytes - total + 1)
        except zlib.error as exc:
            salvaged = _salvage(snapshot, data, max_bytes - total + 1)
            total += len(salvaged)
            problems.append(Problem(f"corrupt gzip after {total:,} decompressed bytes: {exc}"))
            return b"".join([*chunks, salvaged])[:max_bytes]
        chunks.append(out)
        total += len(out)
        if total > max_bytes:
            problems.append(
                Problem(
                    f"gzip inflates past the {max_bytes:,}-byte limit (gzip bomb?): rest not read"
                )
            )
            return b"".join(chunks)[:max_bytes]
        pending = inflater.unconsumed_tail
        if inflater.eof:  # one member done; what follows is another member, padding or garbage
            pending = inflater.unused_data
            inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
            started = False
    if started:
        problems.append(Problem(f"truncated gzip: file ends after {total:,} decompressed bytes"))
    return b"".join(chunks)


def _salvage(inflater, data: bytes, limit: int) -> bytes:
    """What ``inflater`` yields from ``data`` fed in small slices, up to the slice that fails."""
    out: list[bytes] = []
    for start in range(0, len(data), _SALVAGE_SLICE):
        try:
            out.append(inflater.decompress(data[start : start + _SALVAGE_SLICE], limit))
        except zlib.error:
            break
    return b"".join(out)


def split_records(text: str) -> tuple[Records, list[Problem]]:
    """Cut text into records; text before the first timestamp is a problem, not a record."""
    head_end, lines, stamps, bodies = _native.split_records(text)
    problems: list[Problem] = []
    head = text[:head_end]
    if head.strip():
        problems.append(
            Problem("text without a timestamp before the first record", 1, excerpt(head))
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
