"""Resources, one per external system: the log export, the warehouse, the report's output folder,
the browser that draws the report's PNG charts, the CloudWatch log group the daily run exports
from, and the alert webhook.

The locations (log export, warehouse, report folder, webhook, log group) are configured from their
``CALO_*`` variable with ``dg.EnvVar`` when it is set (the launchpad then shows the variable, not a
machine's path), else from the default of ``Settings``; the other settings (numbers, switches) are
read from their variables when the definitions load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from calo_assets.alerts import AlertSettings, parse_thresholds
from calo_assets.checks import DEFAULT_MAX_DISCREPANCY_RATE, CheckSettings
from calo_assets.cloudwatch_export import SETTLE_HOURS, ExportConfig
from calo_assets.config import Settings, env_flag
from calo_assets.logs.ingest import IngestOptions, default_workers
from calo_assets.logs.limits import ReadLimits
from calo_assets.logs.reader import DEFAULT_MAX_BYTES
from calo_assets.logs.source import S3Prefix, log_location
from calo_assets.report.images import OPEN_TIMEOUT
from calo_assets.report.publish import ChartBrowser, start_charts
from calo_assets.warehouse import ROW_GROUP_ROWS, Warehouse


class LogSource(dg.ConfigurableResource):
    """Where the CloudWatch exports are (``CALO_LOG_DIR``) and how to read them."""

    location: str
    mask_personal_data: bool = True
    workers: int = 0
    max_file_bytes: int = DEFAULT_MAX_BYTES
    limits: dict[str, int] = Field(
        default_factory=dict, description="ReadLimits fields changed from their defaults"
    )

    @property
    def path(self) -> Path | S3Prefix:
        """The export's root: a local folder, or an S3 prefix for ``s3://bucket/prefix``."""
        return log_location(self.location)

    @property
    def ingest_options(self) -> IngestOptions:
        return IngestOptions(
            mask_personal_data=self.mask_personal_data,
            max_bytes=self.max_file_bytes,
            workers=self.workers or default_workers(),
            limits=ReadLimits(**self.limits),
        )


class CloudWatchLogGroup(dg.ConfigurableResource):
    """The log group the daily run exports its day from (``CALO_CLOUDWATCH_LOG_GROUP``; empty: the
    export under ``CALO_LOG_DIR`` is given) into ``CALO_LOG_DIR``, and how long it waits."""

    log_group: str = ""
    log_stream_prefix: str = ""
    timeout_seconds: float = 3600.0
    poll_seconds: float = 15.0
    settle_hours: float = SETTLE_HOURS

    def export_config(self, root: Path | S3Prefix) -> ExportConfig:
        if not isinstance(root, S3Prefix):
            raise ValueError(
                f"CALO_CLOUDWATCH_LOG_GROUP is set, so CALO_LOG_DIR must be the s3://bucket/prefix "
                f"CloudWatch exports into (it is {root})"
            )
        return ExportConfig(
            log_group=self.log_group,
            root=root,
            stream_prefix=self.log_stream_prefix,
            timeout_seconds=self.timeout_seconds,
            poll_seconds=self.poll_seconds,
            settle_hours=self.settle_hours,
        )

    @classmethod
    def from_env(cls) -> CloudWatchLogGroup:
        return cls(
            log_group=_from_env("CALO_CLOUDWATCH_LOG_GROUP", ""),
            log_stream_prefix=os.environ.get("CALO_CLOUDWATCH_LOG_STREAM_PREFIX", "").strip(),
            timeout_seconds=_number("CALO_CLOUDWATCH_EXPORT_TIMEOUT_SECONDS", 3600.0),
            poll_seconds=_number("CALO_CLOUDWATCH_POLL_SECONDS", 15.0),
            settle_hours=_number("CALO_CLOUDWATCH_SETTLE_HOURS", SETTLE_HOURS),
        )


class AlertWebhook(dg.ConfigurableResource):
    """Where alerts go (``CALO_ALERT_WEBHOOK_URL``, a Slack-compatible incoming webhook; empty: no
    alerts), from which amount of new cases per currency, and the link to the run."""

    url: str = ""
    min_amount: str = ""
    dagster_url: str = ""
    timeout_seconds: float = 10.0
    attempts: int = 3

    @property
    def settings(self) -> AlertSettings:
        return AlertSettings(
            webhook_url=self.url,
            thresholds=parse_thresholds(self.min_amount),
            dagster_url=self.dagster_url,
            timeout_seconds=self.timeout_seconds,
            attempts=self.attempts,
        )

    @classmethod
    def from_env(cls) -> AlertWebhook:
        return cls(
            url=_from_env("CALO_ALERT_WEBHOOK_URL", ""),
            min_amount=os.environ.get("CALO_ALERT_MIN_AMOUNT", "").strip(),
            dagster_url=os.environ.get("CALO_DAGSTER_URL", "").strip(),
            timeout_seconds=_number("CALO_ALERT_TIMEOUT_SECONDS", 10.0),
            attempts=int(_number("CALO_ALERT_ATTEMPTS", 3)),
        )


