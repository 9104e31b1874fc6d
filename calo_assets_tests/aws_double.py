"""moto's standalone server on 127.0.0.1: the AWS test double (S3, CloudWatch Logs, IAM) of the tests.

The server is a real HTTP endpoint in its own process (with ``TZ=UTC``: moto writes the lines of an
export in the server's local time); the standard AWS variables point boto3 at it, as they would at
AWS. Tests skip, saying why, only when moto is not installed (``pip install 'moto[server]'``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.postgres import free_port

pytest.importorskip(
    "moto.server", reason="moto[server] is not installed: pip install 'moto[server]' boto3"
)
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed: pip install boto3")

REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """Start ``python -m moto.server`` on 127.0.0.1; its URL until the block ends."""
    for _ in range(5):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "TZ": "UTC"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        if process.poll() is None:
            break
    else:  # pragma: no cover - five ports taken in a row
        raise RuntimeError("moto server did not start")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()


def point_aws_at(monkeypatch: pytest.MonkeyPatch, url: str, key: str = "testing") -> None:
    """The standard AWS variables for the double (and nothing from this machine's AWS setup)."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing" if key == "testing" else key + "-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def client(service: str):
    return boto3.session.Session().client(service)


def upload_folder(folder: Path, bucket: str, prefix: str) -> int:
    """Every file under ``folder`` as an object under ``prefix`` (same relative keys); how many."""
    s3 = client("s3")
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}".lstrip("/")
            s3.upload_file(str(path), bucket, key)
            count += 1
    return count


def enable_auth(url: str, after_actions: str = "0") -> None:
    """From now on the double checks every request against its IAM users ("inf": never)."""
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=after_actions.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def log_events_of(files: list[Path]) -> list[tuple[int, str]]:
    """The records of a stream's export files as CloudWatch log events (epoch ms, message), in time
    order (ties in file order): what the Lambda logged, as PutLogEvents takes it."""
    import re
    from datetime import datetime

    from calo_assets.logs.reader import read_text

    stamped = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?)Z ", re.MULTILINE)
    events: list[tuple[int, str]] = []
    for path in files:
        text, problems = read_text(path)
        assert not problems, problems
        starts = list(stamped.finditer(text))
        for match, following in zip(starts, [*starts[1:], None], strict=True):
            end = following.start() if following else len(text)
            message = text[match.end() : end]
            message = message[:-1] if message.endswith("\n") else message
            whole, _, fraction = match.group(1).partition(".")
            moment = datetime.fromisoformat(whole + "+00:00")
            milliseconds = int(moment.timestamp()) * 1000 + int((fraction + "000")[:3])
            events.append((milliseconds, message))
    return sorted(events, key=lambda event: event[0])


def fill_log_group(log_group: str, streams: dict[str, list[tuple[int, str]]]) -> int:
    """Create ``log_group`` and put each stream's events with PutLogEvents; how many events."""
    logs = client("logs")
    logs.create_log_group(logGroupName=log_group)
    count = 0
    for name, events in streams.items():
        logs.create_log_stream(logGroupName=log_group, logStreamName=name)
        for start in range(0, len(events), 5000):
            batch = events[start : start + 5000]
            logs.put_log_events(
                logGroupName=log_group,
                logStreamName=name,
                logEvents=[{"timestamp": ms, "message": message} for ms, message in batch],
            )
            count += len(batch)
    return count


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """One moto server for a test module."""
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 pointed at the module's moto server, for one test."""
    point_aws_at(monkeypatch, moto_url)
    return moto_url
