"""Excel cells and tables: real tables, money to each currency's minor unit, counts with separators.

Written with XlsxWriter. Text from logs is always written as a string cell (``write_string``, so
``=cmd()`` stays text, shown with a quote prefix) with characters Excel cannot hold replaced;
timestamps are Excel datetimes in UTC; a sheet longer than Excel's row limit continues on numbered
sheets, and the sheet says so. The file is the same byte for byte for the same data: the zip
members carry a fixed date and the document's creation date is the end of the reported period.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from xlsxwriter import Workbook
from xlsxwriter.exceptions import OverlappingRange
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_col_to_name, xl_range
from xlsxwriter.worksheet import (
    CellBooleanTuple,
    CellDatetimeTuple,
    CellNumberTuple,
    CellStringTuple,
    Worksheet,
    convert_range_args,
)

from calo_assets.money import MINOR_UNITS, minor_unit
from calo_assets.report.columns import SHEET_PURPOSES

MAX_DATA_ROWS = 1_048_576 - 3  # Excel's limit, less the title, the blank row and the header
HEADER_ROW = 3  # 1-based, as Excel shows it; data starts on the next row
_HEADER = HEADER_ROW - 1  # 0-based, as XlsxWriter counts
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula
DATE_FORMAT, TIME_FORMAT, COUNT_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm:ss", "#,##0"
MAX_WIDTH = 60  # characters: a column is as wide as its widest value, up to this
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # day 0 of Excel's 1900 date system (after 1900-03-01)
_EXCEL_DATE_EPOCH = dt.date(1899, 12, 30)
_DAY = pd.Timedelta(days=1)
_FIXED_CREATED = dt.datetime(
    2000, 1, 1, tzinfo=dt.UTC
)  # when no date is given: still deterministic


def excel_text(value: str) -> str:
    """Log text made safe for a cell: characters Excel refuses become U+FFFD."""
    return _ILLEGAL.sub("\ufffd", value)


_CELL_KINDS = {"string": CellStringTuple, "number": CellNumberTuple, "boolean": CellBooleanTuple}
# The cells ``FastSheet`` writes itself (the others go through XlsxWriter's ``_write_cell``).
_PLAIN_CELLS = frozenset({CellStringTuple, CellNumberTuple, CellDatetimeTuple, CellBooleanTuple})


class _Styles(dict[Format, str]):
    """The ``s`` attribute of a cell in each format; a format's index is asked for the first time
    it is used, as XlsxWriter does (the indexes are numbered in that order)."""

    def __missing__(self, cell_format: Format) -> str:
        self[cell_format] = style = f' s="{cell_format._get_xf_index()}"'
        return style


def _overlap(first: Sequence[int], second: Sequence[int]) -> bool:
    """Whether two ranges (first row, first column, last row, last column) share a cell."""
    rows = max(first[0], second[0]) <= min(first[2], second[2])
    return rows and max(first[1], second[1]) <= min(first[3], second[3])


class _TableCells(dict[tuple[int, int], str]):
    """The cells of a sheet's tables, as XlsxWriter looks them up one by one, kept as ranges."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges: list[tuple[int, int, int, int, str]] = []

    def get(self, cell: tuple[int, int], default: Any = None) -> Any:  # type: ignore[override]
        row, column = cell
        for first_row, first_column, last_row, last_column, name in self.ranges:
            if first_row <= row <= last_row and first_column <= column <= last_column:
                return name
        return super().get(cell, default)


