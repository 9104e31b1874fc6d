"""A corpus of damaged inputs, built here from the synthetic generator: each case damages one stream
file of a clean one-day export, and the run must keep every record of the other files, keep what it
can of the damaged one, and put the damage in quarantine with a reason a user can act on."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, read_days
from calo_assets.synth.generator import SynthConfig, generate

DAY = "2024-03-01"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    generate(root, SynthConfig(days=1, invocations_per_day=40, seed=5))
    for junk in root.rglob("000000"):
        junk.unlink()  # keep one copy of each stream: the cases below damage it
    rows = read_days(discover(root), [DAY, "2024-03-02"], IngestOptions())
    return root, rows


def victim(root: Path) -> Path:
    """The stream file every case damages: the first one with a transaction in it."""
    for path in sorted(root.rglob("000000.gz")):
        if b"Start syncing" in gzip.decompress(path.read_bytes()):
            return path
    raise AssertionError("no stream with a transaction")


def damage_copy(
    clean_root: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> tuple[Path, str]:
    """A copy of the clean export with the victim file damaged; returns the copy and the victim's stream."""
    root = tmp_path / "damaged"
    shutil.copytree(clean_root, root)
    target = root / victim(clean_root).relative_to(clean_root)
    damage(target)
    return root, target.parent.name


def keys(rows, exclude: str | None = None) -> set[tuple]:
    return {
        (event["stream"], event["line"], event["kind"])
        for day in rows.values()
        for event in day.events
        if event["stream"] != exclude
    }


def lines_of(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).split(b"\n")


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(gzip.compress(b"\n".join(lines), mtime=0))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def bad_crc(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(data))


def garbage_after(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"this is not gzip" * 10)


