"""The main job, end to end as far as mobileprune goes today: analyse a real model's channels,
prune 30% of every prunable group in blocks of 8, slim it physically, check it equals the masked
reference, store it as spec + plan + weights, reload it, and capture it with torch.export.

Run with `make demo`. Later stages (device profiles, latency budgets, export to .pte/.tflite)
grow this script as they land.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

import mobileprune as mp
from mobileprune.cli import print_groups
from mobileprune.slim.slimming import check_equal
from mobileprune.spec import build

SPECS = sys.argv[1:] or ["torchvision:mobilenet_v2", "torchvision:shufflenet_v2_x1_0"]
PROFILE = Path(__file__).resolve().parent.parent / "device_profiles" / "host-executorch-1t.csv"


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    console = Console(width=140)
    for spec in SPECS:
        model = build(spec).eval()
        x = torch.randn(1, 3, 224, 224)
        analysis = mp.analyze(model, x)
        print_groups(analysis, title=spec, console=console)
        plan = mp.PrunePlan.random(analysis, ratio=0.3, block=8, seed=0)
        slimmed = mp.slim(model, analysis, plan)  # verifies slimmed == masked on x
        diff = check_equal(model, slimmed, analysis, plan)
        with tempfile.TemporaryDirectory() as tmp:
            mp.save(tmp, spec, plan, slimmed, [tuple(x.shape)])
            reloaded, _ = mp.load(tmp)
        with torch.no_grad():
            same = torch.equal(reloaded(x), slimmed(x))
        start = time.perf_counter()
        torch.export.export(slimmed, (x,))
        console.print(
            f"[bold]{spec}[/]: pruned {len(plan.keep)} of {len(analysis.free_groups)} prunable groups; "
            f"params {count(model):,} -> {count(slimmed):,} ({count(slimmed) / count(model):.0%}); "
            f"slimmed vs masked rel. diff {diff:.1e}; reloaded from plan identical: {same}; "
            f"torch.export of the slimmed model {time.perf_counter() - start:.1f} s")
        latency(console, spec, model, slimmed, analysis, plan)


def latency(console, spec, model, slimmed, analysis, plan) -> None:
    """Predicted (from the shipped host profile) vs measured ExecuTorch latency, before and after."""
    from mobileprune.cost import LatencyCost, fractions_from_plan
    from mobileprune.cost.calibrate import measure_model
    from mobileprune.devices import HostRunner
    from mobileprune.devices.profile import DeviceProfile

    profile = DeviceProfile.load(PROFILE)
    cost = LatencyCost(analysis, profile, model_key=spec)
    for name, net, fractions in (("original", model, None), ("pruned", slimmed, fractions_from_plan(analysis, plan))):
        predicted = float(cost(fractions))
        measured = measure_model(net, analysis.example_inputs, HostRunner(), threads=profile.meta.threads)
        console.print(f"  {name:8s} ExecuTorch-XNNPACK, 1 thread: predicted {predicted:.2f} ms, "
                      f"measured {measured:.2f} ms ({100 * (predicted - measured) / measured:+.1f}%)")
    console.print()


if __name__ == "__main__":
    main()
