"""Profile models on a device: measure their layers' grid rows, then each whole model once to
calibrate it (whole-model latency vs the sum of its layers' prices; cost.latency.calibrate turns
the pair into a scale, or an offset)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from ..devices.blockprobe import probe_block
from ..devices.microbench import plan
from ..devices.profile import DeviceProfile, ProfileMeta, ProfileWriter
from ..devices.profiler import call_overhead_program, measure_rows, new_meta
from ..devices.programs import to_pte, to_tflite
from ..devices.reference import measure_reference, speed_reference
from ..devices.runner import measure_artifact
from ..graph import analyze
from ..graph.layers import layers
from ..spec import build as build_model, default_input_shape
from .latency import LatencyCost

DEFAULT_MODELS = ["torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small", "torchvision:mobilenet_v3_large",
                  "torchvision:efficientnet_b0", "torchvision:shufflenet_v2_x1_0", "torchvision:squeezenet1_1",
                  "torchvision:mnasnet0_5", "torchvision:resnet18", "torchvision:resnet50"]


def cache_dir(runtime: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobileprune" / "programs" / runtime
    base.mkdir(parents=True, exist_ok=True)
    return base


def profile_models(specs: list, out, runner, runtime: str = "executorch", threads: int = 1,
                   block: int | None = None, repeats: int = 50, fractions=(0.5,), show_progress: bool = True,
                   log=print) -> DeviceProfile:
    """block None: the block an existing profile at ``out`` was measured with, else probe it."""
    probe = {}
    existing_path = DeviceProfile.paths(out)[1]
    existing = ProfileMeta.from_dict(json.loads(existing_path.read_text())) if existing_path.is_file() else None
    if block is None:
        if existing is not None:
            block = existing.block
        else:
            block, probe = probe_block(runner, runtime, cache_dir(runtime), threads)
            log(f"block probe (3x3 conv, 28x28, 64 inputs; output width: ms): "
                f"{', '.join(f'{c}: {ms:.3f}' for c, ms in probe.items())} -> block {block}")
    meta = new_meta(runner.device, runtime, threads, block)
    meta.block_probe = {str(c): ms for c, ms in probe.items()}
    # The speed reference first: rows without per-op times are timed against it, and every
    # whole-model calibration is.
    meta.reference = (existing.reference if existing and existing.reference
                      else measure_reference(runner, runtime, cache_dir(runtime), threads))
    log(f"speed reference {meta.reference['model']}: {meta.reference['ms']:.3f} ms")
    reference = speed_reference(meta, cache_dir(runtime))
    if runtime != "executorch":  # no per-op times: a row is its program less one call's overhead
        meta.call_overhead_ms = existing.call_overhead_ms if existing and existing.call_overhead_ms else \
            measure_artifact(runner, call_overhead_program(runtime, cache_dir(runtime)), threads,
                             reference=reference)["ms"]
        log(f"call overhead of a micro-program: {meta.call_overhead_ms:.4f} ms")
    analyses = {}
    with ProfileWriter(out, meta) as writer:
        for spec in specs:
            model = build_model(spec).eval()
            analysis = analyze(model, (torch.randn(default_input_shape(spec)),))
            analyses[spec] = (model, analysis)
            rows = plan(layers(analysis), block, fractions)
            added = measure_rows(rows, runner, writer, runtime, cache_dir(runtime), threads, repeats,
                                 show_progress=show_progress, reference=reference,
                                 call_overhead_ms=meta.call_overhead_ms)
            log(f"{spec}: {len(rows)} rows, {added} measured now")
    profile = DeviceProfile.load(out)
    for spec, (model, analysis) in analyses.items():
        if spec in profile.meta.overheads_ms:
            continue
        measured = measure_model(model, analysis.example_inputs, runner, runtime, threads, repeats,
                                 reference=reference)["ms"]
        cost = LatencyCost(analysis, profile)
        layers_ms = float(cost.layers_total())
        profile.meta.overheads_ms[spec] = round(measured - layers_ms, 4)
        profile.meta.measured_ms[spec] = round(measured, 4)
        profile.meta.layer_counts[spec] = len(cost.layers)
        profile.save_meta()
        log(f"{spec}: whole model {measured:.3f} ms, layers {layers_ms:.3f} ms, overhead {measured - layers_ms:.3f} ms")
    return profile


def measure_model(model, inputs, runner, runtime: str = "executorch", threads: int = 1, repeats: int = 50,
                  processes: int = 5, reference=None) -> dict:
    """Lower ``model`` and measure it as ``devices.runner.measure_artifact`` does: ``ms`` is
    speed-normalized when a ``reference`` (devices.reference.speed_reference) is given."""
    with tempfile.TemporaryDirectory(prefix="mobileprune-model-") as tmp:
        path = Path(tmp) / ("model.pte" if runtime == "executorch" else "model.tflite")
        (to_pte if runtime == "executorch" else to_tflite)(model, tuple(inputs), path)
        return measure_artifact(runner, path, threads, processes, repeats, reference=reference)


def on_demand(profile: DeviceProfile, runner, threads: int = 1, repeats: int = 50):
    """A LatencyCost ``measure`` callback: measure missing rows and append them to the profile."""

    def measure(rows: list) -> None:
        runtime = profile.meta.runtime
        with ProfileWriter(profile.path, profile.meta) as writer:
            measure_rows(rows, runner, writer, runtime, cache_dir(runtime), threads, repeats, show_progress=False,
                         reference=speed_reference(profile.meta, cache_dir(runtime)),
                         call_overhead_ms=profile.meta.call_overhead_ms)
        profile.table = DeviceProfile.load(profile.path).table

    return measure
