"""Resources, one per external system: the log export, the warehouse, the report's output folder.

Each is configured from its ``CALO_*`` variable with ``dg.EnvVar`` when the variable is set (the
launchpad then shows the variable, not a machine's path), else from the default of ``Settings``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from calo_assets.checks import DEFAULT_MAX_DISCREPANCY_RATE
from calo_assets.config import Settings
from calo_assets.logs.ingest import IngestOptions, default_workers
from calo_assets.logs.reader import DEFAULT_MAX_BYTES
from calo_assets.logs.source import S3Prefix, log_location
from calo_assets.warehouse import Warehouse


class LogSource(dg.ConfigurableResource):
    """Where the CloudWatch exports are (``CALO_LOG_DIR``) and how to read them."""

    location: str
    mask_personal_data: bool = True
    workers: int = 0
    max_file_bytes: int = DEFAULT_MAX_BYTES

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
        )


class WarehouseResource(dg.ConfigurableResource):
    """The Parquet warehouse and its DuckDB views (``CALO_WAREHOUSE_DIR``)."""

    directory: str
    max_discrepancy_rate: float = DEFAULT_MAX_DISCREPANCY_RATE

    @property
    def store(self) -> Warehouse:
        return Warehouse(Path(self.directory))


class ReportOutput(dg.ConfigurableResource):
    """The folder the report is written to (``CALO_REPORT_DIR``)."""

    directory: str

    @property
    def path(self) -> Path:
        return Path(self.directory)


def _from_env(variable: str, default: Path) -> Any:
    return dg.EnvVar(variable) if os.environ.get(variable, "").strip() else str(default)


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
    }


def resources_for(
    log_dir: Path,
    warehouse_dir: Path,
    report_dir: Path,
    workers: int = 0,
    mask_personal_data: bool = True,
    **reading: Any,
) -> dict[str, dg.ConfigurableResource]:
    """Resources for explicit folders (``calo-report``, tests, benchmarks)."""
    rate = reading.pop("max_discrepancy_rate", DEFAULT_MAX_DISCREPANCY_RATE)
    return {
        "log_source": LogSource(
            location=str(log_dir),
            workers=workers,
            mask_personal_data=mask_personal_data,
            **reading,
        ),
        "warehouse": WarehouseResource(directory=str(warehouse_dir), max_discrepancy_rate=rate),
        "report_output": ReportOutput(directory=str(report_dir)),
    }
