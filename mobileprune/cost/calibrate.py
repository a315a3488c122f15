"""Calibration: how a sum of table prices becomes a whole model's latency on the device.

Profiling (profiling.py's ``calibrate_models``) measures each profiled model whole, timed in
turns with the speed reference, and records in the profile its latency and the sum of its
layers' table prices; ``calibrate`` turns those records into a scale (default), a per-layer fit
or an offset.
"""
from __future__ import annotations

import numpy as np

CALIBRATIONS = ("scale", "per-layer", "offset")


def fixed_share(predicted_share: float, measured_share: float) -> float | None:
    """The share of a model's latency its widths do not change, from one pruned variant: the
    table predicts the variant's layers at ``predicted_share`` of the original's, the device
    measured it at ``measured_share``, and measured = fixed + (1 - fixed) x predicted. Clipped to
    [0, 0.9] (noise can put a measurement under the table's share); None when the variant is too
    close to the original for the difference to mean anything."""
    if not 0 < predicted_share < 0.9:
        return None
    return float(min(0.9, max(0.0, (measured_share - predicted_share) / (1 - predicted_share))))


def calibrate(meta, model_key: str | None, mode: str = "scale", exclude: tuple = (),
              n_layers: int | None = None, layers_ms: float | None = None) -> tuple[str, float, float]:
    """(mode, scale, overhead ms) turning a sum of table prices into a model's latency:
    ``sum * scale + overhead``.

    "scale" (default): the model's whole-model latency / the sum of its layers' prices at full
    width: ``layers_ms``, that sum in the table as it is now, when given (rows added since the
    model was calibrated, e.g. another model's wider layers of the same kind, move it; the
    unpruned model is then predicted at what it measured), else the sum recorded then. The
    context a layer runs in (caches warm in a micro-benchmark, not inside a model) scales every
    layer alike; what pruning cannot remove (each layer's launch, the layout changes, the
    classifier: the model's "fixed share", ``meta.fixed_shares``, measured with a pruned variant
    by profiling.calibrate_models) is kept apart as a fixed cost, so a pruned model keeps its
    original's ratio on the rest. Without it a half-width fashion:resnet_w0.5 was predicted at
    0.50 and measured at 0.60 of its original (AMX Xeon, 2026-12-06).
    "per-layer": ``a * sum + b * n_layers``, with (a, b) fit by least squares over the profile's
    calibrated models, a fixed cost per executed layer (6-10 us here) that a
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
        scale = float(scales.get(model_key, np.median(list(scales.values()))))
        fixed = float(meta.fixed_shares.get(model_key, 0.0)) if model_key in scales else 0.0
        full_ms = measured[model_key] if model_key in scales else 0.0  # the unpruned model's prediction
        return mode, scale * (1 - fixed), fixed * full_ms
    offset = overheads.get(model_key, float(np.median(list(overheads.values()))) if overheads else 0.0)
    return "offset", 1.0, float(offset)
