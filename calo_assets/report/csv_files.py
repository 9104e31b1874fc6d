"""The CSV files: the main tables with the warehouse's column names, and every headline figure.

Money is plain decimal text, exact and without needless zeros (``5``, ``60.181000000000004``, never
``5.000000000000000000`` or ``0E-18``); text a spreadsheet would read as a formula gets a leading
apostrophe.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd

from calo_assets import metrics
from calo_assets.report.data import ReportData
from calo_assets.report.excel import FORMULA_START

CSV_TABLES = {
    "transactions": "transactions",
    "balance_discrepancies": "discrepancies",
    "user_exposure": "exposure",
    "ledger_breaks": "ledger_breaks",
    "overdrafts": "overdrafts",
    "anomalies": "anomalies",
    "user_errors": "user_errors",
}
FIGURES_FILE = "figures.csv"


def plain_decimal(value: Decimal) -> str:
    """Exact decimal text, never exponent notation, no trailing zeros."""
    return "0" if value == 0 else format(value.normalize(), "f")


def csv_safe(value: object) -> object:
    """Text that a spreadsheet would read as a formula gets a leading apostrophe; money is plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    if isinstance(value, Decimal):
        return plain_decimal(value)
    return value


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``csv_safe`` on every cell, touching only the text and money columns."""
    safe = frame.copy(deep=False)
    for column in frame.columns:
        if frame[column].dtype == object:
            safe[column] = [csv_safe(value) for value in frame[column].tolist()]
    return safe


def figures_frame(figures: list[metrics.Figure]) -> pd.DataFrame:
    """Every headline figure, one row each, the value exact."""
    return pd.DataFrame(
        [
            {
                "name": figure.name,
                "label": figure.label,
                "currency": figure.currency,
                "unit": figure.unit,
                "value": figure.value.isoformat()
                if figure.unit == metrics.DAY
                else plain_decimal(Decimal(figure.value)),  # type: ignore[arg-type]
            }
            for figure in figures
        ]
    )


def write_csv_files(data: ReportData, folder: Path) -> list[Path]:
    """The main tables and the figures as CSV; money written exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = {name: data.frames.get(frame, pd.DataFrame()) for name, frame in CSV_TABLES.items()}
    frames[Path(FIGURES_FILE).stem] = figures_frame([*data.figures, *data.overview])
    paths = []
    for name, frame in frames.items():
        path = folder / f"{name}.csv"
        temporary = path.with_name(path.name + ".tmp")
        csv_safe_frame(frame).to_csv(temporary, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
        temporary.replace(path)
        paths.append(path)
    return paths
