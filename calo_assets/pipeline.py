"""The pipeline's steps over a log export, a warehouse and a range of days, without Dagster.

Each step is what one Dagster asset (or multi-asset) runs in production, and what ``calo-report``
runs in one process when no Dagster instance is asked for:

1. ``ingest``: the stream files of the days into ``log_events``, ``quarantine``, ``ingest_manifest``;
2. ``build_sync``: the five sync tables of each day from its ``log_events``;
3. ``score_anomalies``: ``anomaly_scores`` of each day over its trailing window;
4. ``build_history``: the reconciliation tables over the whole warehouse;
5. ``publish_report``: the workbook, chart images, HTML page and CSV files.

``run`` chains them. Checks are in ``calo_assets.checks``; both paths evaluate the same ones.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import repeat
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets import checks
from calo_assets.checks import CheckOutcome
from calo_assets.ledger import finance, reconcile
from calo_assets.ledger.anomalies import (
    INPUT_COLUMNS,
    AnomalySettings,
    score_days,
    transactions_frame,
)
from calo_assets.logs.export import Discovery, discover
from calo_assets.logs.ingest import IngestOptions, stream_days
from calo_assets.logs.source import LogSourceError, S3Prefix
from calo_assets.report.publish import ChartBrowser, Published, publish, start_charts
from calo_assets.tables.schema import SCHEMAS, to_rows, to_table
from calo_assets.tables.sync import SYNC_TABLES, SyncDay, shared_transaction_ids
from calo_assets.warehouse import Warehouse

INGEST_TABLES = ("log_events", "quarantine", "ingest_manifest")


@dataclass(frozen=True)
class HistoryTable:
    """A table recomputed over the whole warehouse: how it is built, what it reads, what it is."""

    build: Callable[[duckdb.DuckDBPyConnection], pa.Table]
    inputs: tuple[str, ...]
    description: str
    group: str = "ledger"


# Every table over the whole history, in the order they are built (an input comes first): the one
# registry the pipeline, the Dagster assets and their lineage are built from.
HISTORY_TABLES: dict[str, HistoryTable] = {
    "ledger_breaks": HistoryTable(
        reconcile.ledger_breaks,
        ("transactions",),
        "Transactions breaking the arithmetic rule or the per-user continuity rule, once each.",
    ),
    "user_exposure": HistoryTable(
        reconcile.user_exposure,
        ("balance_discrepancies", "transactions"),
        "Per user and currency: the latest gap between subscription and payment balance, its sign, "
        "when first and last seen and how often logged. Never a sum over repeated events.",
    ),
    "overdrafts": HistoryTable(
        reconcile.overdrafts,
        ("negative_balance_rejections", "transactions"),
        "Attempted overdrafts (rejected by the service, with the balance at the time) and applied "
        "ones (a new balance below zero that was applied), kept apart by `kind`.",
    ),
    "sync_outcomes": HistoryTable(
        reconcile.sync_outcomes,
        ("transactions", "log_events"),
        "Per day: transactions by outcome, reconciled against the 'event published' messages.",
    ),
    "user_summary": HistoryTable(
        reconcile.user_summary,
        ("transactions", "user_exposure", "ledger_breaks", "anomaly_scores"),
        "Per user: currency, transactions, credits, debits, amounts, first and last activity, "
        "discrepancy events, exposure, breaks and anomalies.",
    ),
    "discrepancy_cases": HistoryTable(
        finance.discrepancy_cases,
        (
            "balance_discrepancies",
            "transactions",
            "negative_balance_rejections",
            "log_events",
            "ingest_manifest",
        ),
        "One row per user and currency whose balances ever disagreed: status (open, probably "
        "resolved, resolved), age, the latest gap, what was being synced when it opened, and "
        "suspicion flags with their evidence.",
        "finance",
    ),
    "exposure_daily": HistoryTable(
        finance.exposure_daily,
        (
            "balance_discrepancies",
            "transactions",
            "negative_balance_rejections",
            "log_events",
            "ingest_manifest",
        ),
        "Every day of the period and currency: revenue at risk and amount owed as known at the end "
        "of that day, users holding them, cases opened and resolved that day.",
        "finance",
    ),
    "calendar": HistoryTable(
        finance.calendar,
        ("log_events", "ingest_manifest", "invocations", "transactions"),
        "Every day of the period, with whether logs exist for it (a day without logs is a finding).",
        "finance",
    ),
    "runtime_daily": HistoryTable(
        finance.runtime_daily,
        ("invocations", "transactions", "processing_errors", "log_events", "ingest_manifest"),
        "Runtime health per day: invocations, cold starts, init and run durations, billed seconds, "
        "memory, failed invocations and syncs, errors by type.",
        "runtime",
    ),
    "runtime_versions": HistoryTable(
        finance.runtime_versions,
        ("invocations", "transactions", "processing_errors", "log_events"),
        "Runtime health per Lambda runtime version, with the days each version ran.",
        "runtime",
    ),
    "error_types": HistoryTable(
        finance.error_types,
        ("processing_errors",),
        "Per error type: how often, first and last seen, days, invocations and transactions "
        "affected, and its first message.",
        "runtime",
    ),
}
# Every daily table a history query may read, so a missing one is an empty view, not an error.
_DAILY_INPUTS = (*SYNC_TABLES, *INGEST_TABLES, "anomaly_scores")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class PipelineError(RuntimeError):
    """A step could not run: the message says what to fix."""


class HistoryError(PipelineError):
    """Some history tables could not be built; ``built`` holds the others, as written."""

    def __init__(self, failed: dict[str, str], built: dict[str, pa.Table]) -> None:
        self.failed, self.built = failed, built
        super().__init__(
            "history tables not built: "
            + "; ".join(f"{name}: {why}" for name, why in failed.items())
        )


@dataclass
class Ingested:
    """What ``ingest`` read: the export's files, and per day the rows it wrote."""

    days: list[str]
    discovery: Discovery
    files: int
    kinds_by_day: dict[str, Counter[str]] = field(default_factory=dict)
    events_by_day: dict[str, int] = field(default_factory=dict)
    quarantined_by_day: dict[str, int] = field(default_factory=dict)
    records_read_by_day: dict[str, int] = field(default_factory=dict)
    preview: pa.Table | None = None


