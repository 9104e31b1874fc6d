"""A small hand-made export for the report and metrics tests, and independent readers of its tables.

Days (UTC):
- 2023-12-20: a gap opens (+4 BHD) for u1, then no log for 15 days;
- 2024-01-05: a legacy sync, a typed debit with VAT (gross 5, net 4) and u1's gap grows (+10 BHD), a
  credit with a long action name, a sync rejected for a negative balance and a gap mirroring it (+100
  SAR), a rejection for a user with no transaction (so without a currency), and a user with gaps in
  two currencies (BHD +10, SAR -10);
- 2024-01-06: no transaction: a crashed invocation and an error outside any invocation (2 processing
  errors, none linked to a transaction, 1 failed invocation);
- 2024-01-07: no log at all;
- 2024-01-08: the first gap changes sign (-3 BHD) and a sync fails with an error linked to it;
- 2024-01-09: the look-back day after the last stream, materialized but empty.
"""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from calo_assets.ledger import finance
from calo_assets.report.publish import publish
from calo_assets.warehouse import Warehouse
from calo_assets_tests.logtext import StreamText

FIRST_DAY, LAST_DAY, LOOK_BACK_DAY = "2023-12-20", "2024-01-08", "2024-01-09"
LONG_ACTION = "SUBSCRIPTION_RENEWAL_WITH_A_REALLY_QUITE_LONG_ACTION_NAME"
UNCAUGHT = 'Uncaught Exception \t{"errorType":"Error","errorMessage":"boom"}'


def streams() -> list[StreamText]:
    early = StreamText("2023-12-20")
    early.start("r0").message("r0").sync("r0", "T0", "u1", amount="4", old="104", new="100")
    early.published("r0").discrepancy("r0", "u1", "100", "96").end("r0")

    first = StreamText("2024-01-05")
    first.start("r1").message("r1").sync("r1", "L1", "u1", kind=None, old="100", new="95")
    first.published("r1")
    first.message("r1").sync("r1", "T1", "u1", amount="5", vat="1", old="95", new="91")
    first.published("r1").discrepancy("r1", "u1", "91", "81")
    first.message("r1").sync(
        "r1", "T2", "u2", "SAR", amount="100", old="0", new="100", kind="CREDIT", action=LONG_ACTION
    ).published("r1")
    first.message("r1").sync("r1", "T3", "u3", "SAR", amount="100", old="10", new="-90")
    first.rejection("r1", "u3", "T3", "10").discrepancy("r1", "u3", "110", "10").end("r1")
    first.start("r2").rejection("r2", "ghost", "GX", "5").end("r2")
    first.start("r3").message("r3").sync("r3", "T4", "u9", "BHD", old="50", new="45")
    first.published("r3").discrepancy("r3", "u9", "45", "35")
    first.message("r3").sync("r3", "T5", "u9", "SAR", old="20", new="15").published("r3")
    first.discrepancy("r3", "u9", "15", "25").end("r3")

    second = StreamText("2024-01-06")
    second.start("r4").app("r4", "ERROR", UNCAUGHT).end("r4")
    second.app("undefined", "ERROR", UNCAUGHT)

    fourth = StreamText("2024-01-08")
    fourth.start("r5").message("r5").sync("r5", "T6", "u1", old="91", new="86").published("r5")
    fourth.discrepancy("r5", "u1", "86", "89")
    fourth.message("r5").sync("r5", "T7", "u2", "SAR", old="100", new="95")
    fourth.raw("Unknown application error occurred\nRuntime.Unknown").end("r5")
    return [early, first, second, fourth]


def write_export(root: Path) -> Path:
    """The export under ``root/export``; returns that folder."""
    for index, stream in enumerate(streams()):
        stream.write(root, f"{stream.day}-[$LATEST]{index:032d}")
    return root / "export"


def table(warehouse: Warehouse, name: str) -> pd.DataFrame:
    """Every row of a warehouse table, read straight from its Parquet files (no code under test)."""
    files = sorted((warehouse.root / name).rglob("*.parquet"))
    frames = [pq.read_table(path).to_pandas() for path in files]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


_BUILT: dict[Path, Warehouse] = {}


def add_finance_tables(warehouse: Warehouse) -> Warehouse:
    """Write the finance tables (``ledger/finance.py``) into ``warehouse``, as their assets would."""
    with warehouse.connect(empty_tables=finance.INPUTS) as connection:
        tables = {name: getattr(finance, name)(connection) for name in finance.TABLES}
    for name, rows in tables.items():
        warehouse.write_table(name, rows)
    return warehouse


