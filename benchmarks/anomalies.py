"""Anomaly scores: every day of an export scored as ``anomaly_scores`` does, against bare IsolationForest fits.

The baseline is the model alone as scikit-learn documents it: ``IsolationForest(n_estimators=100,
contamination=0.01, random_state=seed).fit(X)`` then ``score_samples`` of the day's rows, on the scaled
features of the median-size window (computed beforehand, not timed), times the number of days fitted.
The step's figure includes everything else as well (features, scaling, thresholds, reasons, frames), so
a ratio below 1 means the whole step costs less than the bare model would. The step is also timed with
the forest it used before ``_forest.c`` (scikit-learn's ExtraTreeRegressor trees with the seeds
IsolationForest gives them, ``previous_isolation_scores`` below), which gives the before/after ratio in
the same run and the transactions flagged by each. Each figure is the best of ``--repeat`` in the same
run, the measurements alternating (the machines are shared and noisy); the ratios are of CPU seconds,
which other work on the machine disturbs less. Worker processes are timed on their first call too,
which pays for starting them. Usage::

    python -m benchmarks.anomalies [--log-dir ../shared/real-logs | --warehouse DIR] [--repeat 3]
                                   [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler
from sklearn.tree import ExtraTreeRegressor
from sklearn.utils.random import sample_without_replacement

from benchmarks.common import add_log_dir_argument
from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.ledger import anomalies
from calo_assets.ledger.anomalies import (
    INPUT_COLUMNS,
    MIN_ROWS_TO_FIT,
    ROWS_PER_TREE,
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

    def previous_step() -> None:
        with mock.patch.object(anomalies, "isolation_scores", previous_isolation_scores):
            frames["previous"] = score_days(transactions, days, settings)

    # The measurements alternate, so that all see the same load; best of each.
    frames: dict[str, list[pd.DataFrame]] = {}
    step, previous, model, forest, previous_forest = [], [], [], [], []
    for _ in range(args.repeat):
        step.append(timed(lambda: frames.update(now=score_days(transactions, days, settings))))
        previous.append(timed(previous_step))
        model.append(min(timed(bare) for _ in range(3)))
        forest.append(min(timed(lambda: isolation_scores(scaled, settings.seed)) for _ in range(3)))
        previous_forest.append(
            min(timed(lambda: previous_isolation_scores(scaled, settings.seed)) for _ in range(3))
        )
    (step_wall, step_cpu), (bare_wall, bare_cpu) = min(step), min(model)
    before_wall, before_cpu = min(previous)
    now, then = (_flagged(frames[name]) for name in ("now", "previous"))
    figures = {
        "seconds": step_wall,
        "cpu seconds": step_cpu,
        "per fit (s)": step_cpu / max(fitted, 1),
        "before (s)": before_wall,
        "before cpu seconds": before_cpu,
        "after / before": step_cpu / before_cpu,
        "forest (s)": min(forest)[1],
        "forest before (s)": min(previous_forest)[1],
        "flagged": len(now),
        "flagged before": len(then),
        "flagged by both": len(now & then),
        "baseline (s)": bare_cpu * fitted,
        "ratio": step_cpu / (bare_cpu * fitted),
    }
    print(
        f"step, one process:  {step_wall:6.2f} s wall, {step_cpu:6.2f} s CPU"
        f" ({figures['per fit (s)'] * 1000:.1f} ms CPU a fit, features and reasons included)"
    )
    print(
        f"  with the previous forest (scikit-learn's trees): {before_wall:6.2f} s wall,"
        f" {before_cpu:6.2f} s CPU ({before_cpu / max(fitted, 1) * 1000:.1f} ms CPU a fit)"
    )
    print(f"ratio step after / before (CPU): {figures['after / before']:.2f}")
    print(
        f"forest alone on the median window ({len(rows):,} rows): {figures['forest (s)'] * 1000:.1f} ms"
        f" CPU, previously {figures['forest before (s)'] * 1000:.1f} ms"
        f" (ratio {figures['forest (s)'] / figures['forest before (s)']:.2f})"
    )
    print(
        f"flagged: {len(now)} of {sum(len(frame) for frame in frames['now']):,}"
        f" (previous forest: {len(then)}; flagged by both: {len(now & then)})"
    )
    print(
        f"baseline: bare IsolationForest fit + score_samples of the median window ({len(rows):,} rows):"
        f" {bare_cpu * 1000:.1f} ms CPU a fit ({bare_wall * 1000:.1f} ms wall), x {fitted} fits"
        f" = {figures['baseline (s)']:.2f} s"
    )
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


def _flagged(frames: list[pd.DataFrame]) -> set[str]:
    return {
        transaction
        for frame in frames
        for transaction in frame.loc[frame["is_anomaly"].astype(bool), "transaction_id"]
    }


def previous_isolation_scores(matrix: np.ndarray, seed: int) -> np.ndarray:
    """The forest before ``_forest.c``, for comparison: ``IsolationForest(n_estimators=TREES,
    random_state=seed).fit(matrix).score_samples(matrix)`` to the bit, from scikit-learn's own trees
    seeded and sampled as IsolationForest does, without its per-tree cloning and validation."""
    rows = np.ascontiguousarray(matrix, dtype=np.float32)
    count, columns = rows.shape
    per_tree = min(ROWS_PER_TREE, count)
    depth = math.ceil(math.log2(max(per_tree, 2)))
    leaf_lengths = _log_average_path_length(np.arange(per_tree + 1))  # by rows in the leaf
    random = np.random.RandomState(seed)
    target = random.uniform(size=count)  # IsolationForest's random regression target
    depths = np.zeros(count)
    with sklearn.config_context(skip_parameter_validation=True):
        for tree_seed, splitter_seed in zip(*_tree_seeds(seed), strict=True):
            random.seed(tree_seed)
            sample_without_replacement(columns, columns, random_state=random)  # feature draw
            sample = np.sort(sample_without_replacement(count, per_tree, random_state=random))
            random.seed(splitter_seed)
            tree = ExtraTreeRegressor(
                max_features=1, splitter="random", max_depth=depth, random_state=random
            ).fit(rows[sample], target[sample], check_input=False)
            nodes = tree.tree_
            path = nodes.compute_node_depths() + leaf_lengths[nodes.n_node_samples] - 1.0
            depths += path[nodes.apply(rows)]
    denominator = TREES * _log_average_path_length(np.array([per_tree]))
    return -(
        2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))
    )


def _log_average_path_length(leaf_rows: np.ndarray) -> np.ndarray:
    """c(n) as scikit-learn estimates it, H(n - 1) by ln(n - 1) + Euler's constant."""
    rows = np.asarray(leaf_rows, dtype=float)
    lengths = np.zeros(rows.shape)
    lengths[rows == 2] = 1.0
    many = rows > 2
    lengths[many] = (
        2.0 * (np.log(rows[many] - 1.0) + np.euler_gamma) - 2.0 * (rows[many] - 1.0) / rows[many]
    )
    return lengths


@functools.cache
def _tree_seeds(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tree, the seed of its row sample and of its splitter, as IsolationForest draws them."""
    largest = np.iinfo(np.int32).max
    tree_seeds = np.random.RandomState(seed).randint(largest, size=TREES)
    splitter_seeds = np.array([np.random.RandomState(s).randint(largest) for s in tree_seeds])
    return tree_seeds, splitter_seeds


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
