"""The speed reference: one fixed whole model a device runs in turns with what it measures.

Whole-model latencies (calibration, checks, `predict --measure`) and profile rows are taken as
a ratio to this program and turned back into milliseconds with the reference's latency stored
in the profile,
so a profile made at 02:00 and a check at 04:00 compare like with like on a machine whose speed
drifts (host_worker._time_paired has the evidence). The program is MobileNetV2 at 224x224 with
weights from a fixed seed: the weights' values do not change its speed, and building it needs
no download.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import runtimes
from .profile import ProfileError, ProfileMeta
from .runner import Runner, SpeedReference, measure_artifact
from .runtimes import Runtime

REFERENCE_MODEL = "torchvision:mobilenet_v2"


def reference_program(runtime: Runtime, build_dir) -> Path:
    """The reference lowered for ``runtime``; built once per runtime version and reused."""
    from ..spec import build, default_input_shape

    path = Path(build_dir) / f"reference-{REFERENCE_MODEL.split(':')[-1]}-{runtime.version()}{runtime.suffix}"
    if not path.is_file():
        torch.manual_seed(0)
        model = build(REFERENCE_MODEL).eval()
        runtime.lower(model, (torch.randn(default_input_shape(REFERENCE_MODEL)),), path)
    return path


def measure_reference(runner: Runner, runtime: Runtime, build_dir, threads: int = 1, processes: int = 5) -> dict:
    """The profile's ``reference`` entry: the reference's own latency (lowest process median)."""
    result = measure_artifact(runner, reference_program(runtime, build_dir), threads, processes)
    return {"model": REFERENCE_MODEL, "ms": result["ms"], "median_ms": result["median"]}


def speed_reference(meta: ProfileMeta, build_dir) -> SpeedReference | None:
    """The reference to measure against for a profile (its metadata), or None for a profile made
    without one (its whole-model latencies were taken as plain wall-clock times)."""
    entry = meta.reference
    if not entry:
        return None
    if entry.get("model") != REFERENCE_MODEL:
        raise ProfileError(f"the profile was measured against {entry.get('model')!r}, this mobileprune "
                           f"builds {REFERENCE_MODEL!r} as its speed reference; re-profile the device")
    return SpeedReference(str(reference_program(runtimes.get(meta.runtime), build_dir)), float(entry["ms"]))