def ingest(
    log_dir: Path | S3Prefix,
    warehouse: Warehouse,
    days: list[str],
    options: IngestOptions,
    progress: Progress = _quiet,
    discovery: Discovery | None = None,
    refresh_views: bool = True,
) -> Ingested:
    """Read the stream files that can hold records of ``days`` once; write each day's events,
    quarantine and manifest. A day's events go to disk in row groups as the files are read."""
    try:
        found = discovery or discover(log_dir)
    except FileNotFoundError as exc:
        raise PipelineError(
            f"log folder {log_dir} does not exist: set CALO_LOG_DIR to a CloudWatch export folder"
        ) from exc
    except LogSourceError as exc:
        raise PipelineError(f"{exc}; nothing was written") from exc
    parts = found.parts_for_days(days)
    progress(f"{len(parts)} stream files to read for {len(days)} day(s) under {log_dir}")
    result = Ingested(days=list(days), discovery=found, files=len(parts))
    result.kinds_by_day = {day: Counter() for day in days}
    writers = {
        day: {name: warehouse.day_writer(name, day) for name in ("log_events", "quarantine")}
        for day in days
    }
    manifest: dict[str, list[dict]] = {day: [] for day in days}
    unfinished = sorted(days)
    try:
        for piece in stream_days(found, days, options):
            # Pieces come by stream day, and a day's rows only from streams of that day or before:
            # the days before the piece's streams are complete. Their last rows go to disk now,
            # not at the end of a long backfill (a write after that raises: nothing is dropped).
            while unfinished and unfinished[0] < piece.complete_before:
                for writer in writers[unfinished.pop(0)].values():
                    writer.finish()
            if piece.events is not None:
                writers[piece.day]["log_events"].write(piece.events)
                for item in pc.value_counts(piece.events["kind"]).to_pylist():
                    result.kinds_by_day[piece.day][item["values"]] += item["counts"]
                if result.preview is None:
                    result.preview = piece.events
            if piece.quarantine:
                writers[piece.day]["quarantine"].write(to_table("quarantine", piece.quarantine))
            manifest[piece.day].extend(piece.manifest)
        for day in unfinished:
            for writer in writers[day].values():
                writer.finish()
    except BaseException:
        for day_writers in writers.values():
            for writer in day_writers.values():
                writer.abort()
        raise
    for day in days:
        for writer in writers[day].values():
            writer.commit()
        warehouse.write_day("ingest_manifest", day, to_table("ingest_manifest", manifest[day]))
        result.events_by_day[day] = writers[day]["log_events"].rows
        result.quarantined_by_day[day] = writers[day]["quarantine"].rows
        result.records_read_by_day[day] = sum(row["records_read"] for row in manifest[day])
    if refresh_views:
        warehouse.refresh_views()
    progress(
        f"read {sum(result.records_read_by_day.values()):,} records: "
        f"{sum(result.events_by_day.values()):,} typed, "
        f"{sum(result.quarantined_by_day.values()):,} quarantined items"
    )
    return result


