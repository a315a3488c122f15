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
from ..devices.profiler import measure_rows, new_meta
from ..devices.programs import to_pte, to_tflite
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
    if block is None:
        existing = DeviceProfile.paths(out)[1]
        if existing.is_file():
            block = ProfileMeta.from_dict(json.loads(existing.read_text())).block
        else:
            block, probe = probe_block(runner, runtime, cache_dir(runtime), threads)
            log(f"block probe (3x3 conv, 28x28, 64 inputs; output width: ms): "
                f"{', '.join(f'{c}: {ms:.3f}' for c, ms in probe.items())} -> block {block}")
    meta = new_meta(runner.device, runtime, threads, block)
    meta.block_probe = {str(c): ms for c, ms in probe.items()}
    analyses = {}
    with ProfileWriter(out, meta) as writer:
        for spec in specs:
            model = build_model(spec).eval()
            analysis = analyze(model, (torch.randn(default_input_shape(spec)),))
            analyses[spec] = (model, analysis)
            rows = plan(layers(analysis), block, fractions)
            added = measure_rows(rows, runner, writer, runtime, cache_dir(runtime), threads, repeats,
                                 show_progress=show_progress)
            log(f"{spec}: {len(rows)} rows, {added} measured now")
    profile = DeviceProfile.load(out)
    for spec, (model, analysis) in analyses.items():
        if spec in profile.meta.overheads_ms:
            continue
        measured = measure_model(model, analysis.example_inputs, runner, runtime, threads, repeats)
        layers_ms = float(LatencyCost(analysis, profile).layers_total())
        profile.meta.overheads_ms[spec] = round(measured - layers_ms, 4)
        profile.meta.measured_ms[spec] = round(measured, 4)
        profile.save_meta()
        log(f"{spec}: whole model {measured:.3f} ms, layers {layers_ms:.3f} ms, overhead {measured - layers_ms:.3f} ms")
    return profile


def measure_model(model, inputs, runner, runtime: str = "executorch", threads: int = 1, repeats: int = 50,
                  processes: int = 5) -> float:
    """Lower ``model`` and return its latency as ``devices.runner.measure_artifact`` defines it
    (the lowest per-process median over fresh processes)."""
    with tempfile.TemporaryDirectory(prefix="mobileprune-model-") as tmp:
        path = Path(tmp) / ("model.pte" if runtime == "executorch" else "model.tflite")
        (to_pte if runtime == "executorch" else to_tflite)(model, tuple(inputs), path)
        return measure_artifact(runner, path, threads, processes, repeats)["ms"]


def on_demand(profile: DeviceProfile, runner, threads: int = 1, repeats: int = 50):
    """A LatencyCost ``measure`` callback: measure missing rows and append them to the profile."""

    def measure(rows: list) -> None:
        with ProfileWriter(profile.path, profile.meta) as writer:
            measure_rows(rows, runner, writer, profile.meta.runtime, cache_dir(profile.meta.runtime),
                         threads, repeats, show_progress=False)
        profile.table = DeviceProfile.load(profile.path).table

    return measure
