"""Whatever the export holds: nothing lost, nothing hangs, one bad input never fails the run.

Each case copies a small generated export (whose generator says how many records it wrote: a count
made without the code under test), damages or extends it in one way, runs the ingest step over the
days ``calo-report`` would pick, and checks that every record written is typed or quarantined:
``records typed + records quarantined = records the generator wrote (+ those the case added)``, and
that the ``nothing_lost`` check agrees, day by day.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import threading
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calo_assets import pipeline
from calo_assets.cli import export_window
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions
from calo_assets.logs.limits import ReadLimits
from calo_assets.pipeline import days_between
from calo_assets.synth.generator import SynthConfig, generate
from calo_assets.warehouse import ROW_GROUP_ROWS, Warehouse
from calo_assets_tests.conftest import check_warehouse
from calo_assets_tests.logtext import StreamText, records_in

FIRST_DAY = date(2024, 3, 1)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    truth = generate(root, SynthConfig(start=FIRST_DAY, days=3, invocations_per_day=25, seed=11))
    return root, truth


def copy_of(export, tmp_path: Path) -> tuple[Path, int]:
    """A copy of the generated export (without its plain duplicate), and its record count."""
    root, truth = export
    target = tmp_path / "logs"
    shutil.copytree(root, target, symlinks=True)
    for plain in target.rglob("000000"):
        plain.unlink()
    return target, truth.records


def streams(root: Path) -> list[Path]:
    """The stream files of an export, sorted."""
    return sorted(root.rglob("000000.gz"))


def with_transaction(root: Path) -> Path:
    """The first stream file that logs a transaction."""
    return next(path for path in streams(root) if b"Start syncing" in text_of(path))


def text_of(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


class Run:
    """The ingest step over the days ``calo-report`` would read, checked by ``nothing_lost``."""

    def __init__(
        self,
        root: Path,
        warehouse: Path,
        days: list[str] | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        **options,
    ):
        first, last = export_window(discover(root))
        self.days = days or days_between(first, last)
        self.store = Warehouse(warehouse, row_group_rows)
        self.ingested = pipeline.ingest(root, self.store, self.days, IngestOptions(**options))
        self.check = check_warehouse(self.store, "nothing_lost", self.days)
        assert self.check.passed, self.check.metadata

    @property
    def events(self):
        return self.store.read_days("log_events", self.days)

    @property
    def quarantine(self) -> list[dict]:
        return self.store.read_days("quarantine", self.days).to_pylist()

    def kinds(self) -> Counter[str]:
        return Counter(self.events["kind"].to_pylist())

    def accounted(self) -> int:
        """Records typed plus records quarantined, from the written tables."""
        records = sum(row["unit"] == "record" for row in self.quarantine)
        return self.events.num_rows + records

    def reasons(self, unit: str | None = None) -> list[str]:
        return [row["reason"] for row in self.quarantine if unit is None or row["unit"] == unit]


def run(root: Path, tmp_path: Path, **options) -> Run:
    return Run(root, tmp_path / "warehouse", **options)


# -- silent loss ------------------------------------------------------------------------------------


def append_records(path: Path, lines: list[str]) -> None:
    path.write_bytes(gzip.compress(text_of(path) + "".join(f"\n{x}\n" for x in lines).encode()))


def test_records_outside_the_runs_days_are_quarantined_under_their_files_day(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    target = streams(root)[0]
    extra = [
        "2099-01-01T10:00:00.000Z 2099-01-01T10:00:00.000Z\tr-late\tINFO\tfrom the future",
        "1970-01-01T00:00:00.000Z START RequestId: r-epoch Version: $LATEST",
    ]
    append_records(target, extra)
    result = run(root, tmp_path)
    assert result.accounted() == records + 2
    outside = [row for row in result.quarantine if "2099-01-01" in row["reason"]]
    outside += [row for row in result.quarantine if "1970-01-01" in row["reason"]]
    assert [(row["unit"], str(row["day"])) for row in outside] == [
        ("record", target.parent.name[:10])
    ] * 2


def test_impossible_timestamps_are_quarantined_and_the_run_goes_on(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    target = streams(root)[0]
    impossible = ["2024-03-01T25:00:00.000Z", "2024-13-01T10:00:00.000Z", "2024-02-30T10:00:00Z"]
    append_records(target, [f"{stamp} END RequestId: r-odd" for stamp in impossible])
    result = run(root, tmp_path)
    assert result.accounted() == records + 3
    assert sorted(reason for reason in result.reasons("record") if "impossible" in reason) == [
        f"impossible timestamp {stamp}: record quarantined" for stamp in sorted(impossible)
    ]


def test_timestamps_with_zero_to_nine_fraction_digits_are_typed(tmp_path):
    stream = StreamText()
    stream.start("r1")
    for digits in range(10):
        fraction = "." + "123456789"[:digits] if digits else ""
        stream.records.append(f"2024-01-05T10:00:01{fraction}Z END RequestId: r{digits}")
    stream.write(tmp_path / "logs")
    result = run(tmp_path / "logs", tmp_path, days=["2024-01-05", "2024-01-06"])
    assert result.accounted() == result.events.num_rows == 11
    times = [str(value) for value in result.events["occurred_at"].to_pylist()]
    assert "2024-01-05 10:00:01.123000+00:00" in times  # cut to the table's milliseconds


def test_a_stream_folder_named_two_days_before_its_records_loses_nothing(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    # A stream of the third day in a folder named after the first, read before the first day's
    # other streams (one file at a time): its rows are two days after its folder's day.
    target = next(path for path in streams(root) if path.parent.name.startswith("2024-03-03"))
    target.parent.rename(target.parent.with_name("2024-03-01-[$LATEST]0000first"))
    result = run(root, tmp_path, limits=ReadLimits(batch_files=1))
    assert result.days == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    assert result.accounted() == records
    assert result.kinds()["sync_started"] == export[1].transactions  # every one typed


def test_lone_cr_and_crlf_line_ends_are_line_ends(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    for index, path in enumerate(streams(root)):
        ending = b"\r" if index % 2 else b"\r\n"
        path.write_bytes(gzip.compress(text_of(path).replace(b"\n", ending)))
    result = run(root, tmp_path)
    assert result.accounted() == result.events.num_rows == records
    assert result.kinds()["sync_started"] == export[1].transactions
    assert not any("\r" in (text or "") for text in result.events["payload"].to_pylist())


def test_log_data_under_names_outside_the_layout_is_read_or_quarantined(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    first, second, third, fourth = streams(root)[:4]
    first.rename(first.with_name("000000.GZ"))
    second.rename(second.with_name("000000.gz.1"))
    third.parent.rename(third.parent.with_name(third.parent.name + "-copy"))
    # A file with log lines under a name that says nothing: quarantined, not counted as junk.
    (fourth.parent / "events.log").write_bytes(text_of(fourth))
    found = discover(root)
    assert [path.name for path in found.junk] == [".DS_Store"] * len(found.junk)
    result = run(root, tmp_path)
    assert result.accounted() == records
    assert result.kinds()["sync_started"] == export[1].transactions
    assert [
        (row["unit"], row["file"], row["reason"].split(":")[0])
        for row in result.quarantine
        if row["file"] == "events.log"
    ] == [("file", "events.log", "log data under a name outside the export layout")]


# -- loud loss that should not be loss --------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x08", "\x1b", "\x1f", "\t"])
def test_control_characters_inside_strings_are_kept_as_text(tmp_path, character):
    stream = StreamText().start("r1").message("r1").sync("r1", "T1").published("r1").end("r1")
    path = stream.write(tmp_path / "logs")
    text = text_of(path).replace(b"DELIVERY_DEDUCTION", f"DELIVERY{character}X".encode())
    path.write_bytes(gzip.compress(text))
    result = run(tmp_path / "logs", tmp_path, days=["2024-01-05", "2024-01-06"])
    assert result.reasons() == []
    assert result.accounted() == records_in(text) == 6
    (payload,) = [
        row["payload"] for row in result.events.to_pylist() if row["kind"] == "sync_started"
    ]
    import json

    assert json.loads(payload)["transaction"]["action"] == f"DELIVERY{character}X"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_of_two_copies_the_one_read_without_damage_and_with_more_records_wins(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    target = with_transaction(root)
    (target.parent / "000000").write_bytes(text_of(target))  # a complete plain copy
    truncate(target)
    other = next(path for path in streams(root) if path.parent != target.parent)
    second_export = tmp_path / "logs" / "second-export" / other.parent.name
    second_export.mkdir(parents=True)
    shutil.copy(other, second_export / "000000.gz")
    truncate(other)  # the first export's copy is damaged, the second export's intact
    found = discover(root)
    chosen = {part.path for part in found.parts}
    assert target.parent / "000000" in chosen and second_export / "000000.gz" in chosen
    result = run(root, tmp_path)
    assert result.reasons() == []
    assert result.accounted() == records


def split_stream(tmp_path: Path, later_first: bool) -> Path:
    """One invocation logged across two chunk files; with ``later_first`` the file named first holds
    the later half (the export wrote the chunks out of order)."""
    stream = StreamText().start("r1").message("r1").sync("r1", "T1").published("r1").end("r1")
    early, late = stream.records[:3], stream.records[3:]
    folder = tmp_path / "logs" / "export" / "2024-01-05-[$LATEST]split"
    folder.mkdir(parents=True)
    names = ("000001.gz", "000000.gz") if later_first else ("000000.gz", "000001.gz")
    for name, part in zip(names, (early, late), strict=True):
        (folder / name).write_bytes(gzip.compress(("\n\n".join(part) + "\n").encode()))
    return tmp_path / "logs"


@pytest.mark.parametrize("later_first", [False, True])
def test_the_chunks_of_a_stream_are_merged_in_time_order(tmp_path, later_first):
    root = split_stream(tmp_path, later_first)
    result = run(root, tmp_path, days=["2024-01-05", "2024-01-06"])
    assert result.events["kind"].to_pylist() == [
        "start",
        "sqs_message",
        "sync_started",
        "sync_published",
        "end",
        "report",
    ]
    pipeline.build_sync(result.store, result.days)
    transactions = result.store.read_days("transactions", result.days)
    assert transactions["outcome"].to_pylist() == ["applied"]


# -- whole-run failures from one bad input ----------------------------------------------------------


def ingest_in_thread(root: Path, tmp_path: Path, seconds: float = 60) -> Run:
    """The run in a thread that must end within ``seconds`` (a FIFO once hung it forever)."""
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["run"] = run(root, tmp_path)
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the run hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["run"]


def test_only_regular_files_are_read_everything_else_is_quarantined(export, tmp_path, monkeypatch):
    import stat

    root, records = copy_of(export, tmp_path)
    folder = streams(root)[0].parent
    specials = {}
    for name in ("fifo", "socket", "device", "loop", "dangling", "outside"):
        special = folder.with_name(f"{folder.name[:10]}-[$LATEST]{name}")
        special.mkdir()
        specials[name] = special / "000000.gz"
    os.mkfifo(specials["fifo"])
    monkeypatch.chdir(specials["socket"].parent)  # a socket's path must be short
    unix = socket.socket(socket.AF_UNIX)
    unix.bind("000000.gz")
    if os.geteuid() == 0:
        os.mknod(specials["device"], stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    else:
        specials["device"].parent.rmdir()
    specials["loop"].symlink_to(specials["loop"].name)
    specials["dangling"].symlink_to("missing.gz")
    specials["outside"].symlink_to("/dev/zero")
    try:
        result = ingest_in_thread(root, tmp_path)
    finally:
        unix.close()
    assert result.accounted() == records
    reasons = {row["stream"].split("]")[1]: row["reason"] for row in result.quarantine}
    expected = {
        "fifo": "not a regular file (named pipe): not read",
        "socket": "not a regular file (socket): not read",
        "device": "not a regular file (device): not read",
        "loop": "symbolic link loop: not read",
        "dangling": "dangling symbolic link (its target does not exist): not read",
        "outside": "symbolic link to /dev/zero outside the log folder: not followed",
    }
    if os.geteuid() != 0:
        del expected["device"]
    assert reasons == expected
    assert {row["unit"] for row in result.quarantine} == {"file"}


def stray_stream(root: Path, folder_day: str, record_day: str) -> int:
    stream = StreamText(day=record_day).start("s1").message("s1")
    stream.sync("s1", f"STRAY{folder_day[:4]}")
    stream.published("s1").end("s1")
    stream.write(root, name=f"{folder_day}-[$LATEST]stray{folder_day[:4]}")
    return len(stream.records)


def test_stray_folder_names_do_not_set_the_runs_days(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    added = stray_stream(root, "2099-01-01", "2024-03-02")  # a stream with a wrong folder name
    added += stray_stream(root, "1970-01-01", "2024-03-01")
    found = discover(root)
    assert export_window(found) == (date(2024, 3, 1), date(2024, 3, 4))
    result = run(root, tmp_path)
    assert result.accounted() == records + added
    assert result.kinds()["sync_started"] == export[1].transactions + 2


def test_a_stream_of_nothing_but_impossible_days_lands_on_the_exports_first_day(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    added = stray_stream(root, "2099-01-01", "2099-01-01")
    result = run(root, tmp_path)
    assert export_window(discover(root)) == (date(2024, 3, 1), date(2024, 3, 4))
    assert result.accounted() == records + added
    outside = [row for row in result.quarantine if row["stream"].endswith("stray2099")]
    assert {str(row["day"]) for row in outside} == {"2024-03-01"}
    assert len(outside) == added


def test_a_warehouse_path_with_glob_and_quote_characters_works(export, tmp_path):
    root, records = copy_of(export, tmp_path)
    result = Run(root, tmp_path / "ware[house] *?'s")
    with result.store.connect() as connection:
        (count,) = connection.execute("select count(*) from log_events").fetchone()
    assert count == result.events.num_rows == records
    result.store.refresh_views()
    pipeline.build_sync(result.store, result.days)
    with result.store.connect() as connection:
        (count,) = connection.execute("select count(*) from transactions").fetchone()
    assert count == export[1].transactions


# -- size and memory --------------------------------------------------------------------------------


def test_a_gzip_bomb_is_cut_by_ratio_and_content_and_a_compressible_log_is_not(tmp_path):
    logs = tmp_path / "logs" / "export"
    bomb = logs / "2024-01-05-[$LATEST]bomb"
    bomb.mkdir(parents=True)
    (bomb / "000000.gz").write_bytes(gzip.compress(b"A" * (64 << 20)))
    line = b"2024-01-05T10:00:00.000Z XRAY-like line that repeats and compresses very well\n"
    legit = logs / "2024-01-05-[$LATEST]legit"
    legit.mkdir()
    (legit / "000000.gz").write_bytes(gzip.compress(line * 50_000))  # 4 MB at a ratio over 100
    days = ["2024-01-05", "2024-01-06"]
    result = run(tmp_path / "logs", tmp_path, days=days, limits=ReadLimits(bomb_bytes=1 << 20))
    assert result.events.num_rows == 50_000
    (reason,) = [row["reason"] for row in result.quarantine if row["unit"] == "file"]
    assert reason.startswith("gzip bomb: ")
    not_read = int(reason.rsplit("(", 1)[1].split()[0].replace(",", ""))
    assert 0 < not_read < (bomb / "000000.gz").stat().st_size


def test_a_big_stream_is_read_in_bounded_pieces_with_the_same_rows(tmp_path, monkeypatch):
    """A stream far bigger than the in-memory bounds (shrunk here), in three chunk files written out
    of order, gives the same rows and outcomes as when it fits, in row groups of bounded size: sorted
    runs are spilled to disk and merged, and pieces are cut between invocations."""
    from calo_assets.logs import order

    stream = StreamText()
    for index in range(60):
        request = f"r{index}"
        stream.start(request).message(request).sync(request, f"T{index}")
        stream.published(request).end(request)
    third = len(stream.records) // 3 + 1  # chunks cut inside invocations
    chunks = [
        stream.records[:third],
        stream.records[third : 2 * third],
        stream.records[2 * third :],
    ]
    folder = tmp_path / "logs" / "export" / "2024-01-05-[$LATEST]big"
    folder.mkdir(parents=True)
    for name, chunk in zip(("000002.gz", "000000.gz", "000001.gz"), chunks, strict=True):
        (folder / name).write_bytes(gzip.compress(("\n\n".join(chunk) + "\n").encode()))
    days = ["2024-01-05", "2024-01-06"]
    whole = Run(tmp_path / "logs", tmp_path / "whole", days=days)
    spilled, spill = [], order.spill
    monkeypatch.setattr(order, "spill", lambda *args: spilled.append(1) or spill(*args))
    limits = ReadLimits(read_bytes=1000, sort_buffer_chars=5000, piece_records=20)
    bounded = Run(tmp_path / "logs", tmp_path / "bounded", days, row_group_rows=30, limits=limits)
    assert len(spilled) > 3
    assert bounded.events.to_pylist() == whole.events.to_pylist()
    assert bounded.accounted() == whole.accounted() == len(stream.records)
    groups = [part.num_rows for part in bounded.store.read_day_in_parts("log_events", days[0])]
    assert len(groups) > 5 and max(groups) < 30 + 2 * 20 + 10, groups
    for result in (whole, bounded):
        pipeline.build_sync(result.store, days)
        outcomes = result.store.read_days("transactions", days)["outcome"].to_pylist()
        assert outcomes == ["applied"] * 60


# -- the warehouse and the command line ------------------------------------------------------------


def test_a_write_after_a_day_is_finished_raises(tmp_path):
    from calo_assets.tables.schema import from_columns
    from calo_assets.warehouse import WriterClosedError

    writer = Warehouse(tmp_path).day_writer("quarantine", "2024-01-05")
    writer.write(from_columns("quarantine", {"reason": ["a"]}))
    writer.finish()
    with pytest.raises(WriterClosedError):
        writer.write(from_columns("quarantine", {"reason": ["b"]}))
    writer.commit()
    with pytest.raises(WriterClosedError):
        writer.write(from_columns("quarantine", {"reason": ["c"]}))


def test_calo_report_exits_3_and_names_the_failed_error_check(tmp_path, monkeypatch, capsys):
    from calo_assets import cli

    # The same transaction id on two days: transaction_ids_unique, a check of severity ERROR, fails.
    for day in ("2024-03-01", "2024-03-02"):
        stream = StreamText(day=day)
        for index in range(12):
            request = f"r{day}{index}"
            stream.start(request).message(request)
            stream.sync(request, "SAME" if index == 5 else f"T{day}{index}", amount=f"{index + 1}")
            stream.published(request).end(request)
        stream.write(tmp_path / "logs")
    monkeypatch.setenv("CALO_WAREHOUSE_DIR", str(tmp_path / "warehouse"))
    code = cli.main([str(tmp_path / "logs"), str(tmp_path / "out"), "--quiet", "--no-chart-images"])
    assert code == cli.EXIT_CHECK_FAILED == 3
    assert "check failed: transaction_ids_unique" in capsys.readouterr().err


def test_nothing_lost_fails_when_the_parser_drops_a_record(export, tmp_path, monkeypatch):
    """Records read are counted from the text, apart from the parser: a record the parser dropped
    counts as read on its stream's day, and the check fails there."""
    from calo_assets.logs import order

    root, records = copy_of(export, tmp_path)
    split = order.split_records

    def dropping(text, first_line=1):
        found, problems = split(text, first_line)
        return found.reordered(list(range(len(found)))[1:]), problems

    monkeypatch.setattr(order, "split_records", dropping)
    first, last = export_window(discover(root))
    days = days_between(first, last)
    store = Warehouse(tmp_path / "warehouse")
    pipeline.ingest(root, store, days, IngestOptions())
    check = check_warehouse(store, "nothing_lost", days)
    assert not check.passed
    assert check.metadata["records read"] == records > check.metadata["records typed"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2100),
            st.integers(0, 14),
            st.integers(0, 33),
            st.integers(0, 25),
            st.integers(0, 61),
            st.integers(0, 61),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_fast_impossible_time_check_agrees_with_arrow(fields):
    """The one-match check of a piece's timestamps gives the indexes Arrow's cast refuses."""
    from calo_assets.logs.ingest import _impossible, _no_instant

    stamps = [
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.123Z"
        for year, month, day, hour, minute, second in fields
    ]
    assert _impossible(stamps) == _no_instant(stamps)
