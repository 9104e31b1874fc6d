"""Anomaly scores: every day of an export scored as ``anomaly_scores`` does, against bare IsolationForest fits.

The baseline is the model alone as scikit-learn documents it: ``IsolationForest(n_estimators=100,
contamination=0.01, random_state=seed).fit(X)`` then ``score_samples`` of the day's rows, on the scaled
features of the median-size window (computed beforehand, not timed), times the number of days fitted.
The step's figure includes everything else as well (features, scaling, thresholds, reasons, frames), so
a ratio below 1 means the whole step costs less than the bare model would. Each figure is the best of
``--repeat`` in the same run, the step and the baseline alternating (the machines are shared and
noisy); the ratio is of CPU seconds, which other work on the machine disturbs less. Worker processes
are timed on their first call too, which pays for starting them. Usage::

    python -m benchmarks.anomalies [--log-dir ../shared/real-logs | --warehouse DIR] [--repeat 3]
                                   [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

from benchmarks.common import add_log_dir_argument
from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.ledger.anomalies import (
    INPUT_COLUMNS,
    MIN_ROWS_TO_FIT,
    TREES,
    AnomalySettings,
    History,
    features,
    isolation_scores,
    score_days,
)
from calo_assets.logs.export import discover
from calo_assets.logs.ingest import IngestOptions, default_workers, read_days
from calo_assets.tables.sync import build_sync_tables
from calo_assets.warehouse import Warehouse


def load_transactions(log_dir: Path, warehouse: Path | None) -> tuple[pd.DataFrame, list[date]]:
    """The transactions, and the days a run over them scores (as ``calo-report`` chooses them).

    From a warehouse, or read and built from a log export (its stream-folder days and the day after
    the last, which a stream running past midnight can reach).
    """
    if warehouse is not None:
        written = Warehouse(warehouse).days("transactions")
        table = Warehouse(warehouse).read_all("transactions")
        first, last = date.fromisoformat(written[0]), date.fromisoformat(written[-1])
    else:
        found = discover(log_dir)
        first = date.fromisoformat(found.days()[0])
        last = date.fromisoformat(found.days()[-1]) + timedelta(days=1)
        days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        rows = read_days(found, days, IngestOptions(workers=default_workers()))
        table = pa.concat_tables(
            build_sync_tables(day.events)["transactions"] for day in rows.values()
        )
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    return table.select(list(INPUT_COLUMNS)).to_pandas(), days


def timed(work: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds (of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--warehouse", type=Path, help="read the transactions from this warehouse")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--quick", action="store_true", help="a small smoke run (the sample)")
    args = parser.parse_args(argv)
    if args.quick:
        args.log_dir, args.warehouse, args.repeat, args.workers = SAMPLE_LOG_DIR, None, 1, 1
    settings = AnomalySettings()
    began = time.perf_counter()
    transactions, days = load_transactions(args.log_dir, args.warehouse)
    history = History.of(transactions)
    windows = [history.window_rows(day, settings.window_days) for day in days]
    fitted = len(_fitted(history, days, windows))
    day, rows = _median_window(history, days, windows)
    scaled = StandardScaler().fit_transform(features(history, rows))
    today = history.days[rows] == np.datetime64(day, "D")
    print(
        f"{len(transactions):,} transactions, {len(days)} days ({days[0]} to {days[-1]}), {fitted} fits;"
        f" loaded in {time.perf_counter() - began:.1f} s"
    )

    def bare() -> None:
        model = IsolationForest(
            n_estimators=TREES, contamination=settings.contamination, random_state=settings.seed
        ).fit(scaled)
        model.score_samples(scaled[today])

    # The step and the baseline alternate, so that both see the same load; best of each.
    step, model, forest = [], [], []
    for _ in range(args.repeat):
        step.append(timed(lambda: score_days(transactions, days, settings)))
        model.append(min(timed(bare) for _ in range(3)))
        forest.append(min(timed(lambda: isolation_scores(scaled, settings.seed)) for _ in range(3)))
    (step_wall, step_cpu), (bare_wall, bare_cpu) = min(step), min(model)
    figures = {
        "seconds": step_wall,
        "cpu seconds": step_cpu,
        "per fit (s)": step_cpu / max(fitted, 1),
        "baseline (s)": bare_cpu * fitted,
        "ratio": step_cpu / (bare_cpu * fitted),
    }
    print(
        f"step, one process:  {step_wall:6.2f} s wall, {step_cpu:6.2f} s CPU"
        f" ({figures['per fit (s)'] * 1000:.1f} ms CPU a fit, features and reasons included)"
    )
    print(
        f"baseline: bare IsolationForest fit + score_samples of the median window ({len(rows):,} rows):"
        f" {bare_cpu * 1000:.1f} ms CPU a fit ({bare_wall * 1000:.1f} ms wall), x {fitted} fits"
        f" = {figures['baseline (s)']:.2f} s"
    )
    print(f"  our forest alone on the same rows: {min(forest)[1] * 1000:.1f} ms CPU")
    print(f"ratio step / baseline (CPU): {figures['ratio']:.2f}")
    if args.workers > 1:
        runs = [
            timed(
                lambda: score_days(transactions, days, settings, args.workers, parallel_min_work=0)
            )[0]
            for _ in range(args.repeat)
        ]
        figures |= {"processes, first (s)": runs[0], "processes (s)": min(runs)}
        print(
            f"step, {args.workers} worker processes: {min(runs):6.2f} s wall"
            f" (first call, which starts them: {runs[0]:.2f} s)"
        )
    return figures


def _fitted(
    history: History, days: list[date], windows: list[np.ndarray]
) -> list[tuple[int, date, np.ndarray]]:
    """(window rows, day, window) of each day that is fitted: it has transactions and enough history."""
    return [
        (len(rows), day, rows)
        for day, rows in zip(days, windows, strict=True)
        if len(rows) >= MIN_ROWS_TO_FIT and (history.days[rows] == np.datetime64(day, "D")).any()
    ]


def _median_window(
    history: History, days: list[date], windows: list[np.ndarray]
) -> tuple[date, np.ndarray]:
    """The fitted day whose window has the median number of rows."""
    fitted = sorted(_fitted(history, days, windows), key=lambda item: item[:2])
    _, day, rows = fitted[len(fitted) // 2]
    return day, rows


if __name__ == "__main__":
    main()
