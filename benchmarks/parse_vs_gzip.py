"""Parse of a log export against a bare gzip read plus line iteration of the same files.

Both are measured in this process, in the same run, best of ``--repeat``; the figure that matters is
the ratio (these machines are shared and noisy). Usage::

    python benchmarks/parse_vs_gzip.py [--log-dir ../shared/real-logs] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

from benchmarks.common import add_log_dir_argument, best_of
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, default_workers, read_days


def bare_read(paths: list[Path]) -> int:
    """The baseline: decompress each file with the standard library and iterate its lines."""
    lines = 0
    for path in paths:
        with path.open("rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for _ in handle:
                lines += 1
    return lines


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    found = discover(args.log_dir)
    days = found.days()
    paths = [part.path for part in found.parts]
    size = sum(path.stat().st_size for path in paths)
    print(f"{len(paths)} files, {size / 1e6:.1f} MB compressed, {len(days)} stream-folder days")
    baseline, lines = best_of(args.repeat, lambda: bare_read(paths))
    print(f"baseline  gzip read + line iteration: {baseline:6.3f} s  ({lines:,} lines)")
    ratios = {}
    for workers in sorted({1, default_workers()}):
        options = IngestOptions(workers=workers)
        seconds, rows = best_of(
            args.repeat, lambda options=options: read_days(found, days, options)
        )
        records = sum(day.records_read for day in rows.values())
        print(
            f"parse     {workers} process(es):               {seconds:6.3f} s  ({records:,} records)"
            f"  ratio {seconds / baseline:4.2f}x"
        )
        ratios[f"{workers} process(es)"] = seconds / baseline
    return ratios


if __name__ == "__main__":
    main()
