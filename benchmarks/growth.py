"""Growth: a daily run on day N of a synthetic history costs about the same as on day 1.

Daily assets (ingest, sync tables, anomaly scores) read only their day, the day before and the
anomaly window, so their cost should stay flat; the reconciliation over the whole history is timed
too. Usage::

    python benchmarks/growth.py [--days 60] [--invocations-per-day 600] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date, timedelta
from pathlib import Path

from benchmarks.common import DAILY, HISTORY, materialize, synthetic_export
from calo_assets.ledger.anomalies import DEFAULT_WINDOW_DAYS


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--invocations-per-day", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.invocations_per_day, args.repeat = 3, 20, 1
    start = date(2024, 1, 1)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        logs = synthetic_export(
            root / "logs", start, args.days, invocations_per_day=args.invocations_per_day
        )
        warehouse = root / "warehouse"
        last = (start + timedelta(days=args.days - 1)).isoformat()
        materialize(logs, warehouse, start.isoformat(), last, DAILY)  # the history, once
        # Day 1, the first day with a full anomaly window, and day N in turn, best of each: a machine
        # that slows down for a while (it is shared) then weighs on all, not on whichever ran then.
        full = start + timedelta(days=min(DEFAULT_WINDOW_DAYS - 1, args.days - 1))  # the day counts
        probes = {"day 1": start, f"day {(full - start).days + 1} (full window)": full}
        probes[f"day {args.days}"] = start + timedelta(days=args.days - 1)
        runs: dict[str, list[float]] = {label: [] for label in probes}
        for _ in range(args.repeat):
            for label, day in probes.items():
                runs[label].append(
                    materialize(logs, warehouse, day.isoformat(), day.isoformat(), DAILY)
                )
        history = min(materialize(logs, warehouse, last, last, HISTORY) for _ in range(args.repeat))
    best = {label: min(seconds) for label, seconds in runs.items()}
    first, window_full, last_day = best.values()
    figures = {
        **{f"{label} (s)": seconds for label, seconds in best.items()},
        "ratio": last_day / first,
        "ratio to the full-window day": last_day / window_full,
        "history (s)": history,
    }
    print("   ".join(f"{label}: {seconds:.2f} s" for label, seconds in best.items()))
    print(
        f"day {args.days} / day 1: {last_day / first:.2f} (target <= 1.3)   "
        f"day {args.days} / first day with a full {DEFAULT_WINDOW_DAYS}-day anomaly window: {last_day / window_full:.2f}"
    )
    print(
        f"reconciliation over {args.days} days of {args.invocations_per_day} invocations/day: {history:.2f} s"
    )
    return figures


if __name__ == "__main__":
    main()
