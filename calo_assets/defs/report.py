"""The final asset: the Excel workbook, chart images, HTML page and CSV files of the report."""

import base64

import dagster as dg
import pyarrow as pa

from calo_assets import pipeline
from calo_assets.defs.metadata import preview_value
from calo_assets.defs.partitions import CODE_VERSION, OWNERS, single_run
from calo_assets.defs.resources import ChartBrowserResource, ReportOutput, WarehouseResource
from calo_assets.report.data import REPORT_INPUTS


class ReportConfig(dg.Config):
    """Days the report covers (UTC, inclusive); empty means every materialized day. (The chart
    images are the ``chart_browser`` resource's.)"""

    first_day: str = ""
    last_day: str = ""


@dg.asset(
    group_name="report",
    deps=list(REPORT_INPUTS),
    kinds={"excel", "html", "plotly"},
    owners=OWNERS,
    code_version=CODE_VERSION,
    description="Excel workbook (balance_sync_analytics_report.xlsx) with native charts, PNG charts, "
    "an interactive HTML page and CSV files of the main tables, in CALO_REPORT_DIR. It covers every "
    "day in the warehouse (first_day / last_day in the run config narrow it), not only the days "
    "of the run that refreshed it: after a one-day run it still reports the whole history. Its "
    "metadata says which period it covers.",
    # Not partitioned: published once, also after a range of days.
    backfill_policy=single_run,
)
def balance_sync_report(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    warehouse: WarehouseResource,
    report_output: ReportOutput,
    chart_browser: ChartBrowserResource,
) -> dg.MaterializeResult:
    """Publish the report for the configured window (every materialized day by default)."""
    try:
        result = pipeline.publish_report(
            warehouse.store,
            report_output.path,
            chart_browser.charts,
            config.first_day or None,
            config.last_day or None,
            check_settings=warehouse.check_settings,
        )
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    first, last = result.data.window
    period = f"{first} to {last} (UTC days)"
    if config.first_day or config.last_day:
        why = "the first_day / last_day of the run config"
    else:
        why = "every day in the warehouse, whichever days this run materialized"
    run_days = _run_days(context)
    context.log.info(
        f"report written to {report_output.path}: {len(result.sheets)} sheets, "
        f"{len(result.images)} PNG charts"
    )
    if result.images_skipped:
        context.log.warning(f"PNG charts skipped: {result.images_skipped}")
    for warning in result.warnings:
        context.log.warning(f"report: {warning}")
    metadata = {
        "period": dg.MetadataValue.text(period),
        "period chosen by": dg.MetadataValue.text(why),
        "days of this run": dg.MetadataValue.text(run_days),
        "warnings": dg.MetadataValue.json(result.warnings),
        "workbook": dg.MetadataValue.path(str(result.workbook)),
        "html page": dg.MetadataValue.path(str(result.html_page)),
        "csv folder": dg.MetadataValue.path(str(result.csv_files[0].parent)),
        "chart images": len(result.images),
        "chart images skipped": result.images_skipped or "no",
        "sheets": dg.MetadataValue.json(result.sheets),
        "native Excel charts": len(result.charts),
        "seconds per stage": dg.MetadataValue.json(
            {stage: round(seconds, 2) for stage, seconds in result.seconds.items()}
        ),
        "KPIs": preview_value(pa.Table.from_pandas(result.kpis, preserve_index=False), 50),
    }
    if result.images:
        encoded = base64.b64encode(result.images[0].read_bytes()).decode()
        metadata["chart preview"] = dg.MetadataValue.md(
            f"![transactions per day](data:image/png;base64,{encoded})"
        )
    return dg.MaterializeResult(metadata=metadata)


def _run_days(context: dg.AssetExecutionContext) -> str:
    """The log days the run materialized (from its partition tags), in words."""
    tags = context.run.tags
    if "dagster/asset_partition_range_start" in tags:
        return (
            f"{tags['dagster/asset_partition_range_start']} to "
            f"{tags['dagster/asset_partition_range_end']}"
        )
    return tags.get("dagster/partition", "none (the report alone)")
