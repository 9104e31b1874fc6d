"""The fast anomaly scoring gives exactly the figures of the straightforward per-day computation.

``reference_score_day`` below is that computation: pandas features of the window (a Python function per
group for the IQR), ``StandardScaler``, then the isolation forest written plainly in Python
(``ReferenceRandom``, ``reference_path_lengths``: the algorithm of ``_forest.c``, draw for draw) and the
contamination percentile of the window's scores as the threshold. The compiled forest equals the Python
one exactly (hypothesis), and its ranking agrees with scikit-learn's IsolationForest on the real export.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler

from calo_assets.ledger import _forest, anomalies
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


MASK = (1 << 64) - 1


class ReferenceRandom:
    """xoshiro256** seeded by splitmix64, as ``_forest.c`` draws from it, in Python integers."""

    def __init__(self, seed: int) -> None:
        state = seed & MASK
        self.state = []
        for _ in range(4):
            state = (state + 0x9E3779B97F4A7C15) & MASK
            self.state.append(self.splitmix64(state))

    @staticmethod
    def splitmix64(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def next(self) -> int:
        s0, s1, s2, s3 = self.state
        result = (_rotl((s1 * 5) & MASK, 7) * 9) & MASK
        t = (s1 << 17) & MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        self.state = [s0, s1, s2, _rotl(s3, 45)]
        return result

    def below(self, bound: int) -> int:
        """Uniform in [0, bound): draws below 2**64 mod bound are drawn again."""
        floor = (1 << 64) % bound
        while (value := self.next()) < floor:
            pass
        return value % bound

    def unit(self) -> float:
        return (self.next() >> 11) * 2.0**-53


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & MASK


def reference_average_path_length(rows: int) -> float:
    """c(n) = 2 H(n - 1) - 2 (n - 1) / n, H summed in increasing order (not ``sum``: from Python 3.12
    it compensates rounding)."""
    if rows <= 1:
        return 0.0
    harmonic = 0.0
    for k in range(1, rows):
        harmonic += 1.0 / k
    return 2 * harmonic - 2 * (rows - 1) / rows


def reference_tree(
    x: list[list[float]], rows: list[int], max_depth: int, random: ReferenceRandom
) -> tuple[dict[int, tuple[int, float, int, int]], dict[int, float]]:
    """One isolation tree grown on ``rows``, nodes numbered in preorder: the splits (feature,
    threshold, child of the rows at most the threshold, child of the others) and the leaves'
    path lengths (depth + c(rows))."""
    columns = len(x[0])
    splits: dict[int, tuple[int, float, int, int]] = {}
    leaves: dict[int, float] = {}

    def grow(rows: list[int], depth: int) -> int:
        node = len(splits) + len(leaves)
        leaves[node] = depth + reference_average_path_length(len(rows))  # unless it is split
        if depth >= max_depth or len(rows) <= 1:
            return node
        not_drawn = list(range(columns))
        while not_drawn:  # a random feature among those not constant in the node
            k = random.below(len(not_drawn))
            feature = not_drawn[k]
            low = min(x[row][feature] for row in rows)
            high = max(x[row][feature] for row in rows)
            if low < high:
                break
            not_drawn[k], not_drawn[-1] = not_drawn[-1], not_drawn[k]
            not_drawn.pop()
        else:
            return node
        threshold = low + random.unit() * (high - low)
        if not threshold < high:
            threshold = low
        del leaves[node]
        splits[node] = (feature, threshold, -1, -1)
        below = grow([row for row in rows if x[row][feature] <= threshold], depth + 1)
        above = grow([row for row in rows if x[row][feature] > threshold], depth + 1)
        splits[node] = (feature, threshold, below, above)
        return node

    grow(rows, 0)
    return splits, leaves


def reference_path_lengths(
    matrix: np.ndarray, seed: int, trees: int = 100, rows_per_tree: int = 256
) -> np.ndarray:
    """Each row's path length summed over the trees: the algorithm of ``_forest.c``, plainly."""
    x = [[float(value) for value in row] for row in matrix]
    count = len(x)
    totals = np.zeros(count)
    if count == 0:
        return totals
    sample = min(rows_per_tree, count)
    max_depth = math.ceil(math.log2(max(sample, 2)))
    random = ReferenceRandom(seed)
    for _ in range(trees):
        order = list(range(count))
        for i in range(sample):  # the tree's rows, without replacement
            j = i + random.below(count - i)
            order[i], order[j] = order[j], order[i]
        splits, leaves = reference_tree(x, order[:sample], max_depth, random)
        for row in range(count):
            node = 0
            while node in splits:
                feature, threshold, below, above = splits[node]
                node = below if x[row][feature] <= threshold else above
            totals[row] += leaves[node]
    return totals


def reference_isolation_scores(matrix: np.ndarray, seed: int) -> np.ndarray:
    denominator = 100 * reference_average_path_length(min(256, len(matrix)))
    if denominator == 0:
        return np.full(len(matrix), -0.5)
    return -(2 ** (-reference_path_lengths(matrix, seed) / denominator))


