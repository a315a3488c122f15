"""The speed reference: one fixed whole model a device runs in turns with what it measures.

Whole-model latencies (calibration, checks, `predict --measure`) and profile rows are taken as
a ratio to this program and turned back into milliseconds with the reference's latency stored
in the profile,
so a profile made at 02:00 and a check at 04:00 compare like with like on a machine whose speed
drifts (host_worker._time_paired has the evidence). The program is MobileNetV2 at 224x224 with
weights from a fixed seed unless the profile was made with another (its metadata names the
model): the weights' values do not change its speed, and building it needs no download.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from . import runtimes
from .latency_table import ProfileError, ProfileMeta
from .runner import Runner, SpeedReference, measure_artifact
from .runtimes import Runtime

REFERENCE_MODEL = "torchvision:mobilenet_v2"


def reference_program(runtime: Runtime, build_dir, model: str = REFERENCE_MODEL) -> Path:
    """The reference ``model`` (a model spec, at its default input shape) lowered for
    ``runtime``; built once per runtime version and reused."""
    from ..spec import build, default_input_shape

    shape = default_input_shape(model)
    tag = hashlib.sha1(f"{model}|{shape}".encode()).hexdigest()[:8]  # two file specs may share a name
    path = Path(build_dir) / f"reference-{model.split(':')[-1]}-{tag}-{runtime.version()}{runtime.suffix}"
    if not path.is_file():
        torch.manual_seed(0)
        runtime.lower(build(model).eval(), (torch.randn(shape),), path)
    return path


def measure_reference(runner: Runner, runtime: Runtime, build_dir, threads: int = 1, processes: int = 5,
                      model: str = REFERENCE_MODEL) -> dict:
    """The profile's ``reference`` entry: the reference's own latency (lowest process median).
    ``model``: MobileNetV2 by default; a smaller program where the reference's own time is what
    a measurement waits for (the tests' tiny profiles; a slow or emulated device)."""
    result = measure_artifact(runner, reference_program(runtime, build_dir, model), threads, processes)
    return {"model": model, "ms": result["ms"], "median_ms": result["median"]}


def speed_reference(meta: ProfileMeta, build_dir) -> SpeedReference | None:
    """The reference to measure against for a profile (its metadata), or None for a profile made
    without one (its whole-model latencies were taken as plain wall-clock times)."""
    from ..spec import SpecError

    entry = meta.reference
    if not entry:
        return None
    try:
        path = reference_program(runtimes.get(meta.runtime), build_dir, str(entry.get("model")))
    except SpecError as exc:
        raise ProfileError(f"the profile was measured against {entry.get('model')!r}, which cannot be built here "
                           f"({exc}); re-profile the device") from None
    return SpeedReference(str(path), float(entry["ms"]))
