"""Memory whatever a stream's size: peak RSS (this process and every worker together) while one big
stream, the same stream in three chunk files, and a gzip bomb are ingested and their sync tables
built. Usage::

    python -m benchmarks.big_streams [--bytes 1.2G] [--bomb-bytes 3G] [--folder DIR] [--quick]

The stream is one Lambda execution environment's log of the synthetic generator's invocations, one
after another (its timestamps squeezed into one day), about ``--bytes`` of text. ``--folder`` keeps
the generated inputs there for another run (generating 1.2 GiB takes minutes); they are never
written into the project.

What is measured, memory and seconds, is one Dagster run of the assets of the ``logs`` and ``sync``
groups (``ingest_logs`` and ``sync_tables``) over the input's days, in a fresh process: the asset
checks of those assets are left out of the run (Dagster would otherwise run six of them in it), and
``nothing_lost``, printed beside the figures, is evaluated after the measure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
from isal import igzip

from benchmarks.common import INGEST_AND_SYNC, PeakMemory, materialize
from calo_assets import metrics
from calo_assets.checks import CHECKS, CheckSettings
from calo_assets.synth.cli import _size
from calo_assets.synth.generator import RUNTIME_ARN, Generator, SynthConfig, _Stream, _ts
from calo_assets.warehouse import Warehouse

DAY = date(2024, 3, 1)
STREAM = "2024-03-01-[$LATEST]0123456789abcdef0123456789abcdef"
TARGET_MIB = 1536  # the peak memory the issue allows
# Ingest and the sync tables only: without the checks a selection of assets brings along.
MEASURED = dg.AssetSelection.from_string(INGEST_AND_SYNC).without_checks()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=_size, default=int(1.2 * (1 << 30)))
    parser.add_argument("--bomb-bytes", type=_size, default=3 << 30)
    parser.add_argument("--folder", type=Path, help="keep the generated inputs here")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)  # LOGS WAREHOUSE FIRST LAST
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(_measure_here(*args.measure)))
        return {}
    if args.quick:
        args.bytes, args.bomb_bytes = 2 << 20, 96 << 20
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        one, three, last_day = big_stream(folder, args.bytes)
        bomb = gzip_bomb(folder, args.bomb_bytes)
        inputs = {
            f"one stream of {_shown(args.bytes)}": (one, last_day),
            "the same stream in three chunk files": (three, last_day),
            f"a gzip bomb of {_shown(args.bomb_bytes)} (one repeated line)": (bomb, DAY),
        }
        for label, (logs, last) in inputs.items():
            warehouse = Path(scratch) / "warehouse" / logs.name
            measured = _measure(logs, warehouse, DAY.isoformat(), last.isoformat())
            figures[f"{label}: peak MiB"] = measured["peak MiB"]
            figures[f"{label}: seconds"] = measured["seconds"]
            print(
                f"{label}: peak RSS {measured['peak MiB']:,.0f} MiB (target < {TARGET_MIB:,}), "
                f"{measured['seconds']:.1f} s, records read {measured['read']:,} = typed "
                f"{measured['typed']:,} + quarantined {measured['quarantined']:,}: "
                f"{'yes' if measured['nothing lost'] else 'NO'}"
            )
    return figures


def _measure(logs: Path, warehouse: Path, first: str, last: str) -> dict:
    """``_measure_here`` in a fresh process: what earlier runs left in memory is not counted."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.big_streams",
            "--measure",
            str(logs),
            str(warehouse),
            first,
            last,
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {logs} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure_here(logs: str, warehouse: str, first: str, last: str) -> dict:
    """Ingest and sync tables of ``first..last`` (one Dagster run, without asset checks) under a
    peak-memory probe; then ``nothing_lost`` over those days, outside the probe."""
    with PeakMemory() as memory:
        seconds = materialize(Path(logs), Path(warehouse), first, last, MEASURED)
    with Warehouse(Path(warehouse)).connect(empty_tables=metrics.INPUTS) as connection:
        check = CHECKS["nothing_lost"].evaluate(
            connection, date.fromisoformat(first), date.fromisoformat(last), CheckSettings()
        )
    return {
        "peak MiB": memory.peak / 2**20,
        "seconds": seconds,
        "read": check.metadata["records read"],
        "typed": check.metadata["records typed"],
        "quarantined": check.metadata["records quarantined"],
        "nothing lost": check.passed,
    }


def _shown(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 1 << 30 else f"{size / 2**20:,.0f} MiB"


def big_stream(folder: Path, size: int) -> tuple[Path, Path, date]:
    """One stream of about ``size`` bytes of text, as one file and as three chunk files (exports
    under ``folder/one`` and ``folder/three``, reused when present); the last day it logs into."""
    one, three = folder / "one", folder / "three"
    marker = folder / f"stream-{size}.done"
    if marker.exists():
        return one, three, date.fromisoformat(marker.read_text())
    paths = [one / "export" / STREAM / "000000.gz"]
    paths += [three / "export" / STREAM / f"{index:06d}.gz" for index in range(3)]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    generator = Generator(SynthConfig(start=DAY, days=1, users=2000, seed=3))
    midnight = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    stream = _Stream(STREAM)
    when = midnight + timedelta(seconds=1)
    stream.add(
        when, f"INIT_START Runtime Version: nodejs:20.v15\tRuntime Version ARN: {RUNTIME_ARN}"
    )
    written, last = 0, midnight
    with (
        igzip.open(paths[0], "wb", compresslevel=1) as whole,
        igzip.open(paths[1], "wb", compresslevel=1) as first,
        igzip.open(paths[2], "wb", compresslevel=1) as second,
        igzip.open(paths[3], "wb", compresslevel=1) as third,
    ):
        chunks = [first, second, third]
        cold = True
        while written < size:
            when = generator._invocation(stream, when, cold=cold) + timedelta(milliseconds=2)
            cold = False
            if len(stream.records) < 20_000 and written + 20_000 * 120 < size:
                continue
            # The service's pauses spread the invocations over about two days: squeezed into one.
            lines = []
            for moment, text in stream.records:
                last = midnight + (moment - midnight) / 3
                lines.append(f"{_ts(last)} {text}\n\n")
            data = "".join(lines).encode()
            stream.records.clear()
            whole.write(data)
            chunks[min(2, 3 * written // size)].write(data)
            written += len(data)
    marker.write_text(last.date().isoformat())
    return one, three, last.date()


def gzip_bomb(folder: Path, size: int) -> Path:
    """An export whose one stream file inflates to ``size`` bytes of one repeated line."""
    root = folder / "bomb"
    path = root / "export" / STREAM / "000000.gz"
    marker = folder / f"bomb-{size}.done"
    if marker.exists():
        return root
    path.parent.mkdir(parents=True, exist_ok=True)
    line = b"this is not a log line, it only repeats\n"
    block = line * ((1 << 20) // len(line))
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as handle:
        for _ in range(size // len(block)):
            handle.write(compressor.compress(block))
        handle.write(compressor.flush())
    marker.write_text("done")
    return root


if __name__ == "__main__":
    main()
