"""The final asset: the Excel workbook, chart images, HTML page and CSV files of the report."""

import base64

import dagster as dg
import pyarrow as pa

from calo_assets import pipeline
from calo_assets.defs.metadata import preview_value
from calo_assets.defs.partitions import CODE_VERSION, OWNERS
from calo_assets.defs.resources import ReportOutput, WarehouseResource
from calo_assets.report.data import REPORT_INPUTS


class ReportConfig(dg.Config):
    """Days the report covers (UTC, inclusive); empty means every materialized day."""

    first_day: str = ""
    last_day: str = ""
    chart_images: bool = True


@dg.asset(
    group_name="report",
    deps=list(REPORT_INPUTS),
    kinds={"excel", "html", "plotly"},
    owners=OWNERS,
    code_version=CODE_VERSION,
    description="Excel workbook (balance_sync_analytics_report.xlsx) with native charts, PNG charts, "
    "an interactive HTML page and CSV files of the main tables, in CALO_REPORT_DIR.",
)
def balance_sync_report(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    warehouse: WarehouseResource,
    report_output: ReportOutput,
) -> dg.MaterializeResult:
    """Publish the report for the configured window (every materialized day by default)."""
    try:
        result = pipeline.publish_report(
            warehouse.store,
            report_output.path,
            config.first_day or None,
            config.last_day or None,
            images=config.chart_images,
        )
    except pipeline.PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    context.log.info(
        f"report written to {report_output.path}: {len(result.sheets)} sheets, "
        f"{len(result.images)} PNG charts"
    )
    if result.images_skipped:
        context.log.warning(f"PNG charts skipped: {result.images_skipped}")
    metadata = {
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
