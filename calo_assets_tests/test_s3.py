"""S3 as a log source, against moto's standalone server (a real HTTP endpoint on 127.0.0.1).

A bucket holding a copy of part of the real export gives the same tables as the local folder, file for
file; ``calo-report`` and the Dagster ingest read ``s3://`` inputs; bad inputs (a missing bucket, an
empty prefix, a prefix without streams, access denied to the bucket or to one object, an archived
object, a connection that breaks, an object replaced while read) give clear errors or quarantine
rows, and lose nothing.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import pytest

from calo_assets import pipeline
from calo_assets.cli import EXIT_BAD_INPUT, main
from calo_assets.logs import source
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions
from calo_assets.logs.reader import read_text
from calo_assets.logs.source import LogSourceError, S3Object, S3Prefix, S3ReadError
from calo_assets.warehouse import Warehouse
from calo_assets_tests import aws_double
from calo_assets_tests.aws_double import (
    client,
    enable_auth,
    moto_server,
    point_aws_at,
    upload_folder,
)
from calo_assets_tests.conftest import REAL_LOGS, check_warehouse, every_step
from calo_assets_tests.logtext import records_by_day

moto_url, aws = aws_double.moto_url, aws_double.aws  # the AWS double's fixtures

EXPORT_ID = "a3fb6cdb-607b-469f-8f8a-ec4792e827cb"
# Stream folders of these days: one holds a plain copy beside its .gz and a .DS_Store, one stream of
# 2024-01-22 logs into 2024-01-23, and there are enough files for two reading processes.
FOLDER_DAYS = ("2024-01-19", "2024-01-20", "2024-01-21", "2024-01-22", "2024-01-23", "2024-01-24")
DAYS = ["2024-01-20", "2024-01-21", "2024-01-22", "2024-01-23", "2024-01-24", "2024-01-25"]


@pytest.fixture(scope="module")
def real_part(tmp_path_factory) -> Path:
    """A copy of the real export's stream folders of ``FOLDER_DAYS`` (and its root .DS_Store)."""
    root = tmp_path_factory.mktemp("real-part") / "logs"
    export = REAL_LOGS / EXPORT_ID
    for folder in sorted(export.iterdir()):
        if folder.is_dir() and folder.name[:10] in FOLDER_DAYS:
            shutil.copytree(folder, root / EXPORT_ID / folder.name)
    shutil.copy(export / ".DS_Store", root / EXPORT_ID / ".DS_Store")
    return root


def parquet_files(warehouse: Warehouse) -> dict[str, bytes]:
    return {
        path.relative_to(warehouse.root).as_posix(): path.read_bytes()
        for path in sorted(warehouse.root.rglob("*.parquet"))
    }


def test_a_bucket_gives_the_same_tables_as_the_local_folder_file_for_file(aws, real_part, tmp_path):
    client("s3").create_bucket(Bucket="calo-logs")
    uploaded = upload_folder(real_part, "calo-logs", "exports/cloudwatch")
    url = "s3://calo-logs/exports/cloudwatch"

    local_found, s3_found = discover(real_part), discover(url)
    assert len(s3_found.parts) == len(local_found.parts) > 32  # more than one batch: two processes
    assert (len(s3_found.duplicates), len(s3_found.junk)) == (1, 2)  # plain copy, two .DS_Store
    assert len(s3_found.parts) + 1 + 2 == uploaded
    assert [(p.day, p.stream, p.part, p.file) for p in s3_found.parts] == [
        (p.day, p.stream, p.part, p.file) for p in local_found.parts
    ]

    local = every_step(real_part, tmp_path / "local", DAYS, workers=2)
    remote = every_step(S3Prefix.parse(url), tmp_path / "s3", DAYS, workers=2)
    local_files, remote_files = parquet_files(local), parquet_files(remote)
    assert len(local_files) > 60 and local_files.keys() == remote_files.keys()
    different = [name for name in local_files if local_files[name] != remote_files[name]]
    assert different == []  # every table, every day: byte for byte
    assert check_warehouse(remote, "nothing_lost", DAYS).passed
    # Every record of the .gz files (not the plain copy), counted here from their bytes, is read and
    # typed on its day.
    counted = records_by_day(real_part.rglob("*.gz"))
    expected = {day: counted[day] for day in DAYS}
    per_day = "select strftime(day, '%Y-%m-%d'), {} from {} group by all"
    with remote.connect() as connection:
        read = dict(
            connection.execute(per_day.format("sum(records_read)", "ingest_manifest")).fetchall()
        )
        typed = dict(connection.execute(per_day.format("count(*)", "log_events")).fetchall())
        quarantined = connection.execute("select count(*) from quarantine").fetchone()[0]
    assert sum(expected.values()) > 1000 and quarantined == 0
    assert {day: read.get(day, 0) for day in DAYS} == expected
    assert {day: typed.get(day, 0) for day in DAYS} == expected


