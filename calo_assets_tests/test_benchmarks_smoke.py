"""A quick run of every benchmark on small inputs, so the scripts keep working (figures are not asserted:
benchmarks measure, tests check)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import dagster as dg

from benchmarks import (
    anomalies,
    big_streams,
    dagster_events,
    dagster_floor,
    growth,
    history,
    memory,
    one_shot,
    parse_vs_gzip,
    reconciliation,
    report,
)
from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.report.figures import CHARTS
from calo_assets_tests.conftest import SAMPLE_FIRST_DAY, SAMPLE_LAST_DAY


def test_parse_benchmark_runs():
    ratios = parse_vs_gzip.main(["--log-dir", str(SAMPLE_LOG_DIR), "--repeat", "1"])
    assert set(ratios) >= {"1 process(es)"} and all(ratio > 0 for ratio in ratios.values())


def test_growth_benchmark_runs():
    figures = growth.main(["--quick"])
    assert figures["ratio"] > 0 and figures["history (s)"] > 0


def test_year_reconciliation_benchmark_runs():
    figures = reconciliation.main(["--quick"])
    assert set(figures) == {
        "transactions a day",
        "2 days (s)",
        "4 days (s)",
        "8 days (s)",
        "time per day, longest / shortest history",
    }
    assert figures["transactions a day"] > 0


def test_dagster_event_benchmark_runs():
    figures = dagster_events.main(["--quick"])
    assert figures["many (s)"] > 0 and figures["one day (s)"] > 0


def test_memory_benchmark_runs():
    figures = memory.main(["--quick"])
    assert figures["peak MiB"] > 0 and figures["seconds"] > 0


def test_big_streams_benchmark_runs():
    figures = big_streams.main(["--quick"])
    assert len(figures) == 6 and all(value > 0 for value in figures.values())


def test_whole_history_benchmark_runs(tmp_path):
    figures = history.main(["--log-dir", str(SAMPLE_LOG_DIR), "--repeat", "1", "--no-chart-images"])
    stages = set(figures) - {"wall", "baseline"}
    assert {"parse (ingest)", "anomaly scores", "Python + Dagster start-up"} <= stages
    assert figures["wall"] >= sum(figures[stage] for stage in stages) - 1e-6


def test_anomaly_benchmark_runs():
    figures = anomalies.main(["--quick"])
    assert figures["seconds"] > 0 and figures["baseline (s)"] > 0 and figures["ratio"] > 0


def test_report_benchmark_runs():
    figures = report.main(["--quick"])
    assert figures["images"] == len(CHARTS)
    assert set(figures) == {
        *report.STAGES,
        "csv baseline",
        "png baseline",
        "png alone",
        "images",
        "process CPU",
        "browser CPU",
    }


def test_one_shot_benchmark_runs():
    figures = one_shot.main(
        [
            "--log-dir",
            str(SAMPLE_LOG_DIR),
            "--repeat",
            "1",
            "--no-chart-images",
            "--day",
            "2024-03-02",
        ]
    )
    assert figures["calo-report / bare read"] > 0
    assert figures["with DAGSTER_HOME / calo-report"] > 0


def test_the_dagster_floor_replica_stores_what_the_real_run_stores(sample_run):
    """The replica (do-nothing bodies) records the same steps, materializations and check results,
    by asset and partition, as the real graph's run over the same days: its time is Dagster's."""
    real, _ = sample_run
    shape = dagster_floor.graph_shape()
    instance = dg.DagsterInstance.ephemeral()
    replica = dagster_floor.run_replica(shape, SAMPLE_FIRST_DAY, SAMPLE_LAST_DAY, instance)
    assert replica.success
    kinds = {"STEP_START", "STEP_SUCCESS", "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"}

    def stored(result: dg.ExecuteInProcessResult) -> Counter:
        """Each event by kind, step, asset (with its check's name) and partition."""
        found: Counter = Counter()
        for event in result.all_events:
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                check = event.event_specific_data  # the event itself names neither
                where = (check.asset_key, check.check_name, check.partition)
            else:
                where = (event.asset_key, None, event.partition)
            if event.event_type_value in kinds:
                found[(event.event_type_value, event.step_key, *where)] += 1
        return found

    assert stored(replica) == stored(real)
    materialized = [key for key in stored(real) if key[0] == "ASSET_MATERIALIZATION"]
    partitioned = [key for key in materialized if key[4]]
    assert len(partitioned) == 9 * 8  # 3 ingest, 5 sync tables, the scores; 2024-03-01 to 03-08
    assert len(materialized) - len(partitioned) == 13  # 11 history tables, report, alert


def test_one_shot_rounds_change_their_order_so_no_variant_always_follows_the_same_one():
    four = ["bare", "one-shot", "sqlite", "one day"]
    assert [one_shot.round_order(four, index) for index in range(3)] == [
        ["bare", "one-shot", "sqlite", "one day"],
        ["one-shot", "bare", "one day", "sqlite"],  # rotated by two, reversed
        ["bare", "one-shot", "sqlite", "one day"],
    ]
    for names in (four, [*four, "postgres 0", "postgres 1000"]):  # without and with --postgres
        runs = [name for index in range(3) for name in one_shot.round_order(names, index)]
        assert sorted(runs) == sorted(names * 3)
        before: dict[str, set[str]] = {name: set() for name in names}
        for previous, name in pairwise(runs):
            assert name != previous
            before[name].add(previous)
        assert {name for name, previous in before.items() if len(previous) < 2} == set(), names


def test_dagster_floor_benchmark_runs():
    figures = dagster_floor.main(["--log-dir", str(SAMPLE_LOG_DIR), "--repeat", "1"])
    assert figures["Dagster alone: the replica's run (s)"] > 0
    assert figures["with DAGSTER_HOME / calo-report"] > 0