class FastSheet(Worksheet):
    """XlsxWriter's worksheet, faster for large tables and with the same XML byte for byte (checked
    in the tests against XlsxWriter's own): ``write_cells`` stores a column of cells at once, the
    rows are assembled without XlsxWriter's generic per-cell writer (numbers, strings and
    booleans; any other cell, and a sheet with comments, go through XlsxWriter's code), and
    ``add_table`` checks and notes the table's range at once, not cell by cell."""

    def __init__(self) -> None:
        super().__init__()
        self.table_cells = _TableCells()

    @convert_range_args
    def add_table(  # type: ignore[override]
        self,
        first_row: int,
        first_col: int,
        last_row: int,
        last_col: int,
        options: dict[str, Any] | None = None,
    ) -> int:
        """XlsxWriter's ``add_table`` (numeric cell arguments) over its header and first row, then
        stretched to ``last_row``: its loop over every cell of the range is what costs. A table
        with data, formulas or a total row, or not in order, goes through XlsxWriter's code."""
        columns = (options or {}).get("columns") or []
        if (
            last_row <= first_row + 1
            or last_col < first_col
            or not {"data", "total_row"}.isdisjoint(options or {})
            or any(column and column.get("formula") for column in columns)
            or self._check_dimensions(last_row, last_col, True, True)
        ):
            return super().add_table(first_row, first_col, last_row, last_col, options)
        cell_range = xl_range(first_row, first_col, last_row, last_col)
        taken = [(*cell, *cell, name) for cell, name in self.merged_cells.items()]
        taken += [(*cell, *cell, name) for cell, name in self.table_cells.items()]
        for *other, name in [*taken, *self.table_cells.ranges]:
            if _overlap((first_row, first_col, last_row, last_col), other):
                kind = "merge" if name in self.merged_cells.values() else "table"
                raise OverlappingRange(
                    f"Table range '{cell_range}' overlaps previous {kind} range '{name}'."
                )
        result = super().add_table(first_row, first_col, first_row + 1, last_col, options)
        if result == 0:
            table = self.tables[-1]
            table["range"] = table["a_range"] = cell_range
            if table.get("autofilter"):
                table["autofilter"] = cell_range
                for column in range(first_col, last_col + 1):
                    self.filter_cells[(first_row, column)] = ("table", cell_range)
            self.table_cells.ranges.append((first_row, first_col, last_row, last_col, cell_range))
        return result

    def write_cells(
        self,
        column: int,
        rows: Sequence[int],
        values: Sequence[Any],
        formats: Format | Sequence[Format | None] | None,
        kind: Literal["string", "number", "boolean"],
    ) -> None:
        """What ``write_<kind>(row, column, value, format)`` stores, for each row of ``rows`` (in
        order: strings enter the shared string table in that order)."""
        if not rows:
            return
        each = repeat(formats) if formats is None or isinstance(formats, Format) else formats
        if kind == "string" and any(len(value) > self.xls_strmax // 2 for value in values):
            for row, value, cell_format in zip(rows, values, each, strict=False):
                self._write_string(row, column, value, cell_format)  # may truncate
            return
        if kind == "string":
            values = list(map(self.str_table._get_shared_string_index, values))
        elif kind == "number" and not all(map(math.isfinite, values)):
            raise TypeError("NaN and infinity cannot be written as numbers")
        elif kind == "boolean":
            values = [1 if value else 0 for value in values]
        if self._check_dimensions(min(rows), column) or self._check_dimensions(max(rows), column):
            raise ValueError(
                f"rows {min(rows)} to {max(rows)} of column {column} are off the sheet"
            )
        table, cell, make = self.table, _CELL_KINDS[kind], tuple.__new__
        for row, value, cell_format in zip(rows, values, each, strict=False):
            table[row][column] = make(cell, (value, cell_format))

    def _calculate_spans(self) -> None:
        """The ``spans`` of each block of 16 rows: its first and last column holding a cell."""
        if self.comments:
            super()._calculate_spans()
            return
        spans: dict[int, tuple[int, int]] = {}
        for row, cells in self.table.items():
            if cells:
                low, high = min(cells), max(cells)
                block = spans.get(row // 16)
                spans[row // 16] = (
                    (low, high) if block is None else (min(block[0], low), max(block[1], high))
                )
        self.row_spans = {block: f"{low + 1}:{high + 1}" for block, (low, high) in spans.items()}

    def _write_rows(self) -> None:
        if self.comments:
            super()._write_rows()
            return
        self._calculate_spans()
        styles = _Styles()  # in the order XlsxWriter first asks for each format's index
        column_styles = {
            column: styles[info.column_format]
            for column, info in self.col_info.items()
            if info.column_format is not None
        }
        names = [xl_col_to_name(column) for column in range(self.dim_colmax + 1)]
        write = self.fh.write
        for row in range(self.dim_rowmin, self.dim_rowmax + 1):
            cells = self.table.get(row)
            info = self.row_info.get(row)
            span = self.row_spans.get(row // 16)
            if not cells:
                if info is not None:
                    self._write_empty_row(row, span, info)
                continue
            self._write_row(row, span, info)
            row_style = styles[info.row_format] if info is not None and info.row_format else None
            number = row + 1
            parts: list[str] = []
            append = parts.append
            for column in sorted(cells):
                cell = cells[column]
                kind = cell.__class__
                if kind not in _PLAIN_CELLS:
                    write("".join(parts))
                    parts.clear()
                    self._write_cell(row, column, cell)
                    continue
                value, cell_format = cell
                cell_style = (
                    styles[cell_format]
                    if cell_format
                    else row_style or column_styles.get(column, "")
                )
                if kind is CellStringTuple:
                    append(f'<c r="{names[column]}{number}"{cell_style} t="s"><v>{value}</v></c>')
                elif kind is CellBooleanTuple:
                    append(f'<c r="{names[column]}{number}"{cell_style} t="b"><v>{value}</v></c>')
                else:
                    append(f'<c r="{names[column]}{number}"{cell_style}><v>{value:.16G}</v></c>')
            append("</row>")
            write("".join(parts))


class ReportBook:
    """An XlsxWriter workbook with the report's cell formats, created once."""

    def __init__(self, path: Path, created: dt.datetime | None = None) -> None:
        self.book = Workbook(
            str(path),
            {
                "in_memory": True,  # no temporary files, and zip members with a fixed date
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self.book.set_properties(
            {"title": "Balance sync analytics report", "created": created or _FIXED_CREATED}
        )
        add = self.book.add_format
        self.title = add({"bold": True, "font_size": 13})
        self.big_title = add({"bold": True, "font_size": 16})
        self.bold = add({"bold": True})
        self.note = add({"italic": True, "font_color": "#9C0006"})
        self.header = add(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": "#1F4E78", "valign": "vcenter"}
        )
        self.quoted = add({"quote_prefix": True})
        self.count = add({"num_format": COUNT_FORMAT})
        self.link = add({"font_color": "#0563C1", "underline": 1})
        self.failed = add({"bold": True, "font_color": "#9C0006", "bg_color": "#FFC7CE"})
        self.percent = add({"num_format": "0.0%"})
        self.decimal = add({"num_format": "#,##0.0###"})
        self.time = add({"num_format": TIME_FORMAT})
        self.date = add({"num_format": DATE_FORMAT})
        self.money = {
            decimals: add({"num_format": "#,##0." + "0" * decimals})
            for decimals in {2, *MINOR_UNITS.values()}
        }

    def money_for(self, currency: Any) -> Format:
        """The money format of ``currency``."""
        return self.money[minor_unit(currency if isinstance(currency, str) else None)]

    def add_sheet(self, name: str) -> FastSheet:
        return self.book.add_worksheet(name[:31], worksheet_class=FastSheet)

    @property
    def sheet_names(self) -> list[str]:
        return [sheet.get_name() for sheet in self.book.worksheets()]

    def close(self) -> None:
        self.book.close()


def write_table_sheet(
    book: ReportBook,
    title: str,
    frame: pd.DataFrame,
    money_columns: Iterable[str] = (),
    currency_column: str = "currency",
    max_rows: int = MAX_DATA_ROWS,
) -> list[Worksheet]:
    """Write ``frame`` as an Excel table on ``title`` (and continuation sheets of ``max_rows`` rows
    each); return the sheets."""
    money = set(money_columns)
    chunks = [
        frame.iloc[start : start + max_rows] for start in range(0, max(len(frame), 1), max_rows)
    ]
    sheets = []
    for index, chunk in enumerate(chunks):
        name = title if index == 0 else f"{title} ({index + 1})"
        sheet = book.add_sheet(name)
        sheet.write_string(0, 0, f"{title}: {SHEET_PURPOSES.get(title, '')}", book.title)
        if len(chunks) > 1:
            first, last = index * max_rows + 1, index * max_rows + len(chunk)
            more = f"; continued on '{title} ({index + 2})'" if index + 1 < len(chunks) else ""
            sheet.write_string(
                1,
                0,
                f"Rows {first:,} to {last:,} of {len(frame):,}: Excel holds at most {max_rows:,} per sheet{more}.",
                book.note,
            )
        _write_rows(book, sheet, chunk, money, currency_column)
        sheets.append(sheet)
    return sheets


def _is_time(series: pd.Series) -> bool:
    """Timestamps: a datetime column, or objects whose first present value is a datetime."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if series.dtype != object:
        return False
    first = next((value for value in series if value is not None and value == value), None)
    return isinstance(first, dt.datetime)


def _excel_times(series: pd.Series) -> list[float | None]:
    """Timestamps as Excel serial days in UTC (what a datetime cell holds); None where missing."""
    times = pd.to_datetime(series, utc=True).dt.tz_convert(None)
    serials = (times - _EXCEL_EPOCH) / _DAY
    return [
        None if missing else value for value, missing in zip(serials, times.isna(), strict=True)
    ]


def _excel_time(value: dt.datetime) -> float:
    """One timestamp as an Excel serial day in UTC (a naive one is taken as UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return (pd.Timestamp(value) - _EXCEL_EPOCH) / _DAY


def _write_value(book: ReportBook, sheet: Worksheet, row: int, column: int, value: Any) -> None:
    """One cell, by the value's type: text as text (never a formula), times in UTC, blanks skipped."""
    if isinstance(value, str):
        text = excel_text(value)
        sheet.write_string(
            row, column, text, book.quoted if text.startswith(FORMULA_START) else None
        )
    elif isinstance(value, bool | np.bool_):
        sheet.write_boolean(row, column, bool(value))
    elif isinstance(value, int | np.integer | Decimal):
        sheet.write_number(row, column, float(value))
    elif isinstance(value, float | np.floating):
        if not math.isnan(value):
            sheet.write_number(row, column, float(value))
    elif isinstance(value, dt.datetime):  # pd.Timestamp too; NaT is neither
        if value is not pd.NaT:
            sheet.write_number(row, column, _excel_time(value), book.time)
    elif isinstance(value, dt.date):
        sheet.write_number(row, column, (value - _EXCEL_DATE_EPOCH).days, book.date)
    elif value is not None and value is not pd.NaT and value is not pd.NA:
        sheet.write_string(row, column, excel_text(str(value)))


def _write_column(
    book: ReportBook,
    sheet: FastSheet,
    column: int,
    values: list[Any],
    number_formats: list[Format] | None,
) -> int:
    """One column of cells from row ``_HEADER + 1``; plain text and plain number columns go the short
    way, mixed ones cell by cell. ``number_formats``: the format of each row's number (money); whole
    numbers are counts, with thousands separators. Returns the width of the widest value shown."""
    first = _HEADER + 1
    kinds = set(map(type, values)) - {type(None)}
    if kinds == {str, float} and all(value != value for value in values if type(value) is float):
        values = [None if type(value) is float else value for value in values]  # NaN: missing text
        kinds = {str}
    if kinds <= {str}:
        rows = [row for row, value in enumerate(values, start=first) if value is not None]
        texts = [value for value in values if value is not None]
        # Characters Excel refuses are rare: look for them once in the whole column.
        if _ILLEGAL.search("\n".join(texts)):
            texts = list(map(excel_text, texts))
        quoted = [book.quoted if text.startswith(FORMULA_START) else None for text in texts]
        sheet.write_cells(column, rows, texts, quoted, "string")
        return max((len(value) for value in values if value is not None), default=0)
    if kinds == {bool}:
        rows = [row for row, value in enumerate(values, start=first) if value is not None]
        sheet.write_cells(
            column, rows, [value for value in values if value is not None], None, "boolean"
        )
        return 5
    if kinds == {dt.date}:  # days (a datetime is a date too, but of another type)
        rows = [row for row, value in enumerate(values, start=first) if value is not None]
        days = [(value - _EXCEL_DATE_EPOCH).days for value in values if value is not None]
        sheet.write_cells(column, rows, days, book.date, "number")
        return len(DATE_FORMAT)
    if kinds <= {Decimal, float, int}:
        plain = book.count if kinds == {int} else book.decimal
        formats = number_formats or [plain] * len(values)
        # NaN is the one value unequal to itself
        offsets = [
            offset for offset, value in enumerate(values) if value is not None and value == value
        ]
        sheet.write_cells(
            column,
            [first + offset for offset in offsets],
            [float(values[offset]) for offset in offsets],
            [formats[offset] for offset in offsets],
            "number",
        )
        return _number_width(values, whole=kinds == {int})
    for offset, value in enumerate(values):
        if number_formats and isinstance(value, Decimal | float | int) and value == value:
            sheet.write_number(first + offset, column, float(value), number_formats[offset])
        else:
            _write_value(book, sheet, first + offset, column, value)
    return max((len(str(value)) for value in values if not _missing(value)), default=0)


def _number_width(values: list[Any], whole: bool) -> int:
    """Characters of the widest number as shown (thousands separators; 3 decimals at most)."""
    present = [abs(float(value)) for value in values if value is not None and value == value]
    if not present:
        return 0
    shown = f"{max(present):,.0f}" if whole else f"{max(present):,.3f}"
    return len(shown) + 1  # a minus sign


def _write_rows(
    book: ReportBook, sheet: FastSheet, frame: pd.DataFrame, money: set[str], currency_column: str
) -> None:
    columns = list(frame.columns)
    times = [column != "day" and _is_time(frame[column]) for column in columns]
    headers = [
        f"{column} (UTC)" if time else column for column, time in zip(columns, times, strict=True)
    ]
    money_formats = [
        book.money_for(currency)
        for currency in (
            frame[currency_column].tolist()
            if currency_column in frame.columns
            else [None] * len(frame)
        )
    ]
    widths = [len(header) + 3 for header in headers]  # room for the filter button
    for index, column in enumerate(columns):
        series = frame[column]
        if times[index]:
            serials = _excel_times(series)
            rows = [
                row for row, serial in enumerate(serials, start=_HEADER + 1) if serial is not None
            ]
            present = [serial for serial in serials if serial is not None]
            sheet.write_cells(index, rows, present, book.time, "number")
            shown = len(TIME_FORMAT)
        else:
            formats = (
                money_formats
                if column in money
                else [book.percent] * len(frame)
                if column.endswith("share")
                else None
            )
            shown = _write_column(book, sheet, index, series.tolist(), formats)
        widths[index] = max(widths[index], shown + 1)
    last = _HEADER + max(len(frame), 1)
    if len(frame):
        sheet.add_table(
            _HEADER,
            0,
            _HEADER + len(frame),
            len(columns) - 1,
            {
                "name": re.sub(r"\W", "_", sheet.get_name()),
                "style": "Table Style Medium 2",
                "columns": [{"header": header, "header_format": book.header} for header in headers],
            },
        )
    else:
        for index, header in enumerate(headers):
            sheet.write_string(_HEADER, index, header, book.header)
        sheet.write_string(_HEADER + 1, 0, "No rows in this period.", book.note)
    sheet.freeze_panes(HEADER_ROW, 0)
    for index, width in enumerate(widths):
        sheet.set_column(index, index, min(max(width, 8), MAX_WIDTH))
    print_setup(sheet, last, len(columns) - 1, title_rows=True)


def print_setup(sheet: Worksheet, last_row: int, last_column: int, title_rows: bool) -> None:
    """Landscape A4, one page wide, the header row repeated on every page, printing ``A1`` to
    (``last_row``, ``last_column``), 0-based."""
    sheet.set_landscape()
    sheet.set_paper(9)
    sheet.fit_to_pages(1, 0)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.5)
    if title_rows:
        sheet.repeat_rows(_HEADER)
    sheet.print_area(0, 0, last_row, last_column)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def write_block(
    book: ReportBook,
    sheet: Worksheet,
    row: int,
    column: int,
    frame: pd.DataFrame,
    *,
    money: Iterable[str] = (),
    percent: Iterable[str] = (),
    links: Mapping[str, Callable[[Any], str | None]] | None = None,
    link_text: Callable[[Any], str] = str,
) -> int:
    """``frame`` as a small block at (``row``, ``column``): a header row, then its rows; money in the
    format of the row's currency, whole numbers with separators, ``percent`` columns as percentages,
    and a cell of a column in ``links`` linking where its function says (shown as ``link_text`` of
    its value). Returns the next free row."""
    money, percent, links = set(money), set(percent), links or {}
    for offset, title in enumerate(frame.columns):
        sheet.write_string(row, column + offset, str(title), book.header)
    currencies = frame["currency"].tolist() if "currency" in frame.columns else [None] * len(frame)
    for index, values in enumerate(frame.itertuples(index=False, name=None)):
        at = row + 1 + index
        for offset, (name, value) in enumerate(zip(frame.columns, values, strict=True)):
            if _missing(value):
                continue
            if name in links and (target := links[name](value)):
                sheet.write_url(at, column + offset, target, book.link, string=link_text(value))
            elif name in money:
                sheet.write_number(
                    at, column + offset, float(value), book.money_for(currencies[index])
                )
            elif name in percent:
                sheet.write_number(at, column + offset, float(value), book.percent)
            elif isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
                sheet.write_number(at, column + offset, int(value), book.count)
            else:
                _write_value(book, sheet, at, column + offset, value)
    return row + 1 + len(frame)
