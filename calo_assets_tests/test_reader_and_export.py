"""Reading stream files (gzip by magic bytes, damage kept in check) and finding streams in an export."""

from __future__ import annotations

import gzip
from pathlib import Path

from calo_assets.logs.export import discover
from calo_assets.logs.reader import read_text, split_records

TEXT = (
    "2024-01-01T10:00:00.000Z START RequestId: r1 Version: $LATEST\n\n"
    "2024-01-01T10:00:00.100Z 2024-01-01T10:00:00.100Z\tr1\tINFO\tStart syncing the balance {\n"
    "  transaction: { id: 'T1' }\n}\n\n"
    "2024-01-01T10:00:00.200Z REPORT RequestId: r1\tDuration: 1.00 ms\t\n"
    "XRAY TraceId: 1-abc\tSegmentId: 1\tSampled: true\t\n"
)


def stream_folder(root: Path, name: str = "2024-01-01-[$LATEST]abc123") -> Path:
    folder = root / "export-1" / name
    folder.mkdir(parents=True)
    return folder


def test_gzip_is_detected_by_magic_bytes_not_by_name(tmp_path):
    (tmp_path / "named.gz").write_text(TEXT)
    (tmp_path / "plain").write_bytes(gzip.compress(TEXT.encode()))
    assert read_text(tmp_path / "named.gz") == (TEXT, [])
    assert read_text(tmp_path / "plain") == (TEXT, [])


def test_truncated_gzip_keeps_what_came_before_the_damage(tmp_path):
    data = gzip.compress((TEXT * 2000).encode())
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    text, problems = read_text(tmp_path / "cut.gz")
    assert 0 < len(text) < len(TEXT) * 2000
    assert TEXT * 10 in text
    assert [problem.reason.split(":")[0] for problem in problems] == ["truncated gzip"]


def test_gzip_bomb_stops_at_the_limit(tmp_path):
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(b"A" * (20 << 20)))
    text, problems = read_text(tmp_path / "bomb.gz", max_bytes=1 << 20)
    assert len(text) == 1 << 20
    assert "limit" in problems[0].reason


def test_invalid_utf8_is_reported_and_replaced(tmp_path):
    (tmp_path / "bad").write_bytes(TEXT.encode() + b"2024-01-01T10:00:01.000Z \xff\xfe junk\n")
    text, problems = read_text(tmp_path / "bad")
    assert "\ufffd" in text
    assert problems[0].reason.startswith("invalid UTF-8 at byte")


def test_records_join_continuation_lines_and_split_xray():
    records, problems = split_records(TEXT)
    assert problems == []
    assert list(zip(records.lines, records.stamps, strict=True)) == [
        (1, "2024-01-01T10:00:00.000Z"),
        (3, "2024-01-01T10:00:00.100Z"),
        (7, "2024-01-01T10:00:00.200Z"),
        (8, "2024-01-01T10:00:00.200Z"),
    ]
    assert records.bodies[1].endswith("transaction: { id: 'T1' }\n}")
    assert records.bodies[3].startswith("XRAY TraceId: 1-abc")


def test_text_before_the_first_record_is_a_problem():
    records, problems = split_records("orphan line\n" + TEXT)
    assert len(records) == 4
    assert problems[0].reason == "text without a timestamp before the first record"
    assert problems[0].excerpt == "orphan line\\n"


def test_discovery_reads_each_part_once_and_counts_junk(tmp_path):
    folder = stream_folder(tmp_path)
    (folder / "000000.gz").write_bytes(gzip.compress(TEXT.encode()))
    (folder / "000000").write_text(TEXT)
    (folder / ".DS_Store").write_bytes(b"\0junk")
    second_export = tmp_path / "export-2" / folder.name
    second_export.mkdir(parents=True)
    (second_export / "000000.gz").write_bytes(gzip.compress(TEXT.encode()))
    found = discover(tmp_path)
    assert [part.label for part in found.parts] == [f"{folder.name}/000000.gz"]
    assert len(found.duplicates) == 2
    assert [path.name for path in found.junk] == [".DS_Store"]
    assert found.days() == ["2024-01-01"]


def test_discovery_does_not_follow_links_out_of_the_log_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text(TEXT)
    logs = tmp_path / "logs"
    folder = stream_folder(logs)
    (folder / "000000").symlink_to(outside / "secret")
    found = discover(logs)
    assert found.parts == []
    assert "outside the log folder" in found.refused[0][1]


def test_parts_for_a_day_include_the_day_before(tmp_path):
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        (stream_folder(tmp_path, f"{day}-[$LATEST]ff") / "000000.gz").write_bytes(
            gzip.compress(b"")
        )
    found = discover(tmp_path)
    assert [part.folder_day for part in found.parts_for_days(["2024-01-03"])] == [
        "2024-01-02",
        "2024-01-03",
    ]


def test_a_fifo_is_not_opened_for_reading(tmp_path):
    import os

    os.mkfifo(tmp_path / "000000.gz")
    text, problems = read_text(tmp_path / "000000.gz")  # would wait for a writer forever
    assert (text, [problem.reason for problem in problems]) == (
        "",
        ["not a regular file (named pipe): not read"],
    )


def test_a_record_longer_than_the_limit_is_quarantined_and_counted(tmp_path):
    from calo_assets.logs import reader
    from calo_assets.logs.limits import ReadLimits

    limits = ReadLimits(max_record_chars=1000, read_bytes=300)
    long = (
        "2024-01-01T10:00:00.050Z 2024-01-01T10:00:00.050Z\tr1\tINFO\tlong {\n" + "  x: 1,\n" * 500
    )
    (tmp_path / "file").write_bytes(gzip.compress((long + TEXT).encode()))
    reading = reader.FileReading()
    segments = list(reader.read_segments(tmp_path / "file", reading, limits=limits))
    records = [split_records(segment.text, segment.first_line)[0] for segment in segments]
    assert [line for part in records for line in part.lines] == [502, 504, 508, 509]
    assert [
        (problem.reason.split(":")[0], problem.line) for problem in reading.record_problems
    ] == [("record longer than 1,000 characters", 1)]
    assert reading.records_counted == 5 and max(len(segment.text) for segment in segments) < 1000


def test_records_are_counted_apart_from_the_parser(tmp_path):
    from calo_assets.logs import reader

    (tmp_path / "file").write_text("junk before\n" + TEXT.replace("\n", "\r\n"))
    reading = reader.FileReading()
    segments = list(reader.read_segments(tmp_path / "file", reading))
    assert "".join(segment.text for segment in segments) == TEXT
    assert reading.records_counted == 5  # the junk before the first record, then four records
    assert [problem.reason for problem in reading.record_problems] == [
        "text without a timestamp before the first record"
    ]
