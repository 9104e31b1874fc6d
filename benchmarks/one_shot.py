"""``calo-report`` on an export, in a fresh process, against a bare gzip read of the same files.

Each round times: the baseline (Python's ``gzip`` module reading every line of every stream file, in
this process), ``calo-report INPUT OUTPUT`` without a Dagster instance (the one-shot path: no
orchestration), the same command with ``DAGSTER_HOME`` set (one Dagster run, stored in a temporary
SQLite instance, as a user who wants the run in the UI gets it; ``DAGSTER_EVENT_BATCH_SIZE=1000``,
``calo-report``'s default, is set for it, not taken from the environment, though SQLite does not
batch), and one day of every asset through ``dagster asset materialize`` (what a run launched from
the UI or the schedule does). With ``--postgres``, also ``calo-report`` with ``DAGSTER_HOME`` on the
deployment's PostgreSQL storage (``deploy/dagster.yaml``, a fresh database on a throw-away server
each time), with Dagster's event batching off (``DAGSTER_EVENT_BATCH_SIZE=0``) and on (1000, as the
deployment sets it). The order changes from round to round (``round_order``): over the default
three rounds, no variant always follows the same one. The figures that matter are the ratios,
measured in the same run.

Every run writes into a folder of its own that is kept until the benchmark ends: a run's files are
not deleted just before the next run creates its own. On an ext4 file system without a journal (as
on these machines) the kernel skips inodes freed in the last minute or so when it allocates one
(``recently_deleted``): with the previous run's ~2,300 files deleted just before, ``calo-report``
took 5.2 and 5.3 s, against 4.8 and 4.6 s when they were deleted 40 s before (alternated). A
user's run does not follow such a deletion. Usage::

    python -m benchmarks.one_shot [--log-dir ../shared/real-logs] [--repeat 3] [--day 2024-03-05]
        [--postgres]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from benchmarks import postgres
from benchmarks.common import add_log_dir_argument, best_of, best_per_name, print_figures
from benchmarks.parse_vs_gzip import bare_read
from calo_assets.config import PROJECT_ROOT
from calo_assets.logs.export import discover

BIN = Path(sys.executable).parent
EVENT_BATCH_SIZE = 1000  # calo-report's default (and the deployment's)


def _timed(command: list[str], environment: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(
        command,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
    )
    seconds = time.perf_counter() - began
    if done.returncode not in (0, 3):  # 3: the report is written, a check failed
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def calo_report(
    log_dir: Path,
    dagster: bool,
    images: bool,
    server: postgres.Server | None = None,
    event_batch_size: int = EVENT_BATCH_SIZE,
    *,
    scratch: Path,
) -> float:
    """Seconds of one ``calo-report`` in a fresh process, into fresh folders under ``scratch``: with
    ``dagster``, its ``DAGSTER_HOME`` there (SQLite), or with ``server`` on a fresh PostgreSQL
    database there; either with that ``DAGSTER_EVENT_BATCH_SIZE``."""
    folder = tempfile.mkdtemp(dir=scratch)
    environment = {"CALO_WAREHOUSE_DIR": str(Path(folder) / "warehouse")}
    os.environ.pop("DAGSTER_HOME", None)
    if server is not None:
        environment.update(postgres.dagster_home(server, Path(folder) / "home"))
    elif dagster:
        environment["DAGSTER_HOME"] = str(Path(folder) / "home")
        Path(environment["DAGSTER_HOME"]).mkdir()
    if dagster or server is not None:
        environment["DAGSTER_EVENT_BATCH_SIZE"] = str(event_batch_size)
    command = [str(BIN / "calo-report"), str(log_dir), str(Path(folder) / "out"), "--quiet"]
    return _timed([*command, *([] if images else ["--no-chart-images"])], environment)


def one_day_through_dagster(log_dir: Path, day: str, scratch: Path) -> float:
    """Seconds of ``dagster asset materialize --select '*' --partition DAY`` on a fresh instance
    (SQLite, Dagster's default event writes: one day stores too few events for batches to matter)."""
    folder = tempfile.mkdtemp(dir=scratch)
    home = Path(folder) / "home"
    home.mkdir()
    environment = {
        "DAGSTER_HOME": str(home),
        "CALO_LOG_DIR": str(log_dir),
        "CALO_WAREHOUSE_DIR": str(Path(folder) / "warehouse"),
        "CALO_REPORT_DIR": str(Path(folder) / "reports"),
        "DAGSTER_EVENT_BATCH_SIZE": "0",
    }
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "calo_assets.definitions"]
    return _timed([*command, "--select", "*", "--partition", day], environment)


def round_order(names: list[str], index: int) -> list[str]:
    """The order of round ``index``: ``names`` rotated by two places a round, reversed in odd rounds.
    Over three rounds or more no variant always follows the same one (the last of a round is
    followed by the first of the next) and none runs twice in a row."""
    start = 2 * index % len(names)
    order = names[start:] + names[:start]
    return order[::-1] if index % 2 else order


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_log_dir_argument(parser)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--day", help="the day for the one-day Dagster run (default: a middle day)")
    parser.add_argument("--no-chart-images", action="store_true")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also time DAGSTER_HOME on PostgreSQL (a throw-away server: needs PostgreSQL installed)",
    )
    args = parser.parse_args(argv)
    found = discover(args.log_dir)
    paths = [part.path for part in found.parts]
    days = found.days()
    day = args.day or days[len(days) // 2]
    images = not args.no_chart_images
    rounds = []
    with (
        postgres.server() if args.postgres else nullcontext() as server,
        tempfile.TemporaryDirectory() as scratch_folder,
    ):
        scratch = Path(scratch_folder)
        variants = {
            "bare gzip read (s)": lambda: best_of(3, lambda: bare_read(paths))[0],
            "calo-report (s)": lambda: calo_report(args.log_dir, False, images, scratch=scratch),
            "calo-report with DAGSTER_HOME (s)": lambda: calo_report(
                args.log_dir, True, images, event_batch_size=EVENT_BATCH_SIZE, scratch=scratch
            ),
        }
        if server is not None:
            for size in (0, EVENT_BATCH_SIZE):
                variants[f"with DAGSTER_HOME on PostgreSQL, batch {size} (s)"] = lambda size=size: (
                    calo_report(args.log_dir, True, images, server, size, scratch=scratch)
                )
        variants[f"one day ({day}) through Dagster (s)"] = lambda: one_day_through_dagster(
            args.log_dir, day, scratch
        )
        names = list(variants)
        for index in range(args.repeat):
            timed = {name: variants[name]() for name in round_order(names, index)}
            rounds.append({name: timed[name] for name in names})
    best = best_per_name(rounds)
    best["calo-report / bare read"] = best["calo-report (s)"] / best["bare gzip read (s)"]
    for name in list(best):
        if name.startswith("calo-report with") or name.startswith("with DAGSTER_HOME on"):
            label = name.removeprefix("calo-report ").removesuffix(" (s)")
            best[f"{label} / calo-report"] = best[name] / best["calo-report (s)"]
    print_figures(f"{len(paths)} stream files, best of {len(rounds)} interleaved rounds:", best)
    return best


if __name__ == "__main__":
    main()
