"""Helpers shared by the benchmarks: synthetic exports, timed materializations, peak memory."""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import date
from pathlib import Path

import dagster as dg

from calo_assets.config import REAL_LOG_DIR
from calo_assets.definitions import defs
from calo_assets.defs.resources import resources_for
from calo_assets.synth.generator import SynthConfig, generate

# Asset selections the benchmarks materialize.
INGEST_AND_SYNC = "group:logs or group:sync"
DAILY = f"{INGEST_AND_SYNC} or key:anomaly_scores"  # every daily asset
HISTORY = (  # the five reconciliation tables over the whole history
    "key:ledger_breaks or key:user_exposure or key:overdrafts or key:sync_outcomes or key:user_summary"
)


def add_log_dir_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-dir``: the export to read, the real one beside the project by default."""
    parser.add_argument("--log-dir", type=Path, default=REAL_LOG_DIR)


def synthetic_export(root: Path, start: date, days: int, **volume) -> Path:
    """Generate an export once (reused when the folder already holds one)."""
    if not any(root.glob("*/*/000000.gz")):
        generate(root, SynthConfig(start=start, days=days, **volume))
    return root


def best_of(repeat: int, work) -> tuple[float, object]:
    """The best time of ``repeat`` calls of ``work``, and what the last call returned."""
    best, result = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - began)
    return best, result


def best_per_name(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The best (lowest) time of each name over ``rounds``."""
    return {name: min(round_[name] for round_ in rounds) for name in rounds[0]}


def print_figures(title: str, figures: dict[str, float]) -> None:
    """``title``, then each figure on its own line, aligned."""
    print(title)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"  {name:<{width}} {value:8.2f}")


def materialize(
    log_dir: Path,
    warehouse: Path,
    first: str,
    last: str,
    selection: str | dg.AssetSelection | None = None,
) -> float:
    """Materialize ``selection`` (default: everything) for ``first..last`` in one run; seconds taken.
    A selection of assets brings along their asset checks unless it says otherwise."""
    began = time.perf_counter()
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=selection,
        resources=resources_for(log_dir, warehouse, warehouse.parent / "reports"),
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    assert result.success
    return time.perf_counter() - began


def step_seconds(result: dg.ExecuteInProcessResult) -> dict[str, float]:
    return {
        event.step_key: event.event_specific_data.duration_ms / 1000
        for event in result.all_events
        if event.event_type_value == "STEP_SUCCESS"
    }


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants (worker processes included)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            time.sleep(self.interval)


def tree_rss(root: int) -> int:
    """Bytes of resident memory of ``root`` and every process below it, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[int(entry.name)] = int(line.split()[1]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total
