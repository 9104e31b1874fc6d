"""Day writers: a day written in pieces lands whole, in row groups that never split a piece."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from calo_assets.tables.schema import from_columns
from calo_assets.warehouse import DUCKDB_FILE, ZSTD_MIN_ROWS, Warehouse


def piece(first: int, rows: int) -> pa.Table:
    """Rows of the quarantine table (other columns null), reasons numbered from ``first``."""
    return from_columns("quarantine", {"reason": [f"u{i}" for i in range(first, first + rows)]})


def test_pieces_are_buffered_into_row_groups_without_being_split(tmp_path):
    store = Warehouse(tmp_path, row_group_rows=5)
    writer = store.day_writer("quarantine", "2024-01-05")
    for first, rows in ((0, 3), (3, 4), (7, 2), (9, 6), (15, 1)):
        writer.write(piece(first, rows))
    assert not store.day_file("quarantine", "2024-01-05").exists()  # nothing visible before close
    writer.close()
    parquet = pq.ParquetFile(store.day_file("quarantine", "2024-01-05"))
    # 3+4 reach 5 rows: one group; 2+6 another; the last piece alone at close.
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [
        7,
        8,
        1,
    ]
    assert store.read_day("quarantine", "2024-01-05").num_rows == 16
    parts = list(store.read_day_in_parts("quarantine", "2024-01-05"))
    assert [part.num_rows for part in parts] == [7, 8, 1]
    assert pa.concat_tables(parts).column("reason").to_pylist() == [f"u{i}" for i in range(16)]
    assert parts[0].schema == store.read_day("quarantine", "2024-01-05").schema


def test_an_aborted_day_keeps_the_previous_version(tmp_path):
    store = Warehouse(tmp_path)
    store.write_day("quarantine", "2024-01-05", piece(0, 2))
    before = store.day_file("quarantine", "2024-01-05").read_bytes()
    writer = store.day_writer("quarantine", "2024-01-05")
    writer.write(piece(10, 3))
    writer.abort()
    assert store.day_file("quarantine", "2024-01-05").read_bytes() == before
    assert list(store.day_file("quarantine", "2024-01-05").parent.glob(".*.tmp")) == []


def test_a_day_without_pieces_is_an_empty_table(tmp_path):
    store = Warehouse(tmp_path)
    store.day_writer("log_events", "2024-01-05").close()
    table = store.read_day("log_events", "2024-01-05")
    assert table.num_rows == 0 and store.days("log_events") == ["2024-01-05"]
    assert list(store.read_day_in_parts("log_events", "2024-01-06")) == []
    assert store.read_day("log_events", "2024-01-06").num_rows == 0


def test_days_are_read_with_only_the_columns_asked_for(tmp_path):
    store = Warehouse(tmp_path)
    store.write_day("quarantine", "2024-01-05", piece(0, 2))
    store.write_day("quarantine", "2024-01-07", piece(2, 1))
    days = ["2024-01-07", "2024-01-06", "2024-01-05"]
    table = store.read_days("quarantine", days, ["reason", "day"])
    assert table.column_names == ["reason", "day"]
    assert table.column("reason").to_pylist() == ["u2", "u0", "u1"]
    assert store.read_days("quarantine", ["2024-01-06"], ["reason"]).column_names == ["reason"]


def test_corrections_rewrite_written_rows_in_place_before_the_day_lands(tmp_path):
    store = Warehouse(tmp_path, row_group_rows=5)
    store.write_day("quarantine", "2024-01-05", piece(100, 2))
    writer = store.day_writer("quarantine", "2024-01-05")
    for first, rows in ((0, 3), (3, 4), (7, 2)):
        writer.write(piece(first, rows))
    writer.finish({1: {"reason": "one"}, 8: {"reason": "eight", "unit": "record"}})
    writer.commit()
    parts = list(store.read_day_in_parts("quarantine", "2024-01-05"))
    assert [part.num_rows for part in parts] == [7, 2]  # the row groups stay as written
    table = pa.concat_tables(parts)
    assert table.column("reason").to_pylist() == [
        "u0",
        "one",
        *(f"u{i}" for i in range(2, 8)),
        "eight",
    ]
    assert table.column("unit").to_pylist() == [None] * 8 + ["record"]
    assert table.schema == store.read_day("quarantine", "2024-01-05").schema
    assert list(store.day_file("quarantine", "2024-01-05").parent.glob(".*.tmp")) == []


def test_a_finished_day_lands_only_when_committed(tmp_path):
    store = Warehouse(tmp_path)
    store.write_day("quarantine", "2024-01-05", piece(0, 2))
    before = store.day_file("quarantine", "2024-01-05").read_bytes()
    for commit in (False, True):
        writer = store.day_writer("quarantine", "2024-01-05")
        writer.write(piece(10, 3))
        writer.finish()
        assert store.day_file("quarantine", "2024-01-05").read_bytes() == before
        if commit:
            writer.commit()
        else:
            writer.abort()  # e.g. another table of the same day failed to finish
    table = store.read_day("quarantine", "2024-01-05")
    assert table.column("reason").to_pylist() == ["u10", "u11", "u12"]
    assert list(store.day_file("quarantine", "2024-01-05").parent.glob(".*.tmp")) == []


def test_tables_copied_into_memory_read_the_same_until_the_budget_is_spent(tmp_path):
    store = Warehouse(tmp_path)
    for day, first in (("2024-01-05", 0), ("2024-01-06", 10)):
        store.write_day("quarantine", day, piece(first, 10))
    store.write_table("notes", pa.table({"note": ["a", "b"]}))
    query = "select reason, day from quarantine order by reason"
    with store.connect() as on_disk:
        expected = on_disk.sql(query).fetchall()
    budget = store.bytes_on_disk("quarantine")
    with store.connect(in_memory=["quarantine", "notes", "absent"], copy_bytes=budget) as copy:
        assert copy.sql(query).fetchall() == expected
        copied = {row[0] for row in copy.sql("select table_name from duckdb_tables()").fetchall()}
        assert copied == {"quarantine"}  # notes did not fit in what was left


def _codecs(path) -> set[str]:
    metadata = pq.ParquetFile(path).metadata
    return {
        metadata.row_group(group).column(column).compression
        for group in range(metadata.num_row_groups)
        for column in range(metadata.num_columns)
    }


def test_small_files_are_compressed_with_snappy_and_large_ones_with_zstd(tmp_path):
    store = Warehouse(tmp_path, row_group_rows=ZSTD_MIN_ROWS)
    store.write_day("quarantine", "2024-01-05", piece(0, ZSTD_MIN_ROWS - 1))
    store.write_day("quarantine", "2024-01-06", piece(0, ZSTD_MIN_ROWS))
    writer = store.day_writer("quarantine", "2024-01-07")
    writer.write(piece(0, ZSTD_MIN_ROWS))  # a full row group, then a small last one
    writer.write(piece(0, 3))
    writer.finish({1: {"reason": "corrected"}})  # rewritten: the codec stays
    writer.commit()
    assert _codecs(store.day_file("quarantine", "2024-01-05")) == {"SNAPPY"}
    assert _codecs(store.day_file("quarantine", "2024-01-06")) == {"ZSTD"}
    assert _codecs(store.day_file("quarantine", "2024-01-07")) == {"ZSTD"}
    assert store.read_day("quarantine", "2024-01-07").column("reason")[1].as_py() == "corrected"


def _views(store: Warehouse) -> set[str]:
    with duckdb.connect(str(store.root / DUCKDB_FILE), read_only=True) as connection:
        rows = connection.execute("select view_name from duckdb_views() where not internal")
        return {name for (name,) in rows.fetchall()}


def test_views_are_made_again_only_when_a_table_appears_or_the_database_changed(tmp_path):
    store = Warehouse(tmp_path)
    store.write_day("quarantine", "2024-01-05", piece(0, 2))
    store.refresh_views()
    assert _views(store) >= {"quarantine"}
    made = (store.root / DUCKDB_FILE).stat().st_mtime_ns
    store.write_day("quarantine", "2024-01-06", piece(2, 2))  # the view's glob already reads it
    store.refresh_views()
    assert (store.root / DUCKDB_FILE).stat().st_mtime_ns == made
    with duckdb.connect(str(store.root / DUCKDB_FILE), read_only=True) as connection:
        assert connection.execute("select count(*) from quarantine").fetchone() == (4,)
    store.write_day("log_events", "2024-01-05", from_columns("log_events", {}))  # a new table
    store.refresh_views()
    assert _views(store) >= {"quarantine", "log_events"}
    with duckdb.connect(str(store.root / DUCKDB_FILE)) as connection:  # changed by someone else
        connection.execute("drop view quarantine")
    store.refresh_views()
    assert _views(store) >= {"quarantine", "log_events"}
    (store.root / DUCKDB_FILE).unlink()
    store.refresh_views()
    assert _views(store) >= {"quarantine", "log_events"}


def test_a_days_head_is_its_first_rows_across_row_groups_and_its_row_count(tmp_path):
    store = Warehouse(tmp_path, row_group_rows=2)
    writer = store.day_writer("quarantine", "2024-01-05")
    for first in range(0, 7, 2):  # row groups of 2, 2, 2 and 1 rows
        writer.write(piece(first, min(2, 7 - first)))
    writer.close()
    rows, head = store.day_head("quarantine", "2024-01-05", 5)
    assert rows == 7
    assert head.column("reason").to_pylist() == [f"u{i}" for i in range(5)]
    assert head.schema == store.read_day("quarantine", "2024-01-05").schema
    assert store.day_head("quarantine", "2024-01-06", 5) == (0, piece(0, 0))