def test_dagster_reads_an_s3_log_dir_and_calo_report_takes_an_s3_input(
    aws, real_part, tmp_path, monkeypatch, capsys
):
    import dagster as dg

    from calo_assets.definitions import defs
    from calo_assets.defs.resources import LogSource
    from calo_assets_tests.conftest import materialize_range

    client("s3").create_bucket(Bucket="calo-dagster")
    upload_folder(real_part, "calo-dagster", "logs")
    url = "s3://calo-dagster/logs"
    assert isinstance(LogSource(location=url).path, S3Prefix)

    ingest = [
        asset
        for asset in defs.assets
        if isinstance(asset, dg.AssetsDefinition) and dg.AssetKey("log_events") in asset.keys
    ]
    days = DAYS[1:3]
    result = materialize_range(url, tmp_path / "dagster", days[0], days[-1], assets=ingest)
    assert result.success
    one_shot = Warehouse(tmp_path / "one-shot")
    pipeline.ingest(real_part, one_shot, days, IngestOptions())
    for day in days:
        assert (
            tmp_path / "dagster" / "log_events" / f"day={day}" / "data.parquet"
        ).read_bytes() == (one_shot.day_file("log_events", day).read_bytes())

    monkeypatch.setenv("CALO_WAREHOUSE_DIR", str(tmp_path / "report-warehouse"))
    monkeypatch.setenv("CALO_FIRST_DAY", "2024-01-01")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code = main([url, str(tmp_path / "out"), "--no-chart-images", "--quiet", "--workers", "1"])
    printed = capsys.readouterr()
    assert code in (0, 3), printed.err
    assert (tmp_path / "out" / "balance_sync_analytics_report.xlsx").is_file()
    assert "Period: 2024-01-19 to 2024-01-24" in printed.out


def test_a_missing_bucket_an_empty_prefix_and_a_prefix_without_streams_are_clear_errors(
    aws, tmp_path, capsys
):
    s3 = client("s3")
    s3.create_bucket(Bucket="calo-junk")
    s3.put_object(Bucket="calo-junk", Key="junk/.DS_Store", Body=b"\0\0\0\1Bud1")
    s3.put_object(Bucket="calo-junk", Key="junk/README.txt", Body=b"not a log")
    warehouse = Warehouse(tmp_path / "warehouse")

    with pytest.raises(LogSourceError, match=r"bucket not found \(NoSuchBucket\)"):
        discover("s3://calo-no-such-bucket/logs")
    with pytest.raises(pipeline.PipelineError, match=r"bucket not found.*nothing was written"):
        pipeline.ingest(
            S3Prefix.parse("s3://calo-no-such-bucket/logs"), warehouse, DAYS, IngestOptions()
        )
    with pytest.raises(LogSourceError, match="nothing under s3://calo-junk/no-such-prefix/"):
        discover("s3://calo-junk/no-such-prefix")
    assert not warehouse.root.exists() or not list(warehouse.root.rglob("*.parquet"))

    assert main(["s3://calo-no-such-bucket/logs", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "bucket not found" in capsys.readouterr().err
    assert main(["s3://calo-junk/junk", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "no CloudWatch log streams" in capsys.readouterr().err

    # The Dagster path: a prefix holding no stream gives empty days, as a local folder does.
    found = discover("s3://calo-junk/junk")
    assert (found.parts, len(found.junk), found.refused) == ([], 2, [])
    ingested = pipeline.ingest(
        S3Prefix.parse("s3://calo-junk/junk"), warehouse, DAYS[:1], IngestOptions()
    )
    assert ingested.events_by_day == {DAYS[0]: 0}


def test_access_denied_to_the_bucket_is_a_clear_error_and_to_one_object_a_quarantine_row(
    tmp_path, monkeypatch, real_part
):
    with moto_server() as url:
        point_aws_at(monkeypatch, url)
        s3, iam = client("s3"), client("iam")
        s3.create_bucket(Bucket="calo-private")
        upload_folder(real_part, "calo-private", "logs")
        denied = next(
            key["Key"]
            for key in s3.list_objects_v2(Bucket="calo-private", Prefix="logs/")["Contents"]
            if "2024-01-21-" in key["Key"] and key["Key"].endswith("000000.gz")
        )
        keys = {}
        for user, statements in {
            "nobody": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}],
            "reader": [
                {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "s3:GetObject",
                    # (moto matches resources as globs: "[$LATEST]" would be a character class)
                    "Resource": f"arn:aws:s3:::calo-private/{denied.replace('[$LATEST]', '*')}",
                },
            ],
        }.items():
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user,
                PolicyName="calo",
                PolicyDocument=__import__("json").dumps(
                    {"Version": "2012-10-17", "Statement": statements}
                ),
            )
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        enable_auth(url)

        def use(user: str) -> str:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys[user]["AccessKeyId"])
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys[user]["SecretAccessKey"])
            return keys[user]["SecretAccessKey"]

        use("nobody")
        warehouse = Warehouse(tmp_path / "warehouse")
        with pytest.raises(
            pipeline.PipelineError, match=r"access denied \(AccessDenied\).*s3:ListBucket"
        ):
            pipeline.ingest(
                S3Prefix.parse("s3://calo-private/logs"), warehouse, DAYS, IngestOptions()
            )
        assert not list(tmp_path.rglob("*.parquet"))  # nothing written, nothing replaced

        secret = use("reader")
        days = ["2024-01-21", "2024-01-22"]
        pipeline.ingest(
            S3Prefix.parse("s3://calo-private/logs"), warehouse, days, IngestOptions(workers=2)
        )
        rows = warehouse.read_days("quarantine", days).to_pylist()
        assert [(row["unit"], row["file"]) for row in rows] == [("file", "000000.gz")]
        assert "access denied (AccessDenied)" in rows[0]["reason"]
        assert rows[0]["stream"] in denied
        assert check_warehouse(warehouse, "nothing_lost", days).passed
        local = Warehouse(tmp_path / "local")
        pipeline.ingest(real_part, local, days, IngestOptions())
        unreadable = denied.split("/")[-2]
        expected = [
            r for r in local.read_days("log_events", days).to_pylist() if r["stream"] != unreadable
        ]
        assert warehouse.read_days("log_events", days).to_pylist() == expected
        stored = b"".join(path.read_bytes() for path in tmp_path.rglob("*.parquet"))
        assert (
            secret.encode() not in stored and keys["reader"]["AccessKeyId"].encode() not in stored
        )
        enable_auth(url, "inf")


