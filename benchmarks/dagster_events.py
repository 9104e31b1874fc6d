"""Dagster's own cost per partition: a do-nothing asset of five daily tables, the shape of the sync step.

It reports its five outputs for 127 days in one run (635 materializations, as the sync step does for
the real export) and, as the baseline in the same process, for one day; the difference divided by the
extra materializations is what Dagster spends on each, with no work of ours in it. Usage::

    python -m benchmarks.dagster_events [--days 127] [--repeat 3]
"""

import argparse
import time
from datetime import date, timedelta

import dagster as dg

TABLES = 5
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2024-01-01")


@dg.multi_asset(
    specs=[dg.AssetSpec(f"table_{index}", partitions_def=PARTITIONS) for index in range(TABLES)],
    partitions_def=PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def do_nothing(context: dg.AssetExecutionContext):
    for index in range(TABLES):
        yield dg.MaterializeResult(
            asset_key=f"table_{index}", metadata={"dagster/row_count": 1, "days": "a range"}
        )


def cpu_seconds(days: int) -> float:
    """CPU seconds of one in-process run of ``do_nothing`` over ``days`` days."""
    last = date(2024, 1, 1) + timedelta(days=days - 1)
    began = time.process_time()
    dg.materialize(
        [do_nothing],
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    return time.process_time() - began


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=127)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.repeat = 3, 1
    cpu_seconds(1)  # warm-up: imports and caches
    one, many = float("inf"), float("inf")
    for _ in range(args.repeat):  # alternating, best of each
        one = min(one, cpu_seconds(1))
        many = min(many, cpu_seconds(args.days))
    events = TABLES * args.days
    per_event = (many - one) / (events - TABLES)
    print(
        f"{events} materializations: {many:.2f} s CPU; baseline {TABLES} (one day): {one:.2f} s CPU; "
        f"ratio {many / one:.1f}; {per_event * 1000:.1f} ms CPU per extra materialization"
    )
    return {"many (s)": many, "one day (s)": one, "per materialization (s)": per_event}


if __name__ == "__main__":
    main()