def plain_named_gz(path: Path) -> None:
    path.write_bytes(gzip.decompress(path.read_bytes()))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def binary_junk(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def invalid_utf8(path: Path) -> None:
    lines = lines_of(path)
    index = next(i for i, line in enumerate(lines) if b"Processing message" in line)
    lines[index] = lines[index] + b" \xff\xfe\xfd"
    write_lines(path, lines)


def huge_line(path: Path) -> None:
    lines = lines_of(path)
    first_ts = lines[0].split(b" ", 1)[0]
    lines.append(first_ts + b" " + first_ts + b"\tundefined\tINFO\tvery long " + b"x" * (20 << 20))
    write_lines(path, lines)


def cut_object(path: Path) -> None:
    text = gzip.decompress(path.read_bytes())
    position = text.rfind(b"Start syncing")
    write_lines(path, text[: position + 60].split(b"\n"))


def unbalanced(path: Path) -> None:
    text = gzip.decompress(path.read_bytes())
    position = text.find(b"transaction: {")
    write_lines(
        path,
        (text[:position] + b"transaction: {{" + text[position + len(b"transaction: {") :]).split(
            b"\n"
        ),
    )


def lone_cr(path: Path) -> None:
    write_lines(path, [b"\r".join(lines_of(path))])


def six_fraction_digits(path: Path) -> None:
    lines = lines_of(path)
    index = next(i for i, line in enumerate(lines) if b" START RequestId" in line)
    lines[index] = lines[index].replace(b"Z START", b"456Z START", 1)
    write_lines(path, lines)


def impossible_time(path: Path) -> None:
    lines = lines_of(path)
    lines.append(b"2024-03-01T25:00:00.000Z END RequestId: r-impossible")
    write_lines(path, lines)


def far_future(path: Path) -> None:
    lines = lines_of(path)
    lines.append(b"2099-01-01T00:00:00.000Z END RequestId: r-future")
    write_lines(path, lines)


def control_character(path: Path) -> None:
    text = gzip.decompress(path.read_bytes())
    position = text.find(b"userId: '") + len(b"userId: '")
    write_lines(path, (text[:position] + b"\x00\x01" + text[position:]).split(b"\n"))


CASES = {
    "truncated gzip": (truncate, "file", "truncated gzip"),
    "corrupt gzip (bad CRC)": (bad_crc, "file", "corrupt gzip"),
    "garbage after a valid gzip member": (garbage_after, "file", "corrupt gzip"),
    "a .gz file that is plain text": (plain_named_gz, None, None),
    "an empty file": (empty, "file", "empty file"),
    "binary junk": (binary_junk, "record", "text without a timestamp"),
    "invalid UTF-8 inside a line": (invalid_utf8, "record", "invalid UTF-8 in record"),
    "a line of 20 MB": (huge_line, None, None),
    "a multi-line object cut off by the end of the file": (
        cut_object,
        "record",
        "transaction to sync",
    ),
    "an object with unbalanced braces": (unbalanced, "record", "transaction to sync"),
    "lone CR line ends": (lone_cr, None, None),
    "a timestamp with six fraction digits": (six_fraction_digits, None, None),
    "an impossible time (hour 25)": (impossible_time, "record", "impossible timestamp"),
    "a record of 2099, outside the run's days": (far_future, "record", "record of 2099-01-01"),
    "control characters inside a string": (control_character, None, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_file_loses_nothing_else(clean, tmp_path, case):
    clean_root, clean_rows = clean
    damage, unit, reason = CASES[case]
    root, damaged_stream = damage_copy(clean_root, tmp_path, damage)
    rows = read_days(discover(root), [DAY, "2024-03-02"], IngestOptions())
    # Every record of every other file is still there, and the run went on.
    assert keys(clean_rows, exclude=damaged_stream) <= keys(rows)
    quarantined = [row for day in rows.values() for row in day.quarantine]
    if unit is None:  # nothing lost in the damaged file either
        assert quarantined == []
        assert keys(clean_rows) <= keys(rows)
    else:
        assert [row["unit"] for row in quarantined if row["reason"].startswith(reason)] == [unit], (
            quarantined
        )
        assert all(row["stream"] == damaged_stream for row in quarantined)
    # Nothing lost: records read = typed + quarantined records, day by day.
    for day_rows in rows.values():
        quarantined_records = sum(row["unit"] == "record" for row in day_rows.quarantine)
        assert day_rows.records_read == len(day_rows.events) + quarantined_records


def test_a_truncated_file_keeps_the_records_before_the_damage(clean, tmp_path):
    clean_root, clean_rows = clean
    root, stream = damage_copy(clean_root, tmp_path, truncate)
    before = {key for key in keys(clean_rows) if key[0] == stream}
    after = {
        key
        for key in keys(read_days(discover(root), [DAY, "2024-03-02"], IngestOptions()))
        if key[0] == stream
    }
    assert after and after < before


def test_end_without_start_and_start_without_end(tmp_path):
    from calo_assets.tables.sync import build_sync_tables
    from calo_assets_tests.logtext import StreamText

    stream = (
        StreamText()
        .raw("END RequestId: orphan")
        .raw("REPORT RequestId: orphan\tDuration: 1.00 ms\t")
    )
    stream.start("open").message("open").sync("open", "T1")
    stream.write(tmp_path)
    day = read_days(discover(tmp_path), ["2024-01-05"], IngestOptions())["2024-01-05"]
    assert [event["kind"] for event in day.events][:2] == ["end", "report"]  # kept, not dropped
    tables = {name: table.to_pylist() for name, table in build_sync_tables(day.events).items()}
    assert [(row["request_id"], row["status"]) for row in tables["invocations"]] == [
        ("open", "incomplete")
    ]
    assert [(row["transaction_id"], row["outcome"]) for row in tables["transactions"]] == [
        ("T1", "failed")
    ]


def test_unreadable_file_is_refused_and_quarantined(clean, tmp_path, monkeypatch):
    import calo_assets.logs.source as export  # where the local folder is walked

    clean_root, clean_rows = clean
    root = tmp_path / "copy"
    shutil.copytree(clean_root, root)
    target = victim(root)
    real_access = export.os.access
    monkeypatch.setattr(
        export.os, "access", lambda path, mode: Path(path) != target and real_access(path, mode)
    )
    rows = read_days(discover(root), [DAY, "2024-03-02"], IngestOptions())
    quarantined = [row for day in rows.values() for row in day.quarantine]
    assert [(row["unit"], row["reason"]) for row in quarantined] == [
        ("file", "file not readable (permission denied)")
    ]
    assert keys(clean_rows, exclude=target.parent.name) <= keys(rows)


def test_damage_reaches_the_report_data_quality_sheet(clean, tmp_path):
    import openpyxl

    from calo_assets_tests.conftest import materialize_range

    clean_root, _ = clean
    root, _ = damage_copy(clean_root, tmp_path, truncate)
    result = materialize_range(root, tmp_path / "warehouse", DAY, "2024-03-02")
    assert result.success
    nothing_lost = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "nothing_lost"
    ]
    assert len(nothing_lost) == 2 and all(check.passed for check in nothing_lost)  # one per day
    sheet = openpyxl.load_workbook(tmp_path / "reports" / "balance_sync_analytics_report.xlsx")[
        "Data Quality"
    ]
    reasons = [row[6] for row in sheet.iter_rows(min_row=4, values_only=True)]
    assert any(str(reason).startswith("truncated gzip") for reason in reasons)
    assert any(str(reason).startswith("last record cut off") for reason in reasons)
