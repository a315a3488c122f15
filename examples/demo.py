"""The main job, end to end as far as mobileprune goes today: analyse a real model's channels,
prune 30% of every prunable group in blocks of the device's block (from the shipped host
profile), slim it physically, check it equals the masked reference, store it as spec + plan +
weights, reload it, predict its latency from the profile, and export it to .pte and .tflite with
parity, delegation and measured latency in a manifest.

Run with `make demo`. The pruning-to-a-budget stage grows this script when it lands.
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
    from mobileprune.devices.profile import DeviceProfile

    torch.manual_seed(0)
    torch.set_num_threads(1)
    console = Console(width=140)
    profile = DeviceProfile.load(PROFILE)
    for spec in SPECS:
        model = build(spec).eval()
        x = torch.randn(1, 3, 224, 224)
        analysis = mp.analyze(model, x)
        print_groups(analysis, title=spec, console=console)
        plan = mp.PrunePlan.random(analysis, ratio=0.3, block=profile.meta.block, seed=0)
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
        latency_and_export(console, profile, spec, model, slimmed, analysis, plan)


def latency_and_export(console, profile, spec, model, slimmed, analysis, plan) -> None:
    """Predicted (from the shipped host profile) vs measured ExecuTorch latency of the original;
    then the pruned model exported to both formats, checked, and measured."""
    from mobileprune.cost import LatencyCost, fractions_from_plan
    from mobileprune.cost.calibrate import cache_dir, measure_model
    from mobileprune.devices import HostRunner
    from mobileprune.devices.reference import speed_reference

    cost = LatencyCost(analysis, profile, model_key=spec)
    predicted = float(cost())
    reference = speed_reference(profile.meta, cache_dir(profile.meta.runtime))
    m = measure_model(model, analysis.example_inputs, HostRunner(), threads=profile.meta.threads, reference=reference)
    console.print(f"  original ExecuTorch-XNNPACK, 1 thread: predicted {predicted:.2f} ms, measured {m['ms']:.2f} ms "
                  f"at the profile's speed ({100 * (predicted - m['ms']) / m['ms']:+.1f}%; wall clock now "
                  f"{m.get('raw_ms', m['ms']):.2f} ms)")
    predicted = float(cost(fractions_from_plan(analysis, plan)))
    with tempfile.TemporaryDirectory() as out:
        manifest = mp.export(slimmed, analysis.example_inputs, out, ("pte", "tflite"), plan=plan, spec=spec,
                             measure=True, profile=PROFILE.name, predicted_ms=predicted)
    for a in manifest["artifacts"]:
        delegated = f", {100 * a['delegation']['delegated_share']:.0f}% of ops in XNNPACK" if a["delegation"] else ""
        console.print(f"  pruned   {a['format']:6s} {a['size_bytes'] / 1e6:.1f} MB, parity rel. diff "
                      f"{a['parity']['rel_diff']:.1e} ({', '.join(a['checked_with'])}){delegated}; measured "
                      f"{a['latency_ms']:.2f} ms wall clock" + (f" (predicted {predicted:.2f} ms, "
                                                    f"{100 * (predicted - a['latency_ms']) / a['latency_ms']:+.1f}%)"
                                                    if a["format"] == "pte" else ""))
    console.print()


if __name__ == "__main__":
    main()