def test_an_archived_object_is_refused_with_its_reason(aws, tmp_path):
    s3 = client("s3")
    s3.create_bucket(Bucket="calo-archive")
    stream = "2024-03-01-[$LATEST]0ce5af69430b91ed2954ba5cf81e54dd"
    s3.put_object(
        Bucket="calo-archive",
        Key=f"logs/x/{stream}/000000.gz",
        Body=b"\x1f\x8b...",
        StorageClass="GLACIER",
    )
    found = discover("s3://calo-archive/logs")
    assert found.parts == []
    [refusal] = found.refused
    assert (refusal.day, refusal.reason) == (
        "2024-03-01",
        "object in the S3 GLACIER storage class: not readable without a restore",
    )


def test_a_broken_connection_is_resumed_and_a_replaced_object_fails_the_read(
    aws, monkeypatch, real_part
):
    s3 = client("s3")
    s3.create_bucket(Bucket="calo-flaky")
    path = max(real_part.rglob("000000.gz"), key=lambda file: file.stat().st_size)
    s3.upload_file(str(path), "calo-flaky", "logs/s/000000.gz")
    head = s3.head_object(Bucket="calo-flaky", Key="logs/s/000000.gz")
    location = S3Object("calo-flaky", "logs/s/000000.gz", head["ContentLength"], head["ETag"])
    assert pickle.loads(pickle.dumps(location)) == location  # what a reading process receives

    real_client = source.s3_client()
    ranges: list[str] = []

    class BreakingBody:
        def __init__(self, body, fail: bool) -> None:
            self.body, self.fail, self.given = body, fail, 0

        def read(self, amount):
            if self.fail and self.given >= 1000:
                from urllib3.exceptions import ProtocolError

                raise ProtocolError("connection reset by peer")
            data = self.body.read(min(amount, 1000) if self.fail else amount)
            self.given += len(data)
            return data

        def close(self):
            self.body.close()

    class FlakyClient:
        def get_object(self, **arguments):
            ranges.append(arguments.get("Range", ""))
            response = real_client.get_object(**arguments)
            response["Body"] = BreakingBody(response["Body"], fail=len(ranges) == 1)
            return response

    monkeypatch.setattr(source, "s3_client", lambda: FlakyClient())
    assert read_text(location) == (gzip.decompress(path.read_bytes()).decode(), [])
    assert ranges == ["", "bytes=1000-"]

    monkeypatch.setattr(source, "s3_client", lambda: real_client)
    s3.put_object(Bucket="calo-flaky", Key="logs/big", Body=bytes(range(256)) * (12 << 10))
    head = s3.head_object(Bucket="calo-flaky", Key="logs/big")
    big = S3Object("calo-flaky", "logs/big", head["ContentLength"], head["ETag"])
    stream = big.open_binary()
    assert stream.read(10) == bytes(range(10))
    s3.put_object(Bucket="calo-flaky", Key="logs/big", Body=b"replaced")
    stream.seek(2 << 20)  # past the buffer: a new GET, which must find the version listed
    with pytest.raises(S3ReadError, match="changed while it was read"):
        stream.read()
    with pytest.raises(S3ReadError, match="changed while it was read"):
        location_then = S3Object("calo-flaky", "logs/s/000000.gz", location.size, '"0"')
        location_then.open_binary()
