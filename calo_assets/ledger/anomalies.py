"""Anomaly scores: scikit-learn's IsolationForest over scaled features of each transaction.

The model is fitted on a trailing window of days ending at the scored day and scores that day. Amounts
and balances are put on a per-currency scale first (a robust z-score of their signed logarithm), so a
score means the same in BHD and in SAR. Each flagged transaction says, in words, which features made it
unusual: those furthest from the window's typical value after scaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

from calo_assets.money import format_money

DEFAULT_WINDOW_DAYS = 28
DEFAULT_CONTAMINATION = 0.01
RANDOM_SEED = 20231212
MIN_ROWS_TO_FIT = 20
REASON_THRESHOLD = 2.0  # standard deviations from the window's mean
MAX_REASONS = 3

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


@dataclass(frozen=True)
class AnomalySettings:
    """How the model is fitted: window length in days, expected share of anomalies, seed."""

    window_days: int = DEFAULT_WINDOW_DAYS
    contamination: float = DEFAULT_CONTAMINATION
    seed: int = RANDOM_SEED


def _signed_log(values: pd.Series) -> pd.Series:
    return np.sign(values) * np.log1p(values.abs())


def _robust_z(values: pd.Series, groups: pd.Series) -> pd.Series:
    """(value - median) / IQR within each group; a group with no spread gives 0."""
    grouped = values.groupby(groups, dropna=False)
    median = grouped.transform("median")
    spread = grouped.transform(lambda group: group.quantile(0.75) - group.quantile(0.25))
    spread = spread.where(spread > 0, grouped.transform("std")).replace(0, np.nan)
    return ((values - median) / spread).fillna(0.0)


def features(window: pd.DataFrame) -> pd.DataFrame:
    """The model's features for every transaction of the window (rows in the window's order)."""
    amount = window["amount"].astype(float)
    vat = window["vat"].fillna(0).astype(float)
    currency = window["currency"].fillna("?")
    log_amount = _signed_log(amount)
    hours = window["occurred_at"].dt.hour + window["occurred_at"].dt.minute / 60
    action = window["action"].fillna("(none)")
    source = window["source"].fillna("(none)")
    total = len(window)
    return pd.DataFrame(
        {
            "amount_vs_currency": _robust_z(log_amount, currency),
            "amount_vs_user": log_amount
            - log_amount.groupby(window["user_id"]).transform("median"),
            "vat_share": (vat / amount.where(amount != 0)).fillna(0.0),
            "balance_before_vs_currency": _robust_z(
                _signed_log(window["old_balance"].astype(float)), currency
            ),
            "balance_after_vs_currency": _robust_z(
                _signed_log(window["new_balance"].astype(float)), currency
            ),
            "hour_sin": np.sin(2 * math.pi * hours / 24),
            "hour_cos": np.cos(2 * math.pi * hours / 24),
            "is_credit": (window["type"] == "CREDIT").astype(float),
            "action_rarity": -np.log(action.map(action.value_counts()) / total),
            "source_rarity": -np.log(source.map(source.value_counts()) / total),
            "negative_after": (window["new_balance"].astype(float) < 0).astype(float),
        },
        index=window.index,
    )[list(FEATURES)]


def score_day(
    transactions: pd.DataFrame, day, settings: AnomalySettings = AnomalySettings()
) -> pd.DataFrame:
    """Fit on the window's transactions and score those of ``day``.

    ``transactions`` holds the window (any order); the result has one row per transaction of ``day``,
    in time order, with ``score`` (higher is more unusual), ``is_anomaly`` and ``reasons``.
    """
    window = transactions.sort_values(["occurred_at", "transaction_id"], kind="stable").reset_index(
        drop=True
    )
    today = window["day"] == day
    result = window.loc[
        today, ["transaction_id", "day", "occurred_at", "user_id", "currency"]
    ].copy()
    result["window_rows"] = len(window)
    if not today.any():
        return result.assign(
            score=pd.Series(dtype=float), is_anomaly=pd.Series(dtype=bool), reasons=""
        )
    if len(window) < MIN_ROWS_TO_FIT:
        return result.assign(
            score=np.nan,
            is_anomaly=False,
            reasons=f"not scored: fewer than {MIN_ROWS_TO_FIT} transactions in the window",
        )
    matrix = features(window)
    scaled = StandardScaler().fit_transform(matrix.to_numpy())
    # The seed fixes every tree, so the scores are the same whatever the number of threads.
    model = IsolationForest(
        n_estimators=100, contamination=settings.contamination, random_state=settings.seed
    )
    model.fit(scaled)
    day_scaled = scaled[today.to_numpy()]
    raw = model.score_samples(day_scaled)
    result["score"] = -raw
    result["is_anomaly"] = raw < model.offset_  # what model.predict does, without scoring twice
    day_window = window.loc[today]
    result["reasons"] = [
        explain(row_scaled, day_window.iloc[position], matrix.loc[today].iloc[position], window)
        if flagged
        else ""
        for position, (row_scaled, flagged) in enumerate(
            zip(day_scaled, result["is_anomaly"], strict=True)
        )
    ]
    return result


def score_days(
    transactions: pd.DataFrame,
    days: list,
    settings: AnomalySettings = AnomalySettings(),
    workers: int = 1,
) -> list[pd.DataFrame]:
    """``score_day`` for each of ``days`` (each with its own trailing window), in ``workers`` processes."""

    def window(day) -> pd.DataFrame:
        start = day - timedelta(days=settings.window_days - 1)
        return transactions[(transactions["day"] >= start) & (transactions["day"] <= day)]

    if workers <= 1 or len(days) < 4:
        return [score_day(window(day), day, settings) for day in days]
    return Parallel(n_jobs=workers)(delayed(score_day)(window(day), day, settings) for day in days)


def explain(
    scaled_row: np.ndarray, transaction: pd.Series, raw: pd.Series, window: pd.DataFrame
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
    feature: str, high: bool, transaction: pd.Series, raw: pd.Series, window: pd.DataFrame
) -> str:
    currency = transaction["currency"]
    if feature == "amount_vs_currency":
        amount = format_money(transaction["amount"], currency)
        return f"amount {amount} is unusually {'large' if high else 'small'} for {currency}"
    if feature == "amount_vs_user":
        return f"amount is {math.exp(abs(raw[feature])):.1f}x {'above' if high else 'below'} this user's usual"
    if feature == "vat_share":
        return f"VAT is {raw[feature]:.0%} of the amount, unusual"
    if feature in ("balance_before_vs_currency", "balance_after_vs_currency"):
        which = "before" if feature.endswith("before_vs_currency") else "after"
        value = transaction["old_balance" if which == "before" else "new_balance"]
        return f"balance {which} ({format_money(value, currency)}) is unusually {'high' if high else 'low'}"
    if feature in ("hour_sin", "hour_cos"):
        return f"logged at {transaction['occurred_at']:%H:%M} UTC, an unusual hour"
    if feature == "is_credit":
        return f"a {str(transaction['type']).lower()}, the less common direction in the window"
    if feature in ("action_rarity", "source_rarity"):
        column = "action" if feature == "action_rarity" else "source"
        value = transaction[column]
        count = (
            int((window[column] == value).sum())
            if value is not None
            else int(window[column].isna().sum())
        )
        return f"rare {column} {value} ({count} of {len(window)} in the window)"
    if feature == "negative_after":
        return "the new balance is below zero" if high else ""
    return ""
