"""Build a DeviceProfile's rows: export every micro-benchmark, run it on the device, append the
row; and the other measurements profiling makes (whole models, the speed reference, the tiles).

Resumable: rows already in the CSV are skipped, programs already built are reused, and each
row is flushed as soon as it is measured, so a killed run (or a vanished device) loses at most
the batch in flight, never a written row. A profile is a fact about one device: the writer
refuses rows measured on another (latency_table.check_same_device).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import SettingsError
from ..graph import find_groups
from ..graph.capture import EXPORT_LOCK
from ..graph.layers import layers
from . import runtimes
from ..progress import Steps
from .blockprobe import PROBES, probe_tiles
from .identity import refuse_emulated
from .builds import build_all, cache_dir, call_overhead_program
from .latency_table import DeviceProfile, ProfileError, ProfileMeta, ProfileWriter, check_same_device, read_table
from .microbench import grid_rows, op_and_boundary_ms
from .programs import write_atomic
from .reference import REFERENCE_MODEL, measure_reference, reference_program, speed_reference
from .runner import Runner, SpeedReference, measure_artifact
from .runtimes import Runtime


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProfilingConfig:
    """What a profile holds: rows measured on ``runtime`` (a name in devices/runtimes.py) at
    ``threads`` threads, channel widths in multiples of ``block`` (None: the device's probed conv
    tile, or the block of the profile being resumed), each layer at its full width and at
    ``fractions`` of it, each row timed ``repeats`` times; rows without per-op times and whole
    models timed in turns with the speed reference, the model spec ``reference``
    (devices/reference.py; MobileNetV2 at 224x224 by default), whole models (the reference
    included) in ``processes`` fresh processes each (the lowest median); ``fixed_share``: each
    model's fixed share measured too, from a half-width variant (cost/calibrate.py; False: one lowering
    and measurement less per model, and predictions scale its whole latency); ``input_shapes``:
    {spec: input shape} for models not profiled at their usual size (spec.default_input_shape)."""
    runtime: str = "executorch"
    threads: int = 1
    block: int | None = None
    repeats: int = 50
    fractions: tuple = (0.5,)
    reference: str = REFERENCE_MODEL
    processes: int = 5
    fixed_share: bool = True
    input_shapes: Mapping[str, tuple] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.processes < 1 or self.repeats < 1:
            raise SettingsError(f"processes and repeats must be at least 1 (got {self.processes}, {self.repeats})")

    def input_shape(self, spec: str) -> tuple:
        from ..spec import default_input_shape

        return tuple(self.input_shapes.get(spec) or default_input_shape(spec))


def new_meta(runner: Runner, runtime: Runtime, threads: int, block: int) -> ProfileMeta:
    from .. import __version__

    identity = runner.identity()
    return ProfileMeta(device=runner.device, cpu=identity.name, runtime=runtime.name,
                       runtime_version=runtime.version(), threads=threads, dtype=runtime.dtype, block=block,
                       date=datetime.date.today().isoformat(), mobileprune_version=__version__,
                       identity=identity.to_dict())


ROWS_PER_PROCESS = 24  # row programs one measuring process times before a fresh one starts


def measure_rows(rows: list[dict], runner: Runner, writer: ProfileWriter, build_dir, *, repeats: int = 50,
                 show_progress: bool | Steps = True, reference: SpeedReference | None = None) -> int:
    """Measure every row whose key is not in the profile yet, on the runtime and threads of the
    writer's profile; returns how many were added.

    Rows with per-op times (ExecuTorch ETDump) take the op's events. Rows without (LiteRT) take
    the whole program's time less the profile's call overhead. With a ``reference`` the program
    is timed in turns with it and the row is speed-normalized like whole models (devices/reference.py):
    per-op times are scaled by the program's normalized over its wall-clock time, measured just
    before them in the same process. ``show_progress`` may be a Steps (or rich Progress) shared by several
    devices profiled at once: the rows get a bar of their own in it."""
    todo = [r for r in rows if r["key"] not in writer.keys]
    runtime, threads = runtimes.get(writer.meta.runtime), writer.meta.threads
    call_overhead_ms, batch = writer.meta.call_overhead_ms, ROWS_PER_PROCESS
    build_dir = Path(build_dir)
    paired = str(reference.path) if reference is not None else None
    added = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    all_paths = build_all(todo, runtime, build_dir)
    shared = show_progress if isinstance(show_progress, (Progress, Steps)) else None
    with contextlib.nullcontext(shared) if shared else Steps(*columns, show=bool(show_progress)) as progress:
        task = progress.add_task(f"{runner.device} {runtime.label}", total=len(todo))
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            paths = all_paths[start:start + batch]
            by_path = {str(p.resolve()): r for p, r in zip(paths, chunk)}
            for m in runner.run_many(paths, threads=threads, repeats=repeats, op_events=runtime.per_op_events,
                                     reference=paired):
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


def profile_rows(specs: list, out, runner: Runner, config: ProfilingConfig, *,
                 show_progress: bool | Steps = True, log=print) -> dict:
    """Measure (or resume) the table rows of every model in ``specs`` into the profile at ``out``:
    first the device's tiles (the existing profile's; else, with ``config.block`` given, that
    block for every kind; else probed), the speed reference (``config.reference``, unless the
    profile being resumed names its own) and, for runtimes without per-op times, one call's
    overhead. Returns {spec: (model, analysis)} for the calibration that follows
    (profiling.calibrate_models)."""
    runtime, threads, block = runtimes.get(config.runtime), config.threads, config.block
    refuse_emulated(runner.identity(), runner.device, "profiling")
    meta_path = DeviceProfile.paths(out)[1]
    existing = ProfileMeta.read(meta_path) if meta_path.is_file() else None
    if existing is not None:  # before any measurement: never spend minutes on a run that must be refused
        check_same_device(existing, runner.identity(), DeviceProfile.paths(out)[0], runner.device)
    tiles, sweeps = (existing.tiles, {}) if existing is not None and existing.tiles else ({}, {})
    if not tiles and block is not None:  # the user states the device's block: no probe
        tiles = {kind: block for kind in PROBES}
        log(f"tiles not probed: block {block} given, taken as every probed kind's tile")
    if not tiles:
        tiles, sweeps = probe_tiles(runner, runtime, cache_dir(runtime), threads)
        for kind, sweep in sweeps.items():
            log(f"tile probe {kind} (width: ms): {', '.join(f'{c}: {ms:.3f}' for c, ms in sweep.items())} "
                f"-> tile {tiles[kind]}")
    if block is None:
        block = existing.block if existing is not None else tiles["conv"]
    meta = new_meta(runner, runtime, threads, block)
    meta.tiles, meta.tile_probes = tiles, {k: {str(c): ms for c, ms in v.items()} for k, v in sweeps.items()}
    from ..spec import build as build_model

    models, rows_of = {}, {}
    for spec in specs:
        model = build_model(spec).eval()
        analysis = find_groups(model, (torch.randn(config.input_shape(spec)),))
        models[spec] = (model, analysis)
        rows_of[spec] = grid_rows(layers(analysis, runtime.fused_activations), block, config.fractions)
    _build_before_measuring(rows_of, out, existing, runtime, config)
    # The speed reference first: rows without per-op times are timed against it, and every
    # whole-model calibration is.
    meta.reference = (existing.reference if existing and existing.reference
                      else measure_reference(runner, runtime, cache_dir(runtime), threads, config.processes,
                                             model=config.reference))
    log(f"speed reference {meta.reference['model']}: {meta.reference['ms']:.3f} ms")
    reference = speed_reference(meta, cache_dir(runtime))
    if not runtime.per_op_events:  # a row is its program less one call's overhead
        meta.call_overhead_ms = existing.call_overhead_ms if existing and existing.call_overhead_ms else \
            measure_artifact(runner, call_overhead_program(runtime, cache_dir(runtime)), threads,
                             reference=reference)["ms"]
        log(f"call overhead of a micro-program: {meta.call_overhead_ms:.4f} ms")
    with ProfileWriter(out, meta) as writer:
        for spec, rows in rows_of.items():
            added = measure_rows(rows, runner, writer, cache_dir(runtime), repeats=config.repeats,
                                 show_progress=show_progress, reference=reference)
            log(f"{spec}: {len(rows)} rows, {added} measured now")
    return models


def _build_before_measuring(rows_of: dict, out, existing: ProfileMeta | None, runtime: Runtime,
                            config: ProfilingConfig) -> None:
    """Lower everything profile_rows will measure, in one pool, before it measures anything: the
    speed reference, the call overhead's program and the rows not in the profile yet. Why one
    pool: each process that lowers first warms up the export stack (10-15 s on a 2-core VM), and
    lowering the reference here, then the rows in a pool, paid it three times. Rows read as
    measured from a cut-off CSV that are not are built later, by measure_rows."""
    csv = DeviceProfile.paths(out)[0]
    try:
        measured = set(read_table(csv)["key"]) if csv.is_file() and csv.stat().st_size else set()
    except ProfileError:  # e.g. a torn last line: ProfileWriter repairs it, measure_rows builds what is missing
        measured = set()
    also = []
    if not (existing and existing.reference):
        also.append((reference_program, (runtime, cache_dir(runtime), config.reference)))
    if not runtime.per_op_events and not (existing and existing.call_overhead_ms):
        also.append((call_overhead_program, (runtime, cache_dir(runtime))))
    rows = [r for rows in rows_of.values() for r in rows if r["key"] not in measured]
    build_all(rows, runtime, cache_dir(runtime), also=also)


def measure_model(model, inputs, runner: Runner, runtime: Runtime, threads: int = 1, repeats: int = 50,
                  processes: int = 5, reference=None) -> dict:
    """Lower ``model`` (or find its architecture lowered before: timing_program) and measure it
    as ``devices.runner.measure_artifact`` does: ``ms`` is speed-normalized when a ``reference``
    (devices.reference.speed_reference) is given."""
    path = timing_program(model, tuple(inputs), runtime)
    return measure_artifact(runner, path, threads, processes, repeats, reference=reference)


TIMING_PROGRAMS_KEPT = 64  # whole-model programs kept for timing, the most recently used


def timing_program(model, inputs: tuple, runtime: Runtime) -> Path:
    """``model`` lowered for ``runtime``, for timing only, kept under its architecture: the
    exported graph (ops and their arguments), the shapes and dtypes of its parameters, buffers
    and inputs, and the runtime's version. Why not its weights: a float program's speed does not
    depend on their values (as the speed reference's docstring says), while lowering a net costs
    3 s (a tiny one) to 35 s (MobileNetV2) and the same architecture is measured again and again
    (an original before each of its prunings, a plan measured again by another command). Outputs
    are never taken from it: exports lower their own artifact."""
    with EXPORT_LOCK, torch.no_grad():  # (the lock: torch.export is not thread-safe; devices profile in threads)
        exported = torch.export.export(model.eval(), inputs)
    shapes = sorted((name, tuple(t.shape), str(t.dtype)) for name, t in
                    [*exported.state_dict.items(), *exported.constants.items()] if hasattr(t, "shape"))
    architecture = repr((exported.graph_module.code, shapes, [(tuple(x.shape), str(x.dtype)) for x in inputs],
                         runtime.name, runtime.version()))
    models = cache_dir(runtime) / "models"
    path = models / (hashlib.sha256(architecture.encode()).hexdigest()[:24] + runtime.suffix)
    if path.is_file():
        os.utime(path)  # used now: the last to go
        return path
    with tempfile.TemporaryDirectory(prefix="mobileprune-model-") as tmp:
        built = runtime.lower(model, inputs, Path(tmp) / f"model{runtime.suffix}")
        write_atomic(built.read_bytes(), path)  # never a half-written program under its final name
    for old in sorted(models.glob(f"*{runtime.suffix}"), key=lambda f: f.stat().st_mtime)[:-TIMING_PROGRAMS_KEPT]:
        old.unlink(missing_ok=True)
    return path


def measure_for_profile(model, inputs, runner: Runner, meta: ProfileMeta, processes: int = 5,
                        repeats: int = 50) -> dict:
    """``model`` lowered to the profile's runtime and measured on ``runner`` at the profile's
    threads, speed-normalised against the profile's reference: its ``ms`` is comparable with the
    profile's predictions."""
    program = timing_program(model, tuple(inputs), runtimes.get(meta.runtime))
    return measure_artifact_for_profile(program, runner, meta, processes, repeats)


def measure_artifact_for_profile(path, runner: Runner, meta: ProfileMeta, processes: int = 5,
                                 repeats: int = 50) -> dict:
    """An artifact of the profile's runtime (an exported .pte, a timing program) measured on
    ``runner`` at the profile's threads, speed-normalised against the profile's reference: its
    ``ms`` is comparable with the profile's predictions."""
    refuse_emulated(runner.identity(), runner.device, "a latency checked against a profile")
    return measure_artifact(runner, path, meta.threads, processes, repeats,
                            reference=speed_reference(meta, cache_dir(runtimes.get(meta.runtime))))


def on_demand(profile: DeviceProfile, runner: Runner, repeats: int = 50):
    """A LatencyCost ``measure`` callback: measure missing rows on ``runner``'s device and append
    them to the profile. Refused at once when the runner's device is not the profile's, or is emulated."""
    refuse_emulated(runner.identity(), runner.device, "measuring rows of a latency table")
    check_same_device(profile.meta, runner.identity(), profile.path, runner.device)
    runtime = runtimes.get(profile.meta.runtime)

    def measure(rows: list) -> None:
        meta = dataclasses.replace(profile.meta, identity=runner.identity().to_dict(), device=runner.device)
        with ProfileWriter(profile.path, meta) as writer:
            measure_rows(rows, runner, writer, cache_dir(runtime), repeats=repeats, show_progress=False,
                         reference=speed_reference(profile.meta, cache_dir(runtime)))
        profile.table = DeviceProfile.load(profile.path).table

    return measure
