"""The floor of the Dagster path: calo_assets' asset graph with bodies that do nothing.

A replica of every step of ``calo_assets.definitions`` (same step names, asset keys, daily
partitions, checks and dependencies) whose assets only report their materializations, one per
partition with its row count, and whose checks only report a passing result per partition. Run over
an export's days in a fresh process with ``DAGSTER_HOME`` set (and the garbage collector set as
``calo-report`` sets it), it stores the events ``calo-report`` with ``DAGSTER_HOME`` stores
(planned events, materializations, check evaluations, step events), without their metadata, and
does none of the work: its time is what Dagster itself costs that run, before any of ours. The same
rounds time ``calo-report`` without Dagster and with ``DAGSTER_HOME`` on the same storage, in an
order that changes from round to round (``one_shot.round_order``). Usage::

    python -m benchmarks.dagster_floor [--log-dir ../shared/real-logs] [--repeat 3] [--postgres]
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

# The replica's own process imports Dagster and nothing of calo_assets: its time is Dagster's.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

REPLICA_OPTION = "--run-replica"  # SHAPE FIRST LAST: the replica's run, in its own process
EVENT_BATCH_SIZE = 1000  # as the deployment and calo-report set it


def graph_shape() -> dict[str, Any]:
    """calo_assets' steps as plain data: each step's assets or checks, partitioned or not."""
    from calo_assets.definitions import defs

    steps: list[dict[str, Any]] = []
    external: list[str] = []
    for asset in defs.assets:
        if isinstance(asset, dg.AssetSpec):
            external.append(asset.key.to_user_string())
            continue
        steps.append(
            {
                "name": asset.node_def.name,
                "daily": asset.partitions_def is not None,
                "assets": [
                    {
                        "key": spec.key.to_user_string(),
                        "deps": [dep.asset_key.to_user_string() for dep in spec.deps],
                    }
                    for spec in asset.specs
                ],
            }
        )
    checks = [
        {
            "name": definition.node_def.name,
            "checks": [
                {
                    "name": spec.name,
                    "asset": spec.asset_key.to_user_string(),
                    "daily": spec.partitions_def is not None,
                }
                for spec in definition.check_specs
            ],
        }
        for definition in defs.asset_checks
    ]
    return {"external": external, "steps": steps, "check_steps": checks}


def replica(shape: dict[str, Any], first: str, last: str) -> list[Any]:
    """Do-nothing assets and checks of ``shape``, daily ones partitioned from ``first``."""
    end = (date.fromisoformat(last) + timedelta(days=1)).isoformat()  # the end is not a partition
    days = dg.DailyPartitionsDefinition(start_date=first, end_date=end)
    definitions: list[Any] = [dg.AssetSpec(key) for key in shape["external"]]

    def asset_step(step: dict[str, Any]) -> dg.AssetsDefinition:
        @dg.multi_asset(
            name=step["name"],
            specs=[dg.AssetSpec(asset["key"], deps=asset["deps"]) for asset in step["assets"]],
            partitions_def=days if step["daily"] else None,
            backfill_policy=dg.BackfillPolicy.single_run() if step["daily"] else None,
            can_subset=True,
        )
        def body(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
            selected = context.selected_asset_keys
            for key in [dg.AssetKey.from_user_string(asset["key"]) for asset in step["assets"]]:
                if key not in selected:
                    continue  # in the step's order, which is its assets' dependency order
                if step["daily"]:
                    for day in context.partition_keys:
                        context.add_asset_metadata(
                            {"dagster/row_count": 1}, asset_key=key, partition_key=day
                        )
                yield dg.MaterializeResult(asset_key=key)

        return body

    def check_step(step: dict[str, Any]) -> dg.AssetChecksDefinition:
        specs = [
            dg.AssetCheckSpec(
                check["name"], asset=check["asset"], partitions_def=days if check["daily"] else None
            )
            for check in step["checks"]
        ]

        @dg.multi_asset_check(name=step["name"], specs=specs, can_subset=True)
        def body(context: dg.AssetCheckExecutionContext) -> Iterator[Any]:
            selected = {key.name for key in context.selected_asset_check_keys}
            for check in step["checks"]:
                if check["name"] not in selected:
                    continue
                if not check["daily"]:
                    yield dg.AssetCheckResult(
                        check_name=check["name"], asset_key=check["asset"], passed=True
                    )
                    continue
                for day in context.partition_keys:
                    yield dg.AssetCheckEvaluation(
                        asset_key=dg.AssetKey.from_user_string(check["asset"]),
                        check_name=check["name"],
                        passed=True,
                        partition=day,
                    )

        return body

    definitions += [asset_step(step) for step in shape["steps"]]
    definitions += [check_step(step) for step in shape["check_steps"]]
    return definitions


def run_replica(
    shape: dict[str, Any], first: str, last: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """One run of the replica of ``shape`` over ``first..last`` on ``instance``."""
    warnings.simplefilter("ignore", dg.PreviewWarning)  # daily checks, as calo_assets has them
    return dg.materialize(
        replica(shape, first, last),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        raise_on_error=False,
    )


def _replica_process(shape_file: Path, first: str, last: str) -> None:
    """The replica's run in this process, on the instance of ``DAGSTER_HOME`` (PostgreSQL storage
    pooled as calo-report pools it)."""
    instance = dg.DagsterInstance.get()
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=20)
    gc.freeze()  # as calo-report's Dagster path (``cli._fewer_collections``)
    gc.set_threshold(10_000, 10, 10)
    if not run_replica(json.loads(shape_file.read_text()), first, last, instance).success:
        raise SystemExit("the replica run failed")


def replica_seconds(shape_file: Path, first: str, last: str, home: dict[str, str]) -> float:
    """Seconds of the replica's run in a fresh process, its ``DAGSTER_HOME`` per ``home``."""
    environment = {**os.environ, **home, "DAGSTER_EVENT_BATCH_SIZE": str(EVENT_BATCH_SIZE)}
    command = [sys.executable, "-m", "benchmarks.dagster_floor", REPLICA_OPTION]
    began = time.perf_counter()
    subprocess.run(
        [*command, str(shape_file), first, last], env=environment, check=True, cwd=PROJECT_ROOT
    )
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> dict[str, float]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [REPLICA_OPTION]:  # the replica's own process
        _replica_process(Path(argv[1]), argv[2], argv[3])
        return {}
    from benchmarks import postgres
    from benchmarks.common import add_log_dir_argument, best_per_name, print_figures
    from benchmarks.one_shot import calo_report, round_order

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="DAGSTER_HOME on PostgreSQL (a throw-away server: needs PostgreSQL installed), "
        "else on SQLite",
    )
    args = parser.parse_args(argv)

    from calo_assets.cli import export_window
    from calo_assets.logs.export import discover

    # The days calo-report runs (its run's partition tags), and so the replica's.
    first, last = (day.isoformat() for day in export_window(discover(args.log_dir)))
    rounds = []
    with (
        postgres.server() if args.postgres else nullcontext() as server,
        tempfile.TemporaryDirectory() as scratch_folder,
    ):
        scratch = Path(scratch_folder)
        shape_file = scratch / "shape.json"
        shape_file.write_text(json.dumps(graph_shape()))

        def home(name: str) -> dict[str, str]:
            folder = Path(tempfile.mkdtemp(dir=scratch)) / name
            if server is not None:
                return postgres.dagster_home(server, folder)
            folder.mkdir()
            return {"DAGSTER_HOME": str(folder)}

        variants = {
            "calo-report (s)": lambda: calo_report(args.log_dir, False, True, scratch=scratch),
            "Dagster alone: the replica's run (s)": lambda: replica_seconds(
                shape_file, first, last, home("replica")
            ),
            "calo-report with DAGSTER_HOME (s)": lambda: calo_report(
                args.log_dir, True, True, server, EVENT_BATCH_SIZE, scratch=scratch
            ),
        }
        for index in range(args.repeat):
            timed = {name: variants[name]() for name in round_order(list(variants), index)}
            rounds.append({name: timed[name] for name in variants})
    best = best_per_name(rounds)
    one_shot = best["calo-report (s)"]
    best["Dagster alone / calo-report"] = best["Dagster alone: the replica's run (s)"] / one_shot
    best["with DAGSTER_HOME / calo-report"] = best["calo-report with DAGSTER_HOME (s)"] / one_shot
    storage = "PostgreSQL" if args.postgres else "SQLite"
    title = f"days {first} to {last}, DAGSTER_HOME on {storage}, best of {len(rounds)} rounds:"
    print_figures(title, best)
    return best


if __name__ == "__main__":
    main()
