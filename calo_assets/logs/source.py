"""Where CloudWatch exports are kept: a local folder or an S3 prefix, behind one small interface.

An ``ExportSource`` lists what is under its root (``entries``: each file with its size, modification
time and, when it cannot be read, why; a folder only when it is refused) and checks that the root
can be listed at all (``check``). A file's *location* opens as a binary, seekable stream
(``open_binary``): a ``Path`` for a local file, an ``S3Object`` for an object. The rules (which
folders are streams, which copy of a part is read, what is quarantined, how a file is decoded) are
in ``export`` and ``reader``, the same for both stores; only this module knows how each is walked.

Locations are what the reading processes receive: both pickle, and an ``S3Object`` is opened with a
client made in the process that reads it (``s3_client``), never one made in another process.

S3 (``s3://bucket/prefix``): credentials, region and endpoint come from the standard AWS
configuration through boto3 (environment variables including ``AWS_ENDPOINT_URL``, shared profiles,
instance and container roles); nothing here names, stores or logs them. An object is streamed with
ranged GETs, a megabyte of buffer at a time, never held whole in memory nor written to disk; a
connection that breaks is resumed where it stopped (``READ_ATTEMPTS`` times), and every GET is pinned
to the ETag listed, so an object replaced during a run fails the read instead of mixing two versions.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from calo_assets.logs.reader import not_regular

S3_SCHEME = "s3://"
READ_BUFFER = 1 << 20  # bytes asked of S3 at a time (one buffer per open object)
READ_ATTEMPTS = 4  # a broken connection is resumed from where it stopped this many times in all
# Objects S3 cannot hand out without a restore (GLACIER_IR and the others are readable at once).
_ARCHIVED = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class LogSourceError(RuntimeError):
    """The export cannot be listed or opened at all; the message says why and what to fix."""


class S3ReadError(OSError):
    """An object could not be read (missing, access denied, changed, unreachable)."""


@dataclass(frozen=True, slots=True, order=True)
class S3Object:
    """One object of a bucket, as listed: what a reading process needs to open it."""

    bucket: str
    key: str
    size: int = 0
    etag: str = ""

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> PurePosixPath:
        """The 'folder' holding it (``.name``, ``.parents`` as for a path)."""
        return PurePosixPath(self.key).parent

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def open_binary(self) -> BinaryIO:
        """The object as a buffered, seekable binary stream (the first GET is made here, so a
        missing object or a refusal raises ``S3ReadError`` at once)."""
        raw = _S3Stream(self)
        raw.connect()
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)


Location = Path | S3Object


@dataclass(frozen=True, slots=True)
class Entry:
    """A file under the root (or a folder refused as a whole), with why it cannot be read, if so."""

    location: Location
    folder: str  # the name of the folder holding the file (a refused folder: its own name)
    refusal: str | None = None
    is_folder: bool = False
    size: int = 0
    modified: float = 0.0  # seconds since the epoch


class ExportSource(ABC):
    """A place holding CloudWatch exports."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``FileNotFoundError`` / ``LogSourceError`` with a clear message when the root
        cannot be listed."""

    @abstractmethod
    def entries(self) -> Iterator[Entry]:
        """Every file under the root at any depth (and refused folders), in a fixed order."""


def open_binary(location: Location) -> BinaryIO:
    """A file of either store, opened for reading bytes."""
    if isinstance(location, S3Object):
        return location.open_binary()
    return location.open("rb")


def size_of(location: Location) -> int:
    """A file's size in bytes (0 when it cannot be known)."""
    if isinstance(location, S3Object):
        return location.size
    try:
        return location.stat().st_size
    except OSError:
        return 0


def is_s3(location: object) -> bool:
    return isinstance(location, S3Prefix) or str(location).startswith(S3_SCHEME)


def log_location(value: str | Path | S3Prefix) -> Path | S3Prefix:
    """``CALO_LOG_DIR`` (or ``calo-report``'s input) as a local folder or an S3 prefix."""
    if isinstance(value, S3Prefix | Path):
        return value
    text = str(value).strip()
    return S3Prefix.parse(text) if text.startswith(S3_SCHEME) else Path(text)


def open_source(root: str | Path | ExportSource) -> ExportSource:
    """The export source for a folder, an ``s3://bucket/prefix`` text, or a source itself."""
    if isinstance(root, ExportSource):
        return root
    location = log_location(root)
    return location if isinstance(location, S3Prefix) else LocalFolder(location)


