"""From stream files to day rows: invocations, days, order, quarantine, and nothing lost."""

from __future__ import annotations

from collections import Counter

from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, read_days
from calo_assets.logs.limits import ReadLimits
from calo_assets_tests.logtext import StreamText


def rows_of(tmp_path, *streams: StreamText, days=("2024-01-05",), **options):
    for stream in streams:
        stream.write(tmp_path)
    return read_days(discover(tmp_path), days, IngestOptions(**options))


def test_init_records_belong_to_the_next_invocation_and_metrics_to_the_current(tmp_path):
    stream = StreamText()
    stream.raw("INIT_START Runtime Version: nodejs:20.v15\tRuntime Version ARN: arn")
    stream.app(
        "undefined", "ERROR", 'Uncaught Exception \t{"errorType":"Error","errorMessage":"boom"}'
    )
    stream.raw(
        "INIT_REPORT Init Duration: 766.09 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError"
    )
    stream.start("r1").raw("Unknown application error occurred\nRuntime.Unknown").end("r1")
    stream.start("r2").raw(
        '{"_aws":{"Timestamp":1},"service":"syncBalanceSQS","synBalanceError":1}'
    ).end("r2")
    stream.raw("XRAY TraceId: 1-a\tSegmentId: b\tSampled: true\t")
    events = rows_of(tmp_path, stream)["2024-01-05"].events
    assert [(event["kind"], event["request_id"]) for event in events] == [
        ("init_start", "r1"),
        ("uncaught_exception", "r1"),
        ("init_report", "r1"),
        ("start", "r1"),
        ("runtime_error", "r1"),
        ("end", "r1"),
        ("report", "r1"),
        ("start", "r2"),
        ("metric", "r2"),
        ("end", "r2"),
        ("report", "r2"),
        ("xray", "r2"),
    ]


def test_an_invocation_past_midnight_belongs_to_the_day_of_its_start(tmp_path):
    stream = StreamText(start="23:59:59")
    stream.start("late").message("late")
    stream.millis += 990  # the sync is logged after midnight
    stream.sync("late", "T1").published("late").end("late")
    for _ in range(200):
        stream.ts()
    stream.start("next").message("next").end("next")
    days = rows_of(tmp_path, stream, days=("2024-01-05", "2024-01-06"))
    first = days["2024-01-05"].events
    assert {event["request_id"] for event in first} == {"late"}
    assert any(event["occurred_at"].startswith("2024-01-06") for event in first)
    assert {event["request_id"] for event in days["2024-01-06"].events} == {"next"}
    # The next day reads the stream folder of the day before: its manifest lists the file.
    assert [row["records_read"] for row in days["2024-01-06"].manifest] == [4]


def test_a_stream_of_the_day_before_is_parsed_only_when_it_logged_into_the_day(
    tmp_path, monkeypatch
):
    from calo_assets.logs import order

    crossing = StreamText(start="23:59:59").start("late").message("late")
    crossing.millis += 990
    crossing.start("after").message("after").end("after")
    ended = StreamText(start="22:00:00").start("early").message("early").end("early")
    split = []
    split_records = order.split_records
    monkeypatch.setattr(
        order,
        "split_records",
        lambda text, first_line=1: split.append(text) or split_records(text, first_line),
    )
    days = rows_of(tmp_path, crossing, ended, days=("2024-01-06",))
    assert {event["request_id"] for event in days["2024-01-06"].events} == {"after"}
    assert "".join(split) == crossing.text  # the stream that ended before midnight: not parsed
    assert [row["records_read"] for row in days["2024-01-06"].manifest] == [4]


def test_chunks_written_out_of_time_order_are_put_back_in_order(tmp_path):
    stream = StreamText()
    stream.start("r1").message("r1").sync("r1", "T1").published("r1").end("r1")
    stream.start("r2").message("r2").end("r2")
    stream.records = stream.records[6:] + stream.records[:6]  # the second invocation written first
    events = rows_of(tmp_path, stream)["2024-01-05"].events
    assert [event["kind"] for event in events[:6]] == [
        "start",
        "sqs_message",
        "sync_started",
        "sync_published",
        "end",
        "report",
    ]
    assert [event["line"] for event in events[:2]] == [9, 11]


