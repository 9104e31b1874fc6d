"""``calo-report INPUT_DIR OUTPUT_DIR``: every step of the pipeline for the days in a log export.

For users who never open Dagster: the steps run in this process, in order, without orchestration
(Dagster is not even imported). With ``DAGSTER_HOME`` set, or ``--dagster``, the same steps run as
one Dagster run instead, stored in that instance so the run shows in the UI.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from datetime import date
from pathlib import Path

from calo_assets import metrics, pipeline
from calo_assets.config import Settings
from calo_assets.logs.export import Discovery, days_reading_folder, discover
from calo_assets.logs.ingest import IngestOptions, default_workers
from calo_assets.logs.source import LogSourceError, S3Prefix, log_location
from calo_assets.pipeline import days_between
from calo_assets.report.publish import CHART_FOLDER, CSV_FOLDER, HTML_PAGE, WORKBOOK
from calo_assets.warehouse import DUCKDB_FILE, Warehouse

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 3  # the report was written, but a check of severity ERROR failed


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
        type=log_location,
        default=settings.log_dir,
        help="folder or s3://bucket/prefix holding one or more CloudWatch exports (default: "
        f"CALO_LOG_DIR or {settings.log_dir}; S3 credentials from the standard AWS configuration)",
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
    parser.add_argument(
        "--dagster",
        action="store_true",
        help="run the steps as one Dagster run (the default when DAGSTER_HOME is set, so the run "
        "shows in the UI); without it they run in this process, without orchestration",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser.parse_args(argv)


def fail(message: str) -> int:
    print(f"calo-report: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    args = parse_args(argv, settings)
    try:
        found = discover(args.input_dir)
    except FileNotFoundError:
        return fail(f"input folder not found: {args.input_dir}")
    except LogSourceError as exc:
        return fail(str(exc))
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

    say = (
        (lambda *_: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    )
    days = days_between(first, last)
    dagster_home = os.environ.get("DAGSTER_HOME", "").strip()
    through_dagster = args.dagster or bool(dagster_home)
    say(
        f"calo-report: {len(found.parts)} stream files, days {first} to {last} ({len(days)}), "
        f"warehouse {settings.warehouse_dir}" + (" (one Dagster run)" if through_dagster else "")
    )
    began = time.perf_counter()
    warehouse = Warehouse(settings.warehouse_dir)
    figures: metrics.ReportFigures | None = None
    output = args.output_dir.resolve()
    if through_dagster:
        if not _run_through_dagster(args, settings, output, first, last):
            print("calo-report: the run failed; see the errors above", file=sys.stderr)
            return EXIT_RUN_FAILED
    else:
        _fewer_collections()
        try:
            outcome = pipeline.run(
                _resolved(args.input_dir),
                warehouse,
                output,
                days,
                IngestOptions(
                    mask_personal_data=settings.mask_personal_data,
                    workers=args.workers or default_workers(),
                ),
                images=not args.no_chart_images,
                progress=lambda text: say(f"  {text}"),
                discovery=found,
            )
        except pipeline.PipelineError as exc:
            print(f"calo-report: error: {exc}", file=sys.stderr)
            return EXIT_RUN_FAILED
        for warning in outcome.report.warnings:  # e.g. the chart browser's start-up retried
            print(f"calo-report: warning: {warning}", file=sys.stderr)
        # The report's own figures when it covers the same days (not so after a run of fewer days
        # on a warehouse holding more), rather than the same queries again.
        if outcome.report.data.window == (first, last):
            figures = outcome.report.data.report_figures
    say(f"calo-report: done in {time.perf_counter() - began:.1f} s")
    if figures is None:
        figures = report_figures(warehouse, first.isoformat(), last.isoformat())
    print(summary(warehouse, figures))
    print(report_files(output))
    failed = [check for check in figures.checks if not check.passed]
    for check in failed:
        print(f"check {'failed' if check.failed_error else 'warns'}: {check.name}", file=sys.stderr)
    return EXIT_CHECK_FAILED if any(check.failed_error for check in failed) else 0


def _run_through_dagster(
    args: argparse.Namespace, settings: Settings, output: Path, first: date, last: date
) -> bool:
    """The same steps as one Dagster run (stored in ``DAGSTER_HOME`` when set, so the UI shows it);
    whether it succeeded (its checks are the report's: the summary prints them)."""
    # The run's days are partitions of its definitions: they end where this input ends, unless
    # CALO_LAST_DAY says otherwise (read when the definitions are first imported).
    os.environ.setdefault("CALO_LAST_DAY", last.isoformat())
    # A partitioned output's materializations (126 a table for the real export) in one write each
    # on PostgreSQL storage, as the deployment sets it (docker-compose.yml); SQLite writes them one
    # by one whatever the size. DAGSTER_EVENT_BATCH_SIZE=0 turns it off.
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    import dagster as dg  # only this path loads Dagster

    from calo_assets.definitions import defs
    from calo_assets.defs.partitions import daily_partitions
    from calo_assets.defs.resources import resources_for

    _fewer_collections()  # Dagster's modules and definitions are many long-lived objects

    for day in (first.isoformat(), last.isoformat()):
        if not daily_partitions.has_partition_key(day):
            keys = daily_partitions.get_partition_keys()
            span = f"{keys[0]} to {keys[-1]}" if keys else "none"
            print(
                f"calo-report: error: {day} is not a daily partition (partitions: {span}); "
                "set CALO_FIRST_DAY / CALO_LAST_DAY to include it",
                file=sys.stderr,
            )
            return False

    instance = (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME", "").strip()
        else dg.DagsterInstance.ephemeral()
    )
    # One process storing thousands of events: on PostgreSQL, keep pooled connections as
    # dagster-webserver does rather than open one per event (SQLite storage ignores this).
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=20)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources=resources_for(
            _resolved(args.input_dir),
            settings.warehouse_dir,
            output,
            workers=args.workers,
            mask_personal_data=settings.mask_personal_data,
            chart_images=not args.no_chart_images,
        ),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            "calo/launched_by": "calo-report",
        },
        run_config={
            "loggers": {"console": {"config": {"log_level": "WARNING" if args.quiet else "INFO"}}},
        },
        raise_on_error=False,
    )
    if result.success:
        print(f"calo-report: Dagster run {result.run_id}", file=sys.stderr)
    return result.success