# -- a local folder ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFolder(ExportSource):
    """A folder on this machine. Links that leave it are not followed; only regular files are read."""

    root: Path

    def __str__(self) -> str:
        return str(self.root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"log folder not found: {self.root}")

    def entries(self) -> Iterator[Entry]:
        real_root = self.root.resolve()
        for folder, subfolders, files in os.walk(self.root, followlinks=False):
            subfolders.sort()
            folder_path = Path(folder)
            for name in subfolders:
                reason = _link_refusal(folder_path / name, real_root)
                if reason:
                    yield Entry(folder_path / name, name, reason, is_folder=True)
            for name in sorted(files):
                path = folder_path / name
                reason = _refusal(path, real_root)
                try:
                    status = path.lstat()
                    size, modified = status.st_size, status.st_mtime
                except OSError:
                    size, modified = 0, 0.0
                yield Entry(path, folder_path.name, reason, size=size, modified=modified)


def _refusal(path: Path, real_root: Path) -> str | None:
    """Why a file is not read: not a regular file, a link loop, dangling or out of the log folder,
    or not readable; None when it can be read."""
    try:
        status = path.lstat()
        if path.is_symlink():
            try:
                status = path.stat()
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return "symbolic link loop: not read"
                if exc.errno == errno.ENOENT:
                    return "dangling symbolic link (its target does not exist): not read"
                return f"symbolic link not followed: {exc.strerror}"
            target = path.resolve()
            if not target.is_relative_to(real_root):
                return f"symbolic link to {target} outside the log folder: not followed"
    except OSError as exc:
        return f"file could not be read: {exc.strerror}"
    reason = not_regular(status.st_mode)
    if reason:
        return reason
    if not os.access(path, os.R_OK):
        return "file not readable (permission denied)"
    return None


def _link_refusal(path: Path, real_root: Path) -> str | None:
    """Why a linked folder is not walked: it leads out of the log folder (links inside it are
    walked where they point)."""
    if not path.is_symlink():
        return None
    target = path.resolve()
    if target.is_relative_to(real_root):
        return None
    return f"symbolic link to a folder {target} outside the log folder: not followed"


# -- an S3 prefix ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Prefix(ExportSource):
    """``s3://bucket/prefix``: every object whose key starts with the prefix (a 'folder': the
    prefix is read as ending with ``/``)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Prefix:
        if not url.startswith(S3_SCHEME):
            raise ValueError(f"not an s3:// location: {url!r}")
        bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r} (expected s3://bucket/prefix)")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"

    def is_dir(self) -> bool:
        """False: not a local folder (code that walks local folders leaves an S3 source alone)."""
        return False

    def child(self, *names: str) -> S3Prefix:
        """The prefix of a 'folder' under this one."""
        return S3Prefix(self.bucket, self.prefix + "".join(f"{name.strip('/')}/" for name in names))

    def key(self, name: str) -> str:
        """The key of an object directly under this prefix."""
        return self.prefix + name

    def check(self) -> None:
        try:
            page = s3_client().list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except Exception as exc:
            raise LogSourceError(describe_s3_error(exc, f"listing {self}")) from exc
        if not page.get("KeyCount"):
            raise LogSourceError(
                f"nothing under {self}: no object has this prefix (S3 has no empty folders; "
                "check the bucket and prefix of CALO_LOG_DIR)"
            )

    def entries(self) -> Iterator[Entry]:
        found: list[Entry] = []
        try:
            pages = s3_client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", ()):
                    entry = self._entry(item)
                    if entry is not None:
                        found.append(entry)
        except Exception as exc:
            raise LogSourceError(describe_s3_error(exc, f"listing {self}")) from exc
        # in the order of a folder walk (path components), not S3's byte order of whole keys
        found.sort(key=lambda entry: str(entry.location).split("/"))
        yield from found

    def _entry(self, item: dict[str, Any]) -> Entry | None:
        key = item["Key"]
        if key.endswith("/"):
            return None  # a 'folder' marker written by a console or a sync tool: nothing to read
        location = S3Object(self.bucket, key, int(item.get("Size", 0)), item.get("ETag", ""))
        storage = item.get("StorageClass", "STANDARD")
        refusal = (
            f"object in the S3 {storage} storage class: not readable without a restore"
            if storage in _ARCHIVED
            else None
        )
        modified = item.get("LastModified")
        return Entry(
            location,
            location.parent.name,
            refusal,
            size=location.size,
            modified=modified.timestamp() if modified is not None else 0.0,
        )


# -- S3 clients and errors ---------------------------------------------------------------------------

_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def s3_client() -> Any:
    """An S3 client of this process for the current AWS configuration (boto3's default chain)."""
    return aws_client("s3")


def aws_client(service: str) -> Any:
    """A boto3 client of ``service`` for this process, made once per process and configuration
    (a forked reading process makes its own: clients are not shared across processes)."""
    configuration = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (os.getpid(), service, hash(configuration))
    client = _CLIENTS.get(key)
    if client is not None:
        return client
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            import boto3  # only an S3 source loads boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=16,
            )
            for stale in [k for k in _CLIENTS if k[0] != key[0] or k[1] == service]:
                del _CLIENTS[stale]
            client = boto3.session.Session().client(service, config=config)
            _CLIENTS[key] = client
    return client


