"""How long channel analysis takes: torch.export's capture and mobileprune's own work, apart.

    .venv/bin/python benchmarks/analysis_speed.py            # three named models, 5 runs each
    .venv/bin/python benchmarks/analysis_speed.py --zoo      # plus every torchvision classifier once

One thread; medians over runs in this process (the spread is printed too).
"""
from __future__ import annotations

import argparse
import statistics
import warnings

import torch
import torchvision

import mobileprune as mp

NAMED = ["resnet50", "mobilenet_v3_large", "efficientnet_b0"]


def time_model(name: str, runs: int) -> tuple[list, list]:
    size = 299 if name == "inception_v3" else 224
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, size, size)
    export, own = [], []
    for _ in range(runs):
        a = mp.analyze(model, x)
        export.append(a.export_seconds)
        own.append(a.analysis_seconds)
    return export, own


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zoo", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"{'model':24s} {'torch.export s':>15s} {'ours s':>8s} {'ours min..max':>14s} {'ours/export':>11s}")
    for name in NAMED:
        export, own = time_model(name, args.runs)
        e, o = statistics.median(export), statistics.median(own)
        print(f"{name:24s} {e:15.3f} {o:8.3f} {min(own):6.3f}..{max(own):.3f} {o / e:11.2f}")
    if args.zoo:
        rows = []
        for name in torchvision.models.list_models(module=torchvision.models):
            export, own = time_model(name, 1)
            rows.append((name, export[0], own[0]))
        total_e, total_o = sum(r[1] for r in rows), sum(r[2] for r in rows)
        worst = max(rows, key=lambda r: r[2])
        print(f"zoo ({len(rows)} models): torch.export {total_e:.1f} s total, median "
              f"{statistics.median(r[1] for r in rows):.2f} s; ours {total_o:.1f} s total, median "
              f"{statistics.median(r[2] for r in rows):.3f} s, slowest {worst[0]} {worst[2]:.2f} s; "
              f"ours/export {total_o / total_e:.2f}")


if __name__ == "__main__":
    main()
