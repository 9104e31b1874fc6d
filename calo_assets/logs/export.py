"""Find the log streams of one or more CloudWatch exports and read each stream's files exactly once.

Layout, as CloudWatch writes it to S3::

    <export id>/<stream creation day>-[<version>]<stream id>/000000.gz   (000001.gz, ... for big streams)

A stream folder is found at any depth under the log root, so the root may hold one export, several
exports, or be an export folder itself. A file is gzip when it starts with the gzip magic bytes,
whatever its name. When ``000000`` and ``000000.gz`` both exist, and when the same stream folder is in
two exports, the part is read once; the other copies are listed as duplicates. Everything else is junk
(``.DS_Store`` and the like): ignored and counted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

STREAM_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})-\[[^\]/]*\][0-9A-Za-z]+$")
PART_FILE = re.compile(r"^(\d{6})(\.gz)?$")
# A stream folder is named after the day its stream started, and a stream may run past midnight:
# day D reads the folders of D - LOOKBACK_DAYS .. D. The one place this rule is written.
LOOKBACK_DAYS = 1


def folder_days_read_by(day: str) -> list[str]:
    """The stream-folder days whose files can hold records of ``day``, oldest first."""
    start = date.fromisoformat(day)
    return [(start - timedelta(days=back)).isoformat() for back in range(LOOKBACK_DAYS, -1, -1)]


def days_reading_folder(folder_day: str) -> list[str]:
    """The log days whose runs read the stream folders of ``folder_day``."""
    start = date.fromisoformat(folder_day)
    return [(start + timedelta(days=ahead)).isoformat() for ahead in range(LOOKBACK_DAYS + 1)]


@dataclass(frozen=True, slots=True, order=True)
class StreamPart:
    """One file to read: part ``part`` of the stream in folder ``stream``."""

    stream: str
    part: str
    path: Path

    @property
    def folder_day(self) -> str:
        return self.stream[:10]

    @property
    def label(self) -> str:
        return f"{self.stream}/{self.path.name}"


@dataclass(slots=True)
class Discovery:
    """What was found under the log root."""

    parts: list[StreamPart] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    junk: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)

    def days(self) -> list[str]:
        """The stream-folder days present, sorted."""
        return sorted({part.folder_day for part in self.parts})

    def parts_for_days(self, days: Iterable[str]) -> list[StreamPart]:
        """Parts whose records can belong to ``days``: folders of each day and the days before it."""
        wanted = {folder for day in days for folder in folder_days_read_by(day)}
        return [part for part in self.parts if part.folder_day in wanted]


def discover(root: Path) -> Discovery:
    """List the stream parts under ``root`` (not following links that leave it)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"log folder not found: {root}")
    real_root = root.resolve()
    found = Discovery()
    chosen: dict[tuple[str, str], StreamPart] = {}
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders.sort()
        folder_path = Path(folder)
        match = STREAM_FOLDER.match(folder_path.name)
        for name in sorted(files):
            path = folder_path / name
            part_match = PART_FILE.match(name) if match else None
            if part_match is None:
                found.junk.append(path)
                continue
            refusal = _refusal(path, real_root)
            if refusal:
                found.refused.append((path, refusal))
                continue
            key = (folder_path.name, part_match.group(1))
            candidate = StreamPart(folder_path.name, part_match.group(1), path)
            previous = chosen.get(key)
            if previous is None:
                chosen[key] = candidate
            elif _prefer(candidate, previous):
                found.duplicates.append(previous.path)
                chosen[key] = candidate
            else:
                found.duplicates.append(path)
    found.parts = sorted(chosen.values())
    return found


def _prefer(candidate: StreamPart, current: StreamPart) -> bool:
    """Of two copies of one part, keep the gzip-named one, then the larger, then the first found."""

    def rank(part: StreamPart) -> tuple[bool, int]:
        return (part.path.suffix == ".gz", _size(part.path))

    return rank(candidate) > rank(current)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _refusal(path: Path, real_root: Path) -> str | None:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(real_root):
            return f"symbolic link to {target} outside the log folder: not followed"
    if not os.access(path, os.R_OK):
        return "file not readable (permission denied)"
    return None
