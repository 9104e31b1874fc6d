"""Memory: peak RSS (this process and every worker together) while a big synthetic day is read and
its daily tables written. Usage::

    python -m benchmarks.memory [--bytes-per-day 1G] [--log-dir EXPORT] [--quick]

``--log-dir`` reuses an export of one day made by ``calo-synth-logs DIR --days 1 --bytes-per-day 1G --compression-level 1``
(generating a gigabyte takes minutes).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from benchmarks.common import INGEST_AND_SYNC, PeakMemory, materialize, synthetic_export
from calo_assets.logs.export import discover
from calo_assets.synth.cli import _size


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes-per-day", type=_size, default=1 << 30)
    parser.add_argument("--log-dir", type=Path, help="an existing one-day export to read")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.bytes_per_day = 2 << 20
    day = date(2024, 3, 1)
    with tempfile.TemporaryDirectory() as folder:
        if args.log_dir is not None:
            logs, found = args.log_dir, discover(args.log_dir)
            day = date.fromisoformat(found.days()[0])  # the day materialized: its files only
            text_bytes = sum(
                _text_size(part.path) for part in found.parts if part.folder_day == day.isoformat()
            )
        else:
            logs = synthetic_export(
                Path(folder) / "logs", day, 1, bytes_per_day=args.bytes_per_day, compression_level=1
            )
            text_bytes = args.bytes_per_day
        with PeakMemory() as memory:
            seconds = materialize(
                logs, Path(folder) / "warehouse", day.isoformat(), day.isoformat(), INGEST_AND_SYNC
            )
    peak = memory.peak / 2**20
    print(
        f"a day of about {text_bytes / 2**20:,.0f} MiB of log text: {seconds:.1f} s, peak RSS {peak:,.0f} MiB (target < 1,536 MiB for 1 GiB)"
    )
    return {"seconds": seconds, "peak MiB": peak}


def _text_size(path: Path) -> int:
    """Uncompressed size of a stream file (the gzip trailer's size modulo 4 GiB is enough here)."""
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return path.stat().st_size
        handle.seek(-4, 2)
        return int.from_bytes(handle.read(4), "little")


if __name__ == "__main__":
    main()
