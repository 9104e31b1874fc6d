"""Reconciliation over a year at production volume, and how its time grows with the history.

Production volume: about a thousand times the real export's daily average of 109 transactions, i.e.
one synthetic day of 128 MiB of log text (``--bytes-per-day``), read once by the daily assets (ingest,
sync tables, anomaly scores). Every day of the year is that day again, its dates shifted by whole days
and its transaction, request, message and user ids made unique to the day: no balance chain runs
across two copies (it would break at each seam), and each copy's users are new users, so the per-user
tables hold 365 days of users, more than a real year where users come back.

The five history assets (ledger breaks, exposure, overdrafts, sync outcomes, user summary) then run
on the first quarter, the first half and the whole year (hard links to the same files), in one Dagster
run each. The baseline, measured on the same files just before each run, is one DuckDB scan of the
transactions (count and sum of amounts by currency): the least any reconciliation must read. With
``--work-dir``, the day and the year are kept and reused by the next run. Usage::

    python -m benchmarks.reconciliation [--days 365] [--bytes-per-day 128M] [--users 20000]
                                        [--log-dir EXPORT] [--work-dir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.common import DAILY, HISTORY, best_of, materialize, synthetic_export
from calo_assets.logs.export import discover
from calo_assets.synth.cli import _size
from calo_assets.warehouse import Warehouse

# The daily tables the history assets read.
INPUTS = (
    "transactions",
    "balance_discrepancies",
    "negative_balance_rejections",
    "log_events",
    "anomaly_scores",
)
IDS = ("transaction_id", "request_id", "message_id", "user_id")
SCAN_SQL = "select currency, count(*), sum(amount) from transactions group by currency"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--bytes-per-day", type=_size, default=128 << 20)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--log-dir", type=Path, help="an existing one-day export to use as the day")
    parser.add_argument(
        "--work-dir", type=Path, help="keep the warehouse here (default: temporary)"
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.bytes_per_day, args.users = 8, 256 << 10, 30
    with tempfile.TemporaryDirectory() as folder:
        root = args.work_dir or Path(folder)
        logs = args.log_dir or synthetic_export(
            root / "logs",
            date(2024, 1, 1),
            1,
            bytes_per_day=args.bytes_per_day,
            users=args.users,
            compression_level=1,
        )
        base = date.fromisoformat(discover(logs).days()[0])
        day = production_day(logs, root / "day", base)
        year = Warehouse(root / "warehouse")
        began = time.perf_counter()
        for offset in range(len(year.days("transactions")), args.days):
            write_copy(year, day, base, offset)
        print(f"{args.days} days written ({time.perf_counter() - began:.0f} s)", flush=True)
        runs: dict[int, float] = {}
        for days in sorted({max(1, args.days // 4), max(1, args.days // 2), args.days}):
            history = first_days(year, root / f"first-{days}-days", base, days)
            last = (base + timedelta(days=days - 1)).isoformat()
            scan, _ = best_of(3, lambda history=history: _scan(history))
            runs[days] = seconds = materialize(logs, history.root, last, last, HISTORY)
            print(
                f"reconciliation over {days} days ({days * day['transactions'].num_rows:,} "
                f"transactions): {seconds:.1f} s = {seconds / days * 1000:.0f} ms a day; "
                f"baseline scan {scan:.2f} s; ratio {seconds / scan:.1f}",
                flush=True,
            )
    shortest, longest = min(runs), max(runs)
    growth = (runs[longest] / longest) / (runs[shortest] / shortest)
    print(
        f"time per day of history, {longest} days / {shortest} days: {growth:.2f} "
        "(1.0 = linear growth)"
    )
    return {
        "transactions a day": day["transactions"].num_rows,
        **{f"{days} days (s)": seconds for days, seconds in runs.items()},
        "time per day, longest / shortest history": growth,
    }


def production_day(logs: Path, root: Path, base: date) -> dict[str, pa.Table]:
    """The input tables of the day in ``logs``, read by the daily assets into ``root`` (once)."""
    if not Warehouse(root).days("transactions"):
        print(f"reading the production day ({base}) with the daily assets ...", flush=True)
        seconds = materialize(logs, root, base.isoformat(), base.isoformat(), DAILY)
        print(f"  {seconds:.1f} s", flush=True)
    day = {table: Warehouse(root).read_day(table, base.isoformat()) for table in INPUTS}
    print(
        f"a day: {day['transactions'].num_rows:,} transactions, {day['log_events'].num_rows:,} events",
        flush=True,
    )
    return day


def first_days(year: Warehouse, root: Path, base: date, days: int) -> Warehouse:
    """A warehouse of the first ``days`` days of ``year`` (hard links to its files, no copies)."""
    shutil.rmtree(root, ignore_errors=True)
    for table in INPUTS:
        for offset in range(days):
            source = year.day_file(table, (base + timedelta(days=offset)).isoformat())
            target = root / source.relative_to(year.root)
            target.parent.mkdir(parents=True)
            os.link(source, target)
    return Warehouse(root)


def write_copy(warehouse: Warehouse, day: dict[str, pa.Table], base: date, offset: int) -> None:
    """Write the day's input tables as the day ``offset`` days later, with ids unique to that day."""
    target = base + timedelta(days=offset)
    shift = pa.scalar(offset * 86_400_000, pa.duration("ms"))
    suffix = f"~{offset}"
    for table, data in day.items():
        for index, field in enumerate(data.schema):
            column = data.column(index)
            if field.name == "day":
                column = pa.repeat(pa.scalar(target, pa.date32()), data.num_rows)
            elif pa.types.is_timestamp(field.type):
                column = pc.add(column, shift)
            elif field.name in IDS and offset:
                column = pc.binary_join_element_wise(column, suffix, "")
            else:
                continue
            data = data.set_column(index, field.name, column)
        warehouse.write_day(table, target.isoformat(), data)


def _scan(warehouse: Warehouse) -> None:  # the baseline
    with warehouse.connect() as connection:
        connection.execute(SCAN_SQL).fetchall()


if __name__ == "__main__":
    main()
