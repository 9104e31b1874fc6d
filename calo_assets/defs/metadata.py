"""Metadata attached to materializations: row counts, days covered, a preview, column schema."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal, localcontext
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.tables.schema import SCHEMAS

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 60
MAX_DIGITS = 80  # enough for any sum of Arrow's 38-digit decimals


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


class TableSummary:
    """What a table's metadata shows, gathered from its parts in order (never the whole table).

    Rows, the first rows for the preview, the value counts of ``counted`` columns and, for each
    ``(key, value)`` of ``summed``, the sum of ``value`` per ``key`` in the order keys first appear.
    """

    def __init__(
        self, name: str, counted: tuple[str, ...] = (), summed: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.rows = 0
        self.head = SCHEMAS[name].empty_table()
        self.counts: dict[str, Counter[str]] = {column: Counter() for column in counted}
        self.sums: dict[tuple[str, str], dict[str, Decimal | None]] = {pair: {} for pair in summed}

    @property
    def wants_preview(self) -> bool:
        """Whether the preview still needs rows: until it has them, parts must have every column."""
        return self.head.num_rows < PREVIEW_ROWS

    @property
    def columns(self) -> list[str]:
        """The columns the summary reads once the preview is full (none: it then only counts rows)."""
        return list(dict.fromkeys([*self.counts, *(name for pair in self.sums for name in pair)]))

    def add(self, part: pa.Table) -> None:
        self.rows += part.num_rows
        if self.wants_preview:
            more = part.slice(0, PREVIEW_ROWS - self.head.num_rows)
            self.head = pa.concat_tables([self.head, more])
        for column, counts in self.counts.items():
            counts.update(value_counts(part, column))
        for (key, value), sums in self.sums.items():
            grouped = part.group_by(key, use_threads=False).aggregate([(value, "sum")])
            for row in grouped.to_pylist():
                total, known = row[f"{value}_sum"], sums.get(str(row[key]))
                with localcontext(prec=MAX_DIGITS):  # exact, as Arrow sums a whole table
                    sums[str(row[key])] = total if known is None else known + (total or 0)

    def metadata(self, days: list[str]) -> dict[str, Any]:
        """``table_metadata`` of the whole table."""
        return table_metadata(self.head, days, self.rows)

    def value_counts(self, column: str) -> dict[str, int]:
        """``value_counts`` of the whole table."""
        return dict(sorted(self.counts[column].items()))

    def sum_by(self, key: str, value: str) -> dict[str, str]:
        """The sum of ``value`` per ``key`` (as text, trailing zeros dropped) of the whole table."""
        return {
            group: str(total.normalize() if total is not None else None)
            for group, total in self.sums[key, value].items()
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
