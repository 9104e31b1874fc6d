"""Anomaly scores: an isolation forest over scaled features of each transaction.

The model is fitted on a trailing window of days ending at the scored day and scores that day. Amounts
and balances are put on a per-currency scale first (a robust z-score of their signed logarithm), so a
score means the same in BHD and in SAR. Each flagged transaction says, in words, which features made it
unusual: those furthest from the window's typical value after scaling.

The model is the isolation forest of Liu, Ting & Zhou (2008) with scikit-learn's IsolationForest
defaults: 100 trees, each on 256 rows of the window drawn without replacement, at most ceil(log2(256))
levels deep, each node split on a random feature among those not constant in it at a uniform random
threshold between its minimum and maximum; a row's path length in a tree is the depth of its leaf plus
c(rows in the leaf), its score -2^(-mean path length / c(256)). It is grown and applied in C
(``_forest.c``) with its own PRNG (xoshiro256** seeded by splitmix64), so its path lengths depend on the
seed only, bit for bit on every machine and with any numpy (the score is one power of their mean).
``test_anomalies.py`` holds the same algorithm in plain Python and compares, and checks that the ranking
agrees with scikit-learn's IsolationForest on the real export.

How it is computed, fast and with the figures of the straightforward per-day computation (pandas
features, scaling, the forest, the percentile; ``test_anomalies.py`` holds that version and compares):
what does not depend on the window (time order, signed logarithms, hour, direction, group codes) is
computed once for every day of a run; group statistics are vectorised with numpy, in the same
floating-point operations as pandas; the window is scored once, which gives both the threshold and the
day's scores.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.ledger import _forest
from calo_assets.money import format_money

DEFAULT_WINDOW_DAYS = 28
DEFAULT_CONTAMINATION = 0.01
RANDOM_SEED = 20231212
MIN_ROWS_TO_FIT = 20
REASON_THRESHOLD = 2.0  # standard deviations from the window's mean
MAX_REASONS = 3
TREES = 100
ROWS_PER_TREE = 256  # as IsolationForest's max_samples="auto"
# When to score in worker processes. Measured on a 2-core machine: a fit costs about 3.4 ms plus 0.9 µs
# per window row (so one fit weighs as much as FIT_COST_IN_ROWS rows). Workers are forked with the
# libraries loaded, so they start in milliseconds, but sharing out the history and sending back the
# frames costs about 0.3 s of CPU for the real export (0.8 s of work in one process, 1.1 s of wall time
# with two workers on a busy machine): they pay from about a second of work.
FIT_COST_IN_ROWS = 4_000
PARALLEL_MIN_WORK = 1_000_000

FEATURES = (
    "amount_vs_currency",
    "amount_vs_user",
    "vat_share",
    "balance_before_vs_currency",
    "balance_after_vs_currency",
    "hour_sin",
    "hour_cos",
    "is_credit",
    "action_rarity",
    "source_rarity",
    "negative_after",
)
# The columns of ``transactions`` the model and the reasons read.
INPUT_COLUMNS = (
    "transaction_id",
    "day",
    "occurred_at",
    "user_id",
    "type",
    "source",
    "action",
    "currency",
    "amount",
    "vat",
    "old_balance",
    "new_balance",
)
RESULT_COLUMNS = ("transaction_id", "day", "occurred_at", "user_id", "currency")


@dataclass(frozen=True)
class AnomalySettings:
    """How the model is fitted: window length in days, expected share of anomalies, seed."""

    window_days: int = DEFAULT_WINDOW_DAYS
    contamination: float = DEFAULT_CONTAMINATION
    seed: int = RANDOM_SEED


def transactions_frame(table: pa.Table) -> pd.DataFrame:
    """``INPUT_COLUMNS`` of a ``transactions`` table as a frame, exact decimals kept in Arrow
    (no Python ``Decimal`` per cell; one is made when a flagged transaction is explained)."""
    return table.select(list(INPUT_COLUMNS)).to_pandas(
        types_mapper=lambda kind: pd.ArrowDtype(kind) if pa.types.is_decimal(kind) else None
    )


def _as_float(values: pd.Series) -> pd.Series:
    """Exact decimals as the nearest floats, as ``float(Decimal)`` gives them."""
    if isinstance(values.dtype, pd.ArrowDtype):  # printed exactly, then parsed correctly rounded
        floats = pc.cast(pc.cast(pa.array(values), pa.string()), pa.float64())
        return pd.Series(floats.to_numpy(zero_copy_only=False), index=values.index)
    return values.astype(float)


def _signed_log(values: pd.Series) -> pd.Series:
    return np.sign(values) * np.log1p(values.abs())


@dataclass(frozen=True)
class History:
    """Transactions in time order with everything that does not depend on the window, computed once.

    ``codes`` holds, per grouping column (currency, user, action, source), one integer per row; a
    missing user is -1 (no group), the other columns group their missing values together.
    """

    frame: pd.DataFrame
    days: np.ndarray
    logs: Mapping[str, np.ndarray]
    fixed: Mapping[str, np.ndarray]
    codes: Mapping[str, np.ndarray]

    @classmethod
    def of(cls, transactions: pd.DataFrame) -> History:
        """Sort by time (then id, stably) and compute the row-wise inputs of the features."""
        frame = (
            transactions[list(INPUT_COLUMNS)]
            .sort_values(["occurred_at", "transaction_id"], kind="stable")
            .reset_index(drop=True)
        )
        amount = _as_float(frame["amount"])
        vat = _as_float(frame["vat"]).fillna(0.0)
        new_balance = _as_float(frame["new_balance"])
        hours = frame["occurred_at"].dt.hour + frame["occurred_at"].dt.minute / 60
        fixed = {
            "vat_share": (vat / amount.where(amount != 0)).fillna(0.0),
            "hour_sin": np.sin(2 * math.pi * hours / 24),
            "hour_cos": np.cos(2 * math.pi * hours / 24),
            "is_credit": (frame["type"] == "CREDIT").astype(float),
            "negative_after": (new_balance < 0).astype(float),
        }
        logs = {
            "amount": _signed_log(amount),
            "old_balance": _signed_log(_as_float(frame["old_balance"])),
            "new_balance": _signed_log(new_balance),
        }
        codes = {
            "currency": pd.factorize(frame["currency"].fillna("?"))[0],
            "user": pd.factorize(frame["user_id"])[0],
            "action": pd.factorize(frame["action"].fillna("(none)"))[0],
            "source": pd.factorize(frame["source"].fillna("(none)"))[0],
        }
        return cls(
            frame=frame,
            days=pd.to_datetime(frame["day"]).to_numpy().astype("datetime64[D]"),
            logs={name: values.to_numpy(dtype=float) for name, values in logs.items()},
            fixed={name: values.to_numpy(dtype=float) for name, values in fixed.items()},
            codes={name: np.asarray(values, dtype=np.int64) for name, values in codes.items()},
        )

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def results(self) -> pd.DataFrame:
        """The ``RESULT_COLUMNS`` of the frame (selected once: every day's scores start from it)."""
        return self.frame[list(RESULT_COLUMNS)]

    @cached_property
    def categories(self) -> pd.DataFrame:
        """The action and source columns of the frame (the reasons count them in the window)."""
        return self.frame[["action", "source"]]

    def window_rows(self, day: date, window_days: int) -> np.ndarray:
        """Positions (in time order) of the transactions of the window of days ending at ``day``."""
        last = np.datetime64(day, "D")
        return np.flatnonzero((self.days > last - window_days) & (self.days <= last))

    def take(self, rows: np.ndarray) -> History:
        """The history restricted to ``rows`` (kept in time order)."""
        return History(
            frame=self.frame.iloc[rows].reset_index(drop=True),
            days=self.days[rows],
            logs={name: values[rows] for name, values in self.logs.items()},
            fixed={name: values[rows] for name, values in self.fixed.items()},
            codes={name: values[rows] for name, values in self.codes.items()},
        )


def _sorted_groups(
    values: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-missing values sorted within each group, with each group's start and count."""
    present = ~np.isnan(values) & (groups >= 0)
    kept, keys = values[present], groups[present]
    order = np.lexsort((kept, keys))
    counts = np.bincount(keys, minlength=groups.max(initial=-1) + 1)
    return kept[order], np.cumsum(counts) - counts, counts


def _group_medians(ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each group's median as pandas computes it (the mean of the two middle values); NaN if empty."""
    medians = np.full(len(counts), np.nan)
    filled = counts > 0
    upper = ordered[(starts + counts // 2)[filled]]
    lower = ordered[(starts + (counts - 1) // 2)[filled]]
    medians[filled] = np.where(counts[filled] % 2 == 1, upper, (upper + lower) / 2)
    return medians


def _group_quantiles(
    ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float
) -> np.ndarray:
    """The ``q`` quantile of each group (none empty), in the floating-point operations of
    ``np.quantile(group, q)`` (its default "linear" method), for all groups at once."""
    virtual = (counts - 1) * q
    below = np.floor(virtual)
    last = virtual >= counts - 1  # numpy takes the last value, at index -1
    previous = np.where(last, counts - 1, below.astype(np.intp))
    following = np.where(last, counts - 1, previous + 1)
    gamma = virtual - np.where(last, -1.0, below)
    lower, upper = ordered[starts + previous], ordered[starts + following]
    difference = upper - lower
    # numpy's _lerp: from the lower value, or back from the upper one from half-way
    return np.where(gamma >= 0.5, upper - difference * (1 - gamma), lower + difference * gamma)


def _robust_z(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(value - median) / IQR within each group; with no IQR the standard deviation; 0 with neither."""
    ordered, starts, counts = _sorted_groups(values, groups)
    medians = _group_medians(ordered, starts, counts)
    spreads = np.full(len(counts), np.nan)
    filled = counts > 0
    spreads[filled] = _group_quantiles(ordered, starts[filled], counts[filled], 0.75) - (
        _group_quantiles(ordered, starts[filled], counts[filled], 0.25)
    )
    if not (spreads[counts > 0] > 0).all():
        # pandas' own standard deviation (Welford's method, in row order), where it is needed.
        deviations = pd.Series(values).groupby(groups).std()
        fallback = np.full(len(counts), np.nan)
        fallback[deviations.index.to_numpy()] = deviations.to_numpy()
        spreads = np.where(spreads > 0, spreads, fallback)
    spreads[spreads == 0] = np.nan
    scaled = (values - medians[groups]) / spreads[groups]
    scaled[np.isnan(scaled)] = 0.0
    return scaled


def _versus_group_median(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """value - median of its group; NaN for a row without a group."""
    medians = np.append(_group_medians(*_sorted_groups(values, groups)), np.nan)
    return values - medians[groups]  # group -1 reads the NaN appended last


def _rarity(groups: np.ndarray) -> np.ndarray:
    """-log of the share of the window's rows in the row's group."""
    return -np.log(np.bincount(groups)[groups] / len(groups))


def features(history: History, rows: np.ndarray) -> np.ndarray:
    """The model's features for the transactions at ``rows`` of ``history`` (the window), one row each.

    Column-major, as pandas returns a frame's values: the scaler's sums depend on the layout.
    """
    currency = history.codes["currency"][rows]
    log_amount = history.logs["amount"][rows]
    columns = {
        "amount_vs_currency": _robust_z(log_amount, currency),
        "amount_vs_user": _versus_group_median(log_amount, history.codes["user"][rows]),
        "balance_before_vs_currency": _robust_z(history.logs["old_balance"][rows], currency),
        "balance_after_vs_currency": _robust_z(history.logs["new_balance"][rows], currency),
        "action_rarity": _rarity(history.codes["action"][rows]),
        "source_rarity": _rarity(history.codes["source"][rows]),
        **{name: values[rows] for name, values in history.fixed.items()},
    }
    matrix = np.empty((len(rows), len(FEATURES)), order="F")
    for position, name in enumerate(FEATURES):
        matrix[:, position] = columns[name]
    return matrix


def standardize(matrix: np.ndarray) -> np.ndarray:
    """Each column to mean 0 and unit (population) variance over its present values (a missing
    value stays missing); a constant column only centred.

    scikit-learn's ``StandardScaler().fit_transform`` in the same floating-point operations (its
    ``_incremental_mean_and_var`` on one batch), without importing scikit-learn (a second of the
    one-shot report's start-up).
    """
    with np.errstate(invalid="ignore"):  # a column without any value stays missing
        count = matrix.shape[0] - np.isnan(matrix).sum(axis=0)  # a missing value is not counted
        mean = np.nansum(matrix, axis=0) / count
        centred = matrix - mean
        correction = np.nansum(centred, axis=0)
        variance = (np.nansum(centred**2, axis=0) - correction**2 / count) / count
        scale = np.sqrt(variance)
        scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0
        return (matrix - mean) / scale


def average_path_length(rows: int) -> float:
    """c(n) of the paper: the average path length of an unsuccessful search in a binary search tree of
    n rows, 2 H(n - 1) - 2 (n - 1) / n, with the harmonic number H summed exactly in increasing order
    (plain IEEE operations, the same on every machine, as ``_forest.c`` computes it); 0 for n <= 1."""
    harmonic = 0.0
    for k in range(1, rows):  # H(rows - 1)
        harmonic += 1.0 / k
    return (harmonic + harmonic) - (2 * (rows - 1)) / rows if rows > 1 else 0.0


def isolation_path_lengths(matrix: np.ndarray, seed: int) -> np.ndarray:
    """Each row's path length summed over the ``TREES`` trees of the forest grown on ``matrix``."""
    rows = np.ascontiguousarray(matrix, dtype=np.float64)
    totals = np.empty(len(rows))
    _forest.path_lengths(rows, seed, TREES, ROWS_PER_TREE, totals)
    return totals


def isolation_scores(matrix: np.ndarray, seed: int) -> np.ndarray:
    """The isolation forest's score of each row of ``matrix`` (finite values), fitted on all of them:
    -2^(-mean path length / c(rows per tree)), between -1 and 0; lower is more unusual."""
    denominator = TREES * average_path_length(min(ROWS_PER_TREE, len(matrix)))
    if denominator == 0:  # a single row: nothing to isolate it from
        return np.full(len(matrix), -0.5)
    return -(2 ** (-isolation_path_lengths(matrix, seed) / denominator))


def score_window(
    history: History, rows: np.ndarray, day: date, settings: AnomalySettings
) -> pd.DataFrame:
    """Fit on the transactions at ``rows`` of ``history`` and score those of ``day``.

    One row per transaction of ``day``, in time order, with ``score`` (higher is more unusual),
    ``is_anomaly`` and ``reasons``.
    """
    today = history.days[rows] == np.datetime64(day, "D")
    result = history.results.iloc[rows[today]]
    result.index = pd.RangeIndex(len(rows))[today]
    result["window_rows"] = len(rows)
    result["contamination"] = settings.contamination  # what the flags were chosen for
    if not today.any():
        return result.assign(
            score=pd.Series(dtype=float), is_anomaly=pd.Series(dtype=bool), reasons=""
        )
    if len(rows) < MIN_ROWS_TO_FIT:
        return result.assign(
            score=np.nan,
            is_anomaly=False,
            reasons=f"not scored: fewer than {MIN_ROWS_TO_FIT} transactions in the window",
        )
    matrix = features(history, rows)
    scaled = standardize(matrix)
    # A missing feature (a transaction without a user has no "amount_vs_user") is the window's mean.
    raw = isolation_scores(np.where(np.isnan(scaled), 0.0, scaled), settings.seed)
    flagged = raw < np.percentile(
        raw, 100.0 * settings.contamination
    )  # as IsolationForest's offset_
    result["score"] = -raw[today]
    result["is_anomaly"] = flagged[today]
    window = history.categories.iloc[rows]
    result["reasons"] = [
        explain(
            scaled[position],
            history.frame.iloc[rows[position]],
            dict(zip(FEATURES, matrix[position], strict=True)),
            window,
        )
        if flagged[position]
        else ""
        for position in np.flatnonzero(today)
    ]
    return result


def score_day(
    transactions: pd.DataFrame, day: date, settings: AnomalySettings = AnomalySettings()
) -> pd.DataFrame:
    """Fit on ``transactions`` (the window, any order) and score those of ``day`` (see ``score_window``)."""
    history = History.of(transactions)
    return score_window(history, np.arange(len(history)), day, settings)


def score_days(
    transactions: pd.DataFrame,
    days: list[date],
    settings: AnomalySettings = AnomalySettings(),
    workers: int = 1,
    *,
    parallel_min_work: int = PARALLEL_MIN_WORK,
) -> list[pd.DataFrame]:
    """``score_day`` for each of ``days``, each with its own trailing window of ``transactions``.

    Runs in up to ``workers`` processes, each given a consecutive share of the days and only the
    history they need, when the work (window rows plus ``FIT_COST_IN_ROWS`` per fit) reaches
    ``parallel_min_work``; otherwise in this process.
    """
    history = History.of(transactions)
    windows = [history.window_rows(day, settings.window_days) for day in days]
    work = sum(len(rows) + FIT_COST_IN_ROWS for rows in windows if len(rows) >= MIN_ROWS_TO_FIT)
    processes = min(workers, len(days))
    if processes <= 1 or work < parallel_min_work:
        return [
            score_window(history, rows, day, settings)
            for day, rows in zip(days, windows, strict=True)
        ]
    # Forked workers start at once, with the libraries already imported.
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        shares = [
            pool.submit(
                _score_share,
                history.take(np.unique(np.concatenate([windows[index] for index in share]))),
                [days[index] for index in share],
                settings,
            )
            for share in np.array_split(np.arange(len(days)), processes)
        ]
        return [frame for share in shares for frame in share.result()]


def _score_share(
    history: History, days: list[date], settings: AnomalySettings
) -> list[pd.DataFrame]:
    return [
        score_window(history, history.window_rows(day, settings.window_days), day, settings)
        for day in days
    ]


def explain(
    scaled_row: np.ndarray,
    transaction: pd.Series,
    raw: Mapping[str, float],
    window: pd.DataFrame,
) -> str:
    """Words for the features of one transaction that are furthest from the window's typical value."""
    order = np.argsort(-np.abs(scaled_row))
    phrases = []
    for index in order:
        if abs(scaled_row[index]) < REASON_THRESHOLD or len(phrases) == MAX_REASONS:
            break
        phrase = _phrase(FEATURES[index], scaled_row[index] > 0, transaction, raw, window)
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return "; ".join(phrases) or "an unusual combination of ordinary values"


def _phrase(
    feature: str,
    high: bool,
    transaction: pd.Series,
    raw: Mapping[str, float],
    window: pd.DataFrame,
) -> str:
    currency = transaction["currency"]
    if feature == "amount_vs_currency":
        amount = format_money(_present(transaction["amount"]), currency)
        return f"amount {amount} is unusually {'large' if high else 'small'} for {currency}"
    if feature == "amount_vs_user":
        return f"amount is {math.exp(abs(raw[feature])):.1f}x {'above' if high else 'below'} this user's usual"
    if feature == "vat_share":
        return f"VAT is {raw[feature]:.0%} of the amount, unusual"
    if feature in ("balance_before_vs_currency", "balance_after_vs_currency"):
        which = "before" if feature.endswith("before_vs_currency") else "after"
        value = transaction["old_balance" if which == "before" else "new_balance"]
        return f"balance {which} ({format_money(_present(value), currency)}) is unusually {'high' if high else 'low'}"
    if feature in ("hour_sin", "hour_cos"):
        return f"logged at {transaction['occurred_at']:%H:%M} UTC, an unusual hour"
    if feature == "is_credit":
        return f"a {str(transaction['type']).lower()}, the less common direction in the window"
    if feature in ("action_rarity", "source_rarity"):
        column = "action" if feature == "action_rarity" else "source"
        value = transaction[column]
        missing = value is None or pd.isna(value)
        count = int(window[column].isna().sum() if missing else (window[column] == value).sum())
        shown = "(none)" if missing else value
        return f"rare {column} {shown} ({count} of {len(window)} in the window)"
    if feature == "negative_after":
        return "the new balance is below zero" if high else ""
    return ""


def _present(value: Any) -> Any:
    return None if pd.isna(value) else value
