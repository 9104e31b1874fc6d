"""Screenshots of the Dagster UI for the README, taken with Debian's chromium.

    .venv/bin/python scripts/screenshots.py            # writes docs/ui_*.png

On a temporary instance, warehouse and report folder: materializes the shipped sample with the
README's range command, runs one check alone without a partition (as the UI's "Execute" does, so a
check shows the results of every day), starts dagster-webserver, and saves headless chromium
screenshots of the asset graph, one partition of ``transactions``, the ``nothing_lost`` check and
the Plots of ``transactions``.
Chromium is driven through the DevTools protocol by choreographer (which kaleido brings), so a page
can be clicked into (a check's Partitions tab, the Plots of an asset). Everything it starts is
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("BROWSER_PATH", "/usr/bin/chromium")
RANGE = ("2024-03-01", "2024-03-08")
# (file, page, what it shows, window height as a multiple of --height, tabs to click, in order)
PAGES = [
    (
        "ui_asset_graph.png",
        "/assets/balance_sync_report?view=lineage&lineageScope=upstream&lineageDepth=5",
        "the asset graph: everything upstream of the report, from the CloudWatch export",
        1.6,  # the graph is tall: a taller window draws it larger
        (),
    ),
    (
        "ui_partition.png",
        "/assets/transactions?view=partitions&partition=2024-03-04",
        "one partition of transactions, with its own row count and preview",
        1.0,
        (),
    ),
    (
        "ui_check.png",
        "/assets/log_events?view=checks&checkDetail=nothing_lost",
        "the nothing_lost check: its result in each partition (its Partitions tab)",
        1.0,
        ("Partitions",),
    ),
    (
        "ui_plots.png",
        "/assets/transactions?view=overview",
        "the Plots of transactions: each materialization's own row count (Events view)",
        1.0,
        ("Plots", "Events"),
    ),
]
# Scrolls to and clicks the last visible element whose own text is exactly the label (a tab or a
# button: on the check page the check's "Partitions" tab comes after the asset's).
CLICK = """(() => {
  const found = [...document.querySelectorAll('button, a, [role=tab], span, div')]
    .filter(e => e.offsetParent !== null && e.childElementCount <= 2
                 && e.textContent.trim() === %s);
  if (found.length) {
    const target = found[found.length - 1];
    target.scrollIntoView({block: 'start'});
    target.click();
    return true;
  }
  return false;
})()"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"screenshots: timed out waiting for {what}")


def run_check_alone(port: int) -> None:
    """Execute nothing_lost alone, as the UI's Execute button does (no partition)."""
    launched = graphql(
        port,
        """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } } }""",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": "calo_assets",
                    "repositoryName": "__repository__",
                    "jobName": "daily_refresh",
                    "assetSelection": [],
                    "assetCheckSelection": [
                        {"assetKey": {"path": ["log_events"]}, "name": "nothing_lost"}
                    ],
                },
                "runConfigData": "{}",
            }
        },
    )["launchPipelineExecution"]
    run_id = launched["run"]["runId"]

    def finished() -> bool:
        status = graphql(
            port,
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }",
            {"id": run_id},
        )["runOrError"]["status"]
        return status in ("SUCCESS", "FAILURE", "CANCELED")

    wait_until(finished, 300, "the check run")


async def screenshot(
    url: str, path: Path, width: int, height: int, wait: float, clicks: tuple[str, ...]
) -> None:
    """Open ``url`` in headless chromium (through the DevTools protocol, with choreographer, which
    kaleido already brings), let it load, click ``clicks`` in turn, and save a PNG."""
    import choreographer

    async with choreographer.Browser(path=CHROMIUM, headless=True) as browser:
        tab = browser.get_tab()  # the window headless chromium opens with
        await tab.send_command(
            "Emulation.setDeviceMetricsOverride",
            params={"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        await tab.send_command("Page.navigate", params={"url": url})
        await asyncio.sleep(wait)
        for label in clicks:
            clicked = await tab.send_command(
                "Runtime.evaluate",
                params={"expression": CLICK % json.dumps(label), "returnByValue": True},
            )
            if not clicked["result"]["result"].get("value"):
                raise SystemExit(f"screenshots: nothing to click called {label!r} on {url}")
            await asyncio.sleep(wait)
        shot = await tab.send_command("Page.captureScreenshot", params={"format": "png"})
        path.write_bytes(base64.b64decode(shot["result"]["data"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--wait", type=float, default=8.0, help="seconds a page gets to load")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"screenshots: {CHROMIUM} not found (apt-get install chromium)")
    root = Path(tempfile.mkdtemp(prefix="calo-screenshots-"))
    home = root / "dagster_home"
    home.mkdir()
    # Runs launched from the UI start at once (no daemon needed for the check run).
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALO_")}
    env |= {
        "DAGSTER_HOME": str(home),
        "CALO_WAREHOUSE_DIR": str(root / "warehouse"),
        "CALO_REPORT_DIR": str(root / "reports"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])),
    }
    webserver = None
    try:
        print("materializing the sample ...", file=sys.stderr)
        subprocess.run(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "calo_assets.definitions",
                "--select",
                "*",
                "--partition-range",
                "...".join(RANGE),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        port = free_port()
        webserver = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(
            lambda: graphql(port, "{ assetNodes { id } }")["assetNodes"], 180, "the webserver"
        )
        # The "Join the Dagster community" dialog, shown once per instance, would cover the pages.
        graphql(port, "mutation { setNuxSeen }")
        print("running nothing_lost alone ...", file=sys.stderr)
        run_check_alone(port)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, page, what, taller, clicks in PAGES:
            print(f"{name}: {what}", file=sys.stderr)
            asyncio.run(
                screenshot(
                    f"http://127.0.0.1:{port}{page}",
                    args.out / name,
                    args.width,
                    int(args.height * taller),
                    args.wait,
                    clicks,
                )
            )
    finally:
        if webserver is not None and webserver.poll() is None:
            os.killpg(webserver.pid, signal.SIGTERM)
            try:
                webserver.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(webserver.pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