_CODES = {
    "NoSuchBucket": "bucket not found",
    "NoSuchKey": "object not found (deleted since it was listed?)",
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access denied",
    "InvalidAccessKeyId": "the AWS access key is not valid",
    "SignatureDoesNotMatch": "the AWS credentials are not valid (signature does not match)",
    "ExpiredToken": "the AWS credentials have expired",
    "PreconditionFailed": "the object changed while it was read (its ETag is not the one listed)",
    "InvalidObjectState": "the object is archived: not readable without a restore",
    "403": "access denied",
    "404": "not found",
}


def describe_s3_error(exc: BaseException, doing: str) -> str:
    """One line saying what failed and what to check, without credentials."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        meaning = _CODES.get(code, code or "error")
        hint = ""
        if meaning == "access denied":
            hint = ": the reader needs s3:ListBucket on the bucket and s3:GetObject on its objects"
        elif meaning == "bucket not found":
            hint = ": check the bucket name of CALO_LOG_DIR (and the region / endpoint)"
        return f"{doing}: {meaning} ({code}){hint}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"{doing}: no AWS credentials found (environment variables, AWS_PROFILE, or an "
            "instance / container role)"
        )
    if isinstance(exc, EndpointConnectionError):
        return f"{doing}: the S3 endpoint cannot be reached ({exc})"
    return f"{doing}: {type(exc).__name__}: {exc}"


class _S3Stream(io.RawIOBase):
    """An object read sequentially through ranged GETs; seeking starts a new GET there."""

    def __init__(self, location: S3Object) -> None:
        super().__init__()
        self.location = location
        self.position = 0
        self.body: Any = None
        self.attempts = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.location.size}
        target = base[whence] + offset
        if target < 0:
            raise ValueError("negative seek position")
        if target != self.position:
            self._drop()
            self.position = target
        return self.position

    def connect(self) -> None:
        """GET the object from the current position (nothing to GET at or past its end)."""
        if self.position >= self.location.size and self.location.size:
            return
        arguments: dict[str, Any] = {"Bucket": self.location.bucket, "Key": self.location.key}
        if self.location.etag:
            arguments["IfMatch"] = self.location.etag
        if self.position:
            arguments["Range"] = f"bytes={self.position}-"
        try:
            self.body = s3_client().get_object(**arguments)["Body"]
        except Exception as exc:
            raise S3ReadError(describe_s3_error(exc, f"reading {self.location}")) from exc

    def readinto(self, buffer: Any) -> int:
        if self.position >= self.location.size:
            return 0
        wanted = min(len(buffer), self.location.size - self.position)
        while True:
            if self.body is None:
                self.connect()
            try:
                data = self.body.read(wanted)
            except Exception as exc:  # a broken connection: resume where it stopped
                self._drop()
                self.attempts += 1
                if self.attempts >= READ_ATTEMPTS:
                    raise S3ReadError(
                        f"reading {self.location}: the connection broke {self.attempts} times "
                        f"(last: {type(exc).__name__}) at byte {self.position:,}"
                    ) from exc
                continue
            if not data:  # the body ended before the object's size: resume
                self._drop()
                self.attempts += 1
                if self.attempts >= READ_ATTEMPTS:
                    raise S3ReadError(
                        f"reading {self.location}: the object ended at byte {self.position:,} "
                        f"of {self.location.size:,}"
                    )
                continue
            size = len(data)
            buffer[:size] = data
            self.position += size
            return size

    def _drop(self) -> None:
        if self.body is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                self.body.close()
            self.body = None

    def close(self) -> None:
        self._drop()
        super().close()
