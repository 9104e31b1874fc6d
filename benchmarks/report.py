"""The report's publication (``publish()``: queries, figures, workbook, PNGs, HTML, CSVs), stage by stage.

The warehouse of the export is materialized once (kept under ``benchmarks/out/`` for the next run),
then ``publish()`` runs ``--repeat`` times; the best total is printed with its stages. Two baselines
are measured in the same run, on the same data:

- workbook: the same sheets written as CSV by pandas, the cheapest way to put the same cells in a file
  (no table, format or chart): the ratio says what a real Excel workbook costs on top;
- PNGs: ``plotly.io.write_images`` of the same figures, kaleido's own batch export (the full plotly.js
  bundle, a page reload per figure), as the report did before, against ``ChartImages`` alone (the
  basic bundle, no reload), both from browser start to the last file, nothing else running.

Usage::

    python -m benchmarks.report [--log-dir ../shared/real-logs] [--warehouse DIR] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from datetime import date
from pathlib import Path

import plotly.io as pio

from benchmarks.common import add_log_dir_argument, best_of, materialize
from calo_assets.cli import export_window
from calo_assets.config import PROJECT_ROOT, SAMPLE_LOG_DIR
from calo_assets.logs.export import discover
from calo_assets.report.data import ReportData, load
from calo_assets.report.figures import CHARTS, HEIGHT, TRACE_TYPES, WIDTH, build_figures
from calo_assets.report.images import ChartImages, find_browser
from calo_assets.report.plotlyjs import plotly_bundle
from calo_assets.report.publish import Published, publish
from calo_assets.warehouse import Warehouse

STAGES = (
    "queries",
    "figures",
    "workbook",
    "csv",
    "html",
    "waiting for the PNGs",
    "browser start-up",
    "PNGs done",
    "total",
)


def warehouse_of(log_dir: Path, warehouse_dir: Path) -> Warehouse:
    """The export materialized once into ``warehouse_dir`` (reused when it already holds it)."""
    warehouse = Warehouse(warehouse_dir)
    if not warehouse.days("log_events"):
        first, last = export_window(discover(log_dir))
        seconds = materialize(log_dir, warehouse_dir, first.isoformat(), last.isoformat())
        print(f"warehouse materialized in {seconds:.1f} s: {warehouse_dir}")
    return warehouse


def timed_publish(
    warehouse: Warehouse, output: Path, first: date, last: date
) -> tuple[Published, dict[str, float]]:
    """``publish()`` with the CPU seconds of this process and of its children (the browser)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    published = publish(warehouse, output, first, last)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    process, browser = (
        end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
        for start, end in zip(before, after, strict=True)
    )
    return published, {"process CPU": process, "browser CPU": browser}


def csv_of_the_sheets(data: ReportData, folder: Path) -> None:
    """Baseline: the frames of the workbook's sheets as CSV files, with pandas."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in data.frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)


def stock_kaleido_pngs(data: ReportData, folder: Path) -> None:
    """Baseline: the same PNGs through ``plotly.io.write_images`` (kaleido's stock batch export)."""
    figures = build_figures(data)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png" for name in figures]
    pio.write_images(list(figures.values()), paths, format="png", width=WIDTH, height=HEIGHT)


def our_pngs(data: ReportData, folder: Path, browser: str) -> None:
    """The same PNGs through ``ChartImages`` alone (browser start-up included)."""
    figures = build_figures(data)
    drawing = ChartImages(browser, plotly_bundle(TRACE_TYPES), WIDTH, HEIGHT)
    drawing.render({folder / f"{name}.png": figure for name, figure in figures.items()})
    drawing.wait()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--warehouse", type=Path, help="materialized warehouse to reuse or create")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (shipped sample)")
    args = parser.parse_args(argv)
    if args.quick:
        args.log_dir, args.repeat = SAMPLE_LOG_DIR, 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        default = PROJECT_ROOT / "benchmarks" / "out" / f"report-{args.log_dir.name}" / "warehouse"
        warehouse_dir = args.warehouse or (folder / "warehouse" if args.quick else default)
        warehouse = warehouse_of(args.log_dir, warehouse_dir)
        days = warehouse.days("log_events")
        first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
        runs = [
            timed_publish(warehouse, folder / "report", first, last) for _ in range(args.repeat)
        ]
        best, cpu = min(runs, key=lambda run: run[0].seconds["total"])
        data = load(warehouse, first, last)
        csv_baseline = best_of(args.repeat, lambda: csv_of_the_sheets(data, folder / "baseline"))[0]
        browser = find_browser()
        png_baseline = png_ours = float("nan")
        if browser:
            png_baseline = best_of(args.repeat, lambda: stock_kaleido_pngs(data, folder / "stock"))[
                0
            ]
            png_ours = best_of(args.repeat, lambda: our_pngs(data, folder / "ours", browser))[0]
    rows = sum(len(frame) for frame in data.frames.values())
    print(
        f"publish() of {first}..{last} ({rows:,} rows in {len(best.sheets)} sheets, "
        f"{len(best.images)} PNGs), best of {args.repeat}:"
    )
    for stage in STAGES:
        seconds = best.seconds.get(stage, float("nan"))
        print(f"  {stage:<22} {seconds:6.2f} s")
    totals = ", ".join(f"{run.seconds['total']:.2f}" for run, _ in runs)
    print(
        "  (browser start-up and PNGs done: seconds after publish() began, in a background thread;"
        f" every total: {totals} s)"
    )
    print(
        f"  CPU of that run: this process {cpu['process CPU']:.2f} s (all its threads), "
        f"the browser's processes {cpu['browser CPU']:.2f} s"
    )
    workbook = best.seconds["workbook"]
    print(
        f"baseline  same sheets as CSV with pandas: {csv_baseline:6.2f} s; "
        f"workbook / CSV = {workbook / csv_baseline:.2f}x"
    )
    print(
        f"baseline  plotly.io.write_images of the {len(CHARTS)} figures (stock kaleido): {png_baseline:6.2f} s; "
        f"ChartImages alone: {png_ours:.2f} s; stock / ours = {png_baseline / png_ours:.2f}x"
    )
    return {
        **{stage: best.seconds.get(stage, float("nan")) for stage in STAGES},
        "csv baseline": csv_baseline,
        "png baseline": png_baseline,
        "png alone": png_ours,
        "images": len(best.images),
        **cpu,
    }


if __name__ == "__main__":
    main()
