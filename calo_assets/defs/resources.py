"""The one resource the assets share: where logs, warehouse and reports are, and how to read."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from calo_assets.config import Settings
from calo_assets.logs.ingest import IngestOptions, default_workers
from calo_assets.logs.reader import DEFAULT_MAX_BYTES
from calo_assets.warehouse import Warehouse


class CaloResource(dg.ConfigurableResource):
    """Paths and reading options; defaults come from the ``CALO_*`` environment variables."""

    log_dir: str
    warehouse_dir: str
    report_dir: str
    mask_personal_data: bool = True
    workers: int = 0
    max_file_bytes: int = DEFAULT_MAX_BYTES
    max_discrepancy_rate: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CaloResource:
        settings = settings or Settings.from_env()
        return cls(
            log_dir=str(settings.log_dir),
            warehouse_dir=str(settings.warehouse_dir),
            report_dir=str(settings.report_dir),
            mask_personal_data=settings.mask_personal_data,
        )

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(Path(self.warehouse_dir))

    @property
    def ingest_options(self) -> IngestOptions:
        return IngestOptions(
            mask_personal_data=self.mask_personal_data,
            max_bytes=self.max_file_bytes,
            workers=self.workers or default_workers(),
        )