def report_of(source: Warehouse, root: Path) -> tuple[Warehouse, Path]:
    """A copy of ``source`` under ``root`` with the finance tables, and its report of every day
    (chart images included) in ``root / "reports"``."""
    warehouse = add_finance_tables(Warehouse(shutil.copytree(source.root, root / "warehouse")))
    days = warehouse.days("log_events")
    folder = root / "reports"
    publish(warehouse, folder, date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
    return warehouse, folder


def materialized(base: Path) -> Warehouse:
    """The hand-made export materialized once per test session (every asset, for the days through
    the look-back day, as ``calo-report`` does), with the finance tables and the report of every day
    in ``../reports``."""
    from calo_assets_tests.conftest import materialize_range

    if base not in _BUILT:
        root = base / "handmade"
        root.mkdir()
        built = root / "built"
        result = materialize_range(
            write_export(root), built / "warehouse", FIRST_DAY, LOOK_BACK_DAY
        )
        assert result.success
        _BUILT[base] = report_of(Warehouse(built / "warehouse"), root)[0]
    return _BUILT[base]


UNKNOWN, TOLERANCE = "unknown", Decimal("0.0005")


def expected_figures(warehouse: Warehouse) -> dict[tuple[str, str | None], object]:
    """Every headline figure of the whole warehouse, by (name, currency), computed with pandas."""
    frames = {
        name: table(warehouse, name)
        for name in (
            "transactions",
            "balance_discrepancies",
            "negative_balance_rejections",
            "anomaly_scores",
            "processing_errors",
            "invocations",
            "ingest_manifest",
            "log_events",
            "quarantine",
        )
    }
    for frame in frames.values():
        if "currency" in frame.columns:
            frame["currency"] = frame["currency"].fillna(UNKNOWN)
    tx, gaps = frames["transactions"], frames["balance_discrepancies"]
    # exposure: the latest gap logged for each user and currency, from the raw discrepancy rows
    exposure = (
        gaps.sort_values(["occurred_at", "stream", "line"])
        .groupby(["user_id", "currency"], as_index=False)
        .last()
        .rename(columns={"gap": "latest_gap"})
    )
    over = exposure[exposure["latest_gap"] > TOLERANCE]
    under = exposure[exposure["latest_gap"] < -TOLERANCE]
    applied = tx[tx["outcome"] == "applied"]
    per_currency = {
        "transactions": (tx, len),
        "users_with_transactions": (tx, lambda rows: rows["user_id"].nunique()),
        "applied_credits": (applied[applied["type"] == "CREDIT"], len),
        "applied_debits": (applied[applied["type"] == "DEBIT"], len),
        "volume_credited": (applied[applied["type"] == "CREDIT"], lambda rows: sum(rows["amount"])),
        "volume_debited": (applied[applied["type"] == "DEBIT"], lambda rows: sum(rows["amount"])),
        "transactions_rejected": (tx[tx["outcome"] == "rejected"], len),
        "transactions_failed": (tx[tx["outcome"] == "failed"], len),
        "negative_balance_rejections": (frames["negative_balance_rejections"], len),
        "discrepancy_events": (gaps, len),
        "users_with_discrepancies": (gaps, lambda rows: rows["user_id"].nunique()),
        "revenue_at_risk": (over, lambda rows: sum(rows["latest_gap"])),
        "users_over_credited": (over, len),
        "owed_to_users": (under, lambda rows: -sum(rows["latest_gap"])),
        "users_under_credited": (under, len),
        "anomalies": (frames["anomaly_scores"].query("is_anomaly"), len),
    }
    money = {"volume_credited", "volume_debited", "revenue_at_risk", "owed_to_users"}
    no_total = money | {"users_over_credited", "users_under_credited"}
    currencies = set()
    for frame, _ in per_currency.values():
        currencies |= set(frame.get("currency", pd.Series(dtype=object)))
    expected: dict[tuple[str, str | None], object] = {}
    for name, (frame, measure) in per_currency.items():
        if name not in no_total:
            expected[(name, None)] = int(measure(frame))
        for currency in currencies:
            rows = frame[frame["currency"] == currency] if len(frame) else frame
            value = measure(rows)
            expected[(name, currency)] = Decimal(value) if name in money else int(value)
    invocations, quarantine = frames["invocations"], frames["quarantine"]
    manifest = frames["ingest_manifest"]
    read_days = manifest[manifest["records_read"] > 0]["day"].astype(str)
    expected |= {
        ("period_first", None): date.fromisoformat(read_days.min()),
        ("period_last", None): date.fromisoformat(read_days.max()),
        ("processing_errors", None): len(frames["processing_errors"]),
        ("invocations", None): len(invocations),
        ("failed_invocations", None): int((invocations["status"] != "success").sum()),
        ("log_streams", None): manifest["stream"].nunique(),
        ("records_read", None): int(manifest["records_read"].sum()),
        ("records_typed", None): len(frames["log_events"]),
        ("records_quarantined", None): int(
            (quarantine.get("unit", pd.Series(dtype=object)) == "record").sum()
        ),
        ("files_quarantined", None): int(
            (quarantine.get("unit", pd.Series(dtype=object)) == "file").sum()
        ),
    }
    return expected
