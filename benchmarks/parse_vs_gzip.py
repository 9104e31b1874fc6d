"""Parse of a log export against a bare gzip read plus line iteration of the same files.

Both are measured in this process, in the same run, best of ``--repeat``; the figure that matters is
the ratio (these machines are shared and noisy). Usage::

    python -m benchmarks.parse_vs_gzip [--log-dir ../shared/real-logs] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
from pathlib import Path

from benchmarks.common import add_log_dir_argument, best_of
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, default_workers, stream_days


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


def parse(found, days: list[str], options: IngestOptions) -> int:
    """What the ingest asset reads: every day's rows as Arrow tables, dropped here instead of written."""
    return sum(
        row["records_read"] for piece in stream_days(found, days, options) for row in piece.manifest
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    found = discover(args.log_dir)
    days = found.days()
    paths = [part.path for part in found.parts]
    size = sum(path.stat().st_size for path in paths)
    print(f"{len(paths)} files, {size / 1e6:.1f} MB compressed, {len(days)} stream-folder days")
    contenders = {"baseline": lambda: bare_read(paths)}
    for workers in sorted({1, default_workers()}):
        options = IngestOptions(workers=workers)
        contenders[f"{workers} process(es)"] = lambda options=options: parse(found, days, options)
    # Rounds, each timing every contender once: a machine that slows down for a while slows all of
    # them, so the ratio of the best times is fairer than timing one contender's repeats, then the next.
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, object] = {}
    for _ in range(args.repeat):
        for name, work in contenders.items():
            seconds, results[name] = best_of(1, work)
            times[name].append(seconds)
    baseline = min(times["baseline"])
    print(
        f"baseline  gzip read + line iteration: {baseline:6.3f} s  ({results['baseline']:,} lines)"
    )
    ratios = {}
    for name in list(contenders)[1:]:
        best = min(times[name])
        round_ratios = sorted(
            mine / base for mine, base in zip(times[name], times["baseline"], strict=True)
        )
        records = results[name]
        print(
            f"parse     {name}: {best:6.3f} s  ({records:,} records)  ratio {best / baseline:4.2f}x"
            f"  (per round: {round_ratios[0]:.2f}x to {round_ratios[-1]:.2f}x,"
            f" median {statistics.median(round_ratios):.2f}x)"
        )
        ratios[name] = best / baseline
    return ratios


if __name__ == "__main__":
    main()
