"""The bounds on memory and work while an export is read, in one place (``IngestOptions.limits``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How much is read, held and handed on at a time; the defaults are the production values."""

    read_bytes: int = 4 << 20  # decompressed bytes read from a file at a time
    max_record_chars: int = 64 << 20  # a record longer than this is quarantined, not held
    bomb_bytes: int = 64 << 20  # inflated without a record at over bomb_ratio:1: a gzip bomb
    bomb_ratio: int = 100  # real logs compress 5 to 30 times
    sort_buffer_chars: int = (
        64 << 20
    )  # text of one stream sorted in memory; beyond it, runs go to disk
    piece_records: int = 20_000  # records classified, and rows of a day handed on, at a time
    batch_bytes: int = 1 << 19  # files read as one task: about this many compressed bytes...
    batch_files: int = 32  # ...or this many files (a stream's files always stay together)
    result_bytes: int = 32 << 20  # a worker's rows beyond this go back through a temporary file


DEFAULT_LIMITS = ReadLimits()
