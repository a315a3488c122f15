"""The micro-programs of profile rows: where built programs are kept and building them, in
parallel processes when there are many.

Its own module because both the row profiler (measuring.py) and the tile probe (blockprobe.py),
which the profiler runs first, build programs this way.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..cache import cache_root
from ..errors import SettingsError
from .microbench import program, row_from
from .runtimes import Runtime


def cache_dir(runtime: Runtime) -> Path:
    """Built programs (micro-benchmarks, the speed reference), per runtime, outside the repo."""
    base = cache_root() / "programs" / runtime.name
    base.mkdir(parents=True, exist_ok=True)
    return base


def program_path(row: dict, runtime: Runtime, build_dir) -> Path:
    return Path(build_dir) / (hashlib.sha1(row["key"].encode()).hexdigest()[:16] + runtime.row_suffix(row["op"]))


def build(row: dict, runtime: Runtime, build_dir: Path) -> Path:
    """The row's micro-program. A runtime without per-op times (LiteRT) gives nothing that would
    let edge transposes be subtracted afterwards (ExecuTorch's ETDump does: see
    op_and_boundary_ms), so its programs have no transpose in them: channels-last I/O for the
    kinds it runs NHWC (as inside a converted model, where the layout pass cancels the
    transposes between layers), plain I/O for layout-free ops."""
    path = program_path(row, runtime, build_dir)
    if not path.is_file():
        mod, inputs = program(row)
        runtime.lower(mod, inputs, path, channels_last=row["op"] in runtime.channels_last_kinds)
    return path


POOL_MIN_PROGRAMS = 12  # below this, a build pool's start-up (torch + the runtime, ~10 s) costs more
# Processes that lower programs in parallel, when not given: one per core, or this variable's
# value. The tests set 1: pytest-xdist already keeps every core busy with a test each, and a
# pool's builders would each warm up the export stack (about 10 s of CPU on a 2-core AMD EPYC
# VM) that the test's own process has loaded.
BUILD_WORKERS_VARIABLE = "MOBILEPRUNE_BUILD_WORKERS"


def default_build_workers() -> int:
    given = os.environ.get(BUILD_WORKERS_VARIABLE)
    if given is None:
        return os.cpu_count() or 1
    if not given.isdigit() or int(given) < 1:
        raise SettingsError(f"{BUILD_WORKERS_VARIABLE} must be a whole number of processes, at least 1 (got {given!r})")
    return int(given)


def build_all(rows: list[dict], runtime: Runtime, build_dir, workers: int | None = None, also=()) -> list[Path]:
    """Every row's micro-program (``build``), the missing ones lowered in parallel processes;
    ``also``: other programs to lower in the same pool, as (function, arguments) pairs of
    picklable functions that skip what is built already (the speed reference).

    Why: lowering dominates a fresh profile. One micro-program takes 1.5-3 s to export and lower
    (torch.export, edge lowering, XNNPACK partitioning) and 0.3-1 s to measure; on 2 cores two
    builders halve the wait. Built before any measurement, never beside one.
    """
    build_dir = Path(build_dir)
    paths = [program_path(r, runtime, build_dir) for r in rows]
    missing = list({path: r for r, path in zip(rows, paths) if not path.is_file()}.values())  # a shared row once
    # the other programs first: a whole model (MobileNetV2: 35 s) is the longest job
    jobs = list(also) + [(build, (r, runtime, build_dir)) for r in missing]
    workers = min(workers or default_build_workers(), len(jobs))
    if workers > 1 and len(jobs) >= POOL_MIN_PROGRAMS:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:  # spawn, not fork: torch's thread pools do not survive a fork
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for future in [pool.submit(fn, *args) for fn, args in jobs]:
                    future.result()
            also = ()
        except BrokenProcessPool:
            pass  # e.g. a script without `if __name__ == "__main__":` cannot spawn: built below, serially
    for fn, args in also:
        fn(*args)
    return [build(r, runtime, build_dir) for r in rows]  # built ones are only looked up


def call_overhead_program(runtime: Runtime, build_dir: Path) -> Path:
    """A program that does (almost) nothing: one ReLU on 8 values. Its time is what one call of a
    micro-program costs besides its op, subtracted from rows that have no per-op times."""
    return build(row_from("relu", {}, 8, 8), runtime, Path(build_dir))
