"""A stream's records in time order, whatever order its files hold them in, in bounded memory.

CloudWatch writes a stream in chunk files (``000000.gz``, ``000001.gz``, ...) and sometimes writes a
later part of a stream before an earlier one, inside a file or across files: an outcome can be
logged in another chunk than its transaction. The records of all of a stream's files are sorted by
time (ties keep file and line order) by an external merge sort: segments of text are kept in memory
up to ``ReadLimits.sort_buffer_chars``, then cut into records, sorted and spilled to a temporary folder as a
sorted run; the runs are merged at the end, or read in turn when they do not overlap (the usual
case: a stream in order costs one write and one read of its text, and no comparison).
"""

from __future__ import annotations

import heapq
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from calo_assets.logs.reader import Problem, Segment, split_records

_RUN_SLICE = 10_000  # records per pickled slice of a spilled run
CANONICAL_TIMESTAMP_LENGTH = len("2024-01-01T00:00:00.000Z")


class Chunk(NamedTuple):
    """Records as columns: the file each comes from (its index), line, timestamp, text after it."""

    files: list[int]
    lines: list[int]
    stamps: list[str]
    bodies: list[str]


class OrderedRecords:
    """A stream's records in time order whatever order its files hold them in, memory bounded.

    Segments are kept as text (a stream of the day before the run that never logs into it is never
    cut into records) up to ``buffer_chars`` of text; then cut, sorted and spilled to a temporary file as
    a sorted run. ``chunks`` merges the runs (or, when they do not overlap, reads them in turn).
    Ties keep file and line order.
    """

    def __init__(self, look_for: list[str] | None, buffer_chars: int) -> None:
        self.buffer_chars = buffer_chars
        self.look_for = [(f"{day}T", f"\n{day}T") for day in look_for or ()]
        self.holds_a_day_looked_for = False
        self.segments: list[tuple[int, str, int]] = []  # file index, text, first line
        self.chars = 0
        self.runs: list[tuple[Path, str, str]] = []  # file, first key, last key
        self.folder: str | None = None
        self.problems: dict[int, list[Problem]] = {}  # per file, from cutting records
        self.last_lines: dict[int, int] = {}  # per file, the line of its last record
        self.in_memory = Chunk([], [], [], [])

    def __enter__(self) -> OrderedRecords:
        return self

    def __exit__(self, *_) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, file: int, segment: Segment) -> None:
        if self.look_for and not self.holds_a_day_looked_for:
            text = segment.text
            self.holds_a_day_looked_for = any(
                text.startswith(first) or later in text for first, later in self.look_for
            )
        self.segments.append((file, segment.text, segment.first_line))
        self.chars += len(segment.text)
        if self.chars > self.buffer_chars:
            self._spill_buffer()

    def close(self) -> None:
        """All files read: cut the last segments into records (``problems`` and ``last_lines`` are
        complete after this) and spill them when the stream spilled already."""
        if self.runs:
            if self.segments:
                self._spill_buffer()
        else:
            self.in_memory = self._sorted()[1]

    def chunks(self, size: int) -> Iterator[Chunk]:
        """The records in time order, ``size`` at a time (after ``close``)."""
        if not self.runs:
            yield from _slices(self.in_memory, size)
            return
        ordered = all(self.runs[i][2] <= self.runs[i + 1][1] for i in range(len(self.runs) - 1))
        records = (
            (record for path, _, _ in self.runs for record in _run_records(path))
            if ordered
            else heapq.merge(
                *(_run_records(path, index) for index, (path, _, _) in enumerate(self.runs))
            )
        )
        while batch := list(islice(records, size)):
            yield Chunk(
                *(list(column) for column in zip(*(record[-4:] for record in batch), strict=True))
            )

    def _spill_buffer(self) -> None:
        keys, chunk = self._sorted()
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix="calo-sort-")
        if keys:
            self.runs.append((spill(keys, chunk, Path(self.folder)), keys[0], keys[-1]))

    def _sorted(self) -> tuple[list[str], Chunk]:
        """The buffered segments cut into records, in time order; the buffer is emptied."""
        chunk = Chunk([], [], [], [])
        for file, text, first_line in self.segments:
            records, problems = split_records(text, first_line)
            self.problems.setdefault(file, []).extend(problems)
            if records:
                self.last_lines[file] = records.lines[-1]
            chunk.files.extend([file] * len(records))
            chunk.lines.extend(records.lines)
            chunk.stamps.extend(records.stamps)
            chunk.bodies.extend(records.bodies)
        self.segments, self.chars = [], 0
        stamps = chunk.stamps
        keys = (
            stamps
            if set(map(len, stamps)) <= {CANONICAL_TIMESTAMP_LENGTH}
            else [sort_key(stamp) for stamp in stamps]
        )
        if keys == sorted(keys):
            return keys, chunk
        order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: file, line order kept
        return [keys[i] for i in order], Chunk(*([column[i] for i in order] for column in chunk))


def _slices(chunk: Chunk, size: int) -> Iterator[Chunk]:
    for start in range(0, len(chunk.files), size):
        yield Chunk(*(column[start : start + size] for column in chunk))


def spill(keys: list[str], chunk: Chunk, folder: Path) -> Path:
    """Write a sorted run of records to a file in ``folder`` (pickled slices); return its path."""
    descriptor, name = tempfile.mkstemp(dir=folder, suffix=".run")
    with os.fdopen(descriptor, "wb") as handle:
        for start in range(0, len(keys), _RUN_SLICE):
            end = start + _RUN_SLICE
            pickle.dump(
                (keys[start:end], *(column[start:end] for column in chunk)),
                handle,
                pickle.HIGHEST_PROTOCOL,
            )
    return Path(name)


def _run_records(path: Path, run: int = 0) -> Iterator[tuple]:
    """The records of a spilled run, one at a time: (key, run, position, file, line, stamp, body)."""
    position = 0
    with path.open("rb") as handle:
        while True:
            try:
                keys, files, lines, stamps, bodies = pickle.load(handle)
            except EOFError:
                return
            for record in zip(keys, files, lines, stamps, bodies, strict=True):
                yield (record[0], run, position, *record[1:])
                position += 1


def sort_key(stamp: str) -> str:
    """A key that sorts timestamps of any fraction length by instant: the millisecond form, then
    the digits beyond it without trailing zeros."""
    if len(stamp) == CANONICAL_TIMESTAMP_LENGTH:
        return stamp
    fraction = stamp[20:-1] if len(stamp) > 20 else ""
    return canonical(stamp) + fraction[3:9].rstrip("0")


def canonical(stamp: str) -> str:
    """The timestamp with three fraction digits (cut, not rounded: the tables hold milliseconds)."""
    if len(stamp) == CANONICAL_TIMESTAMP_LENGTH:
        return stamp
    fraction = stamp[20:-1] if len(stamp) > 20 else ""
    return f"{stamp[:19]}.{fraction[:3].ljust(3, '0')}Z"