class WarehouseResource(dg.ConfigurableResource):
    """The Parquet warehouse and its DuckDB views (``CALO_WAREHOUSE_DIR``)."""

    directory: str
    max_discrepancy_rate: float = DEFAULT_MAX_DISCREPANCY_RATE
    row_group_rows: int = ROW_GROUP_ROWS

    @property
    def store(self) -> Warehouse:
        return Warehouse(Path(self.directory), self.row_group_rows)

    @property
    def check_settings(self) -> CheckSettings:
        """What the checks are judged against, for the Dagster checks and the report's alike."""
        return CheckSettings(self.max_discrepancy_rate)


class ReportOutput(dg.ConfigurableResource):
    """The folder the report is written to (``CALO_REPORT_DIR``)."""

    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory)


class ChartBrowserResource(dg.ConfigurableResource):
    """The headless Chromium-family browser that draws the report's PNG charts
    (``CALO_CHART_IMAGES``: false skips them; ``CALO_CHART_BROWSER_TIMEOUT_SECONDS``: how long it is
    given to start, twice).

    It starts when the report step asks for it, in a background thread, so its start-up overlaps
    the report's queries and workbook; it is closed when the resource is torn down (the end of the
    run, with the in-process executor the definitions use). Started with the run instead, it took
    the cores from the ingest: slower in all (docs/performance.md).
    """

    images: bool = True
    start_timeout_seconds: float = OPEN_TIMEOUT
    _started: ChartBrowser | None = PrivateAttr(default=None)

    @property
    def charts(self) -> ChartBrowser:
        """The browser, started on first use (or why there is none)."""
        if self._started is None:
            self._started = start_charts(self.images, self.start_timeout_seconds)
        return self._started

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._started is not None:  # closed without drawing, unless the report drew with it
            self._started.cancel()

    @classmethod
    def from_env(cls, images: bool = True) -> ChartBrowserResource:
        return cls(
            images=images and env_flag("CALO_CHART_IMAGES", True),
            start_timeout_seconds=_number("CALO_CHART_BROWSER_TIMEOUT_SECONDS", OPEN_TIMEOUT),
        )


def _from_env(variable: str, default: Path | str) -> Any:
    return dg.EnvVar(variable) if os.environ.get(variable, "").strip() else str(default)


def _number(variable: str, default: float) -> float:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"{variable}={value!r} is not a number") from exc


def default_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """The code location's resources, from the environment."""
    settings = settings or Settings.from_env()
    return {
        "log_source": LogSource(
            location=_from_env("CALO_LOG_DIR", settings.log_dir),
            mask_personal_data=settings.mask_personal_data,
        ),
        "warehouse": WarehouseResource(
            directory=_from_env("CALO_WAREHOUSE_DIR", settings.warehouse_dir)
        ),
        "report_output": ReportOutput(directory=_from_env("CALO_REPORT_DIR", settings.report_dir)),
        "chart_browser": ChartBrowserResource.from_env(),
        "cloudwatch": CloudWatchLogGroup.from_env(),
        "alerts_webhook": AlertWebhook.from_env(),
    }


def resources_for(
    log_dir: Path,
    warehouse_dir: Path,
    report_dir: Path,
    workers: int = 0,
    mask_personal_data: bool = True,
    chart_images: bool = True,
    **reading: Any,
) -> dict[str, dg.ConfigurableResource]:
    """Resources for explicit folders (``calo-report``, tests, benchmarks)."""
    rate = reading.pop("max_discrepancy_rate", DEFAULT_MAX_DISCREPANCY_RATE)
    row_group_rows = reading.pop("row_group_rows", ROW_GROUP_ROWS)
    return {
        "log_source": LogSource(
            location=str(log_dir),
            workers=workers,
            mask_personal_data=mask_personal_data,
            **reading,
        ),
        "warehouse": WarehouseResource(
            directory=str(warehouse_dir), max_discrepancy_rate=rate, row_group_rows=row_group_rows
        ),
        "report_output": ReportOutput(directory=str(report_dir)),
        "chart_browser": ChartBrowserResource.from_env(chart_images),
        "cloudwatch": CloudWatchLogGroup.from_env(),
        "alerts_webhook": AlertWebhook.from_env(),
    }
