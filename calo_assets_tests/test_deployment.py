"""The deployment, as processes instead of containers: a real PostgreSQL server, the gRPC code server,
dagster-webserver and dagster-daemon on the deployment's dagster.yaml and workspace.yaml. A partition
run is launched through the webserver's GraphQL API and must succeed, be stored in PostgreSQL and
write the tables. Everything started here is stopped here.

Also: docker-compose.yml checked for what can be checked without a Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest
import yaml

from benchmarks.postgres import (
    PASSWORD,
    USER,
    PostgresMissingError,
    binaries,
    create_database,
    free_port,
    server,
)
from calo_assets.config import PROJECT_ROOT, SAMPLE_LOG_DIR
from calo_assets.warehouse import Warehouse

DEPLOY = PROJECT_ROOT / "deploy"
BIN = Path(sys.executable).parent
PARTITION = "2024-03-05"


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL cluster on a free port, with a dagster database and user."""
    try:
        binaries()
    except PostgresMissingError as exc:
        pytest.fail(str(exc))
    with server() as running:
        create_database(running, "dagster")
        yield {"port": running.port, "user": USER, "password": PASSWORD, "db": "dagster"}


class Processes:
    """Background processes, each in its own process group, all stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> None:
        log = (self.logs / f"{name}.log").open("w")
        self.running.append(
            subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def tail(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}"
            for path in sorted(self.logs.glob("*.log"))
        )


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"GraphQL answered {error.code}: {error.read()[:2000]!r}") from None
    assert "errors" not in body, body
    return body["data"]


def wait_for(condition, timeout: float, what: str, processes: Processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, AssertionError, KeyError):
            value = None
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}\n{processes.tail()}")


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""

RUN_STATUS = """query($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"""


def test_a_partition_run_through_the_deployment(postgres, tmp_path):
    home, warehouse = tmp_path / "dagster_home", tmp_path / "warehouse"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    code_port, web_port = free_port(), free_port()
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=code_port)
    (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_USER": postgres["user"],
        "DAGSTER_POSTGRES_PASSWORD": postgres["password"],
        "DAGSTER_POSTGRES_DB": postgres["db"],
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(postgres["port"]),
        "DAGSTER_MAX_CONCURRENT_RUNS": "2",
        "CALO_LOG_DIR": str(SAMPLE_LOG_DIR),
        "CALO_WAREHOUSE_DIR": str(warehouse),
        "CALO_REPORT_DIR": str(tmp_path / "reports"),
    }
    processes = Processes(tmp_path)
    try:
        processes.start(
            "code",
            [
                str(BIN / "dagster"),
                "code-server",
                "start",
                "-h",
                "127.0.0.1",
                "-p",
                str(code_port),
                "-m",
                "calo_assets.definitions",
            ],
            env,
        )
        processes.start(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(web_port),
                "-w",
                str(home / "workspace.yaml"),
            ],
            env,
        )
        processes.start(
            "daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")], env
        )

        def location_loaded():
            entries = graphql(web_port, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            return (
                entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            )

        wait_for(location_loaded, 120, "the code location to load in the webserver", processes)
        params = {
            "selector": {
                "repositoryLocationName": "calo_assets",
                "repositoryName": "__repository__",
                "jobName": "daily_refresh",
            },
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]},
            "runConfigData": {},
        }
        launched = graphql(web_port, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        def finished():
            status = graphql(web_port, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

        assert wait_for(finished, 300, "the run to finish", processes) == "SUCCESS", (
            processes.tail()
        )
    finally:
        processes.stop()
    assert all(process.poll() is not None for process in processes.running)
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=postgres["port"],
        user="dagster",
        password="test-only",
        dbname="dagster",
    )
    with connection, connection.cursor() as cursor:
        cursor.execute("select status from runs where run_id = %s", (run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        )
        assert cursor.fetchone()[0] > 0
    connection.close()
    tables = Warehouse(warehouse)
    assert tables.days("transactions") == [PARTITION]
    assert tables.read_day("transactions", PARTITION).num_rows > 0
    assert (tmp_path / "reports" / "balance_sync_analytics_report.xlsx").exists()


def test_compose_file_matches_the_deployment():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["code"]["build"] == "." and (PROJECT_ROOT / "Dockerfile").exists()
    assert services["code"]["command"][:3] == ["dagster", "code-server", "start"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    for name in ("code", "daemon"):
        mounts = {
            re.search(r":(/data/\w+)(?::ro)?$", volume).group(1)
            for volume in services[name]["volumes"]
        }
        assert mounts == {"/data/logs", "/data/warehouse", "/data/reports"}
    # Every environment variable dagster.yaml reads is set for the Dagster services.
    needed = set()

    def collect(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                needed.add(node["env"])
            for value in node.values():
                collect(value)

    collect(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()))
    for name in ("code", "webserver", "daemon"):
        assert needed <= set(services[name]["environment"]), name
    # Runs (launched from the code server, or by the daemon) store partitioned materializations in
    # batches: benchmarks/one_shot.py --postgres.
    for name in ("code", "daemon"):
        assert services[name]["environment"]["DAGSTER_EVENT_BATCH_SIZE"] == (
            "${DAGSTER_EVENT_BATCH_SIZE:-1000}"
        )
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0][
        "grpc_server"
    ]
    assert (workspace["host"], str(workspace["port"])) == ("code", services["code"]["command"][-3])
    # Secrets only from the environment or .env: no literal password in the compose file.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
    assert services["code"]["environment"]["DAGSTER_POSTGRES_PASSWORD"].startswith("${")
