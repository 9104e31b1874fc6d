"""A throw-away PostgreSQL server for the benchmarks, and Dagster homes on the deployment's storage.

``server()`` starts a cluster (initdb, pg_ctl from the Debian package ``postgresql``, as the
``postgres`` user when run as root) on a free local port and stops and deletes it on exit;
``dagster_home(server, folder)`` creates a fresh database on it and returns a ``DAGSTER_HOME``
holding a copy of ``deploy/dagster.yaml`` with the environment variables that file reads.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import psycopg2

from calo_assets.config import PROJECT_ROOT

USER, PASSWORD = "dagster", "benchmark-only"
_databases = count(1)


@dataclass(frozen=True)
class Server:
    port: int


class PostgresMissingError(RuntimeError):
    """PostgreSQL's programs are not installed."""


def binaries() -> Path:
    """The folder of PostgreSQL's programs (the newest version installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise PostgresMissingError(
            "PostgreSQL is not installed (Debian package postgresql: `make setup` installs it)"
        )
    return found[-1].parent


def _as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _admin(server: Server):
    connection = psycopg2.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname="postgres"
    )
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    return connection


@contextmanager
def server() -> Iterator[Server]:
    """A PostgreSQL cluster on a free port with a ``dagster`` user, stopped and deleted on exit."""
    programs = binaries()
    root = Path(tempfile.mkdtemp(prefix="calo-bench-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    try:
        _as_postgres(str(programs / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
        _as_postgres(
            str(programs / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(root / "server.log"),
            "-o",
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1",
            "start",
        )
        try:
            running = Server(port)
            with closing(_admin(running)) as connection, connection.cursor() as cursor:
                cursor.execute(f"create user {USER} with password '{PASSWORD}'")
            yield running
        finally:
            _as_postgres(str(programs / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(running: Server, name: str) -> None:
    """A new database ``name`` owned by the ``dagster`` user."""
    with closing(_admin(running)) as connection, connection.cursor() as cursor:
        cursor.execute(f"create database {name} owner {USER}")


def dagster_home(running: Server, folder: Path) -> dict[str, str]:
    """A fresh database and a ``DAGSTER_HOME`` in ``folder`` on it (the deployment's dagster.yaml):
    the environment variables a process needs to use it."""
    database = f"dagster_{os.getpid()}_{next(_databases)}"
    create_database(running, database)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", folder / "dagster.yaml")
    return {
        "DAGSTER_HOME": str(folder),
        "DAGSTER_POSTGRES_USER": USER,
        "DAGSTER_POSTGRES_PASSWORD": PASSWORD,
        "DAGSTER_POSTGRES_DB": database,
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(running.port),
        "DAGSTER_MAX_CONCURRENT_RUNS": "2",
    }