def build_sync(
    warehouse: Warehouse,
    days: Iterable[str],
    tables: Iterable[str] = SYNC_TABLES,
    progress: Progress = _quiet,
    refresh_views: bool = True,
    workers: int = 1,
) -> None:
    """Write the sync tables (``tables``, all five by default) of each day from its events.

    Days are independent: with ``workers`` > 1 they are built in that many forked processes (the
    libraries already loaded), each writing its own days' files.
    """
    selected = [name for name in SYNC_TABLES if name in set(tables)]
    days = list(days)
    if workers > 1 and len(days) > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, len(days)), mp_context=context) as pool:
            list(pool.map(build_sync_day, repeat(warehouse), days, repeat(selected)))
    else:
        for day in days:
            build_sync_day(warehouse, day, selected)
    if refresh_views:
        warehouse.refresh_views()
    progress(f"sync tables written for {len(days)} day(s)")


def build_sync_day(warehouse: Warehouse, day: str, tables: Iterable[str] = SYNC_TABLES) -> None:
    """Build the sync tables of one day from its ``log_events`` row groups and write ``tables``.

    Each table is written in row groups as the parts are read; the day's files are swapped together
    once every table is complete, so on failure the day keeps its previous version.
    """
    writers = {name: warehouse.day_writer(name, day) for name in tables}
    try:
        shared = (  # only a day in several parts needs to know what crosses them
            shared_transaction_ids(warehouse.day_file("log_events", day))
            if warehouse.day_row_groups("log_events", day) > 1
            else None
        )
        sync_day = SyncDay(shared)
        for part in warehouse.read_day_in_parts("log_events", day):
            for name, piece in sync_day.add(to_rows(part)).items():
                if name in writers:
                    writers[name].write(piece)
        corrections = sync_day.corrections()
        for name, writer in writers.items():
            writer.finish(corrections.get(name))
    except BaseException as exc:
        for writer in writers.values():
            writer.abort()
        if isinstance(exc, Exception):
            raise PipelineError(f"building the sync tables of {day} failed: {exc!r}") from exc
        raise
    for writer in writers.values():
        writer.commit()


def score_anomalies(
    warehouse: Warehouse,
    days: list[str],
    settings: AnomalySettings,
    workers: int = 1,
    progress: Progress = _quiet,
    refresh_views: bool = True,
) -> pa.Table:
    """Score each day with a model fitted on the window of days ending at it; return the scores."""
    if not 0 < settings.contamination <= 0.5 or settings.window_days < 1:
        raise PipelineError("contamination must be in (0, 0.5] and window_days at least 1")
    wanted = [date.fromisoformat(day) for day in days]
    history = days_between(wanted[0] - timedelta(days=settings.window_days - 1), wanted[-1])
    transactions = transactions_frame(warehouse.read_days("transactions", history, INPUT_COLUMNS))
    frames = score_days(transactions, wanted, settings, workers)
    # Converted to Arrow in the table's schema once, then written day by day.
    schema = SCHEMAS["anomaly_scores"]
    table = pa.Table.from_pandas(pd.concat(frames), preserve_index=False)
    table = table.select(schema.names).cast(schema)
    offset = 0
    for day, frame in zip(wanted, frames, strict=True):
        warehouse.write_day("anomaly_scores", day.isoformat(), table.slice(offset, len(frame)))
        offset += len(frame)
    if refresh_views:
        warehouse.refresh_views()
    progress(f"anomaly scores for {len(days)} day(s): {table.num_rows:,} transactions scored")
    return table


