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

from .microbench import module, op_and_boundary_ms, row_from
from .profile import ProfileMeta, ProfileWriter, host_cpu, runtime_version
from .programs import to_pte, to_tflite
from .runner import Runner, SpeedReference


def new_meta(device: str, runtime: str, threads: int, block: int) -> ProfileMeta:
    from .. import __version__

    return ProfileMeta(device=device, cpu=host_cpu() if device == "host" else device, runtime=runtime,
                       runtime_version=runtime_version(runtime), threads=threads, block=block,
                       date=datetime.date.today().isoformat(), mobileprune_version=__version__)


# Ops litert-torch lowers to channels-last kernels (with NCHW<->NHWC transposes around them
# unless the program's I/O is channels-last); elementwise ops, concatenation and means run in
# whatever layout they are given, and to_channel_last_io would wrap them in two transposes.
LITERT_CHANNELS_LAST = {"conv", "dwconv", "gconv", "maxpool", "avgpool"}


def build(row: dict, runtime: str, build_dir: Path) -> Path:
    """The row's micro-program. LiteRT gives no per-op times that would let edge transposes be
    subtracted afterwards (ExecuTorch's ETDump does: see op_and_boundary_ms), so a .tflite is
    built with no transpose in it: channels-last I/O for ops LiteRT runs NHWC (as inside a
    converted model, where the layout pass cancels the transposes between layers), plain I/O
    for layout-free ops."""
    channels_last = runtime != "executorch" and row["op"] in LITERT_CHANNELS_LAST
    suffix = ".pte" if runtime == "executorch" else ("-nhwc.tflite" if channels_last else ".tflite")
    name = hashlib.sha1(row["key"].encode()).hexdigest()[:16] + suffix
    path = build_dir / name
    if not path.is_file():
        mod, inputs = module(row)
        if runtime == "executorch":
            to_pte(mod, inputs, path)
        else:
            to_tflite(mod, inputs, path, nhwc=channels_last, nhwc_outputs=channels_last)
    return path


def call_overhead_program(runtime: str, build_dir: Path) -> Path:
    """A program that does (almost) nothing: one ReLU on 8 values. Its time is what one call of a
    micro-program costs besides its op, subtracted from rows that have no per-op times."""
    return build(row_from("relu", {}, 8, 8), runtime, Path(build_dir))


def measure_rows(rows: list[dict], runner: Runner, writer: ProfileWriter, runtime: str, build_dir,
                 threads: int = 1, repeats: int = 50, batch: int = 24, show_progress: bool = True,
                 reference: SpeedReference | None = None, call_overhead_ms: float = 0.0) -> int:
    """Measure every row whose key is not in the profile yet; returns how many were added.

    Rows with per-op times (ExecuTorch ETDump) take the op's events. Rows without (LiteRT) take
    the whole program's time less ``call_overhead_ms``. With a ``reference`` the program is timed
    in turns with it and the row is speed-normalized like whole models (devices/reference.py):
    per-op times are scaled by the program's normalized over its wall-clock time, measured just
    before them in the same process."""
    todo = [r for r in rows if r["key"] not in writer.keys]
    build_dir = Path(build_dir)
    events = runtime == "executorch"
    paired = str(reference.path) if reference is not None else None
    added = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task(f"profiling {runtime}", total=len(todo))
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            paths = [build(r, runtime, build_dir) for r in chunk]
            by_path = {str(p.resolve()): r for p, r in zip(paths, chunk)}
            for m in runner.run_many(paths, threads=threads, repeats=repeats, op_events=events, reference=paired):
                row = dict(by_path[m.artifact])
                total = m.reference_ratio * reference.ms if m.ratios else m.median_ms
                if m.events:
                    speed = total / m.median_ms  # 1 without a reference
                    row["ms"], row["boundary_ms"] = (v * speed for v in op_and_boundary_ms(m.events))
                else:
                    row["ms"], row["boundary_ms"] = max(total - call_overhead_ms, 0.0), call_overhead_ms
                row.update(total_ms=round(total, 5), spread=round(m.spread, 4), repeats=repeats)
                writer.add(row)
                added += 1
                progress.advance(task)
    return added
