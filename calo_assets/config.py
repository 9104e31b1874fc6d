"""Settings from the environment: the storage and configuration contract of design.md, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from calo_assets.logs.source import S3_SCHEME, S3Prefix

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOG_DIR = PROJECT_ROOT / "data" / "sample-logs"
REAL_LOG_DIR = PROJECT_ROOT.parent / "shared" / "real-logs"  # the real export, beside the project
DEFAULT_FIRST_DAY = "2023-12-01"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def _env_logs(name: str, default: Path) -> Path | S3Prefix:
    """A log location: a local folder, or ``s3://bucket/prefix``."""
    value = os.environ.get(name, "").strip()
    if value.startswith(S3_SCHEME):
        return S3Prefix.parse(value)
    return _env_path(name, default)


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use true/false)")


@dataclass(frozen=True)
class Settings:
    """Where logs are read from and where tables and reports go."""

    log_dir: Path | S3Prefix  # a local folder or an S3 prefix (``S3Prefix.is_dir()`` is False)
    warehouse_dir: Path
    report_dir: Path
    first_day: str
    mask_personal_data: bool

    @classmethod
    def from_env(cls) -> Settings:
        first_day = os.environ.get("CALO_FIRST_DAY", "").strip() or DEFAULT_FIRST_DAY
        try:
            date.fromisoformat(first_day)
        except ValueError as exc:
            raise ValueError(f"CALO_FIRST_DAY={first_day!r} is not a date (YYYY-MM-DD)") from exc
        return cls(
            log_dir=_env_logs("CALO_LOG_DIR", SAMPLE_LOG_DIR),
            warehouse_dir=_env_path("CALO_WAREHOUSE_DIR", PROJECT_ROOT / "data" / "warehouse"),
            report_dir=_env_path("CALO_REPORT_DIR", PROJECT_ROOT / "data" / "reports"),
            first_day=first_day,
            mask_personal_data=env_flag("CALO_MASK_PERSONAL_DATA", True),
        )
