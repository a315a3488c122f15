"""Calibration: how a sum of table prices becomes a whole model's latency on the device.

``calibrate_models`` measures each profiled model whole (timed in turns with the speed
reference) and records, in the profile, its latency and the sum of its layers' table prices;
``calibrate`` turns those records into a scale (default), a per-layer fit or an offset.
"""
from __future__ import annotations

import numpy as np

from ..devices import runtimes
from ..devices.profile import DeviceProfile, check_same_device
from ..devices.profiler import cache_dir, measure_model
from ..devices.reference import speed_reference

CALIBRATIONS = ("scale", "per-layer", "offset")


def calibrate(meta, model_key: str | None, mode: str = "scale", exclude: tuple = (),
              n_layers: int | None = None, layers_ms: float | None = None) -> tuple[str, float, float]:
    """(mode, scale, overhead ms) turning a sum of table prices into a model's latency:
    ``sum * scale + overhead``.

    "scale" (default): the model's whole-model latency / the sum of its layers' prices at full
    width: ``layers_ms``, that sum in the table as it is now, when given (rows added since the
    model was calibrated, e.g. another model's wider layers of the same kind, move it; the
    unpruned model is then predicted at what it measured), else the sum recorded then. The context a layer runs in (caches warm in a
    micro-benchmark, not inside a model) scales every layer alike, so a pruned model keeps its
    original's ratio. "per-layer": ``a * sum + b * n_layers``, with (a, b) fit by least squares
    over the profile's calibrated models, a fixed cost per executed layer (6-10 us here) that a
    micro-benchmark repeated alone does not show; a calibrated model's own residual scales both
    terms. It predicts models the profile never measured better than the median scale (4 vs 2
    of 7 within 10% here) but prices pruned variants too slow (the excess shrinks with the
    widths). "offset": the difference as a fixed per-call cost; the fallback for profiles
    without whole-model latencies. A model the profile never measured gets the median scale (or
    the fit alone); ``exclude`` leaves models out (leave-one-out checks).
    """
    if mode not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {mode!r}: one of {', '.join(CALIBRATIONS)}")
    overheads = {k: v for k, v in meta.overheads_ms.items() if k not in exclude}
    measured = {k: v for k, v in meta.measured_ms.items() if k in overheads and v > overheads[k]}
    if mode == "per-layer":
        counts = {k: meta.layer_counts[k] for k in measured if k in meta.layer_counts}
        if len(counts) >= 3 and n_layers is not None:
            keys = sorted(counts)
            x = np.array([[measured[k] - overheads[k], counts[k]] for k in keys])
            (a, b), *_ = np.linalg.lstsq(x, np.array([measured[k] for k in keys]), rcond=None)
            if a > 0 and b >= 0:
                own = measured.get(model_key)
                residual = own / (a * (own - overheads[model_key]) + b * n_layers) if own else 1.0
                return mode, float(a * residual), float(b * n_layers * residual)
        mode = "scale"  # too few calibrated models (or a fit without meaning): the scale alone
    if mode == "scale" and measured:
        scales = {k: v / (v - overheads[k]) for k, v in measured.items()}
        if model_key in scales and layers_ms:
            scales[model_key] = measured[model_key] / layers_ms
        return mode, float(scales.get(model_key, np.median(list(scales.values())))), 0.0
    offset = overheads.get(model_key, float(np.median(list(overheads.values()))) if overheads else 0.0)
    return "offset", 1.0, float(offset)


def calibrate_models(profile: DeviceProfile, models: dict, runner, repeats: int = 50, log=print) -> DeviceProfile:
    """Measure every model of ``models`` ({spec: (model, analysis)}) the profile has not
    calibrated yet, on ``runner``'s device, and record it in the profile's metadata."""
    from .latency import LatencyCost

    check_same_device(profile.meta, runner.identity(), profile.path, runner.device)  # meta is a device fact too
    runtime = runtimes.get(profile.meta.runtime)
    reference = speed_reference(profile.meta, cache_dir(runtime))
    for spec, (model, analysis) in models.items():
        if spec in profile.meta.overheads_ms:
            continue
        if _is_the_reference(spec, analysis, profile.meta):
            # Timed in turns with itself, the reference's ratio is 1 by construction: its whole
            # latency is the reference's own, measured already (lowering and timing it again would
            # add only noise, and 15 s on a tiny net of the tests, which is its own reference).
            measured = float(profile.meta.reference["ms"])
        else:
            measured = measure_model(model, analysis.example_inputs, runner, runtime, profile.meta.threads, repeats,
                                     reference=reference)["ms"]
        cost = LatencyCost(analysis, profile)
        layers_ms = float(cost.layers_total())
        profile.meta.overheads_ms[spec] = round(measured - layers_ms, 4)
        profile.meta.measured_ms[spec] = round(measured, 4)
        profile.meta.layer_counts[spec] = len(cost.layers)
        profile.save_meta()
        log(f"{spec}: whole model {measured:.3f} ms, layers {layers_ms:.3f} ms, overhead {measured - layers_ms:.3f} ms")
    return profile


def _is_the_reference(spec: str, analysis, meta) -> bool:
    """Whether ``spec`` at the analysed input shape is the profile's speed reference program."""
    from ..spec import default_input_shape

    inputs = analysis.example_inputs
    return (bool(meta.reference) and meta.reference.get("model") == spec and len(inputs) == 1
            and tuple(inputs[0].shape) == tuple(default_input_shape(spec)))
