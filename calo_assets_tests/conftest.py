"""Shared fixtures: the real export beside the project, the shipped sample, materialized warehouses."""

from __future__ import annotations

import dataclasses
import os
from datetime import date
from pathlib import Path

# The tests run exports of many dates (the sample, the real export, synthetic ones) through one set of
# definitions: partitions through yesterday, not the end of the shipped sample (CALO_LAST_DAY).
os.environ.setdefault("CALO_LAST_DAY", "yesterday")

import dagster as dg
import pytest

from calo_assets import checks, metrics, pipeline
from calo_assets.config import REAL_LOG_DIR, SAMPLE_LOG_DIR
from calo_assets.definitions import defs
from calo_assets.defs.resources import resources_for
from calo_assets.ledger.anomalies import AnomalySettings
from calo_assets.logs.ingest import IngestOptions
from calo_assets.logs.source import S3Prefix
from calo_assets.warehouse import Warehouse

REAL_LOGS = REAL_LOG_DIR
REAL_FIRST_DAY, REAL_LAST_DAY = "2023-12-12", "2024-04-15"  # the last stream runs past midnight
SAMPLE_FIRST_DAY, SAMPLE_LAST_DAY = "2024-03-01", "2024-03-08"
ALL_ASSETS = [*defs.assets, *defs.asset_checks]


def break_history_table(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the history table ``name`` fail to build, with ``RuntimeError: boom``."""

    def broken(connection):
        raise RuntimeError("boom")

    failing = dataclasses.replace(pipeline.HISTORY_TABLES[name], build=broken)
    monkeypatch.setitem(pipeline.HISTORY_TABLES, name, failing)


def check_warehouse(store: Warehouse, name: str, days: list[str]) -> checks.CheckOutcome:
    """The core check ``name`` over ``days`` of the warehouse's files."""
    span = (date.fromisoformat(min(days)), date.fromisoformat(max(days)))
    with store.connect(empty_tables=metrics.INPUTS) as connection:
        return checks.CHECKS[name].evaluate(connection, *span, checks.CheckSettings())


def every_step(
    log_dir: Path | S3Prefix, warehouse_dir: Path, days: list[str], workers: int = 1
) -> Warehouse:
    """Ingest, sync tables, anomaly scores and every history table of ``days`` through
    ``calo_assets.pipeline`` (what a run does but the report), with ``workers`` processes."""
    warehouse = Warehouse(warehouse_dir)
    pipeline.ingest(log_dir, warehouse, days, IngestOptions(workers=workers))
    pipeline.build_sync(warehouse, days)
    pipeline.score_anomalies(warehouse, days, AnomalySettings(), workers)
    pipeline.build_history(warehouse)
    return warehouse


def materialize_range(
    log_dir: Path,
    warehouse_dir: Path,
    first: str,
    last: str,
    assets=None,
    instance: dg.DagsterInstance | None = None,
    **resource_options,
) -> dg.ExecuteInProcessResult:
    """Materialize the assets (all by default) for ``first..last`` in one run, as ``calo-report`` does
    (on ``instance``, else a temporary one)."""
    resources = resources_for(
        log_dir,
        warehouse_dir,
        warehouse_dir.parent / "reports",
        workers=resource_options.pop("workers", 1),
        **resource_options,
    )
    return dg.materialize(
        assets or ALL_ASSETS,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        instance=instance or dg.DagsterInstance.ephemeral(),
    )


@pytest.fixture(scope="session")
def real_logs() -> Path:
    if not REAL_LOGS.is_dir():
        pytest.fail(f"the real export is expected at {REAL_LOGS} (shared/ beside the project)")
    return REAL_LOGS


@pytest.fixture(scope="session")
def real_run(real_logs: Path, tmp_path_factory: pytest.TempPathFactory):
    """The whole real export materialized once through every Dagster asset (two reading processes)."""
    warehouse_dir = tmp_path_factory.mktemp("real") / "warehouse"
    result = materialize_range(real_logs, warehouse_dir, REAL_FIRST_DAY, REAL_LAST_DAY, workers=2)
    return result, Warehouse(warehouse_dir)


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory):
    """The shipped sample materialized once through the Dagster assets."""
    warehouse_dir = tmp_path_factory.mktemp("sample") / "warehouse"
    result = materialize_range(SAMPLE_LOG_DIR, warehouse_dir, SAMPLE_FIRST_DAY, SAMPLE_LAST_DAY)
    return result, Warehouse(warehouse_dir)
