"""Metadata attached to materializations: row counts, days covered, a preview, column schema."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.tables.schema import SCHEMAS

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60


def table_metadata(table: pa.Table, days: list[str], rows: int | None = None) -> dict[str, Any]:
    """Standard metadata for a written table (``rows`` when ``table`` is only its first part).

    Dagster stores it once per partition of the run (126 times for the real export's days), so it
    stays small; the column schema, which never changes, is definition metadata (``schema_metadata``).
    """
    return {
        "dagster/row_count": table.num_rows if rows is None else rows,
        "days": dg.MetadataValue.text(_days_text(days)),
        "preview": dg.MetadataValue.md(preview_markdown(table)),
    }


def schema_metadata(table: str) -> dict[str, Any]:
    """Definition metadata of a warehouse table: its columns and types, from its schema."""
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(field.name, str(field.type)) for field in SCHEMAS[table]]
        )
    }


def preview_markdown(table: pa.Table, rows: int = PREVIEW_ROWS) -> str:
    """The first rows of a table as a Markdown table (long cells shortened)."""
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.slice(0, rows).to_pylist():
        cells = [_cell(row[name]) for name in names]
        lines.append("| " + " | ".join(cells) + " |")
    if table.num_rows == 0:
        lines.append("| " + " | ".join("" for _ in names) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def _days_text(days: list[str]) -> str:
    if not days:
        return "none"
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]} ({len(days)} days)"


def value_counts(table: pa.Table, column: str) -> dict[str, int]:
    """How many rows hold each value of ``column`` (as text), sorted by value."""
    counts: Counter[str] = Counter()
    for item in pc.value_counts(table[column]).to_pylist():  # counted in Arrow: one row per value
        counts[str(item["values"])] += item["counts"]
    return dict(sorted(counts.items()))


def markdown_table(
    table: pa.Table, money_columns: tuple[str, ...] = (), currency_column: str = "currency"
) -> str:
    """A small table as Markdown; money shown to its currency's minor unit."""
    from calo_assets.money import minor_unit

    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in table.to_pylist():
        cells = []
        for name in names:
            value = row[name]
            if name in money_columns and isinstance(value, Decimal):
                value = f"{value:,.{minor_unit(row.get(currency_column))}f}"
            cells.append(_cell(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