def build_history(
    warehouse: Warehouse,
    names: Iterable[str] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
    refresh_views: bool = True,
) -> dict[str, pa.Table]:
    """Recompute tables over the whole warehouse (``names``, every one by default), in registry
    order, write them and return them by name.

    They are built on one connection: ``connection`` when given, else one holding the views of their
    inputs only, with the daily inputs copied into memory (up to ``COPY_BYTES``: each is then read
    from its files once). Each table, once written, replaces its view there, so the tables built
    after it read it. A table that fails to build does
    not stop the others, but the ones reading it are not built either: ``HistoryError`` then says
    which and why, and holds the tables built.
    """
    chosen = set(HISTORY_TABLES if names is None else names)
    wanted = [name for name in HISTORY_TABLES if name in chosen]
    inputs = {source for name in wanted for source in HISTORY_TABLES[name].inputs}
    with (
        nullcontext(connection)
        if connection is not None
        else warehouse.connect(empty_tables=_DAILY_INPUTS, in_memory=_DAILY_INPUTS, tables=inputs)
    ) as shared:
        built: dict[str, pa.Table] = {}
        failed: dict[str, str] = {}
        for name in wanted:
            if missing := sorted(set(HISTORY_TABLES[name].inputs) & set(failed)):
                failed[name] = f"not built, as {', '.join(missing)} failed"
                continue
            try:
                built[name] = warehouse.write_table(name, HISTORY_TABLES[name].build(shared))
            except Exception as exc:  # a table's failure is reported with the others'
                failed[name] = f"{type(exc).__name__}: {exc}"
                continue
            shared.execute(f'drop view if exists "{name}"')
            shared.register(name, built[name])
    if refresh_views:
        warehouse.refresh_views()
    if failed:
        raise HistoryError(failed, built)
    return built


def _reading(source: str) -> set[str]:
    """The history tables that read ``source``, directly or through another history table."""
    readers: set[str] = set()
    for name, table in HISTORY_TABLES.items():  # an input comes before the tables reading it
        if source in table.inputs or readers & set(table.inputs):
            readers.add(name)
    return readers


def _scored(warehouse: Warehouse, days: list[str], settings: AnomalySettings, workers: int) -> int:
    """``score_anomalies`` (in a worker process): the rows scored."""
    return score_anomalies(warehouse, days, settings, workers, refresh_views=False).num_rows


def days_between(first: date, last: date) -> list[str]:
    """Every day from ``first`` to ``last`` inclusive, as ISO texts."""
    return [
        (first + timedelta(days=offset)).isoformat() for offset in range((last - first).days + 1)
    ]


def report_window(
    warehouse: Warehouse, first: str | None = None, last: str | None = None
) -> tuple[date, date]:
    """The days a report covers: ``first..last`` when given, else every materialized log day."""
    days = warehouse.days("log_events")
    if not days and not (first and last):
        raise PipelineError(
            "the warehouse holds no log days yet: materialize the daily assets first"
        )
    try:
        start = date.fromisoformat(first or days[0])
        end = date.fromisoformat(last or days[-1])
    except ValueError as exc:
        raise PipelineError(f"first_day / last_day must be dates (YYYY-MM-DD): {exc}") from exc
    if start > end:
        raise PipelineError(f"first_day {start} is after last_day {end}")
    return start, end


