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

import torch
from rich.console import Console

import mobileprune as mp
from mobileprune.cli import print_groups
from mobileprune.slim.slimming import check_equal
from mobileprune.spec import build

SPECS = sys.argv[1:] or ["torchvision:mobilenet_v2", "torchvision:shufflenet_v2_x1_0"]


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
            f"torch.export of the slimmed model {time.perf_counter() - start:.1f} s\n")


if __name__ == "__main__":
    main()
