"""Daily assets: the log day read into typed events, then the sync tables built from those events.

Each run handles one partition or, as a single-run backfill, a whole range of days: the stream files
of the range are then read once, not once per day.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.defs.metadata import (
    TableSummary,
    schema_metadata,
    table_metadata,
    value_counts,
)
from calo_assets.defs.partitions import daily_partitions, single_run
from calo_assets.defs.resources import CaloResource
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import stream_days
from calo_assets.money import KNOWN_CURRENCIES
from calo_assets.tables.schema import SCHEMAS, to_rows, to_table
from calo_assets.tables.sync import (
    OUTCOMES,
    SYNC_TABLES,
    SyncDay,
    shared_transaction_ids,
)
from calo_assets.warehouse import Warehouse

INGEST_TABLES = ("log_events", "quarantine", "ingest_manifest")
NOTHING_LOST = "nothing_lost"

_DESCRIPTIONS = {
    "log_events": "Every record of the day, typed by message family (unknown families kept as generic events).",
    "quarantine": "What could not be read or parsed, with the reason and a short excerpt.",
    "ingest_manifest": "Per stream file and day: records read and bytes decompressed.",
    "invocations": "One row per Lambda request: timing, memory, cold start, status.",
    "transactions": "Balance syncs with exact amounts, direction (inferred for legacy rows) and outcome.",
    "balance_discrepancies": "'Not in sync' errors: both balances, the gap, the transaction and currency.",
    "negative_balance_rejections": "Transactions the service refused because the balance would go negative.",
    "processing_errors": "Every ERROR other than a balance discrepancy, with the transaction it hit.",
}


@dg.multi_asset(
    name="ingest_logs",
    specs=[
        dg.AssetSpec(
            name,
            description=_DESCRIPTIONS[name],
            group_name="logs",
            metadata=schema_metadata(name),
        )
        for name in INGEST_TABLES
    ],
    check_specs=[
        dg.AssetCheckSpec(
            NOTHING_LOST,
            asset="log_events",
            description="Records read = records typed (log_events) + records quarantined, for every day.",
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
)
def ingest_logs(context: dg.AssetExecutionContext, calo: CaloResource) -> Iterator:
    """Read the stream files of the days in this run into typed events and quarantine."""
    days = list(context.partition_keys)
    warehouse = calo.warehouse
    log_dir = Path(calo.log_dir)
    if not log_dir.is_dir():
        raise dg.Failure(
            f"CALO_LOG_DIR {log_dir} does not exist: set it to a CloudWatch export folder"
        )
    found = discover(log_dir)
    parts = found.parts_for_days(days)
    context.log.info(f"{len(parts)} stream files to read for {len(days)} day(s) under {log_dir}")
    # The day's events go to disk in row groups as the files are read: a big day is never held whole.
    writers = {day: warehouse.day_writer("log_events", day) for day in days}
    quarantine: dict[str, list[dict]] = {day: [] for day in days}
    manifest: dict[str, list[dict]] = {day: [] for day in days}
    kinds: Counter[str] = Counter()
    preview: pa.Table | None = None
    unfinished = list(days)  # in order
    try:
        for piece in stream_days(found, days, calo.ingest_options):
            if piece.events is not None:
                writers[piece.day].write(piece.events)
                kinds.update(value_counts(piece.events, "kind"))
                preview = preview if preview is not None else piece.events
                # Files come in stream-folder order and a day's rows only from its folder and the
                # one before: once day X has rows, the days before X - 1 are complete. Their last
                # rows go to disk now, not at the end of a long backfill.
                complete = (date.fromisoformat(piece.day) - timedelta(days=1)).isoformat()
                while unfinished and unfinished[0] < complete:
                    writers[unfinished.pop(0)].finish()
            quarantine[piece.day].extend(piece.quarantine)
            manifest[piece.day].extend(piece.manifest)
        for day in unfinished:
            writers[day].finish()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    written: dict[str, list[pa.Table]] = {"quarantine": [], "ingest_manifest": []}
    for day in days:
        writers[day].commit()
        written["quarantine"].append(
            warehouse.write_day("quarantine", day, to_table("quarantine", quarantine[day]))
        )
        written["ingest_manifest"].append(
            warehouse.write_day("ingest_manifest", day, to_table("ingest_manifest", manifest[day]))
        )
    warehouse.refresh_views()
    records = sum(row["records_read"] for rows in manifest.values() for row in rows)
    typed = sum(writer.rows for writer in writers.values())
    quarantined = sum(len(rows) for rows in quarantine.values())
    context.log.info(
        f"read {records:,} records: {typed:,} typed, {quarantined:,} quarantined items"
    )
    events_metadata = table_metadata(
        preview if preview is not None else SCHEMAS["log_events"].empty_table(), days, typed
    )
    events_metadata.update(
        {
            "stream files read": len(parts),
            "duplicate copies skipped": len(found.duplicates),
            "junk files ignored": len(found.junk),
            "files refused": len(found.refused),
            "records by kind": dg.MetadataValue.json(dict(sorted(kinds.items()))),
        }
    )
    yield dg.MaterializeResult(asset_key="log_events", metadata=events_metadata)
    for name in ("quarantine", "ingest_manifest"):
        table = pa.concat_tables(written[name])
        metadata = table_metadata(table, days)
        if name == "quarantine":
            metadata["reasons"] = dg.MetadataValue.json(value_counts(table, "reason"))
        yield dg.MaterializeResult(asset_key=name, metadata=metadata)
    yield nothing_lost_check(warehouse, days)


def nothing_lost_check(warehouse: Warehouse, days: list[str]) -> dg.AssetCheckResult:
    """Compare, from the written files, records read with records typed plus quarantined, per day."""
    per_day = []
    for day in days:
        read = pc.sum(warehouse.read_day("ingest_manifest", day)["records_read"]).as_py() or 0
        typed = warehouse.day_rows("log_events", day)
        quarantine = warehouse.read_day("quarantine", day)
        quarantined = pc.sum(pc.equal(quarantine["unit"], "record")).as_py() or 0
        per_day.append({"day": day, "read": read, "typed": typed, "quarantined": quarantined})
    lost = [row for row in per_day if row["read"] != row["typed"] + row["quarantined"]]
    return dg.AssetCheckResult(
        check_name=NOTHING_LOST,
        asset_key="log_events",
        passed=not lost,
        metadata={
            "records read": sum(row["read"] for row in per_day),
            "records typed": sum(row["typed"] for row in per_day),
            "records quarantined": sum(row["quarantined"] for row in per_day),
            "days with a difference": dg.MetadataValue.json(lost[:20]),
        },
    )


@dg.multi_asset(
    name="sync_tables",
    specs=[
        dg.AssetSpec(
            name,
            description=_DESCRIPTIONS[name],
            group_name="sync",
            deps=["log_events"],
            skippable=True,
            metadata=schema_metadata(name),
        )
        for name in SYNC_TABLES
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "transaction_ids_unique",
            asset="transactions",
            description="No transaction id appears on two rows, over the whole warehouse.",
        ),
        dg.AssetCheckSpec(
            "every_transaction_has_an_outcome",
            asset="transactions",
            description="Each transaction is applied, skipped, rejected, failed or unknown.",
        ),
        dg.AssetCheckSpec(
            "currencies_known",
            asset="transactions",
            description="Every transaction's currency is one whose minor unit is known (BHD, KWD, SAR, AED, QAR).",
        ),
        dg.AssetCheckSpec(
            "discrepancy_rate",
            asset="balance_discrepancies",
            description="Discrepancy events per transaction, per day, stay under CaloResource.max_discrepancy_rate.",
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    can_subset=True,
)
def sync_tables(
    context: dg.AssetExecutionContext, calo: CaloResource
) -> Iterator[dg.MaterializeResult]:
    """Invocations, transactions, discrepancies, rejections and errors of each day, from its events.

    Each table is written in row groups as the day's parts are read; the metadata is read back
    from the written files, part by part.
    """
    days = list(context.partition_keys)
    warehouse = calo.warehouse
    selected = [name for name in SYNC_TABLES if dg.AssetKey(name) in context.selected_asset_keys]
    for day in days:
        write_sync_day(warehouse, day, selected)
    warehouse.refresh_views()
    summaries = {name: _summary(warehouse, name, days) for name in selected}
    context.log.info(
        f"sync tables written for {len(days)} day(s): "
        + ", ".join(f"{name} {summary.rows:,}" for name, summary in summaries.items())
    )
    for name, summary in summaries.items():
        metadata = summary.metadata(days)
        if name == "transactions":
            metadata["outcomes"] = dg.MetadataValue.json(summary.value_counts("outcome"))
            metadata["amount by currency"] = dg.MetadataValue.json(
                summary.sum_by("currency", "amount")
            )
        if name == "invocations":
            metadata["status"] = dg.MetadataValue.json(summary.value_counts("status"))
        yield dg.MaterializeResult(asset_key=name, metadata=metadata)
    selected_checks = {key.name for key in context.selected_asset_check_keys}
    yield from sync_checks(warehouse, days, selected_checks, calo.max_discrepancy_rate)


def write_sync_day(warehouse: Warehouse, day: str, tables: list[str]) -> None:
    """Build the sync tables of one day from its ``log_events`` row groups and write ``tables``.

    Each table is written in row groups as the parts are read; on failure the day keeps its
    previous version (earlier days of the run are written).
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
            raise dg.Failure(f"building the sync tables of {day} failed: {exc!r}") from exc
        raise
    for writer in writers.values():  # every table is complete: the day's files are swapped together
        writer.commit()


