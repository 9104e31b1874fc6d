"""Where tables live: Parquet files under the warehouse folder, and DuckDB views over them.

Layout::

    <warehouse>/<table>/day=YYYY-MM-DD/data.parquet   daily tables, one file per day
    <warehouse>/<table>/data.parquet                  tables over the whole history
    <warehouse>/calo.duckdb                           one view per table, for analysts
    <warehouse>/.views, .views.lock                   what calo.duckdb's views were made from

Every file is written to a temporary name in the same folder and renamed over the old one, so a
re-run replaces a day and a crash leaves the previous version whole. A file is compressed with
snappy, or zstd when its first row group holds ``ZSTD_MIN_ROWS`` rows or more. Queries (the
pipeline's, the report's, the checks') run on ``Warehouse.connect``: an in-memory DuckDB connection
with views over the files, some tables copied into memory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import LocalFileSystem

from calo_assets.tables.schema import SCHEMAS, with_corrections

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"
DUCKDB_FILE = "calo.duckdb"
VIEWS_NOTE = ".views"  # which views calo.duckdb holds (``Warehouse.refresh_views``)
VIEWS_LOCK = ".views.lock"  # held while they are made
ROW_GROUP_ROWS = 128_000  # the default size of a Parquet row group (``Warehouse.row_group_rows``)
# A file whose first row group is smaller is compressed with snappy, a larger one with zstd: zstd
# compresses about a third better, but sets up a context per column chunk, which costs more than it
# saves on the small days of a typical export (0.65 against 0.34 ms to write one, 0.49 against 0.30
# to read it back, measured on the real export's days).
ZSTD_MIN_ROWS = 10_000
COPY_BYTES = 128 * 2**20  # what the tables ``connect`` copies into memory hold on disk, at most
_GLOB_CHARACTERS = re.compile(r"([\[\]*?])")
# Named for every file opened: without it pyarrow looks each path up and parses it as a URI first.
_LOCAL = LocalFileSystem()


class WriterClosedError(RuntimeError):
    """Rows were written to a ``DayWriter`` after it was finished: they would have been lost."""


class Warehouse:
    """Read and write the warehouse's tables, in row groups of about ``row_group_rows`` rows."""

    def __init__(self, root: Path, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.root = Path(root)
        self.row_group_rows = row_group_rows

    def day_file(self, table: str, day: str) -> Path:
        return self.root / table / f"day={day}" / DATA_FILE

    def table_file(self, table: str) -> Path:
        return self.root / table / DATA_FILE

    def write_day(self, table: str, day: str, data: pa.Table) -> pa.Table:
        """Replace one day of a daily table; return the table as written (in the table's schema)."""
        conformed = _conform(table, data)
        _write_atomically(self.day_file(table, day), conformed, self.row_group_rows)
        return conformed

    def day_writer(self, table: str, day: str) -> DayWriter:
        """A writer of one day of a daily table in row groups; the file appears whole at ``close()``."""
        return DayWriter(self.day_file(table, day), SCHEMAS[table], self.row_group_rows)

    def write_table(self, table: str, data: pa.Table) -> pa.Table:
        """Replace a table computed over the whole history; returns the rows as written (in the
        table's schema)."""
        written = _conform(table, data)
        _write_atomically(self.table_file(table), written, self.row_group_rows)
        return written

    def read_day(self, table: str, day: str) -> pa.Table:
        """One day of a daily table (empty when the day was never written)."""
        return self.read_days(table, [day])

    def read_days(
        self, table: str, days: Iterable[str], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Several days of a daily table (or only ``columns`` of it), in the order given; missing
        days are empty."""
        parts = [
            _read(path, columns) for day in days if (path := self.day_file(table, day)).exists()
        ]
        data = _concat(table, parts)
        return data if columns is None else data.select(list(columns))

    def day_head(self, table: str, day: str, rows: int) -> tuple[int, pa.Table]:
        """Rows of one day of a daily table (from the file's footer) and its first ``rows`` rows,
        with one opening of the file and only those rows decoded (0 and an empty table when the day
        was never written)."""
        path = self.day_file(table, day)
        if not path.exists():
            return 0, SCHEMAS[table].empty_table()
        with pq.ParquetFile(path, filesystem=_LOCAL) as parquet:
            batches, kept = [], 0
            for batch in parquet.iter_batches(
                batch_size=max(1, rows)
            ):  # a batch ends with its group
                if kept >= rows:
                    break
                batches.append(batch.slice(0, rows - kept))
                kept += batches[-1].num_rows
            head = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
            return parquet.metadata.num_rows, _in_schema(SCHEMAS[table], head)

    def day_row_groups(self, table: str, day: str) -> int:
        """Row groups of one day of a daily table, from the file's footer (0 when never written)."""
        path = self.day_file(table, day)
        return pq.ParquetFile(path, filesystem=_LOCAL).num_row_groups if path.exists() else 0

    def read_day_in_parts(
        self, table: str, day: str, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        """One day of a daily table (or only ``columns`` of it: none gives just the row counts), row
        group by row group (nothing when the day was never written)."""
        path = self.day_file(table, day)
        if not path.exists():
            return
        parquet = pq.ParquetFile(path, filesystem=_LOCAL)
        for index in range(parquet.num_row_groups):
            yield parquet.read_row_group(index, columns=None if columns is None else list(columns))

    def days(self, table: str) -> list[str]:
        """The days written for a daily table, sorted."""
        return sorted(day for day, path in self._day_files(table) if path.exists())

    def has_days(self, table: str) -> bool:
        """Whether a daily table has at least one day written (stops at the first one found: a
        connection's views only need to know, and the checks of a run open one per day checked)."""
        return any(path.exists() for _, path in self._day_files(table))

    def bytes_on_disk(self, table: str) -> int:
        """Size of a table's Parquet files (0 when never written)."""
        if self.table_file(table).exists():
            return self.table_file(table).stat().st_size
        # One stat per day (``connect`` sizes every table it may copy, at every connection).
        size = 0
        for _, path in self._day_files(table):
            with suppress(FileNotFoundError, NotADirectoryError):
                size += path.stat().st_size
        return size

    def _day_files(self, table: str) -> Iterator[tuple[str, Path]]:
        """(day, its data file, written or not) of each day folder of a daily table."""
        folder = self.root / table
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name.startswith("day="):
                    yield entry.name[4:], entry / DATA_FILE

    def read_all(self, table: str) -> pa.Table:
        """Every day of a daily table, or the whole of a history table."""
        if self.table_file(table).exists():
            return _read(self.table_file(table))
        return self.read_days(table, self.days(table))

    def view_statements(self) -> dict[str, str]:
        """``CREATE VIEW`` statements, one per table that has data, reading its Parquet files."""
        return {table: _view(table, source) for table, source in self._sources().items()}

    def _sources(self) -> dict[str, str]:
        """``read_parquet(...)`` of every table that has data, by name."""
        sources: dict[str, str] = {}
        if not self.root.is_dir():
            return sources
        for table in sorted(path.name for path in self.root.iterdir() if path.is_dir()):
            if self.table_file(table).exists():
                source = glob_escape(self.table_file(table))
            elif self.has_days(table):
                source = f"{glob_escape(self.root / table)}/day=*/{DATA_FILE}"
            else:
                continue
            quoted = source.replace("'", "''")
            sources[table] = f"read_parquet('{quoted}')"
        return sources

    def connect(
        self,
        empty_tables: Iterable[str] = (),
        in_memory: Iterable[str] = (),
        copy_bytes: int = COPY_BYTES,
        tables: Iterable[str] | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per table (or per table named in ``tables``),
        for queries over the Parquet files.

        Tables named in ``empty_tables`` that have no data yet are visible as empty tables. Those
        named in ``in_memory`` are read once, into an in-memory table of that name instead of a view
        (for many queries: a daily table is one file per day), in that order, each one whose files
        fit in what is left of ``copy_bytes``; the others stay on disk.
        """
        connection = duckdb.connect()
        sources = self._sources()
        if tables is not None:
            wanted = set(tables)
            sources = {name: source for name, source in sources.items() if name in wanted}
            empty_tables = [name for name in empty_tables if name in wanted]
        copies, budget = [], copy_bytes
        for table in dict.fromkeys(name for name in in_memory if name in sources):
            if (size := self.bytes_on_disk(table)) <= budget:
                copies.append(table)
                budget -= size
        for table, source in sources.items():
            if table not in copies:
                connection.execute(_view(table, source))
        for table in copies:  # a table, not a view over one: a view costs every query that reads it
            connection.execute(f'create table "{table}" as select * from {sources[table]}')
        for table in empty_tables:
            if table not in sources:
                connection.register(table, SCHEMAS[table].empty_table())
        return connection

    def refresh_views(self) -> list[str]:
        """Make one view per written table in ``calo.duckdb`` (unless the database already holds
        exactly these views); return the view names.

        The views are a convenience over the Parquet files: if another process holds the database
        open, the views are left as they were and a warning is logged.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        statements = self.view_statements()
        # A view reads every day of its table (a glob), so once made it needs no refresh until a
        # table appears or the database changes: what was made is noted beside it, with the
        # database file's identity after the change.
        made = "\n".join(statements.values())
        with _lock(self.root / VIEWS_LOCK):
            if _views_note(self.root, made) == _read_note(self.root / VIEWS_NOTE):
                return list(statements)
            try:
                with (
                    _database_file(self.root / DUCKDB_FILE) as database,
                    duckdb.connect(str(database)) as connection,
                ):
                    for statement in statements.values():
                        connection.execute(statement)
            except duckdb.IOException as exc:
                log.warning("DuckDB views not refreshed (database in use?): %s", exc)
                return list(statements)
            write_text_atomically(self.root / VIEWS_NOTE, _views_note(self.root, made))
        return list(statements)


class DayWriter:
    """Writes a table in pieces, buffered into row groups of about ``row_group_rows`` rows.

    A piece is never split across row groups, so rows written together stay together (a file's
    invocations, for the sync tables). The file is written under a temporary name and renamed over the
    old version at ``commit()`` (``finish()`` writes it out first, ``close()`` does both); ``abort()``
    (or a crash) leaves the old version whole.
    """

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.path, self.schema, self.row_group_rows = path, schema, row_group_rows
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        self._writer: pq.ParquetWriter | None = None
        self._compression = "snappy"  # chosen with the first row group (``_compression``)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._finished = False
        self.rows = 0

    def write(self, piece: pa.Table) -> None:
        """Add rows (in the table's schema); a row group is written once enough rows are waiting.

        Raises ``WriterClosedError`` once the day is finished: the rows would never reach the file."""
        if self._finished:
            raise WriterClosedError(
                f"{self.path}: {piece.num_rows} row(s) written after the day was finished"
            )
        self._pending.append(_in_schema(self.schema, piece))
        self._pending_rows += piece.num_rows
        self.rows += piece.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush()

    def close(self) -> Path:
        """``finish``, then ``commit``."""
        self.finish()
        return self.commit()

    def finish(self, corrections: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        """Write what is waiting (an empty table when nothing was written); not in place yet.

        ``corrections`` (row number -> new values of some columns, see ``with_corrections``) change
        rows already written: the file is then rewritten row group by row group.
        """
        self._flush(final=True)
        self._finished = True
        assert self._writer is not None
        self._writer.close()
        if corrections:
            self._rewrite(corrections)

    def commit(self) -> Path:
        """Put the finished file in place of the previous version (an atomic rename)."""
        self._temporary.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop what was written; the previous version of the day stays."""
        if self._writer is not None:
            self._writer.close()
        self._temporary.unlink(missing_ok=True)

    def _rewrite(self, corrections: Mapping[int, Mapping[str, Any]]) -> None:
        rewritten = self._temporary.with_suffix(".rewritten.tmp")
        try:
            with (
                pq.ParquetFile(self._temporary, filesystem=_LOCAL) as source,
                pq.ParquetWriter(
                    rewritten,
                    self.schema,
                    compression=self._compression,
                    filesystem=_LOCAL,
                ) as writer,
            ):
                first_row = 0
                for index in range(source.num_row_groups):
                    group = source.read_row_group(index)
                    writer.write_table(
                        with_corrections(group, corrections, first_row),
                        row_group_size=max(1, group.num_rows),
                    )
                    first_row += group.num_rows
            rewritten.replace(self._temporary)
        finally:
            rewritten.unlink(missing_ok=True)

    def _flush(self, final: bool = False) -> None:
        if not self._pending and not (final and self._writer is None):
            return
        group = pa.concat_tables(self._pending) if self._pending else self.schema.empty_table()
        if self._writer is None:
            self._compression = _compression(group.num_rows)
            self._writer = pq.ParquetWriter(
                self._temporary, self.schema, compression=self._compression, filesystem=_LOCAL
            )
        self._writer.write_table(group, row_group_size=max(1, group.num_rows))
        self._pending, self._pending_rows = [], 0


def _view(table: str, source: str) -> str:
    """The statement making ``table`` a view of ``source``."""
    return f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM {source}'


def glob_escape(path: Path) -> str:
    """``path`` as a DuckDB glob that matches only itself (``[``, ``]``, ``*``, ``?`` bracketed)."""
    return _GLOB_CHARACTERS.sub(r"[\1]", str(path))


def _read(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    # ParquetFile.read is several times faster than read_table (no dataset discovery) for one file.
    return pq.ParquetFile(path, filesystem=_LOCAL).read(
        columns=None if columns is None else list(columns)
    )


def _compression(first_row_group_rows: int) -> str:
    """The Parquet codec of a file, by the size of its first row group (``ZSTD_MIN_ROWS``)."""
    return "zstd" if first_row_group_rows >= ZSTD_MIN_ROWS else "snappy"


def _conform(table: str, data: pa.Table) -> pa.Table:
    schema = SCHEMAS.get(table)
    return data if schema is None else _in_schema(schema, data)


def _in_schema(schema: pa.Schema, data: pa.Table) -> pa.Table:
    # Most tables are built in their schema already: casting each column again costs time.
    return (
        data
        if data.schema.equals(schema, check_metadata=True)
        else data.select(schema.names).cast(schema)
    )


def _concat(table: str, parts: list[pa.Table]) -> pa.Table:
    if not parts:
        schema = SCHEMAS.get(table)
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]


def _write_atomically(path: Path, data: pa.Table, row_group_rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(
            data,
            temporary,
            compression=_compression(min(data.num_rows, row_group_rows)),
            row_group_size=row_group_rows,
            filesystem=_LOCAL,
        )
        # The rename is atomic: readers and a crashed run see the old file or the new one, never half.
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _views_note(root: Path, made: str) -> str:
    """The views' statements and the database file's identity (inode, size, modification time)."""
    try:
        found = (root / DUCKDB_FILE).stat()
    except FileNotFoundError:
        return ""
    return f"{found.st_ino} {found.st_size} {found.st_mtime_ns}\n{made}"


def _read_note(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_text_atomically(path: Path, text: str) -> None:
    """Replace the text file ``path`` whole: readers see the old text or the new one."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


@contextmanager
def _database_file(path: Path) -> Iterator[Path]:
    """Where to open the DuckDB database ``path``. DuckDB reads what follows a ``?`` in a database
    path as options (its write-ahead log then goes nowhere), so under such a folder the database is
    built in a temporary folder and moved into place."""
    if "?" not in str(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="calo-") as folder:
        built = Path(folder) / path.name
        yield built
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(built, temporary)
        temporary.replace(path)


@contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