def _fewer_collections() -> None:
    """Fewer garbage collections: the objects made so far (the imported modules, and Dagster's
    definitions) are never scanned again, and the run's many small objects (rows, cells, events) are
    scanned every 10,000 allocations, not 700 (a quarter of the workbook's time went to
    collections)."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _resolved(location: Path | S3Prefix) -> Path | S3Prefix:
    return location.resolve() if isinstance(location, Path) else location


def export_window(found: Discovery) -> tuple[date, date]:
    """The days an export can hold records of: its stream days, and the day after the last one
    (a stream may run past midnight)."""
    days = found.days()
    return date.fromisoformat(days[0]), date.fromisoformat(days_reading_folder(days[-1])[-1])


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


def report_figures(warehouse: Warehouse, first: str, last: str) -> metrics.ReportFigures:
    """The report's figures and checks for the days ``first..last`` (``calo_assets.metrics``)."""
    window = (date.fromisoformat(first), date.fromisoformat(last))
    # An in-memory connection over the Parquet files: calo.duckdb may be held open by another run.
    with warehouse.connect(empty_tables=metrics.INPUTS) as connection:
        return metrics.report_figures(connection, *window)


def summary(warehouse: Warehouse, figures: metrics.ReportFigures) -> str:
    """The report's figure grid and checks as text, shown as the workbook and the HTML page show
    them."""
    from calo_assets.report.summary import grid

    period = figures.period
    lines = [f"Period: {period.first} to {period.last} (UTC days holding at least one log record)"]
    currencies = metrics.currencies(figures.headline)
    titles = ["", *map(metrics.currency_title, [None, *currencies])]
    rows = [
        [label, *("" if figure is None else figure.text for figure in cells)]
        for label, cells in grid(figures.headline)
    ]
    widths = [max(len(row[column]) for row in [titles, *rows]) for column in range(len(titles))]
    for row in [titles, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
    failed = [check for check in figures.checks if not check.passed]
    passed, failing = (metrics.find(figures.headline, name).value for name in metrics.CHECK_FIGURES)
    checks_line = f"Data checks: {passed} passed, {failing} failed"
    if failed:
        checks_line += " (a warning is a finding; an error fails the run)"
    for check in failed:
        severity = "error" if check.failed_error else "warning"
        checks_line += f"\n  {severity}: {check.label}: {check.summary}"
    lines.append(checks_line)
    lines.append(f"Tables: {warehouse.root} (DuckDB views in {warehouse.root / DUCKDB_FILE})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
