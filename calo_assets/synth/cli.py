"""``calo-synth-logs``: write a synthetic CloudWatch export of the balance-sync Lambda."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

from calo_assets.synth.generator import SynthConfig, generate


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="calo-synth-logs",
        description="Write a synthetic CloudWatch export (real layout and line shapes) of the "
        "balance-sync Lambda. The same arguments always give the same files.",
    )
    parser.add_argument(
        "output", type=Path, help="folder to write the export into (created if missing)"
    )
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2024, 3, 1),
        help="first day (default 2024-03-01)",
    )
    parser.add_argument("--days", type=int, default=7, help="number of days (default 7)")
    volume = parser.add_mutually_exclusive_group()
    volume.add_argument(
        "--invocations-per-day",
        type=int,
        default=60,
        help="Lambda invocations per day (default 60)",
    )
    volume.add_argument(
        "--bytes-per-day",
        type=_size,
        help="approximate uncompressed log size per day, e.g. 500K, 1G",
    )
    parser.add_argument("--users", type=int, default=40, help="number of subscribers (default 40)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--compression-level",
        type=int,
        default=2,
        choices=range(4),
        help="gzip level 0-3 (default 2)",
    )
    parser.add_argument(
        "--truth", type=Path, help="also write what was generated (counts, sums) as JSON here"
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    if args.invocations_per_day < 1 or (args.bytes_per_day is not None and args.bytes_per_day < 1):
        parser.error("the volume per day must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = SynthConfig(
        start=args.start,
        days=args.days,
        invocations_per_day=args.invocations_per_day,
        bytes_per_day=args.bytes_per_day,
        seed=args.seed,
        users=args.users,
        compression_level=args.compression_level,
    )
    began = time.perf_counter()
    truth = generate(args.output, config)
    summary = truth.as_dict()
    if args.truth:
        args.truth.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"wrote {truth.streams} streams, {truth.invocations} invocations, {truth.transactions} transactions "
        f"over {args.days} day(s) from {args.start} into {args.output} in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
