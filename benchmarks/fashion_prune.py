"""Accuracy at a measured latency budget: gates and fisher against l1 and uniform width, one run.

    .venv/bin/python benchmarks/fashion_prune.py --profile device_profiles/host-amd-epyc-f25m17-executorch-1t.csv

The Fashion-MNIST MobileNetV2-like net (fashion:mobilenet_w1, trained weights) is pruned to
--share (50%) of its predicted latency on the profile's device by each method, then fine-tuned;
every contender gets the same number of training steps in all (pruning steps + fine-tuning
steps; l1 prunes in one shot, so it fine-tunes for both):
- gates, fisher: train while pruning (--prune-steps), then fine-tune (--finetune-steps);
- l1: one shot from the trained weights, then fine-tune for both step counts;
- uniform: the same architecture at the one width share that meets the budget, trained from
  scratch (random init) for both step counts.
Layer widths the profile lacks (gates price the expected widths of every cell of the tile grid)
are measured on this machine as the run meets them and added to the profile (it must be this
machine's: the script refuses another device's).
Printed: top-1 on the 10,000 test images (mean and spread over --seeds), the plan's predicted
latency and the .pte's measured latency (1 thread, normalised to the profile's speed, as
latency_truth measures it), against the budget.
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from measured import from_scratch, this_machine

import mobileprune as mp
from mobileprune.data import load_data, top1
from mobileprune.train.loop import TrainConfig, train
from mobileprune.spec import build, default_input_shape

METHODS = ["gates", "fisher", "l1", "uniform"]


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--spec", default="fashion:mobilenet_w1")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--prune-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="a few steps, one seed, 500 test images")
    args = parser.parse_args(argv)
    if args.quick:
        args.prune_steps, args.finetune_steps, args.seeds, args.processes, args.test_images = 3, 3, 1, 1, 500
    here = this_machine(args.profile, args.processes, "fashion_prune")
    profile = here.profile
    shape = default_input_shape(args.spec)
    data = load_data("fashion-mnist", shape)
    original = build(args.spec).eval()
    base = top1(original, data.test, args.test_images)
    print(f"{args.spec}: top-1 {100 * base:.2f}% on {min(args.test_images, len(data.test))} test images before pruning")
    fixed = fixed_cost_share(here, original, shape)
    print(f"fixed per-op cost: {fixed['fixed_ms']:.3f} of {fixed['ms']:.3f} ms at {shape[-1]}x{shape[-2]} "
          f"({100 * fixed['share']:.0f}%); at Fashion-MNIST's native 28x28 it would be {100 * fixed['share_28']:.0f}% "
          f"(from the net measured at full and half size: compute scales with the pixels, the per-op cost does not)")
    rows = []
    for method in args.methods:
        scores, predicted, measured, budget = [], [], [], None
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            start = original if method != "uniform" else from_scratch(original)
            result = mp.prune(start, torch.randn(shape), data, method=method,
                              target=mp.Target(budget=f"{100 * args.share:g}%", profile=profile, device=here.runner),
                              training=mp.TrainConfig(steps=args.prune_steps, batch_size=args.batch_size, lr=1e-3,
                                                      seed=seed),
                              output=mp.Output(spec=args.spec, show=False))
            pruning_trained = method in ("gates", "fisher")
            steps = args.finetune_steps + (0 if pruning_trained else args.prune_steps)
            config = TrainConfig(steps=steps, batch_size=args.batch_size, lr=1e-3, seed=seed, schedule="cosine")
            train(result.model, data.train, F.cross_entropy, config, show=False)
            scores.append(top1(result.model, data.test, args.test_images))
            predicted.append(result.report["predicted"]["after"])
            budget = result.report["predicted"]["budget"]
            if seed == 0:  # the architecture (and so the latency) barely depends on the seed: measure one
                m = here.measure(result.model.eval(), shape)
                measured.append(m["ms"])
            print(f"  {method:8s} seed {seed}: top-1 {100 * scores[-1]:.2f}%  predicted {predicted[-1]:.3f} ms",
                  flush=True)
        rows.append({"method": method, "top1_mean": statistics.mean(scores),
                     "top1_spread": (max(scores) - min(scores)) / 2, "predicted": statistics.mean(predicted),
                     "measured": measured[0], "budget": budget, "seeds": len(scores)})
    print(f"\n{args.spec} at {100 * args.share:g}% of its latency ({profile.meta.runtime}, 1 thread, {args.seeds} seeds, "
          f"{args.prune_steps}+{args.finetune_steps} training steps each, batch {args.batch_size}); "
          f"unpruned top-1 {100 * base:.2f}%")
    print(f"{'method':10s} {'top-1 %':>16s} {'predicted ms':>13s} {'measured ms':>12s} {'budget ms':>10s}")
    for r in rows:
        print(f"{r['method']:10s} {100 * r['top1_mean']:8.2f} +- {100 * r['top1_spread']:4.2f} {r['predicted']:13.3f} "
              f"{r['measured']:12.3f} {r['budget']:10.3f}")
    return rows


def fixed_cost_share(here, model, shape) -> dict:
    """Split the model's latency into a per-op fixed part F and a compute part C proportional to
    the pixels: t(full) = F + C, t(half size) = F + C / 4."""
    full = here.measure(model, shape)["ms"]
    half = here.measure(model, (*shape[:-2], shape[-2] // 2, shape[-1] // 2))["ms"]
    compute = (full - half) * 4 / 3
    fixed = full - compute
    at_28 = compute * (28 * 28) / (shape[-2] * shape[-1])
    return {"ms": full, "ms_half": half, "fixed_ms": fixed, "share": fixed / full, "share_28": fixed / (fixed + at_28)}


if __name__ == "__main__":
    main()
