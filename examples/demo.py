"""The main job, end to end as far as mobileprune goes today: analyse a real model's channels,
prune 30% of every prunable group in blocks of the device's block, slim it physically, check it
equals the masked reference, store it as spec + plan + weights, reload it, predict its latency
from a profile of *this* machine, measure it here, and export it to .pte and .tflite with
parity and delegation checks in a manifest.

A latency table is a fact about one device: when no profile of this machine is shipped (in
device_profiles/) or cached (~/.cache/mobileprune/profiles/), the demo first profiles this
machine for the models it uses and caches the result (a few minutes, printed).

Run with `make demo`. The pruning-to-a-budget stage grows this script when it lands.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

import mobileprune as mp
from mobileprune.cli import print_groups
from mobileprune.devices.profile import DeviceProfile
from mobileprune.slim.slimming import check_equal
from mobileprune.spec import build

SPECS = sys.argv[1:] or ["torchvision:mobilenet_v2", "torchvision:shufflenet_v2_x1_0"]
SHIPPED = Path(__file__).resolve().parent.parent / "device_profiles"
CACHED = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mobileprune" / "profiles"


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def profile_of_this_machine(console) -> DeviceProfile:
    """A profile of this machine covering SPECS: shipped, cached, or measured now and cached."""
    from mobileprune.devices import HostRunner
    from mobileprune.devices.profile import default_profile_path
    from mobileprune.profiling import find_profile, profile_device

    runner = HostRunner()
    this = runner.identity()
    profile = find_profile(this, "executorch", 1, [CACHED, SHIPPED], covering=SPECS)
    if profile is not None and all(spec in profile.meta.overheads_ms for spec in SPECS):
        console.print(f"profile of this machine: {profile.path}")
        return profile
    shipped = DeviceProfile.load(SHIPPED / "host-executorch-1t.csv")
    if not shipped.meta.device_identity.matches(this):
        console.print(f"the shipped profile describes {shipped.meta.device_identity.describe()};\nthis machine is "
                      f"{this.describe()}.\nA latency table of another CPU does not predict this one: profiling "
                      f"this machine for {', '.join(SPECS)} (cached for the next run).")
    out = default_profile_path(this, "executorch", 1, CACHED)
    if profile is not None and Path(profile.path).resolve() != out.resolve():  # extend a copy, not the shipped file
        profile.save(out)
    start = time.perf_counter()
    profile = profile_device(SPECS, out, runner, "executorch", threads=1, repeats=30, show_progress=False,
                             log=lambda line: console.print(f"  {line}"))
    console.print(f"profiled this machine in {time.perf_counter() - start:.0f} s: {profile.path} "
                  f"({len(profile.table)} rows, block {profile.meta.block})\n")
    return profile


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    console = Console(width=140)
    profile = profile_of_this_machine(console)
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
    """Predicted vs measured ExecuTorch latency on this machine, of the original and the pruned
    model; then the pruned model exported to both formats and checked."""
    from mobileprune.devices import HostRunner
    from mobileprune.predict import ModelRef, predict

    for label, ref in (("original", ModelRef(spec, model, analysis, mp.PrunePlan.full(analysis), model)),
                       ("pruned  ", ModelRef(spec, model, analysis, plan, slimmed))):
        r = predict(ref, profile, HostRunner(), measure=True)
        m = r["measurement"]
        console.print(f"  {label} {r['runtime']}, 1 thread: predicted {r['predicted_ms']:.3f} ms, measured "
                      f"{m['ms']:.3f} ms at the profile's speed ({r['error_pct']:+.1f}%; wall clock now "
                      f"{m['raw_ms']:.3f} ms)")
    prediction = predict(ModelRef(spec, model, analysis, plan, slimmed), profile)
    with tempfile.TemporaryDirectory() as out:
        manifest = mp.export(slimmed, analysis.example_inputs, out, ("pte", "tflite"), plan=plan, spec=spec,
                             prediction=prediction)
    for a in manifest["artifacts"]:
        delegated = f", {100 * a['delegation']['delegated_share']:.0f}% of ops in XNNPACK" if a["delegation"] else ""
        console.print(f"  pruned   {a['format']:6s} {a['size_bytes'] / 1e6:.1f} MB, parity rel. diff "
                      f"{a['parity']['rel_diff']:.1e} ({', '.join(a['checked_with'])}){delegated}")
    console.print()


if __name__ == "__main__":
    main()
