"""``calo-report INPUT_DIR OUTPUT_DIR``: materialize every asset for the days in a log export.

For users who never open Dagster. The runs go through Dagster all the same: with ``DAGSTER_HOME`` set
they are stored there and show in the UI afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from calo_assets.config import Settings
from calo_assets.defs.resources import CaloResource
from calo_assets.ledger import reconcile
from calo_assets.logs.export import Discovery, discover
from calo_assets.money import format_money
from calo_assets.report.publish import CHART_FOLDER, CSV_FOLDER, HTML_PAGE, WORKBOOK
from calo_assets.warehouse import DUCKDB_FILE, Warehouse

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="calo-report",
        description="Read a CloudWatch export of the balance-sync Lambda, materialize every calo_assets "
        "asset for the days it holds (through Dagster) and print a summary.",
        epilog="Environment: CALO_WAREHOUSE_DIR (tables, default data/warehouse), DAGSTER_HOME (keep the runs "
        "for the Dagster UI; without it they run on a temporary instance), CALO_MASK_PERSONAL_DATA.",
    )
    parser.add_argument(
        "input_dir",
        nargs="?",
        type=Path,
        default=settings.log_dir,
        help=f"folder holding one or more CloudWatch exports (default: {settings.log_dir})",
    )
    parser.add_argument(
        "output_dir",
        nargs="?",
        type=Path,
        default=settings.report_dir,
        help=f"folder for the report files (default: CALO_REPORT_DIR or {settings.report_dir})",
    )
    parser.add_argument(
        "--first-day",
        type=date.fromisoformat,
        help="first day to process (default: first in the input)",
    )
    parser.add_argument(
        "--last-day",
        type=date.fromisoformat,
        help="last day to process (default: last in the input)",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="processes for reading logs (default: one per core)"
    )
    parser.add_argument(
        "--no-chart-images",
        action="store_true",
        help="skip the PNG charts (the workbook keeps its native charts)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser.parse_args(argv)


def fail(message: str) -> int:
    print(f"calo-report: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    args = parse_args(argv, settings)
    if not args.input_dir.is_dir():
        return fail(f"input folder not found: {args.input_dir}")
    found = discover(args.input_dir)
    if not found.parts:
        return fail(
            f"no CloudWatch log streams (<day>-[<version>]<id>/000000.gz) under {args.input_dir}"
        )
    for folder in (args.output_dir, settings.warehouse_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return fail(f"cannot create {folder}: {exc.strerror}")
        if not os.access(folder, os.W_OK):
            return fail(f"folder not writable: {folder}")
    first, last = export_window(found)
    first, last = args.first_day or first, args.last_day or last
    if first > last:
        return fail(f"--first-day {first} is after --last-day {last}")
    if first.isoformat() < settings.first_day:
        return fail(
            f"{first} is before CALO_FIRST_DAY={settings.first_day}: set CALO_FIRST_DAY earlier"
        )

    # Beta/preview notices about Dagster's own APIs mean nothing to a report user.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    from calo_assets.definitions import defs  # after the checks: loading Dagster takes a moment

    resource = CaloResource(
        log_dir=str(args.input_dir.resolve()),
        warehouse_dir=str(settings.warehouse_dir),
        report_dir=str(args.output_dir.resolve()),
        mask_personal_data=settings.mask_personal_data,
        workers=args.workers,
    )
    days = (last - first).days + 1
    say = (
        (lambda *_: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    )
    say(
        f"calo-report: {len(found.parts)} stream files, days {first} to {last} ({days}), warehouse {settings.warehouse_dir}"
    )
    began = time.perf_counter()
    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources={"calo": resource},
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            "calo/launched_by": "calo-report",
        },
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING" if args.quiet else "INFO"}}},
            "ops": {"balance_sync_report": {"config": {"chart_images": not args.no_chart_images}}},
        },
        raise_on_error=False,
    )
    if not result.success:
        print("calo-report: the run failed; see the errors above", file=sys.stderr)
        return EXIT_RUN_FAILED
    say(f"calo-report: done in {time.perf_counter() - began:.1f} s (run {result.run_id})")
    print(summary(Warehouse(settings.warehouse_dir), first.isoformat(), last.isoformat()))
    print(report_files(args.output_dir.resolve()))
    return 0


def export_window(found: Discovery) -> tuple[date, date]:
    """The days an export can hold records of: its stream days, and the day after the last one
    (a stream may run past midnight)."""
    days = found.days()
    return date.fromisoformat(days[0]), date.fromisoformat(days[-1]) + timedelta(days=1)


def report_files(output_dir: Path) -> str:
    """Where the report files are."""
    lines = [f"Report: {output_dir / WORKBOOK}", f"        {output_dir / HTML_PAGE}"]
    charts = sorted((output_dir / CHART_FOLDER).glob("*.png"))
    lines.append(
        f"        {output_dir / CHART_FOLDER}/ ({len(charts)} PNG charts)"
        if charts
        else "        no PNG charts (see the warning above)"
    )
    lines.append(f"        {output_dir / CSV_FOLDER}/ (CSV files of the main tables)")
    return "\n".join(lines)


_COUNTS = {
    "transactions": "select count(*) from transactions where day between ? and ?",
    "users with transactions": "select count(distinct user_id) from transactions where day between ? and ?",
    "invocations": "select count(*) from invocations where day between ? and ?",
    "balance discrepancies": "select count(*) from balance_discrepancies where day between ? and ?",
    "users with discrepancies": "select count(distinct user_id) from balance_discrepancies where day between ? and ?",
    "negative-balance rejections": "select count(*) from negative_balance_rejections where day between ? and ?",
    "processing errors": "select count(*) from processing_errors where day between ? and ?",
    "quarantined items": "select count(*) from quarantine where day between ? and ?",
}


def summary(warehouse: Warehouse, first: str, last: str) -> str:
    """A short text summary of the tables for the days ``first..last``."""
    window = [date.fromisoformat(first), date.fromisoformat(last)]
    lines = [f"Period: {first} to {last} (UTC)"]
    # An in-memory connection over the Parquet files: calo.duckdb may be held open by another run.
    tables = ("transactions", "invocations", "balance_discrepancies", "negative_balance_rejections")
    tables += ("processing_errors", "quarantine", "user_exposure")
    with warehouse.connect(empty_tables=tables) as connection:
        width = max(len(label) for label in _COUNTS)
        for label, query in _COUNTS.items():
            (count,) = connection.execute(query, window).fetchone()
            lines.append(f"  {label:<{width}}  {count:>10,}")
        lines.append("Volume by currency (applied transactions):")
        volume = connection.execute(
            "select currency, type, count(*), sum(amount - coalesce(vat, 0)) from transactions "
            "where day between ? and ? and outcome = 'applied' group by 1, 2 order by 1, 2",
            window,
        ).fetchall()
        for currency, kind, count, total in volume:
            lines.append(
                f"  {currency or '?':<4} {kind or '?':<6} {count:>8,} transactions  {format_money(total, currency)}"
            )
        lines.append("Exposure by currency (latest gap per user, whole history):")
        for row in reconcile.exposure_totals(connection).to_pylist():
            currency = row["currency"]
            lines.append(
                f"  {currency:<4} revenue at risk {format_money(row['revenue_at_risk'], currency)}"
                f" ({row['users_over_credited']} users), owed to users {format_money(row['owed_to_users'], currency)}"
                f" ({row['users_under_credited']} users)"
            )
    lines.append(f"Tables: {warehouse.root} (DuckDB views in {warehouse.root / DUCKDB_FILE})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