def test_unparseable_records_are_quarantined_and_counted(tmp_path):
    stream = StreamText()
    stream.start("r1").message("r1")
    stream.app("r1", "INFO", "Start syncing the balance {\n  transaction: { id: 'T', amount: 'x' }")
    stream.published("r1").end("r1")
    day = rows_of(tmp_path, stream)["2024-01-05"]
    assert [(row["unit"], row["line"]) for row in day.quarantine] == [("record", 5)]
    assert "transaction to sync" in day.quarantine[0]["reason"]
    assert day.records_read == len(day.events) + len(day.quarantine) == 6


def test_personal_data_is_masked_unless_turned_off(tmp_path):
    stream = StreamText()
    stream.start("r1").app(
        "r1",
        "INFO",
        'record.body {"id":"T","name":"Sara Aziz","email":"sara@example.com","phoneNumber":"+97336086416"}',
    ).end("r1")
    masked = rows_of(tmp_path / "a", stream)["2024-01-05"].events[1]["payload"]
    assert (
        "sara@example.com" not in masked
        and "Sara Aziz" not in masked
        and "+97336086416" not in masked
    )
    raw = rows_of(tmp_path / "b", stream, mask_personal_data=False)["2024-01-05"].events[1][
        "payload"
    ]
    assert "sara@example.com" in raw


def test_two_worker_processes_give_the_same_rows(tmp_path, monkeypatch):
    from calo_assets.logs import ingest

    streams = []
    for index in range(6):
        stream = StreamText(start=f"1{index}:00:00")
        stream.start(f"r{index}").message(f"r{index}").sync(f"r{index}", f"T{index}").published(
            f"r{index}"
        ).end(f"r{index}")
        streams.append(stream)
    one = rows_of(tmp_path, *streams)["2024-01-05"]
    one_file = ReadLimits(batch_files=1)  # one batch per file: batches for both workers
    two = read_days(discover(tmp_path), ["2024-01-05"], IngestOptions(workers=2, limits=one_file))[
        "2024-01-05"
    ]
    assert one.events == two.events and one.manifest == two.manifest
    assert Counter(event["kind"] for event in one.events)["sync_started"] == 6
    # Big results come back from the workers through temporary files, removed once read.
    monkeypatch.setattr(ingest.tempfile, "tempdir", str(tmp_path / "spill"))
    (tmp_path / "spill").mkdir()
    options = IngestOptions(workers=2, limits=ReadLimits(batch_files=1, result_bytes=0))
    spilled = read_days(discover(tmp_path / "export"), ["2024-01-05"], options)
    assert spilled["2024-01-05"].events == one.events
    assert list((tmp_path / "spill").iterdir()) == []


def test_an_unexpected_failure_names_the_file(tmp_path, monkeypatch):
    import pytest

    from calo_assets.logs import ingest

    # START and END are typed by the compiled pass; the application line goes through classify.
    path = StreamText().start("r1").app("r1", "INFO", "Something new").end("r1").write(tmp_path)

    def broken(body):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ingest, "classify", broken)
    with pytest.raises(ingest.IngestError, match=str(path).replace("[", r"\[").replace("$", r"\$")):
        read_days(discover(tmp_path), ["2024-01-05"], IngestOptions())


def test_the_files_of_one_stream_stay_in_one_batch(tmp_path):
    from calo_assets.logs import ingest

    # An invocation can run from 000000.gz into 000001.gz: both must reach the sync tables together.
    first = StreamText().start("r1").message("r1")
    second = StreamText(start="10:00:01").sync("r1", "T1").published("r1").end("r1")
    path = second.write(tmp_path, name="2024-01-05-[$LATEST]one")
    path.rename(path.with_name("000001.gz"))
    first.write(tmp_path, name="2024-01-05-[$LATEST]one")
    StreamText().start("r2").end("r2").write(tmp_path, name="2024-01-05-[$LATEST]two")
    units = ingest._units(discover(tmp_path), ["2024-01-05"])
    batches = ingest._batches(units, ReadLimits(batch_files=1))
    assert [[part.label for unit in batch for part in unit.parts] for batch in batches] == [
        ["2024-01-05-[$LATEST]one/000000.gz", "2024-01-05-[$LATEST]one/000001.gz"],
        ["2024-01-05-[$LATEST]two/000000.gz"],
    ]
