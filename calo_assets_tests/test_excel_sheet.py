"""``FastSheet`` writes the same worksheet XML as XlsxWriter's own ``Worksheet``, byte for byte."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from xlsxwriter import Workbook
from xlsxwriter.exceptions import OverlappingRange
from xlsxwriter.worksheet import Worksheet

from calo_assets.report.excel import FastSheet

ROWS = 40  # more than two blocks of 16 rows: the rows' spans differ


def _book(path: Path, sheet_class: type[Worksheet], in_bulk: bool) -> None:
    book = Workbook(str(path), {"in_memory": True})
    bold, money = book.add_format({"bold": True}), book.add_format({"num_format": "#,##0.00"})
    row_format, column_format = (
        book.add_format({"italic": True}),
        book.add_format({"bg_color": "#EEEEEE"}),
    )
    sheet = book.add_worksheet("Data", worksheet_class=sheet_class)
    sheet.set_default_row(18)
    sheet.set_row(5, 30, row_format)
    sheet.set_row(ROWS + 5, None, row_format)  # a row with a format only
    sheet.set_column(3, 3, 12, column_format)
    sheet.write_string(0, 0, "title", bold)
    sheet.write_formula(1, 1, "=1+1", None, 2)
    sheet.write_blank(1, 2, None, bold)
    sheet.write_url(1, 3, "internal:'Data'!A1", string="link & <back>")
    sheet.write_datetime(1, 4, dt.datetime(2024, 3, 5, 12), money)
    columns = {
        0: ("string", [f"text {row % 7} <&>" if row % 5 else None for row in range(ROWS)], None),
        1: ("number", [row * 1.25 - 3 if row % 3 else None for row in range(ROWS)], money),
        2: ("boolean", [bool(row % 2) if row % 4 else None for row in range(ROWS)], None),
        3: ("number", [1e20 / (row + 1) for row in range(ROWS)], None),
        20: ("string", ["=not a formula" if row > 30 else None for row in range(ROWS)], bold),
    }
    for column, (kind, values, cell_format) in columns.items():
        rows = [2 + row for row, value in enumerate(values) if value is not None]
        present = [value for value in values if value is not None]
        if in_bulk:
            sheet.write_cells(column, rows, present, cell_format, kind)
        else:
            for row, value in zip(rows, present, strict=True):
                getattr(sheet, f"write_{kind}")(row, column, value, cell_format)
    for row in range(ROWS + 9, ROWS + 30):
        sheet.write_number(row, 1, row)
    columns = [{"header": name, "header_format": bold} for name in "abc"]
    sheet.add_table(ROWS + 8, 0, ROWS + 29, 2, {"name": "Numbers", "columns": columns})
    sheet.add_table(ROWS + 8, 4, ROWS + 9, 5, {"style": "Table Style Medium 2"})
    book.close()


@pytest.mark.parametrize("in_bulk", [False, True])
def test_a_fast_sheet_is_xlsxwriters_sheet_byte_for_byte(tmp_path, in_bulk):
    _book(tmp_path / "plain.xlsx", Worksheet, in_bulk=False)
    _book(tmp_path / "fast.xlsx", FastSheet, in_bulk=in_bulk)
    assert (tmp_path / "fast.xlsx").read_bytes() == (tmp_path / "plain.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "fast.xlsx") as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert 'spans="1:21"' in sheet and 't="b"' in sheet and "<f>1+1</f>" in sheet


@pytest.mark.parametrize("sheet_class", [Worksheet, FastSheet])
def test_a_range_overlapping_a_table_is_refused(tmp_path, sheet_class):
    book = Workbook(str(tmp_path / "book.xlsx"), {"in_memory": True})
    sheet = book.add_worksheet(worksheet_class=sheet_class)
    sheet.add_table(2, 0, 40, 3)
    with pytest.raises(OverlappingRange, match="previous table range 'A3:D41'"):
        sheet.merge_range(30, 3, 31, 5, "")
    with pytest.raises(OverlappingRange, match="previous table range 'A3:D41'"):
        sheet.add_table(40, 3, 50, 4)
    sheet.merge_range(50, 0, 51, 1, "")
    with pytest.raises(OverlappingRange, match="previous merge range 'A51:B52'"):
        sheet.add_table(45, 1, 60, 2)
    book.close()


def test_cells_that_are_not_numbers_cannot_be_written_in_bulk_as_numbers(tmp_path):
    book = Workbook(str(tmp_path / "book.xlsx"), {"in_memory": True})
    sheet = book.add_worksheet(worksheet_class=FastSheet)
    with pytest.raises(TypeError):
        sheet.write_cells(0, [1, 2], [1.0, float("inf")], None, "number")
    book.close()