def publish_report(
    warehouse: Warehouse,
    output: Path,
    charts: ChartBrowser,
    first: str | None = None,
    last: str | None = None,
    check_settings: checks.CheckSettings | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> Published:
    """Write the report for ``first..last`` (every materialized day by default) into ``output``,
    its PNGs drawn by ``charts`` (``start_charts``); its queries run on ``connection`` when given (a
    ``Warehouse.connect`` holding every table)."""
    start, end = report_window(warehouse, first, last)
    return publish(
        warehouse,
        output,
        start,
        end,
        check_settings=check_settings,
        connection=connection,
        charts=charts,
    )


@dataclass
class RunOutcome:
    """What a whole run did: the ingest, the report, seconds per step."""

    ingested: Ingested
    report: Published
    seconds: dict[str, float]

    @property
    def checks(self) -> list[CheckOutcome]:
        """Every check's outcome, as the report evaluated them over the days it covers."""
        return self.report.data.checks

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [check for check in self.checks if not check.passed]


def run(
    log_dir: Path | S3Prefix,
    warehouse: Warehouse,
    report_dir: Path,
    days: list[str],
    options: IngestOptions,
    anomaly_settings: AnomalySettings | None = None,
    images: bool = True,
    max_discrepancy_rate: float = checks.DEFAULT_MAX_DISCREPANCY_RATE,
    progress: Progress = _quiet,
    discovery: Discovery | None = None,
) -> RunOutcome:
    """Every step for ``days`` in order, in this process: what one Dagster run of every asset does.

    The checks are evaluated once, by the report, over every day it covers.
    """
    settings = anomaly_settings or AnomalySettings()
    seconds: dict[str, float] = {}

    def timed(step: str, began: float) -> None:
        seconds[step] = time.perf_counter() - began
        progress(f"{step}: {seconds[step]:.1f} s")

    began = time.perf_counter()
    # The DuckDB views of calo.duckdb (for analysts) are refreshed once, at the end of the run.
    ingested = ingest(log_dir, warehouse, days, options, progress, discovery, refresh_views=False)
    timed("ingest", began)
    began = time.perf_counter()
    build_sync(warehouse, days, progress=progress, refresh_views=False, workers=options.workers)
    timed("sync tables", began)
    began = time.perf_counter()
    # The anomaly scores are computed in a forked process while the history tables that do not read
    # the scores are built here; those that do once the scores are written.
    waiting = _reading("anomaly_scores")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        # Submitted (so forked) before the connection below copies the tables: scoring, the
        # longest step, starts at once, in a process that holds no DuckDB state.
        scoring = pool.submit(_scored, warehouse, days, settings, options.workers)
        # One connection for the history tables and the report: the daily tables (but the scores,
        # not written yet) copied into memory once (up to ``COPY_BYTES``), the history tables kept
        # as they are written.
        with warehouse.connect(
            empty_tables=_DAILY_INPUTS,
            in_memory=[name for name in _DAILY_INPUTS if name != "anomaly_scores"],
        ) as connection:
            build_history(warehouse, set(HISTORY_TABLES) - waiting, connection, refresh_views=False)
            # The chart browser starts while the scores are computed (a core is free then), not when
            # the report begins: its start-up is over by the time the charts are drawn.
            charts = start_charts(images)
            try:
                scored = scoring.result()
                progress(f"anomaly scores for {len(days)} day(s): {scored:,} transactions scored")
                timed("anomaly scores", began)
                # The view made before the scores were written may be an empty stand-in.
                if statement := warehouse.view_statements().get("anomaly_scores"):
                    connection.unregister("anomaly_scores")
                    connection.execute(statement)
                build_history(warehouse, waiting, connection)
                timed("reconciliation", began)
                began = time.perf_counter()
                report = publish_report(
                    warehouse,
                    report_dir,
                    charts,
                    check_settings=checks.CheckSettings(max_discrepancy_rate),
                    connection=connection,
                )
                timed("report", began)
            except BaseException:
                charts.cancel()  # the browser is closed without drawing anything
                raise
    return RunOutcome(ingested, report, seconds)