def reference_score_day(transactions: pd.DataFrame, day: date, settings: AnomalySettings):
    window = transactions.sort_values(["occurred_at", "transaction_id"], kind="stable").reset_index(
        drop=True
    )
    today = window["day"] == day
    result = window.loc[
        today, ["transaction_id", "day", "occurred_at", "user_id", "currency"]
    ].copy()
    result["window_rows"] = len(window)
    result["contamination"] = settings.contamination
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
    # A missing feature (no user, so no "amount_vs_user") is the window's mean, 0 after scaling.
    window_raw = reference_isolation_scores(np.nan_to_num(scaled, nan=0.0), settings.seed)
    day_scaled = scaled[today.to_numpy()]
    raw = window_raw[today.to_numpy()]
    result["score"] = -raw
    result["is_anomaly"] = raw < np.percentile(window_raw, 100 * settings.contamination)
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
    assert int(flagged["is_anomaly"].sum()) == 32
    assert flagged["score"].isna().sum() == 12  # the first three days: fewer than 20 rows


def test_worker_processes_give_the_same_frames(history, reference):
    days = [FIRST_DAY + timedelta(days=offset) for offset in range(DAYS)]
    in_processes = score_days(history, days, SETTINGS, workers=2, parallel_min_work=0)
    for mine, theirs in zip(in_processes, reference, strict=True):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)


@pytest.mark.parametrize("rows", [20, 255, 256, 900])
def test_isolation_scores_are_those_of_the_python_forest(rows):
    """(Until the forest was compiled, these were asserted equal to scikit-learn's IsolationForest.)"""
    generator = np.random.default_rng(rows)
    matrix = generator.normal(size=(rows, len(FEATURES)))
    matrix[:, 3] = 1.0  # a constant column is never split
    matrix[rows // 2 :, 5] = matrix[: rows - rows // 2, 5]  # repeated values
    matrix[-1] = 8.0  # an outlier
    expected = reference_isolation_scores(matrix, 11)
    mine = anomalies.isolation_scores(np.asfortranarray(matrix), 11)  # any layout
    assert np.array_equal(mine, expected)
    assert mine.argmin() == rows - 1
    assert ((mine > -1) & (mine < 0)).all()


def _matrices(draw) -> np.ndarray:
    """Small matrices with what makes trees awkward: constant columns, duplicate rows, signed zeros,
    equal values, subnormals and values so far apart that max - min overflows."""
    rows, columns = draw(st.integers(1, 40)), draw(st.integers(0, 5))
    values = st.one_of(
        st.sampled_from([0.0, -0.0, 1.0, 1.5, -2.0, 5e-324, 1.7e308, -1.7e308]),
        st.floats(allow_nan=False, allow_infinity=False),
    )
    matrix = draw(hnp.arrays(np.float64, (rows, columns), elements=values))
    for column in draw(st.lists(st.integers(0, max(columns - 1, 0)), max_size=2)):
        if columns:
            matrix[:, column] = matrix[0, column]
    for source, target in draw(
        st.lists(st.tuples(st.integers(0, rows - 1), st.integers(0, rows - 1)), max_size=5)
    ):
        matrix[target] = matrix[source]
    return matrix


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    seed=st.integers(-(2**70), 2**70),
    trees=st.integers(0, 6),
    rows_per_tree=st.integers(1, 48),
)
def test_the_compiled_forest_is_the_python_forest_draw_for_draw(data, seed, trees, rows_per_tree):
    matrix = data.draw(st.composite(_matrices)())
    out = np.full(len(matrix), np.nan)
    _forest.path_lengths(np.ascontiguousarray(matrix), seed, trees, rows_per_tree, out)
    expected = reference_path_lengths(matrix, seed, trees, rows_per_tree)
    assert np.array_equal(out, expected)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**64 - 1))
def test_isolation_scores_of_small_windows_are_those_of_the_python_forest(data, seed):
    matrix = data.draw(st.composite(_matrices)())
    assert np.array_equal(
        anomalies.isolation_scores(matrix, seed), reference_isolation_scores(matrix, seed)
    )


def test_the_python_prng_is_xoshiro256_starstar_seeded_by_splitmix64():
    # Published first outputs: splitmix64 from 0, and xoshiro256** from the state (1, 2, 3, 4).
    assert ReferenceRandom(0).state[0] == 0xE220A8397B1DCDAF
    random = ReferenceRandom(0)
    random.state = [1, 2, 3, 4]
    assert [random.next() for _ in range(4)] == [11520, 0, 1509978240, 1215971899390074240]
    assert [reference_average_path_length(n) for n in (0, 1, 2, 3)] == [0.0, 0.0, 1.0, 5 / 3]
    assert [anomalies.average_path_length(n) for n in range(300)] == [
        reference_average_path_length(n) for n in range(300)
    ]


