"""The fast anomaly scoring gives exactly the figures of the straightforward per-day computation.

``reference_score_day`` below is that computation, as the project first wrote it: pandas features of the
window (a Python function per group for the IQR), ``StandardScaler``, then scikit-learn's
``IsolationForest(...).fit`` and ``score_samples`` of the day with ``offset_`` as the threshold.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

from calo_assets.ledger import anomalies
from calo_assets.ledger.anomalies import FEATURES, AnomalySettings, explain, score_days
from calo_assets.tables.schema import to_table

FIRST_DAY = date(2024, 1, 1)
DAYS = 12


def _signed_log(values: pd.Series) -> pd.Series:
    return np.sign(values) * np.log1p(values.abs())


def _robust_z(values: pd.Series, groups: pd.Series) -> pd.Series:
    grouped = values.groupby(groups, dropna=False)
    median = grouped.transform("median")
    spread = grouped.transform(lambda group: group.quantile(0.75) - group.quantile(0.25))
    spread = spread.where(spread > 0, grouped.transform("std")).replace(0, np.nan)
    return ((values - median) / spread).fillna(0.0)


def reference_features(window: pd.DataFrame) -> pd.DataFrame:
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


def reference_score_day(transactions: pd.DataFrame, day: date, settings: AnomalySettings):
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
    if len(window) < anomalies.MIN_ROWS_TO_FIT:
        return result.assign(
            score=np.nan,
            is_anomaly=False,
            reasons=f"not scored: fewer than {anomalies.MIN_ROWS_TO_FIT} transactions in the window",
        )
    matrix = reference_features(window)
    scaled = StandardScaler().fit_transform(matrix.to_numpy())
    model = IsolationForest(
        n_estimators=100, contamination=settings.contamination, random_state=settings.seed
    ).fit(scaled)
    day_scaled = scaled[today.to_numpy()]
    raw = model.score_samples(day_scaled)
    result["score"] = -raw
    result["is_anomaly"] = raw < model.offset_
    day_window = window.loc[today]
    result["reasons"] = [
        explain(row, day_window.iloc[position], matrix.loc[today].iloc[position], window)
        if flagged
        else ""
        for position, (row, flagged) in enumerate(
            zip(day_scaled, result["is_anomaly"], strict=True)
        )
    ]
    return result


def history_rows() -> list[dict]:
    """Twelve days with what makes the statistics awkward: a currency whose balances never change
    (no IQR), one with a single transaction (no standard deviation), one with an IQR of 0 but a
    standard deviation, missing actions and sources, zero
    and negative amounts, VAT, overdrafts, equal times, a missing user, a day without transactions and
    days whose window holds fewer than 20 or more than 256 rows."""
    generator = random.Random(7)
    rows = []
    per_day = [3, 4, 5, 0, 40, 70, 90, 80, 60, 75, 85, 65]
    for offset, count in enumerate(per_day):
        day = FIRST_DAY + timedelta(days=offset)
        for index in range(count):
            currency = generator.choice(["BHD", "BHD", "BHD", "SAR", "SAR", "KWD"])
            amount = (
                Decimal(generator.choice([0, 5, 12, 25, 40, 60, 1500, -3]))
                + Decimal(generator.randint(0, 999)) / 1000
            )
            old = Decimal(100) if currency == "KWD" else Decimal(generator.randint(-50, 900))
            credit = generator.random() < 0.1
            rows.append(
                {
                    "transaction_id": f"T{offset:02d}{index:03d}",
                    "day": day,
                    "occurred_at": f"{day}T{generator.randint(0, 23):02d}:{generator.choice([0, 30]):02d}:00.000Z",
                    "user_id": None if index == 7 else f"u{generator.randint(0, 30)}",
                    "type": "CREDIT" if credit else "DEBIT",
                    "source": generator.choice(["MANUAL_DEDUCTION", "PAYMENT", None]),
                    "action": generator.choice(
                        ["DELIVERY_DEDUCTION"] * 6 + ["REPLACE_FOOD", "COMPENSATION", None]
                    ),
                    "currency": currency,
                    "amount": amount,
                    "vat": amount / 10 if generator.random() < 0.3 else None,
                    "old_balance": old,
                    "new_balance": old + amount if credit else old - amount,
                    "outcome": "applied",
                }
            )
    rows.append({**rows[-1], "transaction_id": "QAR1", "currency": "QAR"})
    for index, amount in enumerate([10, 10, 10, 10, 10, 500]):  # no IQR, a standard deviation
        rows.append(
            {**rows[-1], "transaction_id": f"AED{index}", "currency": "AED", "amount": amount}
        )
    return rows


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return to_table("transactions", history_rows()).to_pandas()


SETTINGS = AnomalySettings(window_days=5, contamination=0.05)


def reference_days(history: pd.DataFrame) -> list[pd.DataFrame]:
    days = [FIRST_DAY + timedelta(days=offset) for offset in range(DAYS)]
    return [
        reference_score_day(
            history[
                (history["day"] > day - timedelta(days=SETTINGS.window_days))
                & (history["day"] <= day)
            ],
            day,
            SETTINGS,
        )
        for day in days
    ]


@pytest.fixture(scope="module")
def reference(history) -> list[pd.DataFrame]:
    return reference_days(history)


def test_every_day_has_the_scores_flags_and_reasons_of_the_straightforward_computation(
    history, reference
):
    days = [FIRST_DAY + timedelta(days=offset) for offset in range(DAYS)]
    fast = score_days(history, days, SETTINGS)
    assert [len(frame) for frame in fast] == [3, 4, 5, 0, 40, 70, 90, 80, 60, 75, 85, 72]
    assert [int(frame["window_rows"].iloc[0]) for frame in fast if len(frame)] == [
        3, 7, 12, 52, 119, 205, 280, 340, 375, 390, 372,
    ]  # fmt: skip
    for mine, theirs in zip(fast, reference, strict=True):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    flagged = pd.concat(fast)
    assert int(flagged["is_anomaly"].sum()) == 31
    assert flagged["score"].isna().sum() == 12  # the first three days: fewer than 20 rows


def test_worker_processes_give_the_same_frames(history, reference):
    days = [FIRST_DAY + timedelta(days=offset) for offset in range(DAYS)]
    in_processes = score_days(history, days, SETTINGS, workers=2, parallel_min_work=0)
    for mine, theirs in zip(in_processes, reference, strict=True):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)


@pytest.mark.parametrize("rows", [20, 255, 256, 900])
def test_isolation_scores_are_those_of_scikit_learns_isolation_forest(rows):
    generator = np.random.default_rng(rows)
    matrix = generator.normal(size=(rows, len(FEATURES)))
    matrix[:, 3] = 1.0  # a constant column is never split
    matrix[rows // 2 :, 5] = matrix[: rows - rows // 2, 5]  # repeated values
    matrix[-1] = 8.0  # an outlier
    expected = IsolationForest(n_estimators=100, random_state=11).fit(matrix).score_samples(matrix)
    mine = anomalies.isolation_scores(matrix, 11)
    assert np.array_equal(mine, expected)
    assert mine.argmin() == rows - 1


def test_features_and_their_scaling_are_those_of_the_pandas_computation(history):
    whole = anomalies.History.of(history)
    for offset in range(4, DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        window = history[
            (history["day"] > day - timedelta(days=SETTINGS.window_days)) & (history["day"] <= day)
        ]
        expected = reference_features(
            window.sort_values(["occurred_at", "transaction_id"], kind="stable")
        ).to_numpy()
        mine = anomalies.features(whole, whole.window_rows(day, SETTINGS.window_days))
        assert np.array_equal(mine, expected, equal_nan=True)
        assert np.array_equal(  # the same sums: the same memory layout
            StandardScaler().fit_transform(mine),
            StandardScaler().fit_transform(expected),
            equal_nan=True,  # a transaction without a user has no "amount_vs_user"
        )


def test_a_missing_action_is_named_as_such():
    from calo_assets.ledger.anomalies import _phrase

    window = pd.DataFrame({"action": ["REFUND", None, None], "currency": ["BHD"] * 3})
    transaction = pd.Series({"action": None, "currency": "BHD"})
    assert _phrase("action_rarity", False, transaction, {}, window) == (
        "rare action (none) (2 of 3 in the window)"
    )
