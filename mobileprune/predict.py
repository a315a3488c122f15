"""Predict a model's latency from a profile, and measure it on the profile's device.

The prediction is for the device the profile was measured on. Every prediction says whether
that is the device it runs on (``device_match``); measurements are only ever compared with a
profile of the device they are taken on (a percentage error between two devices means
nothing), and a profile of another device is never extended with rows measured here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .cost import LatencyCost, fractions_from_plan
from .cost.registry import CostError, CostInputs
from .cost.registry import make as build_cost
from .devices import runtimes
from .devices.identity import compare, host_identity, refuse_emulated
from .devices.latency_table import DeviceProfile, ProfileError, profile_command
from .devices.measuring import measure_for_profile, on_demand
from .graph import Analysis
from .plan import PrunePlan
from .slim import analyze
from .spec import build, default_input_shape, parse_shape
from .storage import is_saved, load_saved


@dataclass
class ModelRef:
    """A model as the commands take it: a spec (unpruned) or a saved pruned directory."""

    spec: str
    original: nn.Module
    analysis: Analysis  # of the original
    plan: PrunePlan
    model: nn.Module  # what runs: the pruned model, or the original

    @property
    def example_inputs(self) -> tuple:
        return self.analysis.example_inputs


def resolve(model_arg: str, input_shape: str | None = None) -> ModelRef:
    """A spec or a saved pruned model dir, captured once."""
    if is_saved(model_arg):
        saved = load_saved(model_arg)
        return ModelRef(saved.meta["spec"], saved.original, saved.analysis, saved.plan, saved.model)
    shape = parse_shape(input_shape) if input_shape else default_input_shape(model_arg)
    original = build(model_arg).eval()
    analysis = analyze(original, (torch.randn(shape),))
    return ModelRef(model_arg, original, analysis, PrunePlan.full(analysis), original)


def predict(ref: ModelRef, profile: DeviceProfile | None, runner=None, measure: bool = False,
            calibration: str = "scale", processes: int = 5, *, cost: str = "latency") -> dict:
    """Predicted latency of ``ref`` on the profile's device, per layer kind; with a ``runner``,
    rows the profile lacks are measured on it, and with ``measure`` the model is measured whole
    (in ``processes`` fresh processes). Both need the runner's device to be the profile's
    (ProfileError otherwise). Every result holds ``cost``, ``unit``, ``predicted`` and the
    original's ``original``; ``cost``: another cost model of cost/registry.py (e.g. "flops", or
    one registered by the user) prices the model instead, with the profile only if it needs one."""
    if cost != "latency" or profile is None:  # (a latency cost without a profile: refused by build_cost)
        model = build_cost(cost, ref.analysis, CostInputs(profile, ref.spec))
        if runner is not None or measure:
            raise CostError(f"only a latency is measured on a device, not a {cost} cost: predict it without "
                            "--device or --measure")
        with torch.no_grad():
            predicted = model(fractions_from_plan(ref.analysis, ref.plan))
            return {"cost": cost, "unit": model.unit, "predicted": float(predicted), "original": float(model())}
    this = runner.identity() if runner is not None else host_identity()
    if runner is not None:
        refuse_emulated(this, runner.device, "a prediction measured or completed")
    match = compare(profile.meta.device_identity, this)
    if runner is not None and not match.matches:
        raise ProfileError(
            f"{profile.path} is a profile of {match.profile_device.describe()}; --device {runner.device} is "
            f"{this.describe()} (differs in {'; '.join(match.differences)}). Measuring here would append "
            f"this device's rows to another device's table, or compare latencies of two devices: refused. "
            f"Predict without --device to get the profile's device's latency, or profile this device with "
            f"`{profile_command(this, profile.meta.runtime, profile.meta.threads, runner.device)}`")
    latency = LatencyCost(analysis=ref.analysis, profile=profile, model_key=ref.spec, calibration=calibration,
                          measure=on_demand(profile, runner) if runner is not None else None)
    fractions = fractions_from_plan(ref.analysis, ref.plan)
    predicted = float(latency(fractions))
    by_kind: dict[str, float] = {}
    by_layer = []  # in graph order: the report's per-layer table (report/)
    for layer, ms in latency.per_layer(fractions):  # calibrated like the total
        by_kind[layer.op] = by_kind.get(layer.op, 0.0) + ms * latency.scale
        by_layer.append({"node": layer.node, "op": layer.op, "cin": float(layer.cin.at(fractions)),
                         "cout": float(layer.cout.at(fractions)), "ms": ms * latency.scale, "tile": latency.tile(layer)})
    if latency.overhead_ms:
        by_kind["overhead"] = latency.overhead_ms
    result = {"cost": "latency", "unit": "ms", "predicted": predicted, "original": float(latency()),
              "predicted_ms": predicted, "by_kind_ms": by_kind, "by_layer": by_layer, "profile": str(profile.path),
              "runtime": runtimes.get(profile.meta.runtime).label, "threads": profile.meta.threads,
              "calibration": {"mode": latency.calibration, "scale": latency.scale, "overhead_ms": latency.overhead_ms},
              **match.to_dict(), "device_note": None if match.matches else match.warning(),
              "profile_identity": match.profile_device.to_dict(), "measured_ms": None, "measurement": None, "error_pct": None}
    if measure:
        if runner is None:
            raise ValueError("measure=True needs a runner")
        # Timed in turns with the profile's speed reference: comparable with the prediction even
        # when the device's speed has drifted since profiling (devices/reference.py).
        m = measure_for_profile(ref.model, ref.example_inputs, runner, profile.meta, processes)
        result.update(measured_ms=m["ms"], measurement=m, error_pct=100 * (predicted - m["ms"]) / m["ms"])
    return result
