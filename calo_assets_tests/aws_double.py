"""moto's standalone server on 127.0.0.1: the AWS test double (S3, CloudWatch Logs, IAM) of the tests.

The server is a real HTTP endpoint in its own process (with ``TZ=UTC``: moto writes the lines of an
export in the server's local time); the standard AWS variables point boto3 at it, as they would at
AWS. Tests skip, saying why, only when moto is not installed (``pip install 'moto[server]'``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip(
    "moto.server", reason="moto[server] is not installed: pip install 'moto[server]' boto3"
)
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed: pip install boto3")

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    """Start ``python -m moto.server`` on 127.0.0.1; its URL until the block ends."""
    for _ in range(5):
        port = _free_port()
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
