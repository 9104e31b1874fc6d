"""Whole history: every day of an export, every asset and the report with charts, in one Dagster run
(what ``calo-report`` does), with the time of each stage and a plot of it.

It runs in a fresh Python process, as a user's command would, so Dagster's import and start-up are
counted. The baseline, measured in the same run, is a bare gzip read plus line iteration of the same
files; the figure to beat is the ~11 s of the fastest comparable tool (a reference, not measured here).
Usage::

    python -m benchmarks.history [--log-dir ../shared/real-logs] [--plot docs/stage_times.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from calo_assets.config import PROJECT_ROOT

REFERENCE_SECONDS = 11.0  # the fastest comparable tool that writes an Excel report with charts
STAGES = {
    "ingest_logs": "parse (ingest)",
    "sync_tables": "sync tables",
    "anomaly_scores": "anomaly scores",
    "balance_sync_report": "report (workbook, charts, HTML)",
}

# Runs in the child process: import Dagster, load the definitions, materialize, print step times.
_RUN = """
import json, sys, time
began = time.perf_counter()
import dagster as dg
from calo_assets.definitions import defs
from calo_assets.defs.resources import resources_for
from calo_assets.cli import export_window
from calo_assets.logs.export import discover
from benchmarks.common import step_seconds
loaded = time.perf_counter()
log_dir, warehouse, reports, images = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
first, last = export_window(discover(log_dir))  # the days calo-report materializes
result = dg.materialize(
    [*defs.assets, *defs.asset_checks],
    resources=resources_for(log_dir, warehouse, reports, chart_images=images),
    tags={"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()},
    instance=dg.DagsterInstance.ephemeral(),
    run_config={
        "loggers": {"console": {"config": {"log_level": "ERROR"}}},
    },
)
assert result.success
days = (last - first).days + 1
print(json.dumps({"import": loaded - began, "total": time.perf_counter() - began, "steps": step_seconds(result), "days": days}))
"""


def run_once(log_dir: Path, images: bool) -> dict:
    """One whole-history run in a fresh process; wall time and step times."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-c",
            _RUN,
            str(log_dir),
            str(Path(folder) / "warehouse"),
            str(Path(folder) / "reports"),
            "1" if images else "0",
        ]
        began = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
        )
        wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"the run failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall"] = wall
    return figures


def stages(figures: dict) -> dict[str, float]:
    """Seconds per stage: start-up, the named steps, other steps, and what is left (run overhead)."""
    steps = dict(figures["steps"])
    result = {"Python + Dagster start-up": figures["import"]}
    for key, label in STAGES.items():
        result[label] = steps.pop(key, 0.0)
    result["reconciliation tables + checks"] = sum(steps.values())
    result["run overhead (outside the steps)"] = max(0.0, figures["wall"] - sum(result.values()))
    return result


def plot(per_stage: dict[str, float], wall: float, path: Path) -> None:
    """A horizontal bar per stage, the reference tool's time as a line."""
    import plotly.graph_objects as go

    labels = list(per_stage)[::-1]
    figure = go.Figure(
        go.Bar(
            x=[per_stage[label] for label in labels],
            y=labels,
            orientation="h",
            text=[f"{per_stage[label]:.1f} s" for label in labels],
            textposition="outside",
        )
    )
    figure.update_layout(
        title=f"Whole real export, every asset and the report: {wall:.1f} s wall, by stage",
        xaxis_title="seconds",
        width=900,
        height=420,
        margin={"l": 260},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_image(str(path))


def main(argv: list[str] | None = None) -> dict[str, float]:
    from benchmarks.common import add_log_dir_argument, best_of
    from benchmarks.parse_vs_gzip import bare_read
    from calo_assets.logs.export import discover

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--plot", type=Path, help="write the time-per-stage chart (PNG) here")
    parser.add_argument("--no-chart-images", action="store_true", help="skip the report's PNGs")
    args = parser.parse_args(argv)
    paths = [part.path for part in discover(args.log_dir).parts]
    baseline, _ = best_of(3, lambda: bare_read(paths))
    runs = [run_once(args.log_dir, not args.no_chart_images) for _ in range(args.repeat)]
    best = min(runs, key=lambda figures: figures["wall"])
    per_stage = stages(best)
    wall = best["wall"]
    for label, seconds in per_stage.items():
        print(f"  {label:<42} {seconds:6.2f} s")
    print(
        f"whole history ({best['days']} days, every asset, report): {wall:.1f} s wall"
        f" (best of {len(runs)}); reference tool ~{REFERENCE_SECONDS:.0f} s: ratio {wall / REFERENCE_SECONDS:.2f};"
        f" bare gzip read of the same files {baseline:.2f} s: ratio {wall / baseline:.0f}x"
    )
    if args.plot:
        plot(per_stage, wall, args.plot)
        print(f"plot: {args.plot}")
    return {"wall": wall, "baseline": baseline, **per_stage}


if __name__ == "__main__":
    main()
