"""Every command of the README's "Running it" section, run as written.

The commands are read from the section's ``sh`` code blocks. Each line that runs one of the project's
tools (``.venv/bin/...``) runs in bash from the project's root, with two substitutions only:
``.venv/bin/`` is the virtual environment running these tests, and ``/tmp/`` (scratch output) a
temporary folder. ``DAGSTER_HOME``, ``CALO_WAREHOUSE_DIR`` and ``CALO_REPORT_DIR`` point at temporary
folders (the ``export`` line of the README is that setting); the logs are the shipped sample. A line
ending in ``&`` starts a background process (the daemon), stopped at the end. Every other line must be
one of ``SKIPPED`` (with the reason), so a new command in the README cannot go untested.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from calo_assets.config import PROJECT_ROOT
from calo_assets.warehouse import Warehouse

BIN = Path(sys.executable).parent
README = PROJECT_ROOT / "README.md"
SKIPPED = {
    "export DAGSTER_HOME=": "the environment: the test sets DAGSTER_HOME to a temporary folder",
    "cp .env.example .env": "docker compose setup; no Docker engine here (test_deployment.py runs "
    "the same deployment as processes)",
    "docker compose up": "no Docker engine here (test_deployment.py runs it as processes)",
}
BACKFILL_TIMEOUT = 300


def running_it_commands() -> list[str]:
    """The lines of the ``sh`` code blocks of the README's "Running it" section, comments removed."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Running it\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # no command here has a # in it
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def as_run_here(line: str, scratch: Path, bin_dir: Path = BIN) -> str:
    # /tmp/ first: the virtual environment may itself be under /tmp (a CI clone).
    return line.replace("/tmp/", f"{scratch}/").replace(".venv/bin/", f"{bin_dir}/")


def test_the_scratch_folder_does_not_rewrite_the_environments_own_path(tmp_path):
    clone = Path("/tmp/clone/.venv/bin")
    assert as_run_here(".venv/bin/calo-synth-logs /tmp/logs", tmp_path, clone) == (
        f"/tmp/clone/.venv/bin/calo-synth-logs {tmp_path}/logs"
    )


def test_every_line_is_run_or_knowingly_skipped():
    lines = running_it_commands()
    assert sum(line.startswith(".venv/bin/") for line in lines) >= 10
    for line in lines:
        if not line.startswith(".venv/bin/"):
            assert any(line.startswith(prefix) for prefix in SKIPPED), line


# About 2 minutes on an idle machine (each command starts Dagster, most write a report); 4 to 6 under
# the load of a shared 2-core machine.
@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    home, scratch = tmp_path / "dagster_home", tmp_path / "scratch"
    home.mkdir()
    scratch.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CALO_") and key != "DAGSTER_HOME"
    }
    env |= {
        "DAGSTER_HOME": str(home),
        "CALO_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
        "CALO_REPORT_DIR": str(tmp_path / "reports"),
        # The tools load this checkout's code (the virtual environment may be another checkout's).
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
    }
    background: list[subprocess.Popen] = []
    outputs: list[str] = []
    try:
        for line in running_it_commands():
            if not line.startswith(".venv/bin/"):
                continue
            command = as_run_here(line, scratch)
            if command.endswith("&"):
                log = (tmp_path / f"background-{len(background)}.log").open("w")
                background.append(
                    subprocess.Popen(
                        ["bash", "-c", command.rstrip("&").strip()],
                        cwd=PROJECT_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                continue
            began = time.monotonic()
            code, out, err = run(command, env)
            outputs.append(f"{time.monotonic() - began:5.1f} s  {line[:110]}")
            assert code == 0, f"{line}\n{out[-3000:]}\n{err[-5000:]}"
        # The job backfill queued one run per day; the daemon runs them.
        wait_for_backfill_runs(home, {"2024-03-06", "2024-03-07"}, tmp_path)
    finally:
        for process in background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in background:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        print("\n".join(outputs))
    warehouse = Warehouse(tmp_path / "warehouse")
    # calo-report wrote the sample's days and the real export's from 2024-04-10; the Dagster
    # commands rewrote some of the sample's (the tables are the same: each run replaces its days)
    days = warehouse.days("transactions")
    assert days[:8] == [f"2024-03-0{day}" for day in range(1, 9)] and "2024-04-15" in days
    assert (tmp_path / "reports" / "balance_sync_analytics_report.xlsx").exists()
    assert len(list((scratch / "logs").rglob("000000.gz"))) > 30  # calo-synth-logs /tmp/logs


def run(command: str, env: dict[str, str], timeout: float = 600) -> tuple[int, str, str]:
    """Run a command line in bash from the project's root; on a timeout, stop all it started."""
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return -1, out, f"timed out after {timeout} s\n{err}"
    return process.returncode, out, err


def wait_for_backfill_runs(home: Path, days: set[str], tmp_path: Path) -> None:
    """Wait until the backfill's runs (one per day) have finished; they must all succeed."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            (backfill,) = instance.get_backfills()
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
            finished = [run for run in runs if run.is_finished]
            if len(finished) == len(days) == len(runs):
                assert {run.tags["dagster/partition"] for run in runs} == days
                failed = [run.run_id for run in runs if run.status != dg.DagsterRunStatus.SUCCESS]
                assert not failed, f"backfill runs failed: {failed}"
                return
            time.sleep(2)
    logs = "\n".join(path.read_text()[-3000:] for path in tmp_path.glob("background-*.log"))
    pytest.fail(f"the backfill's runs did not finish in {BACKFILL_TIMEOUT} s\n{logs}")