def test_the_forest_gives_the_same_figures_on_every_machine():
    """Figures pinned from the seed alone (integer and IEEE arithmetic, no numpy random, no libm)."""
    rows, columns = np.indices((300, 4))
    matrix = ((rows * 37 + columns * 11) % 17 / 4.0 + (rows == 299) * 9.0).astype(np.float64)
    totals = anomalies.isolation_path_lengths(matrix, anomalies.RANDOM_SEED)
    assert totals[:3].tolist() == [896.352490809845, 1046.791465430787, 985.0818984954552]
    assert float(totals.sum()).hex() == "0x1.26c16a419535ap+18"
    assert totals.argmin() == 299


def test_the_compiled_forest_refuses_what_it_cannot_score():
    out = np.empty(3)
    with pytest.raises(ValueError, match="finite"):
        _forest.path_lengths(np.array([[1.0], [np.nan], [2.0]]), 1, 1, 256, out)
    with pytest.raises(ValueError, match="finite"):
        _forest.path_lengths(np.array([[1.0], [np.inf], [2.0]]), 1, 1, 256, out)
    with pytest.raises(TypeError):
        _forest.path_lengths(np.ones((3, 2), dtype=np.float32), 1, 1, 256, out)
    with pytest.raises(TypeError):
        _forest.path_lengths(np.ones((4, 2)), 1, 1, 256, out)  # one value per row
    with pytest.raises(TypeError):
        _forest.path_lengths(np.ones(3), 1, 1, 256, out)
    with pytest.raises(ValueError):
        _forest.path_lengths(np.ones((3, 2)), 1, 1, 0, out)
    assert anomalies.isolation_scores(np.ones((1, 2)), 1).tolist() == [-0.5]


@pytest.fixture(scope="module")
def real_history(real_logs) -> anomalies.History:
    """The transactions of the real export (every day of it)."""
    from calo_assets.logs.export import discover
    from calo_assets.logs.ingest import IngestOptions, read_days
    from calo_assets.tables.sync import build_sync_tables

    days = [(date(2023, 12, 12) + timedelta(days=n)).isoformat() for n in range(126)]
    read = read_days(discover(real_logs), days, IngestOptions())
    table = pa.concat_tables(build_sync_tables(day.events)["transactions"] for day in read.values())
    return anomalies.History.of(anomalies.transactions_frame(table))


def test_on_the_real_export_the_ranking_agrees_with_scikit_learns_isolation_forest(real_history):
    """A check of the meaning: the same model as IsolationForest, other random draws (and float64, and
    the exact c(n)); two IsolationForests of other seeds agree about as much."""
    shared, top = 0, 0
    for day in (date(2024, 1, 1), date(2024, 1, 26), date(2024, 2, 20), date(2024, 4, 10)):
        rows = real_history.window_rows(day, anomalies.DEFAULT_WINDOW_DAYS)
        scaled = StandardScaler().fit_transform(anomalies.features(real_history, rows))
        mine = anomalies.isolation_scores(scaled, anomalies.RANDOM_SEED)
        theirs = (
            IsolationForest(n_estimators=100, random_state=anomalies.RANDOM_SEED)
            .fit(scaled)
            .score_samples(scaled)
        )
        assert spearmanr(mine, theirs).statistic > 0.95
        count = len(rows) // 100  # the top 1%
        shared += len(set(np.argsort(mine)[:count]) & set(np.argsort(theirs)[:count]))
        top += count
    assert shared / top > 0.7


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


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 300),
    columns=st.integers(1, 11),
    seed=st.integers(0, 2**32 - 1),
    constant=st.booleans(),
    missing=st.booleans(),
)
def test_standardize_is_scikit_learns_standard_scaler_to_the_bit(
    rows, columns, seed, constant, missing
):
    from sklearn.preprocessing import StandardScaler

    from calo_assets.ledger.anomalies import standardize

    random = np.random.default_rng(seed)
    matrix = np.asfortranarray(
        random.normal(size=(rows, columns)) * random.uniform(0, 1e4, columns)
    )
    if constant:
        matrix[:, 0] = 3.25
    if missing:  # a transaction without a user has no amount_vs_user
        matrix[random.random(rows) < 0.3, -1] = np.nan
    assert np.array_equal(
        standardize(matrix), StandardScaler().fit_transform(matrix), equal_nan=True
    )


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(1, 300),
        elements=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, 2.5])
        ),
    ),
    st.integers(1, 8),
    st.randoms(),
)
def test_the_quartiles_of_all_groups_are_np_quantile_exactly(values, groups, rng):
    """Bit for bit (a zero may differ in sign: numpy's partition moves equal values around)."""
    keys = np.array([rng.randrange(-1, groups) for _ in values])
    ordered, starts, counts = anomalies._sorted_groups(values, keys)
    filled = counts > 0
    for q in (0.25, 0.75):
        with np.errstate(all="ignore"):
            fast = anomalies._group_quantiles(ordered, starts[filled], counts[filled], q)
            slow = np.array(
                [
                    np.quantile(ordered[start : start + count], q)
                    for start, count in zip(starts[filled], counts[filled], strict=True)
                ]
            )
        np.testing.assert_array_equal(fast, slow)
        assert (fast.view(np.int64) == slow.view(np.int64))[fast != 0].all()
