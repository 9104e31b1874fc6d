"""The final asset: the Excel workbook, chart images, HTML page and CSV files in CALO_REPORT_DIR."""

import base64
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa

from calo_assets.defs.metadata import markdown_table
from calo_assets.defs.resources import CaloResource
from calo_assets.report.data import REPORT_INPUTS
from calo_assets.report.publish import publish


class ReportConfig(dg.Config):
    """Days the report covers (UTC, inclusive); empty means every materialized day."""

    first_day: str = ""
    last_day: str = ""
    chart_images: bool = True


@dg.asset(
    group_name="report",
    deps=list(REPORT_INPUTS),
    description="Excel workbook (balance_sync_analytics_report.xlsx) with native charts, PNG charts, "
    "an interactive HTML page and CSV files of the main tables, in CALO_REPORT_DIR.",
)
def balance_sync_report(
    context: dg.AssetExecutionContext, config: ReportConfig, calo: CaloResource
):
    """Publish the report for the configured window (all materialized days by default)."""
    warehouse = calo.warehouse
    days = warehouse.days("log_events")
    if not days:
        raise dg.Failure("the warehouse holds no log days yet: materialize the daily assets first")
    try:
        first = date.fromisoformat(config.first_day or days[0])
        last = date.fromisoformat(config.last_day or days[-1])
    except ValueError as exc:
        raise dg.Failure(f"first_day / last_day must be dates (YYYY-MM-DD): {exc}") from exc
    if first > last:
        raise dg.Failure(f"first_day {first} is after last_day {last}")
    output = Path(calo.report_dir)
    result = publish(warehouse, output, first, last, images=config.chart_images)
    context.log.info(
        f"report written to {output}: {len(result.sheets)} sheets, {len(result.images)} PNG charts"
    )
    if result.images_skipped:
        context.log.warning(f"PNG charts skipped: {result.images_skipped}")
    metadata = {
        "period": f"{first} to {last}",
        "workbook": dg.MetadataValue.path(str(result.workbook)),
        "html page": dg.MetadataValue.path(str(result.html_page)),
        "csv files": dg.MetadataValue.json([str(path) for path in result.csv_files]),
        "chart images": dg.MetadataValue.json([str(path) for path in result.images]),
        "chart images skipped": result.images_skipped or "no",
        "sheets": dg.MetadataValue.json(result.sheets),
        "native Excel charts": len(result.charts),
        "seconds per stage": dg.MetadataValue.json(
            {stage: round(seconds, 2) for stage, seconds in result.seconds.items()}
        ),
        "KPIs": dg.MetadataValue.md(
            markdown_table(pa.Table.from_pandas(result.kpis, preserve_index=False))
        ),
    }
    if result.images:
        encoded = base64.b64encode(result.images[0].read_bytes()).decode()
        metadata["chart preview"] = dg.MetadataValue.md(
            f"![transactions per day](data:image/png;base64,{encoded})"
        )
    return dg.MaterializeResult(metadata=metadata)