def _summary(warehouse: Warehouse, name: str, days: list[str]) -> TableSummary:
    summary = TableSummary(name, _COUNTED.get(name, ()), _SUMMED.get(name, ()))
    for day in days:
        # Every column while the preview fills; then only what is counted or summed.
        columns = None if summary.wants_preview else summary.columns
        for part in warehouse.read_day_in_parts(name, day, columns):
            summary.add(part)
    return summary


_COUNTED = {"transactions": ("outcome",), "invocations": ("status",)}  # value counts shown
_SUMMED = {"transactions": (("currency", "amount"),)}  # sums per key shown


def sync_checks(
    warehouse: Warehouse, days: list[str], selected: set[str], max_rate: float
) -> Iterator[dg.AssetCheckResult]:
    """The checks of the sync tables, computed from the written files."""
    with warehouse.connect(empty_tables=SYNC_TABLES) as connection:
        if "transaction_ids_unique" in selected:
            duplicates = connection.sql(
                "select transaction_id, count(*) as rows from transactions group by 1 having count(*) > 1 order by 1 limit 20"
            ).fetchall()
            yield dg.AssetCheckResult(
                check_name="transaction_ids_unique",
                asset_key="transactions",
                passed=not duplicates,
                metadata={
                    "duplicated ids (first 20)": dg.MetadataValue.json(
                        [row[0] for row in duplicates]
                    )
                },
            )
        window = [date.fromisoformat(days[0]), date.fromisoformat(days[-1])]
        if "every_transaction_has_an_outcome" in selected:
            (missing,) = connection.execute(
                "select count(*) from transactions where day between ? and ? and outcome not in ?",
                [*window, list(OUTCOMES)],
            ).fetchone()
            yield dg.AssetCheckResult(
                check_name="every_transaction_has_an_outcome",
                asset_key="transactions",
                passed=missing == 0,
                metadata={"without an outcome": missing},
            )
        if "currencies_known" in selected:
            unknown = connection.execute(
                "select coalesce(currency, '(none)'), count(*) from transactions where day between ? and ?"
                " and (currency is null or currency not in ?) group by 1 order by 1",
                [*window, sorted(KNOWN_CURRENCIES)],
            ).fetchall()
            yield dg.AssetCheckResult(
                check_name="currencies_known",
                asset_key="transactions",
                passed=not unknown,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "unknown currencies (transactions)": dg.MetadataValue.json(dict(unknown))
                },
            )
        if "discrepancy_rate" in selected:
            rates = connection.execute(
                "with t as (select day, count(*) as n from transactions where day between ? and ? group by day),"
                " d as (select day, count(*) as n from balance_discrepancies group by day)"
                " select t.day::varchar, coalesce(d.n, 0) / t.n from t left join d using (day) order by 1",
                window,
            ).fetchall()
            high = [{"day": day, "rate": round(rate, 3)} for day, rate in rates if rate > max_rate]
            yield dg.AssetCheckResult(
                check_name="discrepancy_rate",
                asset_key="balance_discrepancies",
                passed=not high,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "bound": max_rate,
                    "days above the bound": dg.MetadataValue.json(high[:20]),
                    "days checked": len(rates),
                },
            )


@dg.asset_check(
    asset="log_events",
    description="The daily tables are fresh: the latest complete UTC day (yesterday) has been materialized.",
)
def latest_day_present(calo: CaloResource) -> dg.AssetCheckResult:
    """Warn when yesterday (UTC) is missing from the warehouse."""
    latest_complete = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    days = calo.warehouse.days("log_events")
    return dg.AssetCheckResult(
        passed=latest_complete in days,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "latest complete day": latest_complete,
            "latest day in the warehouse": days[-1] if days else "none",
        },
    )
