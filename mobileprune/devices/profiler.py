"""Build a DeviceProfile: export every micro-benchmark, run it on the device, append the row.

Resumable: rows already in the CSV are skipped, programs already built are reused, and each
row is flushed as soon as it is measured, so a killed run (or a vanished device) loses at most
the batch in flight, never a written row.
"""
from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .microbench import op_and_boundary_ms, module
from .profile import ProfileMeta, ProfileWriter, host_cpu, runtime_version
from .programs import to_pte, to_tflite
from .runner import Runner


def new_meta(device: str, runtime: str, threads: int, block: int) -> ProfileMeta:
    from .. import __version__

    return ProfileMeta(device=device, cpu=host_cpu() if device == "host" else device, runtime=runtime,
                       runtime_version=runtime_version(runtime), threads=threads, block=block,
                       date=datetime.date.today().isoformat(), mobileprune_version=__version__)


def build(row: dict, runtime: str, build_dir: Path) -> Path:
    suffix = ".pte" if runtime == "executorch" else ".tflite"
    name = hashlib.sha1(row["key"].encode()).hexdigest()[:16] + suffix
    path = build_dir / name
    if not path.is_file():
        mod, inputs = module(row)
        (to_pte if runtime == "executorch" else to_tflite)(mod, inputs, path)
    return path


def measure_rows(rows: list[dict], runner: Runner, writer: ProfileWriter, runtime: str, build_dir,
                 threads: int = 1, repeats: int = 50, batch: int = 24, show_progress: bool = True) -> int:
    """Measure every row whose key is not in the profile yet; returns how many were added."""
    todo = [r for r in rows if r["key"] not in writer.keys]
    build_dir = Path(build_dir)
    added = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task(f"profiling {runtime}", total=len(todo))
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            paths = [build(r, runtime, build_dir) for r in chunk]
            by_path = {str(p.resolve()): r for p, r in zip(paths, chunk)}
            for m in runner.run_many(paths, threads=threads, repeats=repeats, op_events=runtime == "executorch"):
                row = dict(by_path[m.artifact])
                if m.events:
                    row["ms"], row["boundary_ms"] = op_and_boundary_ms(m.events)
                else:  # LiteRT gives no per-op events from Python: the whole program is the row
                    row["ms"], row["boundary_ms"] = m.median_ms, 0.0
                row.update(total_ms=m.median_ms, spread=round(m.spread, 4), repeats=repeats)
                writer.add(row)
                added += 1
                progress.advance(task)
    return added
