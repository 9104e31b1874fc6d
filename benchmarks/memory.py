"""Memory: peak RSS (this process and every worker together) while a big synthetic day is read and
its daily tables written. Usage::

    python benchmarks/memory.py [--bytes-per-day 1G] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from benchmarks.common import PeakMemory, materialize, synthetic_export
from calo_assets.synth.cli import _size

DAILY = "group:logs or group:sync"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes-per-day", type=_size, default=1 << 30)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.bytes_per_day = 2 << 20
    day = date(2024, 3, 1)
    with tempfile.TemporaryDirectory() as folder:
        logs = synthetic_export(
            Path(folder) / "logs", day, 1, bytes_per_day=args.bytes_per_day, compression_level=1
        )
        text_bytes = args.bytes_per_day
        with PeakMemory() as memory:
            seconds = materialize(
                logs, Path(folder) / "warehouse", day.isoformat(), day.isoformat(), DAILY
            )
    peak = memory.peak / 2**20
    print(
        f"a day of about {text_bytes / 2**20:,.0f} MiB of log text: {seconds:.1f} s, peak RSS {peak:,.0f} MiB (target < 1,536 MiB for 1 GiB)"
    )
    return {"seconds": seconds, "peak MiB": peak}


if __name__ == "__main__":
    main()
