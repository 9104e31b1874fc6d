"""The synthetic generator: deterministic, in the real shapes, and what it says it wrote is what we read."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.ledger import reconcile
from calo_assets.logs.events import ALL_KINDS
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, read_days
from calo_assets.synth import cli
from calo_assets.synth.generator import SynthConfig, generate
from calo_assets.tables.sync import build_sync_tables


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_same_seed_same_bytes_and_the_committed_sample_is_reproducible(tmp_path):
    cli.main([str(tmp_path / "a")])
    generate(tmp_path / "b", SynthConfig())
    assert tree(tmp_path / "a") == tree(tmp_path / "b") == tree(SAMPLE_LOG_DIR)
    assert sum(len(data) for data in tree(SAMPLE_LOG_DIR).values()) < 1_000_000


def test_other_seed_other_data(tmp_path):
    generate(tmp_path / "a", SynthConfig(days=1, seed=1))
    generate(tmp_path / "b", SynthConfig(days=1, seed=2))
    assert tree(tmp_path / "a") != tree(tmp_path / "b")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    truth = generate(root, SynthConfig(days=5, invocations_per_day=150, seed=11))
    found = discover(root)
    days = sorted(set(found.days()) | truth.days_with_transactions)
    rows = read_days(found, days, IngestOptions())
    tables: dict[str, list[pa.Table]] = {}
    for day_rows in rows.values():
        for name, table in build_sync_tables(day_rows.events).items():
            tables.setdefault(name, []).append(table)
    arrow = {name: pa.concat_tables(parts) for name, parts in tables.items()}
    return truth, found, rows, {name: table.to_pylist() for name, table in arrow.items()}, arrow


def test_every_family_of_the_real_export_is_generated(generated):
    _, found, rows, _, _ = generated
    kinds = Counter(event["kind"] for day in rows.values() for event in day.events)
    assert set(ALL_KINDS) - set(kinds) == {"app_message", "unknown"}
    assert len(found.duplicates) == 1 and len(found.junk) == 3
    assert not [row for day in rows.values() for row in day.quarantine]


def test_what_the_generator_wrote_is_what_the_pipeline_reads(generated):
    truth, found, rows, tables, _ = generated
    transactions = tables["transactions"]
    assert len(found.parts) == truth.streams
    assert sum(day.records_read for day in rows.values()) == truth.records
    assert len(tables["invocations"]) == truth.invocations
    assert sum(row["init_starts"] for row in tables["invocations"]) == truth.cold_starts
    assert len(transactions) == truth.transactions
    assert sum(row["type_inferred"] for row in transactions) == truth.legacy_transactions
    assert Counter(row["type"] for row in transactions) == {
        "CREDIT": truth.credits,
        "DEBIT": truth.debits,
    }
    assert Counter(row["outcome"] for row in transactions) == {
        "applied": truth.published,
        "skipped": truth.skipped,
        "rejected": truth.rejections,
    }
    assert len(tables["balance_discrepancies"]) == truth.discrepancies
    assert len({row["user_id"] for row in tables["balance_discrepancies"]}) == len(
        truth.discrepancy_users
    )
    assert len(tables["negative_balance_rejections"]) == truth.rejections
    assert (
        Counter(row["kind"] for row in tables["processing_errors"])["uncaught_exception"]
        == truth.uncaught_exceptions
    )
    assert {str(row["day"]) for row in transactions} == truth.days_with_transactions
    sums: dict[str, Decimal] = {}
    for row in transactions:
        sums[row["currency"]] = sums.get(row["currency"], Decimal(0)) + row["amount"]
    assert sums == truth.amount_by_currency


def test_streams_cross_midnight(generated):
    _, _, rows, _, _ = generated
    crossing = [
        event
        for day, day_rows in rows.items()
        for event in day_rows.events
        if not event["occurred_at"].startswith(day)
    ]
    assert crossing, "some invocations should start before midnight and log after it"


def test_volume_follows_bytes_per_day(tmp_path):
    cli.main(
        [
            str(tmp_path / "out"),
            "--days",
            "1",
            "--bytes-per-day",
            "1M",
            "--truth",
            str(tmp_path / "truth.json"),
        ]
    )
    found = discover(tmp_path / "out")
    size = sum(len(read) for read in (part.path.read_bytes() for part in found.parts))
    text_size = sum(
        row["bytes_read"]
        for day in read_days(found, found.days(), IngestOptions()).values()
        for row in day.manifest
    )
    assert 0.9 * (1 << 20) < text_size < 1.1 * (1 << 20)
    assert size < text_size / 3  # compressed
    assert json.loads((tmp_path / "truth.json").read_text())["streams"] == len(found.parts)


@pytest.mark.parametrize(
    "arguments", [["--days", "0"], ["--invocations-per-day", "0"], ["--start", "yesterday"]]
)
def test_cli_refuses_bad_arguments(tmp_path, arguments):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path), *arguments])
    assert exit_info.value.code == 2


def test_the_planted_ledger_breaks_are_found(generated):
    truth, _, _, _, arrow = generated
    connection = duckdb.connect()
    for name, table in arrow.items():
        connection.register(name, table)
    breaks = Counter(row["rule"] for row in reconcile.ledger_breaks(connection).to_pylist())
    assert breaks == {"arithmetic": truth.arithmetic_breaks, "continuity": truth.continuity_breaks}
    assert truth.arithmetic_breaks > 0 and truth.continuity_breaks > 0
